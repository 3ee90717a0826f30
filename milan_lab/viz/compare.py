"""The figure of ``milan-lab compare``: each run's loss and kNN accuracy against images seen."""
from __future__ import annotations

import matplotlib

if "inline" not in matplotlib.get_backend():  # notebooks keep their inline backend; elsewhere render headless
    matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = (("loss", "training loss", "loss"), ("knn_acc", "kNN top-1 (val)", "kNN top-1 accuracy"))


def compare_figure(curves: dict[str, dict[str, list]], title: str = "runs compared at equal images seen"):
    """Two panels, loss and kNN top-1 against images seen, one line per run (the legend names each run).

    ``curves``: run name -> {"loss": [(images seen, value), ...], "knn_acc": [...]}; a run that logged
    no kNN has no line in that panel, and a panel no run has data for says so."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (metric, panel_title, ylabel) in zip(axes, PANELS):
        drawn = 0
        for i, (name, runs_curves) in enumerate(curves.items()):
            points = runs_curves.get(metric) or []
            if not points:
                continue
            x, y = zip(*points)
            ax.plot(x, y, color=colours[i % len(colours)], marker="o" if metric == "knn_acc" or len(points) < 20 else None,
                    markersize=3.5, linewidth=1.4, label=name)
            drawn += 1
        ax.set(xlabel="images seen (step x batch size)", ylabel=ylabel, title=panel_title)
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 4))
        if drawn:
            ax.legend(fontsize=8, title="run", title_fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no run logged {panel_title}", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
