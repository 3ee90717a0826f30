"""``load_teacher``: the shipped small CLIP, any open_clip name/tag, or a local checkpoint file.

Sources, in the order they are tried:

* ``load_teacher()``: the teacher shipped inside the package (an open_clip ``local-dir:`` folder
  in ``milan_lab/assets/teacher``); no network, no training. Two teachers are shipped, named by
  what their captions named (``SHIPPED_TEACHERS``): ``"offline-shape"`` (also ``"shipped"`` and
  ``"default"``), whose captions name the main object's shape (the probes' label), and
  ``"offline-noshape"`` (``milan_lab/assets/teacher_noshape``), trained the same way on captions
  that never name it (``milan-lab teacher train captions=no-shape``).
* a folder holding ``open_clip_config.json`` (what ``milan-lab teacher train`` exports).
* ``load_teacher("ViT-B-16", pretrained="openai")``: any open_clip model name and pretrained tag
  (downloads when online). OpenAI weights were trained with QuickGELU: when the tag's own config
  says so we build with ``force_quick_gelu=True``.
* ``load_teacher("ViT-B-16", pretrained="/path/model.pt")``: a local open_clip checkpoint.
* ``load_teacher(pretrained="/path/clip.pt")`` (or ``load_teacher("/path/clip.pt")``) with an OpenAI-layout
  CLIP, recognised by its weight names (``visual.conv1.weight``, ``visual.proj``, ``text_projection``, ...): OpenAI's release,
  mmpretrain's target generator ``clip_vit_base_16.pth.tar``, a state dict of mmpretrain's CLIP
  module, or an mmpretrain MILAN pretraining checkpoint (its teacher is stored under
  ``target_generator.tokenizer.``, so that checkpoint alone resumes MILAN with the exact teacher it
  was trained with). Architecture read off the weights, QuickGELU selected (all are OpenAI-trained).
"""
from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import open_clip
import torch

from milan_lab.config import SHIPPED_TEACHERS, TEACHER_ALIASES, check_shipped_teacher
from milan_lab.data.tokenizer import WordTokenizer
from milan_lab.errors import CheckpointError, ConfigError, DownloadError
from milan_lab.io.locations import ASSETS
from milan_lab.io.network import unreachable
from milan_lab.io.weights import is_torchscript, load_into, read_weights
from milan_lab.models.teacher import IMAGENET_MEAN, IMAGENET_STD, Teacher

SHIPPED_TEACHER = ASSETS / "teacher"
# the folder of each shipped teacher (config.SHIPPED_TEACHERS says what each one's captions named)
SHIPPED_TEACHER_FOLDERS = {"offline-shape": SHIPPED_TEACHER, "offline-noshape": ASSETS / "teacher_noshape"}
_registered = False

OPENAI_MEAN = open_clip.OPENAI_DATASET_MEAN
OPENAI_STD = open_clip.OPENAI_DATASET_STD
_OPENAI_MARKERS = ("input_resolution", "context_length", "vocab_size")
# weight names that identify OpenAI's CLIP layout (shared by mmpretrain's CLIP module)
_OPENAI_IMAGE_KEYS = ("visual.conv1.weight", "visual.class_embedding", "visual.positional_embedding", "visual.proj")
_OPENAI_TEXT_KEYS = ("text_projection", "token_embedding.weight", "positional_embedding", "ln_final.weight")
_MMPRETRAIN_TEACHER = "target_generator.tokenizer."  # where a MILAN checkpoint keeps its CLIP


def register_configs() -> None:
    """Make milan-lab's open_clip model configs (``milan-clip-tiny``) known to open_clip, once."""
    global _registered
    if not _registered:
        open_clip.add_model_config(ASSETS / "model_configs")
        _registered = True


def load_teacher(name: str | None = None, pretrained: str | None = None, device: str | torch.device = "cpu",
                 input_norm: str = "same") -> Teacher:
    """Return a frozen :class:`Teacher`. See the module docstring for what ``name`` and
    ``pretrained`` accept; ``input_norm`` is ``"same"`` (the student's ImageNet-normalised
    tensor, as the references do) or ``"clip"`` (re-normalise to the teacher's mean/std)."""
    register_configs()
    if name and pretrained is None and os.path.isfile(name):  # load_teacher("clip.pt"): the file alone
        name, pretrained = None, name
    if name in (None, ""):
        name = None if pretrained else "shipped"
    check_shipped_teacher(name, pretrained)
    if name in SHIPPED_TEACHERS or name in TEACHER_ALIASES:
        return _from_local_dir(shipped_teacher_folder(name), device, input_norm, "shipped" if name in TEACHER_ALIASES else name)
    if name and Path(name).is_dir():
        return _from_local_dir(Path(name), device, input_norm, str(name))
    if name and name.startswith("local-dir:"):
        return _from_local_dir(Path(name[len("local-dir:"):]), device, input_norm, name)
    if pretrained and not os.path.isfile(pretrained) and (os.sep in pretrained or pretrained.endswith(
            (".pt", ".pth", ".bin", ".tar", ".safetensors"))):
        raise CheckpointError(
            f"teacher checkpoint not found: {pretrained!r}. Pass an existing file, an open_clip pretrained tag "
            f"(e.g. pretrained='openai'), or no arguments for the shipped offline teacher.")
    state = None
    if pretrained and os.path.isfile(pretrained):
        state, layout = _read_state_dict(pretrained, name)
        if layout == "openai":
            return _from_openai_file(state, pretrained, device, input_norm)
        if not name:
            raise CheckpointError(
                f"{pretrained}: not an OpenAI-layout CLIP (no {', '.join(_OPENAI_IMAGE_KEYS[:2])} ...): pass its "
                f"open_clip model name too, e.g. load_teacher('ViT-B-16', pretrained=...)")
    if not name:
        raise ConfigError("load_teacher: give an open_clip model name (e.g. 'ViT-B-16') with pretrained=TAG or FILE, "
                         "a folder from 'milan-lab teacher train', or nothing for the shipped teacher")
    cleaned = name.replace("/", "-")
    if open_clip.get_model_config(cleaned) is None and not name.startswith("hf-hub:"):
        raise ConfigError(f"unknown open_clip model {name!r}. Known names include: "
                         f"{', '.join(m for m in open_clip.list_models() if m.startswith('ViT'))[:400]} ... "
                         f"(open_clip.list_models() lists all)")
    quick_gelu = False
    mean, std = OPENAI_MEAN, OPENAI_STD
    if pretrained and not os.path.isfile(pretrained):
        tag_cfg = open_clip.get_pretrained_cfg(cleaned, pretrained)
        if not tag_cfg:
            raise ConfigError(f"unknown pretrained tag {pretrained!r} for {name!r}; known tags: "
                             f"{open_clip.list_pretrained_tags_by_model(cleaned)} (or pass a local file path)")
        quick_gelu = bool(tag_cfg.get("quick_gelu", False))
        mean, std = tag_cfg.get("mean", mean), tag_cfg.get("std", std)
    if state is None:
        if pretrained:  # a tag: refused at once when it would need a download that cannot happen
            _check_downloadable(name, pretrained, tag_cfg)
        elif name.startswith("hf-hub:"):
            _check_downloadable(name, None, {"hf_hub": name[len("hf-hub:"):] + "/"})
        try:
            clip = open_clip.create_model(name, pretrained=pretrained, force_quick_gelu=quick_gelu, device=device)
        except (RuntimeError, OSError) as e:  # open_clip: "Failed to download file ..." after the hub's retries
            what = f"the weights of {name}" + (f" (pretrained tag {pretrained!r})" if pretrained else "")
            raise DownloadError(f"{what} cannot be downloaded here "
                                f"({textwrap.shorten(str(e).splitlines()[0], 200, placeholder=' ...')}); fetch them "
                                f"elsewhere", option="pretrained") from None
    else:  # a local file in open_clip's layout: read safely above, loaded here with a readable error
        clip = open_clip.create_model(name, pretrained=None)
        load_into(clip, state, f"{pretrained} (as {name})", ignore_prefix=())
    return Teacher(clip, open_clip.get_tokenizer(name), input_norm, mean, std, name=f"{name}:{pretrained}").to(device)


def shipped_teacher_folder(name: str) -> Path:
    """The package folder of a shipped teacher's name (``SHIPPED_TEACHERS`` or an alias)."""
    folder = SHIPPED_TEACHER_FOLDERS[TEACHER_ALIASES.get(name, name)]
    if not (folder / "open_clip_config.json").is_file():
        if TEACHER_ALIASES.get(name, name) == "offline-noshape":  # trained by a command, shipped once trained
            raise CheckpointError(f"the teacher {name!r} is not in this install (no {folder}); train it with `milan-lab "
                                  f"teacher train captions=no-shape` and pass its folder: teacher=outputs/teacher/export")
        raise CheckpointError(f"the shipped teacher {name!r} is missing from this install (no {folder}); reinstall milan-lab")
    return folder


def _weights_url(tag_cfg: dict) -> str:
    """Where open_clip downloads a tag's weights from (the Hugging Face hub first, as it does)."""
    hub = tag_cfg.get("hf_hub", "")
    if hub and open_clip.pretrained.has_hf_hub():
        model_id, filename = os.path.split(hub)
        return f"https://huggingface.co/{model_id}/resolve/main/{filename or open_clip.pretrained.HF_WEIGHTS_NAME}"
    return tag_cfg.get("url", "")


def _weights_cached(tag_cfg: dict) -> bool:
    """Whether a tag's weights are already on disk where open_clip looks for them (the hub's cache
    or ~/.cache/clip), so that loading needs no network."""
    if tag_cfg.get("file"):
        return True
    hub = tag_cfg.get("hf_hub", "")
    if hub and open_clip.pretrained.has_hf_hub():
        from huggingface_hub import try_to_load_from_cache
        model_id, filename = os.path.split(hub)
        filename = filename or open_clip.pretrained.HF_WEIGHTS_NAME
        # open_clip tries a .safetensors twin of the file first (open_clip.pretrained.download_pretrained_from_hf)
        twin = (open_clip.pretrained.HF_SAFE_WEIGHTS_NAME if filename == open_clip.pretrained.HF_WEIGHTS_NAME
                else filename[:-4] + ".safetensors" if filename.endswith((".bin", ".pth")) else None)
        names = [n for n in (twin, filename) if n]
        return any(isinstance(try_to_load_from_cache(model_id, n), str) for n in names)
    url = tag_cfg.get("url", "")
    return bool(url) and (Path.home() / ".cache" / "clip" / os.path.basename(url)).is_file()


def _check_downloadable(name: str, tag: str | None, tag_cfg: dict) -> None:
    """Raise DownloadError before the model is built when the tag's weights are not cached and
    cannot be fetched (offline mode, or the host does not answer within a few seconds): otherwise
    the hub's retries take about 30 s before the same failure."""
    if _weights_cached(tag_cfg):
        return
    url = _weights_url(tag_cfg)
    reason = unreachable(url)
    if reason:
        what = f"the weights of {name}" + (f" (pretrained tag {tag!r})" if tag else "")
        raise DownloadError(f"{reason}: {what} are not in the local cache; "
                            f"fetch them elsewhere ({url})", option="pretrained")


def teacher_architecture(name: str, device="cpu") -> Teacher | None:
    """A teacher for measuring, not for training: the shipped one or a folder as they are, an
    open_clip name with random weights (no download); None for a name open_clip does not know."""
    register_configs()
    if name in SHIPPED_TEACHERS or name in TEACHER_ALIASES or Path(name).is_dir():
        return load_teacher(name, device=device)
    if open_clip.get_model_config(name) is None:
        return None
    return Teacher(open_clip.create_model(name, pretrained=None), name=f"{name} (random weights)").to(device)


def _from_local_dir(folder: Path, device, input_norm: str, label: str) -> Teacher:
    config_path = folder / "open_clip_config.json"
    if not config_path.is_file():
        raise CheckpointError(
            f"no open_clip_config.json in {folder}. Train a teacher with 'milan-lab teacher train' "
            f"(it exports such a folder) or pass an open_clip name and pretrained tag/file.")
    config = json.loads(config_path.read_text())
    clip = open_clip.create_model(f"local-dir:{folder}", device=device)
    extra = config.get("milan_lab")
    tokenizer = (WordTokenizer(extra["vocab"], extra["context_length"]) if extra
                 else open_clip.get_tokenizer(f"local-dir:{folder}"))
    pre = config.get("preprocess_cfg", {})
    return Teacher(clip, tokenizer, input_norm, pre.get("mean", IMAGENET_MEAN), pre.get("std", IMAGENET_STD),
                   name=label).to(device)


def _read_state_dict(path: str, name: str | None = None) -> tuple[dict, str]:
    """(state dict, origin): "openai" for an OpenAI-trained CLIP in OpenAI's layout (OpenAI's
    TorchScript or state-dict release with its marker entries, the teacher inside an mmpretrain
    MILAN checkpoint, or -- when no open_clip name is given -- any file with OpenAI's weight names,
    such as a state dict of mmpretrain's CLIP module), else "open_clip" (built from ``name``)."""
    scripted = is_torchscript(Path(path))  # OpenAI's original release
    state = read_weights(path, allow_torchscript=True)
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    milan = any(k.startswith(_MMPRETRAIN_TEACHER) for k in state)
    if milan:
        state = {k[len(_MMPRETRAIN_TEACHER):]: v for k, v in state.items() if k.startswith(_MMPRETRAIN_TEACHER)}
    layout = all(k in state for k in _OPENAI_IMAGE_KEYS)
    openai = layout and (milan or scripted or any(k in state for k in _OPENAI_MARKERS) or not name)
    if openai:
        missing = [k for k in _OPENAI_TEXT_KEYS if k not in state]
        if missing:
            raise CheckpointError(f"{path}: holds a CLIP image tower without its text tower (no {', '.join(missing)}); "
                                  f"the teacher needs both (the text tower draws the prompt maps)")
    return state, "openai" if openai else "open_clip"


def _from_openai_file(state: dict, path: str, device, input_norm: str) -> Teacher:
    """OpenAI key layout: architecture inferred from the weights; QuickGELU as OpenAI trained."""
    from open_clip.model import build_model_from_openai_state_dict
    state = {k: v for k, v in state.items() if k not in _OPENAI_MARKERS}
    try:
        clip = build_model_from_openai_state_dict(dict(state), quick_gelu=True, cast_dtype=None).float()
        # open_clip casts to fp16 before loading (OpenAI's release is fp16); reload so fp32 files keep full precision
        clip.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"{path}: an OpenAI-layout CLIP whose weights do not fit together "
                              f"({str(e).strip().splitlines()[0][:200]})") from None
    return Teacher(clip, open_clip.get_tokenizer("ViT-B-16"), input_norm, OPENAI_MEAN, OPENAI_STD,
                   name=f"openai-file:{path}").to(device)
