"""Compare finished (or still running) training runs: what their configs change, their curves on one
axis of images seen, and their final numbers, with a t-interval when the runs are seeds of one recipe.

A run folder is what a job's ``output_dir`` holds: ``metrics.json`` (summary, history, config) when the
run finished, ``metrics.csv`` (one row per logged step or evaluation) while it runs, and
``checkpoints/step_*.pt`` (which carry the config and the history too). The config is read from
``metrics.json``, else from the newest checkpoint; the curves from ``metrics.csv``, else from the
history of either. Images seen = step x ``batch_size`` (the global batch of one optimiser step), so
runs at different batch sizes are compared at equal data, not at equal step counts.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from milan_lab.engine.loggers import flat_config
from milan_lab.errors import CheckpointError, ConfigError
from milan_lab.evaluation.stats import t_interval
from milan_lab.io.checkpoints import latest_checkpoint, load_checkpoint
from milan_lab.io.targets import check_writable
from milan_lab.io.weights import atomic_write

CURVES = ("loss", "knn_acc")  # the two curves drawn; the finals also take a classifier's top-1/top-5
FINALS = ("loss", "knn_acc", "top1", "top5")
LABELS = {"loss": "loss", "knn_acc": "kNN top-1", "top1": "top-1", "top5": "top-5"}
SEED_KEYS = ("seed", "output_dir")  # runs whose configs differ in these alone are seeds of one recipe
NOT_A_DIFFERENCE = ("output_dir",)  # each run's own folder: the table names the runs by it already


@dataclass
class Run:
    """One run folder, read: ``config`` flattened to dotted keys, ``rows`` as the trainer logged them."""
    name: str
    path: Path
    config: dict
    rows: list[dict]
    summary: dict | None = None
    curves: dict = field(default_factory=dict)  # metric -> [(images seen, value)], in step order

    @property
    def batch_size(self) -> int:
        return int(self.config["batch_size"])

    @property
    def steps(self) -> int:
        return max((int(r["step"]) for r in self.rows), default=0)

    @property
    def images_seen(self) -> int:
        return self.steps * self.batch_size

    @property
    def finished(self) -> bool:
        return self.summary is not None

    def final(self, metric: str) -> float | None:
        """The last value of ``metric`` the run logged (None if it logged none)."""
        points = self.curves.get(metric) or []
        return points[-1][1] if points else None


def read_run(folder: str | Path) -> Run:
    """A run folder's config and metrics; a folder that is not a run is one CheckpointError naming it."""
    path = Path(folder)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such run folder")
    metrics_json, metrics_csv = path / "metrics.json", path / "metrics.csv"
    data = _read_json(metrics_json) if metrics_json.is_file() else None
    state = None
    if data is None or not isinstance(data.get("config"), dict):
        ckpt = latest_checkpoint(path / "checkpoints")
        if ckpt is None and data is None:
            raise CheckpointError(f"{path}: not a run folder (no metrics.json and no checkpoints/step_*.pt; give the "
                                  f"output_dir of a training run)")
        state = load_checkpoint(ckpt) if ckpt is not None else None
        if not isinstance((state or {}).get("config"), dict):
            raise CheckpointError(f"{path}: its metrics.json and checkpoints hold no config; not a milan-lab run folder")
    config = flat_config(data["config"] if state is None else state["config"])
    if "batch_size" not in config:
        raise CheckpointError(f"{path}: its config has no batch_size; not a training run's folder")
    rows = (_read_csv(metrics_csv) if metrics_csv.is_file() else
            list((data or {}).get("history") or (state or {}).get("history") or []))
    summary = data.get("summary") if data is not None else None
    run = Run(path.name, path, config, rows, summary)
    run.curves = {m: [(int(r["step"]) * run.batch_size, float(r[m])) for r in rows if _number(r.get(m)) is not None]
                  for m in FINALS}
    return run


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot be read as JSON ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a run's metrics.json (a JSON {type(data).__name__}, not an object)")
    return data


def _read_csv(path: Path) -> list[dict]:
    """The rows of a metrics.csv as numbers (the empty cells of a row that did not log a column dropped)."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CheckpointError(f"{path}: cannot be read as CSV ({type(e).__name__}: {e})") from None
    if rows and "step" not in rows[0]:
        raise CheckpointError(f"{path}: not a run's metrics.csv (no 'step' column)")
    out = []
    for r in rows:
        values = {k: _number(v) for k, v in r.items() if k is not None}
        if values.get("step") is not None:
            out.append({k: v for k, v in values.items() if v is not None})
    return out


def _number(value) -> float | None:
    if value is None or value == "":
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _unique_names(runs: list[Run]) -> None:
    """Name each run by its folder; folders of the same name (seed0 under two studies) by parent/name."""
    names = [r.name for r in runs]
    for r in runs:
        if names.count(r.name) > 1:
            r.name = f"{r.path.resolve().parent.name}/{r.path.name}"


def config_differences(runs: list[Run], ignore=NOT_A_DIFFERENCE) -> list[dict]:
    """``[{"key", "values": [one per run, None where a run's config lacks the key]}]`` for every config
    key whose value is not the same in all runs (``ignore`` left out), in key order."""
    keys = sorted(set().union(*(r.config for r in runs)) - set(ignore))
    rows = []
    for key in keys:
        values = [r.config.get(key) for r in runs]
        if any(v != values[0] for v in values[1:]):
            rows.append({"key": key, "values": values})
    return rows


def recipe_group(runs: list[Run]) -> dict | None:
    """``{"seeds": [...]}`` when the runs' configs differ only in ``seed`` (and ``output_dir``): seeds of
    one recipe, over which a mean and its interval mean something. None otherwise."""
    if any(d["key"] not in SEED_KEYS for d in config_differences(runs, ignore=())):
        return None
    return {"seeds": [r.config.get("seed") for r in runs]}


def value_at(points: list[tuple[int, float]], images: float) -> float | None:
    """The curve's value at ``images`` seen, interpolated linearly between its logged points (None
    outside the logged range): runs logged at different steps are read at the same budget."""
    if not points or images < points[0][0] or images > points[-1][0]:
        return None
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x0 <= images <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (images - x0) / (x1 - x0)
    return points[-1][1]  # a single point, at exactly ``images``


def compare_runs(folders: list[str | Path]) -> dict:
    """Everything ``milan-lab compare`` shows, as plain data (compare.json): the runs, their config
    differences, their finals and their values at the largest budget all reached, and, for seeds of
    one recipe, each final's mean with its 95 % t-interval."""
    if len(folders) < 2:
        raise ConfigError(f"compare needs at least 2 run folders, got {len(folders)}")
    runs = [read_run(f) for f in folders]
    _unique_names(runs)
    common = min(r.images_seen for r in runs)
    group = recipe_group(runs)
    result = {"runs": [_run_summary(r, common) for r in runs], "differences": config_differences(runs),
              "common_images": common, "recipe_group": group}
    if group is not None:
        result["intervals"] = _intervals(runs)
    return result


def _run_summary(run: Run, common: int) -> dict:
    return {"name": run.name, "path": str(run.path), "batch_size": run.batch_size, "steps": run.steps,
            "images_seen": run.images_seen, "finished": run.finished, "seed": run.config.get("seed"),
            "final": {m: run.final(m) for m in FINALS if run.final(m) is not None},
            "at_common": {m: v for m in CURVES if (v := value_at(run.curves.get(m, []), common)) is not None},
            "curves": {m: [list(p) for p in run.curves[m]] for m in CURVES if run.curves.get(m)}}


def _intervals(runs: list[Run]) -> dict:
    """metric -> {mean, low, high, n} over the runs' finals (metrics every run logged)."""
    out = {}
    for m in FINALS:
        values = [r.final(m) for r in runs]
        if all(v is not None for v in values):
            mean, low, high = t_interval(values)
            out[m] = {"mean": mean, "low": low, "high": high, "n": len(values)}
    return out


# ---------------------------------------------------------------------------------------------
def _fmt(metric: str, value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if metric == "loss" else f"{100 * value:.1f} %"


def _cell(value) -> str:
    text = "-" if value is None else json.dumps(value) if isinstance(value, (bool, float, int)) else str(value)
    return text.replace("|", "\\|")


def format_compare(result: dict) -> str:
    """The comparison as markdown: runs and finals, config differences, and the recipe's intervals."""
    runs, common = result["runs"], result["common_images"]
    shown = [m for m in FINALS if any(m in r["final"] for r in runs)]
    lines = ["## Runs", "",
             "| run | batch | steps | images seen | finished | " + " | ".join(f"final {LABELS[m]}" for m in shown) + " | "
             + " | ".join(f"{LABELS[m]} at {common:,} images" for m in CURVES) + " |",
             "|---" * (5 + len(shown) + len(CURVES)) + "|"]
    for r in runs:
        lines.append(f"| {r['name']} | {r['batch_size']} | {r['steps']} | {r['images_seen']:,} | "
                     f"{'yes' if r['finished'] else 'no'} | " + " | ".join(_fmt(m, r['final'].get(m)) for m in shown)
                     + " | " + " | ".join(_fmt(m, r['at_common'].get(m)) for m in CURVES) + " |")
    lines += ["", f"Images seen = step x batch size; the last columns read each curve at {common:,} images, the most "
              "every run has seen (linear interpolation between logged points; - where a run logged none there).", ""]
    lines += ["## Config differences (output_dir aside)", ""]
    if result["differences"]:
        lines += ["| key | " + " | ".join(r["name"] for r in runs) + " |", "|---" * (1 + len(runs)) + "|"]
        lines += [f"| {d['key']} | " + " | ".join(_cell(v) for v in d["values"]) + " |" for d in result["differences"]]
    else:
        lines.append("The configs are identical.")
    lines.append("")
    group = result["recipe_group"]
    if group is None:
        keys = [d["key"] for d in result["differences"] if d["key"] not in SEED_KEYS]
        lines.append(f"Not seeds of one recipe (the configs differ in {', '.join(keys)}): no mean or interval over them.")
    else:
        seeds = ", ".join(map(str, group["seeds"]))
        lines += [f"## Seeds of one recipe (seeds {seeds})", "", "| final | mean | 95 % t-interval | runs |", "|---|---|---|---|"]
        for m, s in result["intervals"].items():
            interval = "-" if math.isnan(s["low"]) else f"[{_fmt(m, s['low'])}, {_fmt(m, s['high'])}]"
            lines.append(f"| {LABELS[m]} | {_fmt(m, s['mean'])} | {interval} | {s['n']} |")
    return "\n".join(lines) + "\n"


def write_compare(result: dict, out: str | Path) -> dict[str, Path]:
    """DIR/compare.md, DIR/compare.json and DIR/compare.png (loss and kNN against images seen), each
    written atomically; returns their paths."""
    from milan_lab.viz.compare import compare_figure
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / "compare.md", "json": out / "compare.json", "png": out / "compare.png"}
    atomic_write(paths["md"], lambda tmp: tmp.write_text(format_compare(result)))
    atomic_write(paths["json"], lambda tmp: tmp.write_text(json.dumps(result, indent=1)))
    fig = compare_figure({r["name"]: r["curves"] for r in result["runs"]})
    atomic_write(paths["png"], lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    import matplotlib.pyplot as plt
    plt.close(fig)
    return paths


def default_out(folders: list[str | Path]) -> Path:
    """outputs/compare/A-vs-B (or A-and-N-more for more than three runs)."""
    names = [Path(f).resolve().name for f in folders]
    stem = "-vs-".join(names) if len(names) <= 3 else f"{names[0]}-and-{len(names) - 1}-more"
    return Path("outputs") / "compare" / stem


def compare(folders: list[str | Path], out: str | Path | None = None) -> tuple[dict, dict[str, Path]]:
    """``milan-lab compare``: the output folder checked first, then the runs read and compared, then the
    table, the record and the figure written. Returns (result, paths written)."""
    if len(folders) < 2:
        raise ConfigError(f"compare needs at least 2 run folders, got {len(folders)}")
    out = Path(out) if out is not None else default_out(folders)
    check_writable(out, "--out", folder=True)
    result = compare_runs(folders)
    return result, write_compare(result, out)
