"""Small helpers the notebooks call, so that notebooks hold parameters, calls and plots only."""
from __future__ import annotations

import json
from pathlib import Path

from milan_lab.engine.common import write_json


def overrides(**params) -> dict:
    """Notebook parameters -> config overrides; ``None`` means "keep the preset's value"."""
    return {k: v for k, v in params.items() if v is not None}


def save_figure(fig, output_dir: str | Path, name: str) -> str:
    path = Path(output_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return str(path)


def read_metrics(output_dir: str | Path) -> dict:
    path = Path(output_dir) / "metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the job that writes it first")
    return json.loads(path.read_text())


def save_notebook_metrics(output_dir: str | Path, name: str, **metrics) -> str:
    """The metrics a notebook run reports (tests assert on this file)."""
    path = Path(output_dir) / f"{name}_metrics.json"
    write_json(path, metrics)
    return str(path)
