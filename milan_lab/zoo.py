"""The model zoo with mmpretrain's model names: ``get_model``, ``inference_model``, ``list_models``.

    from milan_lab import get_model, inference_model
    model = get_model('vit-base-p16_milan-pre_8xb128-coslr-100e_in1k', pretrained=True)
    logits = model(torch.rand(1, 3, 224, 224)); feats = model.extract_feat(torch.rand(1, 3, 224, 224))
    inference_model('vit-base-p16_milan-pre_8xb128-coslr-100e_in1k', 'bird.jpg')['pred_class']

``pretrained=True`` downloads to ``~/.cache/milan_lab`` with torch.hub, which checks the file's
SHA-256 against the hex prefix in its name (OpenMMLab's and torch.hub's convention);
``pretrained=PATH`` loads a local file in mmpretrain's or milan_lab's layout. Offline (``HF_HUB_OFFLINE=1``,
or the download host does not answer within a few seconds), ``pretrained=True`` fails at once naming the
``pretrained=PATH`` alternative.
"""
from __future__ import annotations

import re
import sys
import urllib.error
from pathlib import Path

import torch

from milan_lab.config import PRESETS, ModelConfig
from milan_lab.data.datasets import ClassFolder
from milan_lab.data.images import MIN_SIDE, load_image
from milan_lab.data.scenes import SHAPES
from milan_lab.data.transforms import eval_transform
from milan_lab.errors import CheckpointError, ConfigError, DataError, DownloadError
from milan_lab.evaluation.classifier import evaluate
from milan_lab.factory.models import create_model, load_model
from milan_lab.io.locations import ASSETS, cache_dir
from milan_lab.io.network import unreachable
from milan_lab.models.classifier import MILANClassifier

_BASE = "https://download.openmmlab.com/mmselfsup/1.x/milan/milan_vit-base-p16_16xb256-amp-coslr-400e_in1k/"
VIT_B = "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k"
TINY = "milan_vit-tiny-p8_offline"
SHIPPED_PRETRAIN = TINY  # the preset's default recipe's output, named like the ViT-B entry after its preset

MODELS = {
    VIT_B: dict(task="pretrain", preset=VIT_B, num_classes=0, classes=None,
                url=_BASE + "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k_20221129-180922e8.pth"),
    "vit-base-p16_milan-pre_8xb128-coslr-100e_in1k": dict(
        task="finetune", preset=VIT_B, num_classes=1000, classes="imagenet", top1=85.3,
        url=_BASE + "vit-base-p16_ft-8xb128-coslr-100e_in1k/vit-base-p16_ft-8xb128-coslr-100e_in1k-milan_20221129-74ac94fa.pth"),
    "vit-base-p16_milan-pre_8xb2048-linear-coslr-100e_in1k": dict(
        task="linear", preset=VIT_B, num_classes=1000, classes="imagenet", top1=78.9,
        url=_BASE + "vit-base-p16_linear-8xb2048-coslr-100e_in1k/vit-base-p16_linear-8xb2048-coslr-100e_in1k_20221129-03f26f85.pth"),
    # offline models shipped inside the package. The pretraining model is what `milan-lab pretrain` and
    # notebooks/pretrain.ipynb train with the preset's defaults (seed 0; the file's metadata holds the whole config);
    # the classifier is fine-tuned from it with the fine-tuning preset's defaults.
    SHIPPED_PRETRAIN: dict(task="pretrain", preset=TINY, num_classes=0, classes=None, file="milan_tiny_offline.safetensors"),
    "vit-tiny-p8_milan-pre_offline-ft": dict(task="finetune", preset=TINY, num_classes=len(SHAPES), classes="offline",
                                             file="milan_tiny_offline_ft.safetensors"),
}


def list_models(pattern: str | None = None) -> list[str]:
    names = list(MODELS)
    return [n for n in names if re.search(pattern, n)] if pattern else names


_KINDS = {"pretrain": "MILAN pretraining model (encoder + prompting decoder, features only)",
          "finetune": "fine-tuned classifier", "linear": "linear-probe classifier"}
_CLASS_SETS = {"imagenet": "the 1000 ImageNet-1k classes", "offline": f"the {len(SHAPES)} offline shapes"}


def describe_model(name: str) -> dict:
    """What a zoo model is, without its weights: {'name', 'kind' (words), 'architecture' (preset),
    'params' (all parameters, teacher excluded; counted on the meta device), 'source' (words:
    shipped in the package, or downloaded from URL with its SHA-256 prefix), 'cached'}."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; list_models() gives: {', '.join(MODELS)}")
    entry = MODELS[name]
    with torch.device("meta"):  # shapes only: a ViT-B counts in a fraction of a second, with no memory
        model = create_model(ModelConfig(**PRESETS[entry["preset"]]["model"]), entry["task"], entry["num_classes"], "none",
                             device="meta")
    kind = _KINDS[entry["task"]]
    if entry["classes"]:
        kind += f" of {_CLASS_SETS[entry['classes']]}" + (f", top-1 {entry['top1']} %" if "top1" in entry else "")
    if "file" in entry:
        source, cached = f"shipped in the package (milan_lab/assets/{entry['file']})", True
    else:
        match = torch.hub.HASH_REGEX.search(entry["url"].rsplit("/", 1)[-1])
        source = f"downloaded from {entry['url']}" + (f" (SHA-256 {match.group(1)}...)" if match else "")
        cached = (cache_dir() / entry["url"].rsplit("/", 1)[-1]).is_file()
    return {"name": name, "kind": kind, "architecture": entry["preset"],
            "params": sum(p.numel() for p in model.parameters()), "source": source, "cached": cached}


def format_model(d: dict) -> str:
    """One line: name, what it is, its size, where its weights come from."""
    cached = "; in the cache" if d["cached"] and not d["source"].startswith("shipped") else ""
    return f"{d['name']}: {d['kind']}, {d['params'] / 1e6:.2f} M params ({d['architecture']}); {d['source']}{cached}"


def known_classes(model) -> str:
    """The classes a classifier from :func:`get_model` knows, in words: all of them when few, else their set."""
    names = getattr(model, "class_names", None)
    kind = MODELS.get(getattr(model, "zoo_name", ""), {}).get("classes")
    if names is None:
        return f"model has {model.num_classes} classes (no class names)"
    if kind in _CLASS_SETS and len(names) > 20:
        return f"model knows {_CLASS_SETS[kind]}"
    return f"model knows {len(names)} classes: {', '.join(names)}"


def class_names(kind: str | None) -> list[str] | None:
    if kind == "imagenet":
        return (ASSETS / "imagenet_classes.txt").read_text().splitlines()
    if kind == "offline":
        return list(SHAPES)
    return None


def download(url: str) -> Path:
    """Download ``url`` once into the cache; torch.hub verifies the SHA-256 prefix in its name."""
    name = url.rsplit("/", 1)[-1]
    dest = cache_dir() / name
    if dest.is_file():
        return dest
    reason = unreachable(url)  # at once, rather than after torch.hub's connection attempts
    if reason:
        raise DownloadError(f"{reason}: {name} is not in the cache ({dest.parent}); fetch it elsewhere ({url})",
                            option="pretrained")
    dest.parent.mkdir(parents=True, exist_ok=True)
    match = torch.hub.HASH_REGEX.search(name)
    try:  # writes to a temporary file and moves it into place only when the hash matches
        torch.hub.download_url_to_file(url, str(dest), hash_prefix=match.group(1) if match else None, progress=True)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise DownloadError(f"the download of {name} failed ({type(e).__name__}: {e}); fetch it elsewhere ({url})",
                            option="pretrained") from None
    except RuntimeError as e:  # torch.hub: "invalid hash value"
        raise CheckpointError(f"{name}: the download is corrupt ({e})") from None
    return dest


def get_model(name: str, pretrained: bool | str = False, device: str = "cpu", teacher=None):
    """Build a zoo model; ``pretrained`` False (random init), True (the zoo's weights) or a path.

    A pretraining model called on images returns the encoder's features (``model(x)`` ==
    ``model.extract_feat(x)``, [N, 1 + L, D]); its training pass is ``model.forward_train``."""
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; list_models() gives: {', '.join(MODELS)}")
    entry = MODELS[name]
    cfg = ModelConfig(**PRESETS[entry["preset"]]["model"])
    path = None
    if pretrained is True:
        path = ASSETS / entry["file"] if "file" in entry else download(entry["url"])
        if not path.is_file():
            raise CheckpointError(f"{name}: shipped weights {path} are missing from this install")
    elif pretrained:
        path = Path(pretrained)
        if not path.is_file():
            raise CheckpointError(f"pretrained={str(pretrained)!r}: no such file")
    if path is None:
        model = create_model(cfg, entry["task"], entry["num_classes"], teacher if teacher is not None else "none")
    else:
        model = load_model(path, cfg, entry["task"], teacher if teacher is not None else "none")
    names = class_names(entry["classes"])
    model.zoo_name = name
    model.class_names = names if names is not None and len(names) == getattr(model, "num_classes", -1) else None
    return model.to(device).eval()


def _to_tensor(model, image) -> torch.Tensor:
    img = load_image(image)  # images under MIN_SIDE px are refused, as in the app
    size = model.cfg.image_size
    return eval_transform(size, 0.875 if size >= 224 else 1.0)(img)[None]


@torch.no_grad()
def inference_model(model, image, topk: int = 5, device: str = "cpu") -> dict:
    """Classify one image (path, PIL image or array): pred_label, pred_score, pred_class, top-k."""
    if isinstance(model, str):
        model = get_model(model, pretrained=True, device=device)
    if not isinstance(model, MILANClassifier):
        raise ConfigError("inference_model needs a classifier (a fine-tuned or linear-probe model); "
                         "use model.extract_feat(x) for features of a pretraining model")
    x = _to_tensor(model, image).to(next(model.parameters()).device)
    scores = model(x).softmax(-1)[0].cpu()
    top = scores.topk(min(topk, len(scores)))
    names = getattr(model, "class_names", None) or [str(i) for i in range(len(scores))]
    labels = top.indices.tolist()
    return {"pred_label": labels[0], "pred_score": float(top.values[0]), "pred_class": names[labels[0]],
            "pred_scores": scores.numpy(), "topk_labels": labels, "topk_scores": top.values.tolist(),
            "topk_classes": [names[i] for i in labels]}


def label_mapping(folder_classes: list[str], model) -> tuple[list[int], str]:
    """Model label index for each class sub-folder, and how it was decided.

    By name when every folder is named after one of the model's classes (case, '_' and '-'
    ignored); otherwise by sorted folder order, which is only accepted when the counts match
    (ImageNet's wnid folders sort into the standard order) and is said so."""
    def norm(s: str) -> str:
        return re.sub(r"[\s_\-]+", " ", s.strip().lower())
    heads = model.num_classes
    names = getattr(model, "class_names", None)
    if names:
        index = {norm(n): i for i, n in enumerate(names)}
        hits = [index.get(norm(c)) for c in folder_classes]
        if all(h is not None for h in hits):
            return hits, "by class name"
        if any(h is not None for h in hits):
            unknown = [c for c, h in zip(folder_classes, hits) if h is None]
            raise DataError(f"{len(unknown)} class folders match none of the model's classes: {unknown[:5]}; "
                             f"name every folder after a class (e.g. {names[:3]}) or none")
    if len(folder_classes) != heads:
        raise DataError(f"the folder has {len(folder_classes)} class sub-folders but the model predicts {heads} "
                         f"classes, and the folder names are not the model's class names")
    if names:
        how = "by sorted folder order (folder names are not the model's class names)"
    else:
        how = "by sorted folder order (the model has no class names)"
    return list(range(heads)), how


@torch.no_grad()
def evaluate_folder(model, data: str, batch_size: int = 64) -> dict:
    """top-1 / top-5 of a classifier on an ImageNet-style folder. Labels map by class name when
    the folders are named after the model's classes (see :func:`label_mapping`); unreadable files
    are skipped and reported."""
    if not isinstance(model, MILANClassifier):
        raise ConfigError("test needs a classifier (a fine-tuned or linear-probe model)")
    size = model.cfg.image_size
    ds = ClassFolder(data, eval_transform(size, 0.875 if size >= 224 else 1.0), skip_bad=True, min_side=MIN_SIDE)
    targets, how = label_mapping(ds.classes, model)
    if how != "by class name":
        print(f"note: labels mapped {how}: folder {ds.classes[0]!r} is class 0", file=sys.stderr)
    ds.target_transform = targets.__getitem__  # folder index -> the model's label
    result = evaluate(model, ds, next(model.parameters()).device, None, batch_size)
    return {"images": len(ds) - len(ds.skipped), "skipped": len(ds.skipped),
            "skipped_files": {str(k): v for k, v in ds.skipped.items()}, "label_mapping": how,
            "top1": result["top1"], "top5": result["top5"]}
