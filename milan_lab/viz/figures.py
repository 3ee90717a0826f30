"""Composite figures for the notebooks, built from the explorer's handlers."""
from __future__ import annotations

import numpy as np

from milan_lab.data.scenes import make_scene
from milan_lab.data.transforms import denormalize
from milan_lab.evaluation.dense import predict
from milan_lab.models.losses import target_predicts
from milan_lab.viz import maps
from milan_lab.viz.panels import Explorer
from milan_lab.viz.plots import image_grid


def validation_images(n: int = 4, image_size: int = 128, seed: int = 0) -> list[np.ndarray]:
    return [make_scene(seed, "val", i, image_size)[0] for i in range(n)]


def panels_figure(explorer: Explorer, images: list[np.ndarray], ratio: float = 0.75, seed: int = 0):
    """One row per image: input, teacher attention, semantic mask, random mask, and, with a
    MILAN model, target and predicted features (PCA, shared basis) and the cosine map."""
    rows, cols = [], ["input", "teacher attention", "semantic mask", "random mask"]
    with_model = explorer.model is not None and target_predicts(explorer.model.cfg) == "features"
    if with_model:
        cols += ["target (PCA)", "prediction (PCA)", "cosine / patch"]
    for img in images:
        shown = img.astype(np.float32) / 255
        row = [shown, explorer.attention(img)["map"], explorer.masks(img, "semantic", ratio, seed)["overlay"],
               explorer.masks(img, "random", ratio, seed)["overlay"]]
        if with_model:
            r = explorer.reconstruction(img, "semantic", ratio, seed)
            row += [maps.enlarge(r["pca_target"], 256), maps.enlarge(r["pca_pred"], 256), r["cosine"]]
        rows.append(row)
    return image_grid(rows, [f"val {i}" for i in range(len(images))], cols,
                      title=f"teacher attention, masks (ratio {ratio}) and feature reconstruction")


def segmentation_figure(encoders: dict, probes: dict, dataset, n: int = 4):
    """One row per validation image: input, ground truth, then each encoder's probe prediction,
    drawn as class outlines (edged in black, so that they show on an object of the class's own
    colour), with a legend naming each class's colour."""
    import torch
    from matplotlib.patches import Patch

    num_classes = len(dataset.classes)
    rows = []
    for i in range(min(n, len(dataset))):
        x, labels = dataset[i]
        shown = denormalize(x)
        size = max(shown.shape[0], 128)  # outlines a few pixels wide need room: draw on an enlarged copy
        shown = maps.enlarge(shown, size)
        row = [shown, maps.label_outlines(shown, labels.numpy(), num_classes, width=2)]
        for name, encoder in encoders.items():
            with torch.no_grad():
                pred = predict(probes[name], encoder.forward_features(x[None])[:, 1:])[0]
            row.append(maps.label_outlines(shown, pred.numpy(), num_classes, width=2))
        rows.append(row)
    fig = image_grid(rows, [f"val {i}" for i in range(len(rows))],
                     ["input", "ground truth"] + [f"probe on {name}" for name in encoders],
                     title="dense probe: each class outlined in its colour")
    colours = maps.class_colours(num_classes)
    handles = [Patch(facecolor=colours[c], edgecolor="black", label=name) for c, name in enumerate(dataset.classes) if c]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.subplots_adjust(bottom=0.7 / fig.get_figheight())  # room for the legend's rows under the grid
    return fig
