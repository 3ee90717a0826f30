"""Paint your own mask: reconstruct from any given patch mask and set its loss beside the samplers'.

A mask is [L] (1 = hidden, 0 = visible), in image order. Presets for a scene: hide the main object's
patches, keep only them, or the semantic or random sampler's mask at a mask ratio. For any mask the
model sees the visible patches only and predicts the teacher's features (or pixels) for all; the
report gives the loss on the hidden patches, the per-patch cosine error beside the teacher's
importance, and the same loss for the semantic and the random sampler at the same budget (as many
hidden patches), averaged over a few draws, so that "hide the object" can be set against what each
sampler would have done.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from milan_lab.data.scenes import make_labelled_scene, make_scene_with_main_object, patch_labels
from milan_lab.data.transforms import denormalize
from milan_lab.errors import ConfigError
from milan_lab.models.losses import TARGETS, target_predicts
from milan_lab.models.masking import Masking, from_mask, from_order, sample_mask
from milan_lab.models.milan import MILAN
from milan_lab.viz import maps
from milan_lab.viz.panels import DISPLAY, Explorer, example_scene

PRESETS = ("hide the main object", "keep only the main object", "semantic sampler", "random sampler")
SAMPLERS = ("semantic", "random")  # what a painted mask is compared with, at its budget
DRAWS = 8  # masks per sampler at the painted budget: its loss is their mean


def object_patches(object_pixels: np.ndarray, patch: int) -> np.ndarray:
    """[L] float, 1 for each patch that shows any pixel of the object: ``object_pixels`` [S, S] bool
    (e.g. a label map == its class), row-major patches of ``patch`` px. Any pixel, not a majority:
    hiding an object must leave none of it in sight."""
    h, w = object_pixels.shape
    if h % patch or w % patch:
        raise ConfigError(f"the object map is {h}x{w} px, not a whole number of {patch}-px patches")
    blocks = np.asarray(object_pixels, dtype=bool).reshape(h // patch, patch, w // patch, patch)
    return blocks.any((1, 3)).reshape(-1).astype(np.float32)


def example_object(image, size: int) -> np.ndarray | None:
    """The main object's pixels [size, size] bool (covering at least half the pixel, as the label maps
    count them) when ``image`` is one of the app's example scenes; else None."""
    key = example_scene(image)
    return None if key is None else make_scene_with_main_object(*key, size)[1] >= 0.5


def example_patch_labels(image, size: int, patch: int) -> np.ndarray | None:
    """Each patch's class [L] (the label map's majority, ``SEG_CLASSES``) of an example scene, else None."""
    key = example_scene(image)
    return None if key is None else patch_labels(make_labelled_scene(*key, size)[1], patch).reshape(-1)


def preset_mask(preset: str, num_patches: int, object_mask: np.ndarray | None = None,
                importance: torch.Tensor | None = None, ratio: float = 0.75, seed: int = 0) -> np.ndarray:
    """The [L] mask of a preset: the main object's patches hidden (``object_mask`` [L], 1 on the
    object) or all others hidden, or the semantic (``importance`` [L]) or random sampler's mask at
    ``ratio`` drawn with ``seed``."""
    if preset not in PRESETS:
        raise ConfigError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    if preset.endswith("main object"):
        if object_mask is None:
            raise ConfigError("the main object is known for the example scenes only: pick one of them, or paint "
                              "the patches by hand, or use a sampler preset")
        return (object_mask if preset.startswith("hide") else 1 - object_mask).astype(np.float32)
    sampler = preset.split()[0]
    if sampler != "random" and importance is None:
        raise ConfigError(f"the {sampler} sampler draws from the teacher's attention, and this model has no teacher: "
                          "pick the random sampler or paint the patches by hand")
    generator = torch.Generator().manual_seed(int(seed))
    m = sample_mask(sampler, ratio, 1, num_patches, None if importance is None else importance.reshape(1, -1),
                    generator=generator)
    return m.mask[0].numpy().astype(np.float32)


def toggle(mask: np.ndarray, x: float, y: float, width: int, height: int) -> np.ndarray:
    """``mask`` [L] with the patch under pixel (x, y) of a ``width`` x ``height`` picture flipped."""
    g = int(round(len(mask) ** 0.5))
    col = min(g - 1, max(0, int(x * g // width)))
    row = min(g - 1, max(0, int(y * g // height)))
    out = np.array(mask, dtype=np.float32, copy=True)
    out[row * g + col] = 1 - out[row * g + col]
    return out


def check_mask(mask, num_patches: int) -> torch.Tensor:
    """The mask as a [L] float tensor, or one line saying why it cannot be used."""
    m = torch.as_tensor(np.asarray(mask, dtype=np.float32)).reshape(-1)
    if m.numel() != num_patches or not torch.all((m == 0) | (m == 1)):
        raise ConfigError(f"a mask must hold {num_patches} values, each 0 (visible) or 1 (hidden)")
    if m.sum() == 0:
        raise ConfigError("the mask hides no patch: hide at least one (click a patch, or pick a preset)")
    if m.sum() == num_patches:
        raise ConfigError("the mask hides every patch: the model needs at least one visible patch")
    return m


def masked_losses(model: MILAN, images: torch.Tensor, pred: torch.Tensor, target: torch.Tensor | None,
                  mask: torch.Tensor) -> torch.Tensor:
    """[N] the model's registered target loss (``models.losses.TARGETS``: 2 - 2·cos for the teacher's
    features, the per-patch mean squared error for pixels, or any target registered since) on each row's
    hidden patches only, whatever ``loss_on`` it trained with. images [N, 3, S, S], pred [N, 1 + L, D_out],
    target [N, 1 + L, D_t] or None, mask [N, L] (1 = hidden)."""
    cfg = dataclasses.replace(model.cfg, loss_on="masked")
    loss = TARGETS.lookup(cfg.target, "target")
    return torch.stack([loss(cfg, images[i:i + 1], pred[i:i + 1], None if target is None else target[i:i + 1], mask[i:i + 1])
                        for i in range(len(pred))])


def predict(model: MILAN, images: torch.Tensor, masking: Masking) -> torch.Tensor:
    """pred [N, 1 + L, D_out] from the visible patches of ``masking``."""
    return model.forward_decoder(model.forward_encoder(images, masking), masking)


@torch.no_grad()
def sampler_losses(model: MILAN, x: torch.Tensor, target, importance, hidden: int, draws: int = DRAWS,
                   seed: int = 0) -> dict:
    """{sampler: [draws] losses on the hidden patches} for each of ``SAMPLERS`` hiding ``hidden``
    patches of the one image ``x`` [1, 3, S, S] (its teacher output ``target``, ``importance``)."""
    num = model.num_patches
    images = x.expand(draws, -1, -1, -1)
    out = {}
    for sampler in SAMPLERS:
        if sampler != "random" and importance is None:  # a model without a teacher: no attention to sample from
            continue
        generator = torch.Generator().manual_seed(int(seed))
        order = sample_mask(sampler, 0.5, draws, num, None if importance is None else importance.expand(draws, -1),
                            generator=generator).ids_shuffle  # the order alone: its budget is set next
        masking = from_order(order, num - hidden)
        pred = predict(model, images, masking)
        tgt = None if target is None else target.expand(draws, -1, -1)
        out[sampler] = masked_losses(model, images, pred, tgt, masking.mask).tolist()
    return out


@torch.no_grad()
def paint_report(model: MILAN, image, mask, draws: int = DRAWS, seed: int = 0) -> dict:
    """Reconstruct ``image`` (anything :class:`Explorer` takes) from the visible patches of ``mask``
    [L] (1 = hidden). Returns {'loss': on the hidden patches; 'samplers': {name: {'mean', 'draws'}}
    at the same budget; 'hidden', 'ratio'; 'mask' [L]; 'pred' [L, D], 'target' [L, D] (None for
    pixels); 'cos_error' [L] (1 - cos, None for pixels); 'importance' [L]; 'shown', 'x': the views}."""
    m = check_mask(mask, model.num_patches)
    shown, x = Explorer._views(image, model.cfg.image_size)
    target, importance = model.forward_teacher(x)
    masking = from_mask(m[None])
    pred = predict(model, x, masking)
    loss = float(masked_losses(model, x, pred, target, masking.mask)[0])
    hidden = int(m.sum())
    losses = sampler_losses(model, x, target, importance, hidden, draws, seed)
    out = {"loss": loss, "hidden": hidden, "ratio": hidden / model.num_patches, "mask": m, "shown": shown, "x": x,
           "samplers": {k: {"mean": float(np.mean(v)), "draws": v} for k, v in losses.items()},
           "importance": None if importance is None else importance[0], "pred": pred[0, 1:],
           "target": None if target is None else target[0, 1:], "cos_error": None}
    if target is not None and target_predicts(model.cfg) == "features":  # its flag: a registered feature target too
        out["cos_error"] = 1 - maps.cosine_per_patch(pred[0, 1:], target[0, 1:])
    return out


def paint_panels(report: dict) -> dict:
    """Display images [DISPLAY, DISPLAY, 3] in [0, 1] of a :func:`paint_report`: 'masked' (the painted
    mask over the image), 'error' (cosine error per patch, hidden patches only, brighter = worse; None
    for pixels) and 'importance' (the teacher's class-token attention)."""
    shown, mask = report["shown"], report["mask"]
    out = {"masked": maps.mask_overlay(shown, mask), "error": None, "importance": None}
    if report["cos_error"] is not None:  # visible patches shown at 0 error: the map is about what was predicted
        out["error"] = error_map(shown, report["cos_error"] * mask)
    if report["importance"] is not None:
        out["importance"] = maps.heatmap(shown, report["importance"])
    return out


def error_map(shown: np.ndarray, error: torch.Tensor, alpha: float = 0.6) -> np.ndarray:
    """Per-patch error [L] on a fixed scale (0 to 1 of 1 - cos; 1 - cos lies in [0, 2], values above 1 are drawn
    as 1), so that two masks' maps compare."""
    from matplotlib import colormaps
    grid = np.clip(maps.patch_grid(error), 0, 1)
    colour = colormaps["magma"](maps.upsample(grid, shown.shape[0]))[..., :3]
    return (1 - alpha) * shown + alpha * colour


def format_losses(report: dict) -> str:
    """One line: this mask's loss beside each sampler's mean at the same budget."""
    draws = len(next(iter(report["samplers"].values()))["draws"])
    others = ", ".join(f"{name} sampler {v['mean']:.3f}" for name, v in report["samplers"].items())
    return (f"loss on the {report['hidden']} hidden patches (ratio {report['ratio']:.2f}): this mask {report['loss']:.3f}; "
            f"at the same budget: {others} (mean of {draws} draws each)")



# -- what it filled in -------------------------------------------------------------------------------
def filled_in_view(report: dict, bank, teacher=None, true_labels=None, k: int = 5, words=(), top: int = 4) -> dict | None:
    """The hidden patches of a :func:`paint_report` read through a patch bank
    (``evaluation.patch_bank``): {'from_pred', 'from_target': the image [DISPLAY, DISPLAY, 3] in [0, 1]
    with each hidden patch replaced by the bank patch nearest to the predicted / the true feature;
    'result': ``filled_in``'s; 'words': the teacher's top ``words`` for the predicted and the true
    feature of the ``top`` most attended hidden patches; 'note': the lines under the pictures}. None for a
    pixel-target model (its prediction is pixels, shown as they are). ``true_labels`` [L]: each patch's
    class (an example scene's label map), for the top-``k`` retrieval accuracy; None: not known."""
    from milan_lab.evaluation import patch_bank as pb
    if report["target"] is None or report["cos_error"] is None:
        return None
    size = report["x"].shape[-1]
    patch = size // int(round(len(report["mask"]) ** 0.5))
    own = (np.clip(denormalize(report["x"][0]), 0, 1) * 255).round().astype(np.uint8)  # the model's view, its own patches
    crops = pb.crops_of(own[None], patch)
    labels = np.zeros(len(report["mask"]), np.int64) if true_labels is None else np.asarray(true_labels).reshape(-1)
    r = pb.filled_in(bank, report["pred"], report["target"], report["mask"], labels, k)
    out = {"result": r, "words": []}
    for key, idx in (("from_pred", r["from_pred"]), ("from_target", r["from_target"])):
        out[key] = maps.enlarge(pb.pasted(crops, bank, r["patches"], idx).astype(np.float32) / 255, DISPLAY)
    lines = []
    if true_labels is not None:
        acc = f"top-{k} retrieval: the hidden patch's class is among the {k} bank patches nearest to the prediction " \
              f"for {100 * r['accuracy']:.0f} % of the {len(r['patches'])} hidden patches"
        if r["object_accuracy"] is not None:
            acc += f" ({100 * r['object_accuracy']:.0f} % of those on a shape)"
        lines.append(acc + f"; bank: {len(bank)} patches of validation scenes")
    else:
        lines.append(f"top-{k} retrieval needs the patches' true classes: known for the example scenes only")
    if teacher is not None and words:
        order = r["patches"][torch.argsort(report["importance"][r["patches"]], descending=True)[:top]] \
            if report["importance"] is not None else r["patches"][:top]
        said_pred = pb.top_words(teacher, report["pred"][order], words, 2)
        said_true = pb.top_words(teacher, report["target"][order], words, 2)
        g = int(round(len(report["mask"]) ** 0.5))
        for p, wp, wt in zip(order.tolist(), said_pred, said_true):
            if wp:
                out["words"].append((p, wp, wt))
                lines.append(f"patch (row {p // g}, col {p % g}): the teacher reads the prediction as "
                             f"{', '.join(w for w, _ in wp)}; the true feature as {', '.join(w for w, _ in wt)}")
    out["note"] = "\n\n".join(lines)
    return out
