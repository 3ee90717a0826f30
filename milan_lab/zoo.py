"""The model zoo with the seed's names: ``get_model``, ``inference_model``, ``list_models``.

    from milan_lab import get_model, inference_model
    model = get_model('vit-base-p16_milan-pre_8xb128-coslr-100e_in1k', pretrained=True)
    logits = model(torch.rand(1, 3, 224, 224)); feats = model.extract_feat(torch.rand(1, 3, 224, 224))
    inference_model('vit-base-p16_milan-pre_8xb128-coslr-100e_in1k', 'bird.jpg')['pred_class']

``pretrained=True`` downloads to ``~/.cache/milan_lab`` and checks the file's SHA-256 against the
8-hex prefix in its name (OpenMMLab's convention); ``pretrained=PATH`` loads a local file in
mmpretrain's or milan_lab's layout. Offline, ``pretrained=True`` fails at once naming the
``pretrained=<path>`` alternative.
"""
from __future__ import annotations

import hashlib
import os
import re
import urllib.request
from pathlib import Path

import torch

from milan_lab.config import ModelConfig, PRESETS, PretrainConfig, from_dict
from milan_lab.convert import from_mmpretrain, load_strict, read_state_dict
from milan_lab.data.scenes import SHAPES
from milan_lab.models.classifier import MILANClassifier
from milan_lab.models.milan import MILAN

ASSETS = Path(__file__).resolve().parent / "assets"
_BASE = "https://download.openmmlab.com/mmselfsup/1.x/milan/milan_vit-base-p16_16xb256-amp-coslr-400e_in1k/"
VIT_B = "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k"
TINY = "milan_vit-tiny-p8_offline"

MODELS = {
    VIT_B: dict(task="pretrain", preset=VIT_B, num_classes=0, classes=None,
                url=_BASE + "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k_20221129-180922e8.pth"),
    "vit-base-p16_milan-pre_8xb128-coslr-100e_in1k": dict(
        task="finetune", preset=VIT_B, num_classes=1000, classes="imagenet", top1=85.3,
        url=_BASE + "vit-base-p16_ft-8xb128-coslr-100e_in1k/vit-base-p16_ft-8xb128-coslr-100e_in1k-milan_20221129-74ac94fa.pth"),
    "vit-base-p16_milan-pre_8xb2048-linear-coslr-100e_in1k": dict(
        task="linear", preset=VIT_B, num_classes=1000, classes="imagenet", top1=78.9,
        url=_BASE + "vit-base-p16_linear-8xb2048-coslr-100e_in1k/vit-base-p16_linear-8xb2048-coslr-100e_in1k_20221129-03f26f85.pth"),
    # offline models shipped inside the package (produced by the default notebooks)
    TINY: dict(task="pretrain", preset=TINY, num_classes=0, classes=None, file="milan_tiny_offline.pt"),
    "vit-tiny-p8_milan-pre_offline-ft": dict(task="finetune", preset=TINY, num_classes=len(SHAPES), classes="offline",
                                             file="milan_tiny_offline_ft.pt"),
}


def list_models(pattern: str | None = None) -> list[str]:
    names = list(MODELS)
    return [n for n in names if re.search(pattern, n)] if pattern else names


def class_names(kind: str | None) -> list[str] | None:
    if kind == "imagenet":
        return (ASSETS / "imagenet_classes.txt").read_text().splitlines()
    if kind == "offline":
        return list(SHAPES)
    return None


def _cache_dir() -> Path:
    return Path(os.environ.get("MILAN_LAB_CACHE", Path.home() / ".cache" / "milan_lab"))


def download(url: str) -> Path:
    """Download ``url`` once into the cache, verifying the SHA-256 prefix in its file name."""
    name = url.rsplit("/", 1)[-1]
    dest = _cache_dir() / name
    if dest.is_file():
        return dest
    hint = (f"download of {name} is not possible here; fetch it elsewhere ({url}) and pass "
            f"pretrained=<path> to the local file")
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("MILAN_LAB_OFFLINE") == "1":
        raise RuntimeError(f"offline mode: {hint}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    try:
        torch.hub.download_url_to_file(url, str(tmp), progress=True)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"{hint} ({type(e).__name__}: {e})") from None
    verify_hash(tmp, name)
    tmp.replace(dest)
    return dest


def verify_hash(path: Path, name: str) -> None:
    m = re.search(r"-([0-9a-f]{8})\.pth$", name)
    if m:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
        if not digest.startswith(m.group(1)):
            Path(path).unlink(missing_ok=True)
            raise RuntimeError(f"{name}: SHA-256 {digest[:8]} does not match {m.group(1)}; the download is corrupt")


def get_model(name: str, pretrained: bool | str = False, device: str = "cpu", teacher=None):
    """Build a zoo model; ``pretrained`` False (random init), True (the zoo's weights) or a path."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; list_models() gives: {', '.join(MODELS)}")
    entry = MODELS[name]
    cfg = ModelConfig(**PRESETS[entry["preset"]]["model"])
    path = None
    if pretrained is True:
        path = ASSETS / entry["file"] if "file" in entry else download(entry["url"])
        if not path.is_file():
            raise FileNotFoundError(f"{name}: shipped weights {path} are missing from this install")
    elif pretrained:
        path = Path(pretrained)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained={str(pretrained)!r}: no such file")
    state = read_state_dict(path) if path else None
    if state is not None and "config" in state:  # a milan_lab checkpoint carries its own config
        cfg = from_dict(PretrainConfig, state["config"]).model if "model" in state["config"] else cfg
    if entry["task"] == "pretrain":
        model = MILAN(cfg, teacher, require_teacher=False)
    else:
        model = MILANClassifier(cfg, entry["num_classes"], "linear" if entry["task"] == "linear" else "finetune")
    model.zoo_name, model.class_names = name, class_names(entry["classes"])
    if state is not None:
        weights = state.get("model", state)
        if any(k.startswith("backbone.") for k in weights):
            weights = from_mmpretrain(weights, entry["task"])
        load_strict(model, {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}, str(path))
    return model.to(device).eval()


def _to_tensor(model, image) -> torch.Tensor:
    from milan_lab.data.transforms import eval_transform
    from milan_lab.viz.explorer import load_image
    img = load_image(str(image) if isinstance(image, Path) else image)
    size = model.cfg.image_size
    return eval_transform(size, 0.875 if size >= 224 else 1.0)(img)[None]


@torch.no_grad()
def inference_model(model, image, topk: int = 5, device: str = "cpu") -> dict:
    """Classify one image (path, PIL image or array): pred_label, pred_score, pred_class, top-k."""
    if isinstance(model, str):
        model = get_model(model, pretrained=True, device=device)
    if not isinstance(model, MILANClassifier):
        raise ValueError("inference_model needs a classifier (a fine-tuned or linear-probe model); "
                         "use model.extract_feat(x) for features of a pretraining model")
    x = _to_tensor(model, image).to(next(model.parameters()).device)
    scores = model(x).softmax(-1)[0].cpu()
    top = scores.topk(min(topk, len(scores)))
    names = getattr(model, "class_names", None) or [str(i) for i in range(len(scores))]
    labels = top.indices.tolist()
    return {"pred_label": labels[0], "pred_score": float(top.values[0]), "pred_class": names[labels[0]],
            "pred_scores": scores.numpy(), "topk_labels": labels, "topk_scores": top.values.tolist(),
            "topk_classes": [names[i] for i in labels]}


@torch.no_grad()
def evaluate_folder(model, data: str, batch_size: int = 64) -> dict:
    """top-1 / top-5 of a classifier on an ImageNet-style folder (class sub-folders sorted by name)."""
    from milan_lab.data.datasets import ClassFolder
    from milan_lab.data.transforms import eval_transform
    from milan_lab.engine.supervised import evaluate
    size = model.cfg.image_size
    ds = ClassFolder(data, eval_transform(size, 0.875 if size >= 224 else 1.0))
    result = evaluate(model, ds, next(model.parameters()).device, None, batch_size)
    return {"images": len(ds), "top1": result["top1"], "top5": result["top5"]}
