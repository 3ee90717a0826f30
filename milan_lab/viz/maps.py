"""Attention maps, mask overlays and feature reconstructions as arrays (float images in [0, 1])."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib import colormaps


def patch_grid(values: torch.Tensor | np.ndarray) -> np.ndarray:
    """[L] -> [g, g]."""
    v = np.asarray(values.detach().cpu() if torch.is_tensor(values) else values, dtype=np.float32)
    g = int(round(len(v) ** 0.5))
    return v.reshape(g, g)


def upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upsampling of a [g, g] grid to [size, size] (patches stay visible)."""
    return np.kron(grid, np.ones((size // grid.shape[0], size // grid.shape[1]), dtype=grid.dtype))


def heatmap(image: np.ndarray, values, alpha: float = 0.55, cmap: str = "inferno") -> np.ndarray:
    """Overlay per-patch ``values`` [L] (min-max normalised) on ``image`` [H, W, 3] in [0, 1]."""
    grid = patch_grid(values)
    grid = (grid - grid.min()) / (grid.max() - grid.min() + 1e-12)
    colour = colormaps[cmap](upsample(grid, image.shape[0]))[..., :3]
    return (1 - alpha) * image + alpha * colour


def cls_attention(attn: torch.Tensor, head: int | None = None) -> torch.Tensor:
    """Class-token attention to patches from [heads, 1+L, 1+L]: one head or the head mean -> [L]."""
    a = attn[:, 0, 1:] if head is None else attn[head:head + 1, 0, 1:]
    return a.mean(0)


def attention_rollout(attns: list[torch.Tensor]) -> torch.Tensor:
    """Abnar & Zuidema's rollout over layers: average heads, add identity for the residual,
    renormalise, multiply through; returns the class token's row to patches [L]. attns: one
    [heads, T, T] per layer."""
    t = attns[0].shape[-1]
    result = torch.eye(t)
    for a in attns:
        a = a.mean(0).cpu() + torch.eye(t)
        result = (a / a.sum(-1, keepdim=True)) @ result
    return result[0, 1:]


def label_overlay(image: np.ndarray, labels: np.ndarray, num_classes: int, alpha: float = 0.6) -> np.ndarray:
    """Label map [S, S] (0 = background, left clear) coloured over ``image`` [H, W, 3] in [0, 1]."""
    size = image.shape[0]
    idx = np.kron(labels, np.ones((size // labels.shape[0], size // labels.shape[1]), dtype=labels.dtype))
    painted = class_colours(num_classes)[idx]
    a = alpha * (idx > 0)[..., None]
    return (1 - a) * image + a * painted


def label_outlines(image: np.ndarray, labels: np.ndarray, num_classes: int, width: int = 3) -> np.ndarray:
    """Label map [S, S] drawn over ``image`` [H, W, 3] in [0, 1] as outlines: each region's border
    in its class colour (``width`` px, inside the region), edged in black on both sides, the
    pixels inside left as they are. Unlike a translucent fill, a red outline edged in black still
    shows on a red object. Class 0 (background) gets no outline of its own."""
    size = image.shape[0]
    idx = np.kron(labels, np.ones((size // labels.shape[0], size // labels.shape[1]), dtype=labels.dtype))
    edge = _region_edges(idx)
    inner = _dilate(edge, width - 1) & (idx > 0)  # the coloured band, inside the labelled region
    outer = _dilate(inner | edge, 1) & ~inner     # a 1-px black line either side of it
    out = image.copy()
    out[outer] = 0.0
    out[inner] = class_colours(num_classes)[idx[inner]]
    return out


def _region_edges(idx: np.ndarray) -> np.ndarray:
    """Pixels [H, W] whose 4-neighbour has another label (bool)."""
    edge = np.zeros(idx.shape, dtype=bool)
    edge[1:] |= idx[1:] != idx[:-1]
    edge[:-1] |= idx[:-1] != idx[1:]
    edge[:, 1:] |= idx[:, 1:] != idx[:, :-1]
    edge[:, :-1] |= idx[:, :-1] != idx[:, 1:]
    return edge


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square dilation of a bool mask by ``r`` px (a few shifted ORs: no scipy needed for this)."""
    out = mask.copy()
    for _ in range(r):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def class_colours(num_classes: int) -> np.ndarray:
    """The colour [C, 3] in [0, 1] of each class in :func:`label_overlay` (class 0 stays clear)."""
    return colormaps["tab10"](np.arange(num_classes) % 10)[:, :3]


def legend_html(classes: list[str], skip_first: bool = True) -> str:
    """A colour key for :func:`label_overlay`: one swatch and name per class (the first, the
    background, is left clear in the overlay and so left out here)."""
    colours = (255 * class_colours(len(classes))).round().astype(int)
    items = [f'<span style="display:inline-block;margin-right:12px"><span style="display:inline-block;width:12px;'
             f'height:12px;background:rgb({r},{g},{b});margin-right:4px;vertical-align:middle"></span>{name}</span>'
             for (r, g, b), name in list(zip(colours, classes))[1 if skip_first else 0:]]
    return '<div class="class-legend">' + "".join(items) + "</div>"


def mask_overlay(image: np.ndarray, mask, grey: float = 0.35) -> np.ndarray:
    """Masked patches (mask 1 = removed) dimmed to grey, with visible patches unchanged."""
    m = upsample(patch_grid(mask), image.shape[0])[..., None]
    return image * (1 - m) + m * (grey + 0.15 * image)


def pca_rgb(target: torch.Tensor, pred: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Project patch features [L, D] of target and prediction onto the first 3 principal
    components of the *target* (one shared basis) -> two [g, g, 3] images in [0, 1]."""
    t, p = target.float().cpu(), pred.float().cpu()
    mean = t.mean(0, keepdim=True)
    # a full SVD, not torch.pca_lowrank: that one is randomised, and the same request must give
    # the same picture; each component's sign is fixed so its largest loading is positive
    _, _, vh = torch.linalg.svd((t - mean).double(), full_matrices=False)
    v = vh[:3].T
    v = (v * torch.sign(v.gather(0, v.abs().argmax(0, keepdim=True)))).float()
    pt, pp = (t - mean) @ v, (p - mean) @ v
    lo, hi = pt.min(0).values, pt.max(0).values
    norm = lambda z: ((z - lo) / (hi - lo + 1e-12)).clamp(0, 1).numpy()  # noqa: E731
    g = int(round(t.shape[0] ** 0.5))
    return norm(pt).reshape(g, g, 3), norm(pp).reshape(g, g, 3)


def cosine_per_patch(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[L] cosine similarity between predicted and target patch features."""
    return F.cosine_similarity(pred.float(), target.float(), dim=-1)


def cosine_image(cos: torch.Tensor, mask, size: int, vmin: float = -1.0, vmax: float = 1.0) -> np.ndarray:
    """Cosine map coloured with 'viridis' from ``vmin`` (dark) to ``vmax`` (bright; default the
    whole range [-1, 1]); visible patches hatched darker so the masked (predicted) and visible
    (given) patches are told apart."""
    grid = np.clip((patch_grid(cos) - vmin) / (vmax - vmin), 0, 1)
    img = colormaps["viridis"](upsample(grid, size))[..., :3]
    m = upsample(patch_grid(mask), size)
    yy, xx = np.mgrid[0:size, 0:size]
    hatch = ((xx + yy) % 6 < 2) & (m == 0)
    img[hatch] *= 0.45
    return img


def text_similarity(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """[L, D] patch features vs [P, D] text embeddings -> [P, L] cosine similarities."""
    return F.normalize(text.float(), dim=-1) @ F.normalize(features.float(), dim=-1).T


def to_uint8(image: np.ndarray) -> np.ndarray:
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def enlarge(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour enlarge an [h, w, 3] image to [size, size, 3] for display."""
    f = max(1, size // image.shape[0])
    return np.kron(image, np.ones((f, f, 1), dtype=image.dtype))
