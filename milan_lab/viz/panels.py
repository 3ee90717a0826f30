"""The explorer's handlers: plain functions over a teacher and a MILAN model, shared by the
Gradio app (apps/explorer.py) and the ipywidgets notebook (notebooks/explore.ipynb)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from milan_lab.data.images import load_image
from milan_lab.data.scenes import SEG_CLASSES, make_labelled_scene, make_scene
from milan_lab.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize
from milan_lab.errors import ConfigError
from milan_lab.evaluation.attention import agreement
from milan_lab.evaluation.dense import SegProbe, confusion, seg_scores
from milan_lab.evaluation.probes import probe_candidates
from milan_lab.factory.models import load_encoder, load_model
from milan_lab.factory.teachers import load_teacher
from milan_lab.io.locations import ASSETS
from milan_lab.io.weights import read_weights
from milan_lab.models.losses import target_predicts, unpatchify
from milan_lab.models.masking import sample_mask
from milan_lab.models.milan import MILAN
from milan_lab.models.teacher import Teacher
from milan_lab.viz import maps, text_maps

SHIPPED_MODEL = ASSETS / "milan_tiny_offline.safetensors"
DISPLAY = 256
# the offline scenes the app and notebooks offer as examples: make_scene(seed, split, index, DISPLAY)
EXAMPLE_SCENES = [(0, "test", i) for i in range(4)]
_example_keys: dict | None = None


def example_scene(image) -> tuple | None:
    """(seed, split, index) of ``image`` when it is one of ``EXAMPLE_SCENES`` pixel for pixel (an
    array, or a lossless file of one, as the app hands it over), else None."""
    global _example_keys
    if isinstance(image, (str, Path)):
        try:
            with Image.open(image) as img:
                if img.size != (DISPLAY, DISPLAY):
                    return None
        except OSError:
            return None
        image = np.asarray(load_image(image))
    if not isinstance(image, np.ndarray) or image.shape != (DISPLAY, DISPLAY, 3):
        return None
    if _example_keys is None:
        _example_keys = {make_scene(seed, split, i, DISPLAY)[0].tobytes(): (seed, split, i) for seed, split, i in EXAMPLE_SCENES}
    return _example_keys.get(np.ascontiguousarray(image, dtype=np.uint8).tobytes())


def example_scene_labels(image, size: int) -> np.ndarray | None:
    """The true label map [size, size] of ``image`` when it is one of ``EXAMPLE_SCENES``, else
    None: only a generated scene has a known truth."""
    key = example_scene(image)
    return None if key is None else make_labelled_scene(*key, size)[1]


def square(img: Image.Image, size: int) -> Image.Image:
    """Centre crop to a square, resize to ``size`` (bicubic)."""
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    return img.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)


def load_milan(checkpoint: str | Path | None = None, teacher: Teacher | None = None, device="cpu") -> MILAN:
    """A MILAN model from a pretraining checkpoint or run folder (default: the shipped offline
    model). The explorer's ``teacher`` (the one its attention panels show) supervises the model
    when it fits the checkpoint's student; otherwise the model keeps the teacher it was trained
    with, and the panels say which teacher each one shows."""
    return load_model(checkpoint or SHIPPED_MODEL, task="pretrain", teacher=teacher if teacher is not None else "auto",
                      device=device, own_teacher_if_misfit=True)


def load_probe(checkpoint_path: str | None):
    """(dense probe, class names) that ``milan-lab seg-probe`` saved for a checkpoint (for a shipped
    model under outputs/probes/, else the probe shipped with it; see ``probe_candidates``), or None."""
    if not checkpoint_path:
        return None
    path = next((p for p in probe_candidates(checkpoint_path) if p.is_file()), None)
    if path is None:
        return None
    state = read_weights(path)
    weights, meta = state["model"], state["config"]
    probe = SegProbe(weights["head.weight"].shape[1], len(meta["classes"]), meta["image_size"])
    probe.load_state_dict(weights)
    return probe.eval(), meta["classes"]


def _scene_classes() -> list[str]:
    return list(SEG_CLASSES)


class Explorer:
    def __init__(self, teacher: Teacher, model: MILAN | None = None):
        self.teacher, self.model = teacher.eval(), model.eval() if model is not None else None
        self._random_encoder = None
        self._probe = None if model is None else load_probe(getattr(model, "checkpoint_path", None))
        # what the user named (a run folder, a file) for the header; the shipped model by default
        self.model_source = getattr(model, "checkpoint_path", None)

    @classmethod
    def from_defaults(cls, teacher: str | None = None, teacher_pretrained: str | None = None,
                      checkpoint: str | None = None) -> "Explorer":
        t = load_teacher(teacher, teacher_pretrained)
        model = load_milan(checkpoint, t) if checkpoint or SHIPPED_MODEL.is_file() else None
        explorer = cls(t, model)
        if checkpoint:
            explorer.model_source = str(checkpoint)
        return explorer

    # -- helpers --------------------------------------------------------------------------------
    @staticmethod
    def _views(image, size: int) -> tuple[np.ndarray, torch.Tensor]:
        """(display image [DISPLAY, DISPLAY, 3] in [0, 1], model input [1, 3, size, size])."""
        img = load_image(image)
        shown = np.asarray(square(img, DISPLAY), dtype=np.float32) / 255
        arr = np.asarray(square(img, size), dtype=np.float32) / 255
        x = (torch.from_numpy(arr).permute(2, 0, 1) - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(
            IMAGENET_STD)[:, None, None]
        return shown, x[None]

    @property
    def num_layers(self) -> int:
        return len(self.teacher.visual.transformer.resblocks)

    @property
    def has_probe(self) -> bool:
        return self._probe is not None

    def describe(self) -> dict:
        """What is loaded, in words: {'teacher': its name, 'teacher_detail': where it comes from and
        its size, 'model': the file or run folder (None without a model), 'model_detail': its shape}."""
        t = self.teacher
        shipped_teacher = t.name == "shipped"
        out = {"teacher": t.name, "teacher_detail": ("the offline CLIP shipped in the package, " if shipped_teacher else "")
               + f"{t.image_size} px, {self.num_layers} layers x {t.num_heads} heads",
               "model": None, "model_detail": ""}
        if self.model is None:
            return out
        cfg, source = self.model.cfg, self.model_source
        shipped = source is not None and Path(source).resolve() == SHIPPED_MODEL.resolve()
        out["model"] = SHIPPED_MODEL.name if shipped else str(source)
        out["model_detail"] = (("shipped, " if shipped else "") + f"{cfg.image_size} px, patch {cfg.patch_size}, "
                               f"depth {cfg.depth} x {cfg.num_heads} heads, {cfg.target} targets")
        return out

    # -- panels ----------------------------------------------------------------------------------
    @torch.no_grad()
    def attention(self, image, layer: int = -1, head: int | None = None, rollout: bool = False) -> dict:
        """Teacher class-token attention: {'map': heat map, 'rollout': rollout map, 'importance': [L]}."""
        shown, x = self._views(image, self.teacher.image_size)
        attns = [a[0] for a in self.teacher.get_selfattentions(x)]
        layer = layer if layer >= 0 else len(attns) + layer
        if not 0 <= layer < len(attns):
            raise ConfigError(f"layer must be in 0..{len(attns) - 1}")
        if head is not None and not 0 <= head < attns[layer].shape[0]:
            raise ConfigError(f"head must be in 0..{attns[layer].shape[0] - 1} or the head average")
        importance = maps.cls_attention(attns[layer], head)
        out = {"map": maps.heatmap(shown, importance), "importance": importance}
        rolled = maps.attention_rollout(attns) if rollout else None
        out["rollout"] = maps.heatmap(shown, rolled) if rollout else None
        out["rollout_values"] = rolled
        return out

    @torch.no_grad()
    def student_attention(self, image, head: int | None = None) -> dict:
        """DINO's view of the student: the class token's last-block attention of the pretrained
        MILAN encoder, next to a randomly initialised encoder of the same size (seed 0) and the
        teacher's. {'student', 'random', 'teacher': heat maps; 'agreement': Pearson correlation of
        the student's and the teacher's maps over patches, when both have the same grid}."""
        if self.model is None:
            raise ConfigError("No MILAN model loaded: pass --checkpoint, or run the default pretraining first.")
        shown, x = self._views(image, self.model.cfg.image_size)
        if self._random_encoder is None:
            self._random_encoder = load_encoder("random", self.model.cfg, seed=0)
        maps_ = {}
        for name, encoder in (("student", self.model.encoder), ("random", self._random_encoder)):
            attn = encoder.get_last_selfattention(x)[0]
            if head is not None and not 0 <= head < attn.shape[0]:
                raise ConfigError(f"head must be in 0..{attn.shape[0] - 1} or the head average")
            maps_[name] = maps.cls_attention(attn, head)
        _, teacher = self.teacher(self._views(image, self.teacher.image_size)[1])
        teacher = teacher[0]  # the importance MILAN samples from: last block, head mean [L]
        out = {k: maps.heatmap(shown, v) for k, v in maps_.items()}
        out["values"] = maps_  # the raw attention weights [L] behind each map (its colour scale)
        out["teacher"] = maps.heatmap(shown, teacher)
        same = teacher.shape == maps_["student"].shape
        out["agreement"] = {k: float(agreement(v.numpy()[None], teacher.numpy()[None])[0]) if same else None
                            for k, v in maps_.items()}
        return out

    @torch.no_grad()
    def segmentation(self, image) -> dict | None:
        """The dense probe's prediction for the loaded model ({'overlay': class outlines over the
        image, 'labels' [S, S], 'classes', 'present', 'legend'}), or None when no probe was trained
        for it (``milan-lab seg-probe CHECKPOINT``). For an example scene, also its ground truth
        ('truth' [S, S] at the probe's size, which the scores use; 'truth_overlay' drawn from the
        scene's labels at the display size, so it lies on the objects shown) and the prediction's
        mIoU and per-class IoU on it ('miou', 'iou')."""
        if self.model is None or self._probe is None:
            return None
        probe, classes = self._probe
        size = self.model.cfg.image_size
        shown, x = self._views(image, size)
        labels = probe(self.model.encoder.forward_features(x)[:, 1:]).argmax(1)[0]
        out = {"overlay": maps.label_outlines(shown, labels.numpy(), len(classes)), "labels": labels,
               "classes": classes, "present": [classes[i] for i in sorted(set(labels.flatten().tolist()))],
               "legend": maps.legend_html(classes)}
        key = example_scene(image)
        if key is not None and list(classes) == _scene_classes():  # a probe trained on the scenes' classes
            truth = make_labelled_scene(*key, size)[1]
            scores = seg_scores(confusion(labels.flatten(), torch.from_numpy(truth.astype(np.int64)).flatten(), len(classes)))
            shown_truth = maps.label_outlines(shown, make_labelled_scene(*key, DISPLAY)[1], len(classes))
            out.update(truth=truth, truth_overlay=shown_truth, miou=scores["miou"],
                       iou={c: v for c, v in zip(classes, scores["iou"]) if v is not None})
        return out

    @torch.no_grad()
    def masks(self, image, sampler: str = "semantic", ratio: float = 0.75, seed: int = 0) -> dict:
        """Which patches ``sampler`` keeps: {'overlay', 'mask' [L], 'kept_attention' share}."""
        shown, x = self._views(image, self.teacher.image_size)
        _, importance = self.teacher(x)
        m = sample_mask(sampler, ratio, 1, importance.shape[1], importance,
                        generator=torch.Generator().manual_seed(int(seed)))
        kept_share = float((importance[0] * (1 - m.mask[0])).sum() / importance[0].sum())
        return {"overlay": maps.mask_overlay(shown, m.mask[0]), "mask": m.mask[0],
                "kept_attention": kept_share, "masking": m, "importance": importance}

    @torch.no_grad()
    def reconstruction(self, image, sampler: str = "semantic", ratio: float = 0.75, seed: int = 0,
                       prompts: list[str] | None = None) -> dict:
        """Target vs predicted features (PCA->RGB, shared basis), per-patch cosine map, and
        text-prompt similarity maps; pixel reconstructions for a pixel-target model."""
        if self.model is None:
            raise ConfigError("No MILAN model loaded: pass --checkpoint, or run the default pretraining first.")
        model = self.model
        shown, x = self._views(image, model.cfg.image_size)
        target, importance = model.forward_teacher(x)
        m = model.sample_mask(x, importance, sampler=sampler, mask_ratio=ratio,
                              generator=torch.Generator().manual_seed(int(seed)))
        pred = model.forward_decoder(model.forward_encoder(x, m), m)
        out = {"mask": m.mask[0], "masked_input": maps.mask_overlay(shown, m.mask[0])}
        if target_predicts(model.cfg) == "pixels":  # the target's flag: any registered pixel target is shown so
            p = model.cfg.patch_size
            rec = unpatchify(pred[:, 1:], p)[0]
            mask_img = maps.upsample(maps.patch_grid(m.mask[0]), model.cfg.image_size)[None]
            pasted = x[0] * (1 - torch.from_numpy(mask_img)) + rec * torch.from_numpy(mask_img)
            out.update(pixels=denormalize(rec), pasted=denormalize(pasted), cosine=None)
            return out
        t_img, p_img = maps.pca_rgb(target[0, 1:], pred[0, 1:])
        cos = maps.cosine_per_patch(pred[0, 1:], target[0, 1:])
        masked = m.mask[0].bool()
        # the colour scale spans the cosines present (down to a multiple of 0.05, up to 1), so that
        # differences between well-predicted patches show; the panel's colour bar gives the range
        lo = min(float(np.floor(float(cos.min()) * 20) / 20), 0.95)
        out.update(pca_target=t_img, pca_pred=p_img, cosine=maps.cosine_image(cos, m.mask[0], DISPLAY, lo, 1.0),
                   cosine_range=(lo, 1.0), cosine_values=cos,
                   cos_masked=float(cos[masked].mean()), cos_visible=float(cos[~masked].mean()) if (~masked).any() else None)
        if prompts:
            text = model.teacher.encode_text(prompts)
            out["prompts"] = list(prompts)
            out["text_target"] = maps.text_similarity(target[0, 1:], text)
            out["text_pred"] = maps.text_similarity(pred[0, 1:], text)
            # where each prompt is: MaskCLIP's dense map of the teacher (the token maps above do not localise)
            out["text_dense"] = text_maps.dense_text_maps(model.teacher, x, text)
            out["unknown_words"] = text_maps.unknown_words_note(model.teacher, prompts)
        return out
