"""The figure of ``milan-lab embed``: 2-D embeddings as scatter panels coloured by class."""
from __future__ import annotations

import textwrap

import matplotlib

if "inline" not in matplotlib.get_backend():  # notebooks keep their inline backend; elsewhere render headless
    matplotlib.use("agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402


def embedding_figure(panels: list[tuple[str, np.ndarray, str]], labels, classes: list[str], caption: str,
                     columns: int = 2):
    """One scatter panel per (title, coords [N, 2], note under the title), points coloured by ``labels``
    [N] (indices into ``classes``), in rows of ``columns``; one legend of the class names beside the
    panels and ``caption`` under them."""
    labels = np.asarray(labels)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns + 1.6, 4.4 * rows + 0.7), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    colours = [cmap(i) for i in range(len(classes))]
    for ax, (title, coords, note) in zip(axes.flat, panels):
        coords = np.asarray(coords)
        for c in range(len(classes)):
            pts = coords[labels == c]
            ax.scatter(pts[:, 0], pts[:, 1], s=9, color=colours[c], alpha=0.75, linewidths=0)
        ax.set_title(f"{title}\n{note}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("component 1", fontsize=8)
        ax.set_ylabel("component 2", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [Line2D([], [], marker="o", linestyle="", color=colours[c], markersize=7, label=name)
               for c, name in enumerate(classes)]
    fig.legend(handles=handles, title="main object's shape", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    text = textwrap.fill(caption, 120)
    height = fig.get_size_inches()[1]
    fig.tight_layout(rect=(0, (0.2 + 0.18 * (text.count("\n") + 1)) / height, 1, 1))  # room for the caption's lines
    fig.text(0.5, 0.005, text, ha="center", va="bottom", fontsize=9)
    return fig
