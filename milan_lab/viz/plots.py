"""Matplotlib figures for notebooks and the app (labelled axes, titles, legends)."""
from __future__ import annotations

import io

import matplotlib

if "inline" not in matplotlib.get_backend():  # notebooks keep their inline backend; elsewhere render headless
    matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def figure_to_array(fig) -> np.ndarray:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    buf.seek(0)
    from PIL import Image
    return np.asarray(Image.open(buf).convert("RGB"))


def training_curves(history: list[dict], title: str = "pretraining"):
    """Loss and lr against step, kNN accuracy against epoch when present."""
    steps = [r["step"] for r in history if "loss" in r]
    knn = [(r["epoch"], r["knn_acc"]) for r in history if "knn_acc" in r]
    fig, axes = plt.subplots(1, 3 if knn else 2, figsize=(13 if knn else 9, 3.4))
    axes[0].plot(steps, [r["loss"] for r in history if "loss" in r], label="train loss")
    axes[0].set(xlabel="step", ylabel="loss", title=f"{title}: loss")
    axes[0].legend()
    axes[1].plot(steps, [r["lr"] for r in history if "loss" in r], color="tab:orange", label="lr")
    axes[1].set(xlabel="step", ylabel="learning rate", title="schedule")
    axes[1].legend()
    if knn:
        axes[2].plot(*zip(*knn), marker="o", color="tab:green", label="kNN top-1 (val)")
        axes[2].set(xlabel="epoch", ylabel="accuracy", title="kNN accuracy", ylim=(0, 1))
        axes[2].legend()
    fig.tight_layout()
    return fig


def accuracy_curves(history: list[dict], title: str):
    rows = [r for r in history if r.get("top1") is not None]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot([r["epoch"] for r in rows], [r["top1"] for r in rows], marker="o", label="val top-1")
    axes[0].plot([r["epoch"] for r in rows], [r["top5"] for r in rows], marker="s", label="val top-5")
    axes[0].set(xlabel="epoch", ylabel="accuracy", title=f"{title}: accuracy", ylim=(0, 1.02))
    axes[0].legend()
    losses = [r for r in history if "loss" in r]  # logged every log_every steps, apart from the evaluations
    axes[1].plot([r["epoch"] for r in losses], [r["loss"] for r in losses], color="tab:red", label="train loss")
    axes[1].set(xlabel="epoch", ylabel="loss", title="training loss")
    axes[1].legend()
    fig.tight_layout()
    return fig


def confusion_matrix(confusion, classes: list[str], title: str = "confusion matrix (val)"):
    c = np.asarray(confusion, dtype=float)
    c = c / np.maximum(c.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    im = ax.imshow(c, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.colorbar(im, ax=ax, label="fraction of the true class")
    fig.tight_layout()
    return fig


def image_grid(rows: list[list[np.ndarray]], row_titles: list[str], col_titles: list[str], title: str = ""):
    """A labelled grid of [H, W, 3] images."""
    fig, axes = plt.subplots(len(rows), len(rows[0]), figsize=(2.2 * len(rows[0]), 2.3 * len(rows)), squeeze=False)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            ax = axes[i, j]
            ax.imshow(np.clip(img, 0, 1))
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(col_titles[j], fontsize=9)
            if j == 0:
                ax.set_ylabel(row_titles[i], fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


METRIC_NAMES = {"knn_cls": "kNN, class token", "knn_mean": "kNN, mean patch", "linear_cls": "linear, class token",
                "linear_mean": "linear, mean patch", "miou": "dense probe mIoU"}


def ablation_intervals(summary: list[dict], metrics=("linear_mean", "linear_cls", "knn_mean", "knn_cls", "miou")):
    """Dot-and-interval chart: per metric, each arm's paired difference MILAN - arm with its 95 %
    interval (right of 0: MILAN is better; an interval crossing 0 is no evidence either way)."""
    arms = [r for r in summary if f"{metrics[0]}_milan_minus_arm" in r]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.7 + 0.55 * len(arms)), sharey=True,
                             squeeze=False)
    y = np.arange(len(arms))
    for ax, m in zip(axes[0], metrics):
        diffs = np.array([100 * r[f"{m}_milan_minus_arm"] for r in arms])
        lo = np.array([100 * r[f"{m}_ci"][0] for r in arms])
        hi = np.array([100 * r[f"{m}_ci"][1] for r in arms])
        colours = ["tab:green" if r[f"{m}_differs"] else "tab:gray" for r in arms]
        ax.hlines(y, lo, hi, colors=colours, lw=2)
        ax.scatter(diffs, y, c=colours, zorder=3)
        ax.axvline(0, color="k", lw=0.8)
        ax.set(xlabel=f"MILAN - arm, {METRIC_NAMES.get(m, m)} (points)", title=METRIC_NAMES.get(m, m))
    axes[0][0].set_yticks(y, [r["arm"] for r in arms])
    fig.suptitle("paired differences to MILAN, 95 % t-intervals over seeds (green: Holm-adjusted p < 0.05)", fontsize=10)
    fig.tight_layout()
    return fig


def iou_bars(results: dict[str, dict], title: str = "dense probe: IoU per class (val)"):
    """Grouped bars of per-class IoU, one group per class, one bar per encoder."""
    names = list(results)
    classes = list(results[names[0]]["iou"])
    x = np.arange(len(classes))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 2, 3.6))
    for i, name in enumerate(names):
        iou = [results[name]["iou"][c] or 0.0 for c in classes]
        ax.bar(x + i * width, [100 * v for v in iou], width,
               label=f"{name} (mIoU {100 * results[name]['miou']:.1f})")
    ax.set_xticks(x + width * (len(names) - 1) / 2, classes, fontsize=8)
    ax.set(ylabel="IoU (%)", title=title, ylim=(0, 100))
    ax.legend()
    fig.tight_layout()
    return fig


def zero_shot_bars(result: dict):
    zs = result["zero_shot"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(list(zs), [100 * v for v in zs.values()], color="tab:blue", label="zero-shot top-1")
    ax.set(ylabel="accuracy (%)", title=f"teacher zero-shot on {result['n_images']} held-out scenes", ylim=(0, 105))
    ax.tick_params(axis="x", rotation=20)
    ax.legend()
    fig.tight_layout()
    return fig
