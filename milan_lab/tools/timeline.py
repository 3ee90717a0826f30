"""``milan-lab timeline RUN``: score each snapshot of a run's timeline and draw the curve."""
from __future__ import annotations

from pathlib import Path

from milan_lab.evaluation.timeline import snapshots, timeline_metrics
from milan_lab.io.targets import check_writable
from milan_lab.io.weights import atomic_write


def default_out(run: str | Path) -> Path:
    """RUN/timeline.png: beside the run's own files (the run folder is the user's, not the package's)."""
    return Path(run) / "timeline.png"


def write_timeline_figure(result: dict, out: str | Path) -> Path:
    from milan_lab.viz.timeline import timeline_figure
    fig = timeline_figure(result)
    return atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))


def timeline_command(run: str | Path, out: str | Path | None = None, knn_train: int = 1024, knn_val: int = 256,
                     scenes: int = 128, seed: int = 0) -> tuple[dict, Path]:
    """The run's snapshots and the output file checked first, then the scores, then the figure."""
    snapshots(run)
    out = Path(out) if out is not None else default_out(run)
    check_writable(out, "--out")
    result = timeline_metrics(run, knn_train, knn_val, scenes, seed)
    return result, write_timeline_figure(result, out)
