"""The figure of a run's timeline: kNN top-1 and the attention metrics at each snapshot, against steps."""
from __future__ import annotations

from matplotlib.figure import Figure


def timeline_figure(result: dict, highlight: int | None = None) -> Figure:
    """Two panels over the snapshots' steps: kNN top-1 (val), and the class token's object ratio with
    its agreement with the teacher (when known). ``result``: ``evaluation.timeline.timeline_metrics``'s;
    ``highlight``: a step to mark (the app's slider). Drawn on its own Agg canvas, without pyplot, so
    that the process's matplotlib backend is left alone."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    rows = result["rows"]
    steps = [r["step"] for r in rows]
    fig = Figure(figsize=(10, 3.6))
    FigureCanvasAgg(fig)
    knn_ax, att_ax = fig.subplots(1, 2)
    knn_ax.plot(steps, [100 * r["knn_acc"] for r in rows], marker="o", color="tab:green", label="kNN top-1 (val)")
    knn_ax.set(xlabel="step", ylabel="accuracy (%)", title="kNN top-1 at each snapshot", ylim=(0, 100))
    att_ax.plot(steps, [r["object_ratio"] for r in rows], marker="o", color="tab:purple", label="object ratio")
    att_ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")  # no preference for the object
    att_ax.set(xlabel="step", ylabel="object ratio (1 = no preference)", title="class-token attention")
    agree = [(r["step"], r["agreement"]) for r in rows if r.get("agreement") is not None]
    if agree:
        twin = att_ax.twinx()
        twin.plot(*zip(*agree), marker="s", color="tab:orange", label="agreement with the teacher")
        twin.set(ylabel="agreement (Pearson r)", ylim=(-1, 1))
        twin.legend(loc="lower right", fontsize=8)
    att_ax.legend(loc="upper left", fontsize=8)
    knn_ax.legend(loc="upper left", fontsize=8)
    for ax in (knn_ax, att_ax):
        ax.grid(alpha=0.3)
        if highlight is not None:
            ax.axvline(highlight, color="black", linewidth=1.0, alpha=0.6)
    fig.suptitle(f"{result['run']}: how the encoder learned ({len(rows)} snapshots)", fontsize=10)
    fig.tight_layout()
    return fig


def figure_array(fig: Figure):
    """The figure as an RGB array [H, W, 3] uint8 (for the app)."""
    import numpy as np
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def snapshot_attention(encoder, teacher, image) -> dict:
    """One snapshot's view of ``image``: {'map': its class token's last-block attention (head mean) over
    the image [DISPLAY, DISPLAY, 3], 'values' [L], 'agreement': Pearson's r with the teacher's importance
    over the patches (None when the grids differ)}."""
    import torch

    from milan_lab.evaluation.attention import agreement
    from milan_lab.viz import maps
    from milan_lab.viz.panels import Explorer
    size = encoder.patch_embed.img_size[0]
    shown, x = Explorer._views(image, size)
    with torch.no_grad():
        values = maps.cls_attention(encoder.eval().get_last_selfattention(x)[0])
        importance = teacher(Explorer._views(image, teacher.image_size)[1])[1][0] if teacher is not None else None
    same = importance is not None and importance.shape == values.shape
    r = float(agreement(values.numpy()[None], importance.numpy()[None])[0]) if same else None
    return {"map": maps.heatmap(shown, values), "values": values, "agreement": r}
