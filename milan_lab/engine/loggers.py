"""Where a run's numbers go besides ``metrics.csv``: TensorBoard, Weights & Biases, MLflow (``logger=``).

Each logger gets, on rank 0 only: the run's config as parameters when the run starts, every logged row
(loss, lr, images/s, kNN or top-1 ...) at its step, and at the end the final numbers and the run's files
(``metrics.json``, ``metrics.csv``, the figures in the output folder and its subfolders when the run
ends, and a figure of the curves) as artefacts. A resumed run continues the same W&B / MLflow run (its
id is kept in the output folder) and does not log twice the rows its interrupted part had already sent.
W&B and MLflow are optional extras: ``pip install 'milan-lab[wandb]'`` / ``'milan-lab[mlflow]'``; each reads
its own environment variables (``WANDB_MODE=offline``, ``WANDB_PROJECT``, ``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``).
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import time
import uuid
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter

from milan_lab.config import LOGGERS
from milan_lab.errors import ConfigError
from milan_lab.io.weights import atomic_write

PROJECT = "milan-lab"  # W&B project and MLflow experiment unless WANDB_PROJECT / MLFLOW_EXPERIMENT_NAME say otherwise
FIGURE_SUFFIXES = (".png", ".jpg", ".svg", ".pdf")
LOGGER_FOLDERS = ("wandb", "mlruns")  # what the loggers themselves keep in an output folder: not the run's figures
_EXTRAS = {"wandb": ("wandb", "wandb"), "mlflow": ("mlflow", "mlflow")}  # logger -> (module, extra)


def check_loggers(names) -> None:
    """Refuse, before any work, a logger whose package is not installed (one line naming the pip install)."""
    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"bad value for 'logger': {name!r}; expected one of {LOGGERS}")
        module, extra = _EXTRAS.get(name, (None, None))
        if module and importlib.util.find_spec(module) is None:
            raise ConfigError(f"logger={name} needs the {module} package: pip install 'milan-lab[{extra}]'")


def open_loggers(names, out: Path, config: dict, step: int) -> list:
    """The loggers ``names`` for the run in ``out`` with ``config`` (``dataclasses.asdict`` of the job's
    config), resumed at ``step`` (0: a new run)."""
    check_loggers(names)
    kinds = {"tensorboard": TensorBoardLogger, "wandb": WandbLogger, "mlflow": MlflowLogger}
    return [kinds[name](Path(out), config, step) for name in dict.fromkeys(names)]


def finish_loggers(loggers: list, out: Path, config: dict, summary: dict, history: list[dict]) -> None:
    """Hand every logger the final numbers and the run's files, then close it. The curves figure is
    drawn only when a logger keeps artefacts (W&B, MLflow)."""
    if not loggers:
        return
    out = Path(out)
    if any(lg.keeps_files for lg in loggers) and history:
        write_curves(out / "curves.png", history)
    files = [p for p in (out / "metrics.json", out / "metrics.csv") if p.is_file()] + run_figures(out)
    for lg in loggers:
        lg.finish(config, summary, files)


def run_figures(out: Path) -> list[Path]:
    """The figures in ``out`` and its subfolders now (``FIGURE_SUFFIXES``), the loggers' own folders
    (``LOGGER_FOLDERS``) and hidden ones left out."""
    def kept(p: Path) -> bool:
        parts = p.relative_to(out).parts
        return p.is_file() and not any(d in LOGGER_FOLDERS or d.startswith(".") for d in parts[:-1])
    return sorted(p for p in out.rglob("*") if p.suffix in FIGURE_SUFFIXES and kept(p))


def artefact_name(path: Path, out: Path) -> str:
    """``path``'s name in a logger's artefacts: relative to the output folder where it lies inside it."""
    return path.relative_to(out).as_posix() if path.is_relative_to(out) else path.name


# ---------------------------------------------------------------------------------------------
def scalars(row: dict) -> dict[str, float]:
    """The numbers of a logged row, its step left out."""
    return {k: float(v) for k, v in row.items()
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}


def final_metrics(summary: dict) -> dict[str, float]:
    """A run's final numbers as ``final/<name>`` (TensorBoard's HParams, W&B's summary, MLflow's metrics)."""
    return {f"final/{k}": float(v) for k, v in summary.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}


def flat_config(config: dict, prefix: str = "") -> dict:
    """``{"model": {"mask_ratio": 0.75}}`` -> ``{"model.mask_ratio": 0.75}``; lists joined, None as "none"."""
    flat = {}
    for k, v in config.items():
        if isinstance(v, dict):
            flat.update(flat_config(v, f"{prefix}{k}."))
        elif isinstance(v, (bool, int, float, str)):
            flat[f"{prefix}{k}"] = v
        elif isinstance(v, (list, tuple)):
            flat[f"{prefix}{k}"] = ",".join(map(str, v))
        elif v is None:
            flat[f"{prefix}{k}"] = "none"
    return flat


def write_curves(path: Path, history: list[dict]) -> Path:
    """A figure of the loss, the lr and the evaluations (kNN, top-1) against the step, written atomically.
    Drawn here rather than by ``viz.plots.training_curves``: the engine sits below ``viz`` in the layers."""
    # a Figure on its own Agg canvas, no pyplot: the process's backend (a notebook's inline plots) stays as it is
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    evals = [k for k in ("knn_acc", "top1") if any(k in r for r in history)]
    fig = Figure(figsize=(4.2 * (2 + bool(evals)), 3.2))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2 + bool(evals), squeeze=False)
    rows = [r for r in history if "loss" in r]
    for ax, key in zip(axes[0], ("loss", "lr")):
        ax.plot([r["step"] for r in rows], [r[key] for r in rows])
        ax.set(xlabel="step", ylabel=key, title=key)
    for key in evals:
        pts = [(r["step"], r[key]) for r in history if r.get(key) is not None]
        axes[0][2].plot(*zip(*pts), marker="o", label=key)
        axes[0][2].set(xlabel="step", ylabel="accuracy", title="evaluation", ylim=(0, 1))
        axes[0][2].legend()
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90))
    return path


def _run_id(out: Path, name: str) -> str | None:
    """The id of the W&B / MLflow run this output folder continues (None for a new run)."""
    path = out / f"{name}_run_id"
    return path.read_text().strip() or None if path.is_file() else None


def _keep_run_id(out: Path, name: str, run_id: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / f"{name}_run_id", lambda tmp: tmp.write_text(run_id + "\n"))


# ---------------------------------------------------------------------------------------------
class TensorBoardLogger:
    """Events in the output folder (``tensorboard --logdir OUTPUT_DIR``); a resumed run purges the
    events logged after its checkpoint. The final numbers and the config go to the HParams tab."""
    keeps_files = False

    def __init__(self, out: Path, config: dict, step: int):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(str(out), purge_step=step + 1 if step else None)

    def log(self, row: dict) -> None:
        for k, v in scalars(row).items():
            self.writer.add_scalar(k, v, int(row["step"]))

    def flush(self) -> None:
        self.writer.flush()

    def finish(self, config: dict, summary: dict, files: list[Path]) -> None:
        self.writer.close()
        with SummaryWriter(str(self.out)) as writer:  # HParams compares runs side by side
            writer.add_hparams(flat_config(config), final_metrics(summary), run_name=".")


class WandbLogger:
    """A W&B run (``WANDB_MODE=offline`` keeps it in ``OUTPUT_DIR/wandb`` for ``wandb sync``): the config,
    every row at its step, the final numbers in the run's summary, the run's files as an artefact."""
    keeps_files = True

    def __init__(self, out: Path, config: dict, step: int):
        import wandb
        self.wandb, self.out = wandb, out
        run_id = _run_id(out, "wandb") or uuid.uuid4().hex[:8]  # W&B's own ids: 8 characters, [a-z0-9]
        out.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", PROJECT), dir=str(out), id=run_id,
                              resume="allow", name=out.name)
        self.run.config.update(flat_config(config), allow_val_change=True)
        _keep_run_id(out, "wandb", run_id)
        self.first = self.run.starting_step  # a resumed online run: steps before this were sent already

    def log(self, row: dict) -> None:
        if int(row["step"]) >= self.first:
            self.run.log(scalars(row), step=int(row["step"]))

    def flush(self) -> None:
        """W&B sends rows as they come."""

    def finish(self, config: dict, summary: dict, files: list[Path]) -> None:
        self.run.summary.update(final_metrics(summary))
        if files:
            artifact = self.wandb.Artifact(f"run-{self.run.id}-files", type="run-files")
            for path in files:
                artifact.add_file(str(path), name=artefact_name(path, self.out))
            self.run.log_artifact(artifact)
        self.run.finish()


class MlflowLogger:
    """An MLflow run in ``MLFLOW_TRACKING_URI`` (default: a file store ``./mlruns``, ``mlflow ui
    --backend-store-uri ./mlruns``): the config as parameters, every row at its step, the final numbers as
    ``final/*`` metrics, the run's files as artefacts. A run that ends without ``finish`` is marked KILLED."""
    keeps_files = True

    def __init__(self, out: Path, config: dict, step: int):
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient
        # MLflow 3 defaults to sqlite:///mlflow.db, which needs SQLAlchemy (not in mlflow-skinny); the file
        # store needs no server and no database, and is kept working behind this switch
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (Path.cwd() / "mlruns").as_uri()
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client, self.out = MlflowClient(tracking_uri=uri), out
        self.run_id, self.last, self.done = self._existing_run(out), -1, False
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            self.last = max((m.step for m in self.client.get_metric_history(self.run_id, "loss")), default=-1)
        else:
            name = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
            exp = self.client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
            self.run_id = self.client.create_run(exp_id, run_name=out.name).info.run_id
            params = [Param(k, str(v)) for k, v in flat_config(config).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 parameters per batch
                self.client.log_batch(self.run_id, params=params[i:i + 100])
            _keep_run_id(out, "mlflow", self.run_id)
        atexit.register(self._killed)

    def _existing_run(self, out: Path) -> str | None:
        run_id = _run_id(out, "mlflow")
        if run_id is None:
            return None
        from mlflow.exceptions import MlflowException
        try:
            self.client.get_run(run_id)
        except MlflowException:  # the id of a run in another tracking store: start a new run here
            return None
        return run_id

    def log(self, row: dict) -> None:
        step = int(row["step"])
        if step > self.last:  # rows up to ``last`` were logged before an interruption (with the same values)
            self._metrics(scalars(row), step)

    def _metrics(self, values: dict, step: int) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def flush(self) -> None:
        """Each row is written when it is logged."""

    def finish(self, config: dict, summary: dict, files: list[Path]) -> None:
        self._metrics(final_metrics(summary), 0)
        for path in files:
            folder = str(Path("figures", artefact_name(path, self.out)).parent) if path.suffix in FIGURE_SUFFIXES else None
            self.client.log_artifact(self.run_id, str(path), folder)
        self.client.set_terminated(self.run_id, "FINISHED")
        self.done = True

    def _killed(self) -> None:
        if not self.done:
            self.client.set_terminated(self.run_id, "KILLED")
            self.done = True
