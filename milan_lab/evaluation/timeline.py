"""Watch a run learn: the kNN accuracy and the attention metrics of each snapshot of a run's timeline.

A run with ``keep_every`` keeps its encoder every N steps in ``RUN/timeline`` (``io/timeline.py``).
Each snapshot is scored with the kNN the run's monitor uses (``evaluation.knn``: DINO's weighted kNN on
offline train/val scenes at the run's resolution and scene kind), on the caller's numbers of scenes and
seed (not the run's ``knn_train_size`` / ``knn_val_size`` / ``seed``, so its figures need not match
``metrics.json``'s), and as ``milan-lab attention`` does (``evaluation.attention``: the class token's
object ratio and its agreement with the run's own teacher, :func:`run_teacher`), on the same scenes for
every snapshot, so that a change along the curve is the encoder's, not the data's.
"""
from __future__ import annotations

from pathlib import Path

from milan_lab.config import model_config_from
from milan_lab.data.datasets import OfflineScenes
from milan_lab.data.transforms import eval_transform
from milan_lab.errors import CheckpointError
from milan_lab.evaluation import attention
from milan_lab.evaluation.knn import extract_features, knn_top1
from milan_lab.factory.models import load_encoder, load_model
from milan_lab.io.timeline import FOLDER, list_snapshots
from milan_lab.io.weights import read_weights


def snapshots(run: str | Path) -> list[tuple[int, Path]]:
    """(step, file) of each snapshot of ``run``, or one line saying the run kept none."""
    run = Path(run)
    if not run.is_dir():
        raise CheckpointError(f"{run}: no such run folder")
    found = list_snapshots(run)
    if not found:
        raise CheckpointError(f"{run}: no snapshots in {run / FOLDER} (a pretraining run keeps them with keep_every=N, "
                              "or -1, the default, for about 8 over the run)")
    return found


def run_config(run: str | Path) -> dict:
    """The job config the run's snapshots carry (the first one's)."""
    path = snapshots(run)[0][1]
    config = read_weights(path).get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: a snapshot without its run's config")
    return config


def run_teacher(run: str | Path):
    """The teacher the run was trained with (its snapshots' config, loaded as ``teacher="auto"``), or None
    for a run whose target needs none: what the timeline's agreement compares each snapshot with."""
    found = snapshots(run)
    if not model_config_from(run_config(run)).needs_teacher:
        return None
    return load_model(found[0][1], task="pretrain", teacher="auto").teacher


def timeline_metrics(run: str | Path, knn_train: int = 1024, knn_val: int = 256, attention_scenes: int = 128,
                     seed: int = 0, teacher: bool = True) -> dict:
    """{'run', 'rows': [{'step', 'images_seen', 'knn_acc', 'object_ratio', 'agreement'}], ...}: each snapshot
    of ``run`` scored on the same offline scenes (``seed``; the run's resolution and scene kind).
    ``teacher``: load the run's teacher for the agreement (False: object ratio only)."""
    found = snapshots(run)
    job = run_config(run)
    cfg = model_config_from(job)
    size, patch = cfg.image_size, cfg.patch_size
    variant = job.get("offline_variant", "dense")
    tf = eval_transform(size, crop_ratio=1.0)
    train = OfflineScenes("train", knn_train, size, seed, tf, variant=variant)  # rendered once, kept for every snapshot
    val = OfflineScenes("val", knn_val, size, seed, tf, variant=variant)
    images, cover = attention.scenes(attention_scenes, size, seed, variant=variant)
    cover = attention.patch_cover(cover, patch)
    target = None
    own = run_teacher(run) if teacher else None
    if own is not None:
        target = attention.teacher_importance(own, images)
    batch = int(job.get("batch_size", 0))
    rows = []
    for step, path in found:
        encoder = load_encoder(path, cfg)
        knn = knn_top1(extract_features(encoder, train, "cpu"), extract_features(encoder, val, "cpu"))
        metrics = attention.attention_metrics(attention.class_attention(encoder, images), cover, target)
        rows.append({"step": step, "images_seen": step * batch, "knn_acc": knn, "file": str(path),
                     "object_ratio": metrics["object_ratio"]["mean"],
                     "agreement": metrics["agreement"]["mean"] if "agreement" in metrics else None})
    return {"run": str(run), "rows": rows, "knn_train": knn_train, "knn_val": knn_val, "scenes": attention_scenes,
            "image_size": size, "variant": variant, "seed": seed}


def format_timeline(result: dict) -> str:
    """One line per snapshot: step, kNN top-1, object ratio, agreement with the teacher."""
    lines = [f"{result['run']}: {len(result['rows'])} snapshots; kNN top-1 on {result['knn_val']} val scenes "
             f"({result['knn_train']} as memory), attention on {result['scenes']} scenes at {result['image_size']} px"]
    for r in result["rows"]:
        agree = f"   agreement {r['agreement']:+.2f}" if r["agreement"] is not None else ""
        lines.append(f"  step {r['step']:>7}   kNN {100 * r['knn_acc']:5.1f} %   object ratio {r['object_ratio']:5.2f}{agree}")
    return "\n".join(lines)
