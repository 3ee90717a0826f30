"""Measure a teacher on held-out offline scenes (``milan-lab teacher eval``).

(a) Zero-shot accuracy per caption attribute (shape, colour, size, place). A class's text
    embedding is the normalised mean over every full caption carrying that value (CLIP's prompt
    ensembling, marginalising the other attributes). For shape we also report the bare prompt
    "a {shape}".
(b) Attention on objects: the share of the last block's class-token attention (over patches)
    that falls on object pixels, divided by the objects' share of the image. 1.0 means the
    teacher looks at objects no more than at background; MILAN's semantic masking needs > 1.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch
import torch.nn.functional as F

from milan_lab.data.scenes import ATTRIBUTES, SceneSpec, random_spec, render_scene, scene_rng
from milan_lab.data.transforms import to_normalized_tensor
from milan_lab.models.teacher import Teacher


def heldout_scenes(n: int, image_size: int, seed: int = 0, split: str = "test", variant: str = "dense"):
    """(uint8 images [n, H, W, 3], specs, object coverage [n, H, W]) of the scene kind ``variant``."""
    images, specs, masks = [], [], []
    for i in range(n):
        rng = scene_rng(seed, split, i)
        spec = random_spec(rng)
        img, cov = render_scene(rng, spec, image_size, return_mask=True, variant=variant)
        images.append(img), specs.append(spec), masks.append(cov)
    return np.stack(images), specs, np.stack(masks)


def class_text_embeddings(teacher: Teacher, attribute: str) -> torch.Tensor:
    """[C, D] ensembled over all captions with each value of ``attribute``."""
    values = ATTRIBUTES[attribute]
    others = [a for a in ATTRIBUTES if a != attribute]
    rows = []
    for value in values:
        captions = [SceneSpec(**{attribute: value, **dict(zip(others, combo))}).caption()
                    for combo in itertools.product(*(ATTRIBUTES[a] for a in others))]
        rows.append(F.normalize(teacher.encode_text(captions).mean(0), dim=-1))
    return torch.stack(rows)


def attention_on_objects(importance: torch.Tensor, coverage: np.ndarray, patch_size: int) -> np.ndarray:
    """Per image: (attention mass on object pixels) / (object share of the image).
    importance [N, L]; coverage [N, H, W] in [0, 1]."""
    cov = torch.from_numpy(coverage).float().unsqueeze(1)
    per_patch = F.avg_pool2d(cov, patch_size).flatten(1)  # [N, L] object fraction of each patch
    att = importance / importance.sum(1, keepdim=True)
    mass = (att * per_patch).sum(1)
    share = per_patch.mean(1).clamp_min(1e-6)
    return (mass / share).numpy()


@torch.no_grad()
def text_embeddings(teacher: Teacher) -> dict:
    """Per caption attribute, its class text embeddings [C, D] (:func:`class_text_embeddings`): a scene kind does not
    change them, so a measurement over several kinds computes them once."""
    return {attribute: class_text_embeddings(teacher, attribute).cpu() for attribute in ATTRIBUTES}


@torch.no_grad()
def evaluate_teacher(teacher: Teacher, n: int = 512, seed: int = 0, batch_size: int = 128, variant: str = "dense",
                     text: dict | None = None) -> dict:
    """Zero-shot accuracy per attribute and attention on objects over ``n`` held-out scenes of the kind ``variant``;
    ``text``: :func:`text_embeddings` of this teacher, computed here when not given."""
    text = text_embeddings(teacher) if text is None else text
    images, specs, coverage = heldout_scenes(n, teacher.image_size, seed, variant=variant)
    feats, ratios = [], []
    for i in range(0, n, batch_size):
        x = to_normalized_tensor(images[i:i + batch_size]).to(teacher.norm_scale.device)
        feats.append(teacher.encode_image(x).cpu())
        _, importance = teacher(x)
        ratios.append(attention_on_objects(importance.cpu(), coverage[i:i + batch_size], teacher.patch_size))
    feats = torch.cat(feats)
    result = {"n_images": n, "variant": variant, "zero_shot": {}}
    for attribute, values in ATTRIBUTES.items():
        truth = torch.tensor([values.index(getattr(s, attribute)) for s in specs])
        result["zero_shot"][attribute] = float(((feats @ text[attribute].T).argmax(1) == truth).float().mean())
    bare = teacher.encode_text([f"a {s}" for s in ATTRIBUTES["shape"]]).cpu()
    truth = torch.tensor([s.label for s in specs])
    result["zero_shot"]["shape_bare_prompt"] = float(((feats @ bare.T).argmax(1) == truth).float().mean())
    ratios = np.concatenate(ratios)
    result["attention_on_objects"] = float(ratios.mean())
    result["attention_on_objects_median"] = float(np.median(ratios))
    return result


class TeacherTokens(torch.nn.Module):
    """A teacher seen as an encoder: ``forward_features(images)`` [N, L+1, D_t] are its targets (every token
    after ``ln_post`` and ``proj``: what a MILAN student regresses), so the studies' probes
    (``suite.score``: class token or mean patch, ``dense.patch_features``) score the teacher on the same
    features, inputs and rules as a student: its ceilings."""

    def __init__(self, teacher: Teacher):
        super().__init__()
        self.teacher = teacher

    @property
    def image_size(self) -> int:
        return self.teacher.image_size

    @property
    def patch_size(self) -> int:
        return self.teacher.patch_size

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, 3, H, W], the student's normalised view (as MILAN hands it to the teacher) -> [N, L+1, D_t]."""
        return self.teacher(images)[0]
