"""Small helpers the notebooks call, so that notebooks hold parameters, calls and plots only."""
from __future__ import annotations

import json
import os
import re
import typing
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from milan_lab.config import (
    PRESETS, SCENE_KINDS, FinetuneConfig, LinearProbeConfig, PretrainConfig, field_of, field_types, is_optional, option_of,
)
from milan_lab.data.images import load_image
from milan_lab.data.scenes import make_scene
from milan_lab.data.transforms import to_normalized_tensor
from milan_lab.engine.common import write_json
from milan_lab.evaluation.dense import predict
from milan_lab.errors import BadImage, CheckpointError, ConfigError, DataError
from milan_lab.factory.models import read_checkpoint, saved_config
from milan_lab.io.checkpoints import resolve_checkpoint
from milan_lab.io.weights import atomic_write
from milan_lab.models.losses import target_predicts
from milan_lab.tools.ablation import ARMS, PROBES
from milan_lab.viz import maps
from milan_lab.viz.panels import DISPLAY, EXAMPLE_SCENES, SHIPPED_MODEL, example_scene_labels, load_milan, square
from milan_lab.viz.paint import PRESETS as PAINT_PRESETS

SHIPPED = "shipped"  # the ``checkpoint`` parameter's name for the offline MILAN model shipped in the package
SCENE = re.compile(r"^scene_(\d+)$")  # the ``image`` parameter's name for an example scene (the app's are scene_0..3)


def overrides(**params) -> dict:
    """Notebook parameters -> config overrides; ``None`` means "keep the preset's value"."""
    return {k: v for k, v in params.items() if v is not None}


def save_figure(fig, output_dir: str | Path, name: str) -> str:
    path = Path(output_dir) / "figures" / f"{name}.png"
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    return str(path)


def work_in_project_folder(notebook: str) -> Path:
    """Make the project's folder the working folder, and return it. JupyterLab starts a notebook's
    kernel in the notebook's own folder (``notebooks/``), papermill and the README's commands in the
    project's; the notebooks' relative paths (``outputs/...``, a checkpoint ``outputs/pretrain``)
    mean the project's folder either way, so that a run opened in JupyterLab writes under
    ``outputs/`` and finds the runs made on the command line."""
    here = Path.cwd()
    if here.name == "notebooks" and (here / f"{notebook}.ipynb").is_file():
        os.chdir(here.parent)
    return Path.cwd()


# --- your own run and image: the ``checkpoint`` and ``image`` parameters -----------------------------
def checkpoint_file(checkpoint: str | None) -> Path:
    """The checkpoint file that a notebook's ``checkpoint`` parameter names: "shipped" (or None)
    for the offline model shipped in the package, a run folder (its newest checkpoint) or a file.
    A missing file, or a folder without checkpoints, is one :class:`CheckpointError` line."""
    if checkpoint in (None, SHIPPED):
        return SHIPPED_MODEL
    try:
        return resolve_checkpoint(checkpoint)
    except CheckpointError as e:
        raise CheckpointError(f"parameter 'checkpoint': {e} (a run folder, a .safetensors or .pt file, or {SHIPPED!r})") \
            from None


def checkpoint_preset(path: str | Path) -> str | None:
    """The preset a milan_lab checkpoint was trained from (None for files without a config)."""
    saved = saved_config(read_checkpoint(path)[1])
    return saved.get("preset") if saved else None


def notebook_image(image: str | Path | None, default: str = "scene_0"):
    """(picture uint8 [256, 256, 3], the scene's description or None) for a notebook's ``image``
    parameter: an example scene ``scene_N`` (the app's examples are scene_0..scene_3; None is
    ``default``) or an image file (centre-cropped to a square, as the explorer shows it). A file
    that is missing or not an image is one :class:`BadImage` line naming the parameter."""
    name = default if image is None else str(image)
    match = SCENE.match(name)
    examples = f"an image file, or an example scene scene_0 .. scene_{len(EXAMPLE_SCENES) - 1}"
    if match and not Path(name).exists():
        index = int(match.group(1))
        if index >= len(EXAMPLE_SCENES):  # only the example scenes have the ground truth the notebooks compare with
            raise BadImage(f"parameter 'image': {name}: no such example scene ({examples})")
        picture, spec = make_scene(*EXAMPLE_SCENES[index], DISPLAY)
        return picture, spec
    if not Path(name).is_file():
        raise BadImage(f"parameter 'image': {name}: no such file ({examples})")
    try:
        img = load_image(name)
    except BadImage as e:
        raise BadImage(f"parameter 'image': {e}") from None
    return np.asarray(square(img, DISPLAY)), None


def model_input(picture: np.ndarray, size: int):
    """A picture (uint8 [H, W, 3]) as a model sees it: square, ``size`` px, ImageNet-normalised [1, 3, size, size]."""
    return to_normalized_tensor(np.array(square(Image.fromarray(picture), size)))


def scene_prompts(spec) -> list[str]:
    """Text prompts for a picture: its object's shape and colour for a scene, else three shapes
    the shipped teacher's captions name."""
    if spec is None:
        return ["a circle", "a square", "a triangle"]
    return [f"a {spec.shape}", f"a {spec.colour} shape", "a circle" if spec.shape != "circle" else "a square"]


def signed(r: float | None) -> str:
    """A correlation for a panel's title: "+0.42", or "n/a" when the two maps have different grids."""
    return "n/a (grids differ)" if r is None else f"{r:+.2f}"


def load_tour_model(checkpoint: str | None):
    """The MILAN model a notebook explains (a pretraining checkpoint, with the teacher it was
    trained with). The tour's panels compare predicted with teacher features, so a model without
    a CLIP teacher target (pixel targets) is refused in one line."""
    model = load_milan(checkpoint_file(checkpoint))
    if model.teacher is None or target_predicts(model.cfg) != "features":
        raise ConfigError(f"parameter 'checkpoint': {checkpoint} predicts {model.cfg.target}, not a CLIP teacher's "
                          "features; the tour explains a model whose target predicts them (target=clip)")
    return model


def save_uploads(value, folder: str | Path) -> tuple[list[str], list[str]]:
    """Save the files of an ipywidgets ``FileUpload`` value (dicts with 'name' and 'content') that
    are images into ``folder`` (atomically): (saved paths, one line per file that is not an image)."""
    saved, problems = [], []
    for item in value:
        name, content = Path(item["name"]).name, bytes(item["content"])
        try:
            load_image(content)
        except BadImage as e:
            problems.append(f"{name}: {e}")
            continue
        path = Path(folder) / name
        atomic_write(path, lambda tmp: tmp.write_bytes(content))
        saved.append(str(path))
    return saved, problems


def read_metrics(output_dir: str | Path) -> dict:
    path = Path(output_dir) / "metrics.json"
    if not path.is_file():
        raise DataError(f"{path} not found: run the job that writes it first")
    return json.loads(path.read_text())


def save_notebook_metrics(output_dir: str | Path, name: str, **metrics) -> str:
    """The metrics a notebook run reports (tests assert on this file)."""
    path = Path(output_dir) / f"{name}_metrics.json"
    write_json(path, metrics)
    return str(path)



def upload_control(examples: dict, picker, folder: str | Path):
    """An ipywidgets ``FileUpload`` whose images are saved under ``folder``, added to ``examples``
    (name -> path) and to the ``picker`` dropdown's options, the last one selected; a file that is
    not an image is named in the returned label instead. Returns (upload widget, status label)."""
    import ipywidgets as widgets  # the explore notebook's widgets; the rest of this module needs none

    upload = widgets.FileUpload(accept="image/*", multiple=True, description="upload")
    status = widgets.Label()

    def added(change):
        saved, problems = save_uploads(change["new"], folder)
        examples.update({Path(path).name: path for path in saved})
        picker.options = list(examples)
        if saved:
            picker.value = Path(saved[-1]).name
        status.value = "; ".join(problems)

    upload.observe(added, names="value")
    return upload, status


def probe_preset(checkpoint: Path, preset: str | None) -> str:
    """The preset whose architecture the dense probe's random-init encoder takes: ``preset``, or
    (None) the one ``checkpoint`` was trained from, so that the two encoders compared are the same size."""
    preset = preset or checkpoint_preset(checkpoint)
    if preset is None:
        raise ConfigError(f"parameter 'preset': {checkpoint} names no preset of its own; pass the preset of its architecture")
    return preset


@torch.no_grad()
def segment_picture(encoders: dict, probes: dict, picture: np.ndarray, classes) -> tuple[list, list[str]]:
    """(images, titles) for one row of ``image_grid``: ``picture``, its true labels when it is an
    example scene, and each encoder's dense-probe prediction (``encoders`` and ``probes`` by name)."""
    size = next(iter(encoders.values())).patch_embed.img_size[0]
    shown, x = picture.astype(np.float32) / 255, model_input(picture, size)
    row, titles = [shown], ["input"]
    truth = example_scene_labels(picture, size)
    if truth is not None:
        row.append(maps.label_overlay(shown, truth, len(classes), alpha=0.8))
        titles.append("ground truth")
    for name, encoder in encoders.items():
        labels = predict(probes[name], encoder.forward_features(x)[:, 1:])[0]
        row.append(maps.label_overlay(shown, labels.numpy(), len(classes), alpha=0.8))
        titles.append(f"probe on {name}")
    return row, titles


def paint_preset_mask(model, image, preset: str, ratio: float = 0.75, seed: int = 0) -> tuple[np.ndarray, str]:
    """(mask [L], 1 = hidden; a note) of a "Paint a mask" preset (``viz.paint.PRESETS``) on ``image`` for
    ``model``, as the explorer's tab draws it: the main object from the example scene's own render, the
    semantic sampler from the teacher's attention on ``image``. On an image whose main object is unknown
    (not an example scene) an object preset is the semantic sampler's mask, and the note says so."""
    from milan_lab.viz import paint
    from milan_lab.viz.panels import Explorer
    size, patch = model.cfg.image_size, model.cfg.patch_size
    obj, note = paint.example_object(image, size), ""
    if preset.endswith("main object") and obj is None and model.teacher is not None:
        preset, note = "semantic sampler", "the main object is known for the example scenes only: the semantic sampler's mask"
    importance = None
    if preset == "semantic sampler" and model.teacher is not None:
        importance = model.forward_teacher(Explorer._views(image, size)[1])[1][0]
    mask = paint.preset_mask(preset, model.num_patches, None if obj is None else paint.object_patches(obj, patch),
                             importance, float(ratio), int(seed))
    return mask, note

# --- parameters: every notebook checks its own in its first cell, before any work -------------------
def _int(low: int, optional: bool = False):
    def check(name, v):
        if v is None and optional:
            return
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"parameter {name!r}: expected an integer >= {low}{' or None' if optional else ''}, got {v!r}")
    return check


def _job_option(job, key: str):
    """Notebook parameter ``key`` that is option ``key`` of config class ``job``: None keeps the preset's
    value; anything else has the type and the range or choices declared in the config's field (its
    ``option``, read when the parameter is checked), so the notebook refuses, before any work, what
    ``get_config`` would refuse after it."""
    def check(name, v):
        if v is None:
            return
        owner, field_name = field_of(job, key)
        tp = field_types(owner)[field_name]
        if is_optional(tp):
            tp = next(a for a in typing.get_args(tp) if a is not type(None))
        if not _has_type(v, tp):
            raise ConfigError(f"parameter {name!r}: expected {_TYPE_WORDS.get(tp, getattr(tp, '__name__', tp))} or None "
                              f"(the preset's value), got {v!r}")
        spec = option_of(owner, field_name)
        problem = spec.problem(v, optional=True) if spec is not None else None
        if problem:
            raise ConfigError(f"parameter {name!r}: {problem.replace('(or none)', 'or None')}")
    return check


_TYPE_WORDS = {int: "an integer", float: "a number", bool: "True or False", str: "text"}


def _has_type(v, tp) -> bool:
    """Whether a notebook value is of a config field's type (an int is a number; a bool is no int)."""
    if tp is bool:
        return isinstance(v, bool)
    if tp in (int, float):
        return isinstance(v, int if tp is int else (int, float)) and not isinstance(v, bool)
    return isinstance(v, tp) if isinstance(tp, type) else True


def _of_type(*types, optional: bool = False):
    def check(name, v):
        if (v is None and optional) or (isinstance(v, types) and not (bool not in types and isinstance(v, bool))):
            return
        raise ConfigError(f"parameter {name!r}: expected {' or '.join(t.__name__ for t in types)}"
                          f"{' or None' if optional else ''}, got {v!r}")
    return check


def _choice(options, optional: bool = False):
    def check(name, v):
        if (v is None and optional) or v in options:
            return
        raise ConfigError(f"parameter {name!r}: {v!r} is not one of {', '.join(map(str, options))}")
    return check


def _list_of(item_check, known=None):
    """A non-empty list without repeats, each item passing ``item_check`` (or among ``known``)."""
    def check(name, v):
        if isinstance(v, str):  # papermill's -p passes text; -y parses YAML
            raise ConfigError(f"parameter {name!r}: expected a list, got the text {v!r} (papermill -p passes text; "
                              f"use -y \"{name}: {v}\")")
        if not isinstance(v, (list, tuple)) or not v:
            raise ConfigError(f"parameter {name!r}: expected a non-empty list, got {v!r}")
        for item in v:
            if known is not None and item not in known:
                raise ConfigError(f"parameter {name!r}: unknown {item!r}; known: {', '.join(map(str, known))}")
            item_check(name, item)
        if len(set(v)) != len(v):
            raise ConfigError(f"parameter {name!r}: {v!r} repeats an item")
    return check


def _checkpoint(name, v):
    """None, "shipped", a run folder with checkpoints or a checkpoint file (see :func:`checkpoint_file`)."""
    _of_type(str, optional=True)(name, v)
    checkpoint_file(v)


def _image(name, v):
    """An example scene ``scene_N`` or an image file (see :func:`notebook_image`)."""
    _of_type(str)(name, v)
    notebook_image(v)


def _spec() -> dict:
    text, flag = _of_type(str), _of_type(bool)
    text_or_none, count, count_or_none = _of_type(str, optional=True), _int(1), _int(1, optional=True)
    preset = _choice(list(PRESETS))

    def job(cls, *keys):  # job options: the config's types and ranges; None keeps the preset's value
        return {key: _job_option(cls, key) for key in ("data", "epochs", "batch_size", "lr", "seed", "device", "max_steps",
                                                        "offline_size", *keys)}
    return {
        "pretrain": dict(job(PretrainConfig, "teacher", "teacher_pretrained", "sampler", "mask_ratio", "decoder", "target",
                             "resume", "teacher_cache"), preset=preset, output_dir=text, config=text_or_none),
        "finetune": dict(job(FinetuneConfig, "eval_size"), preset=preset, output_dir=text, checkpoint=text),
        "linear_probe": dict(job(LinearProbeConfig, "eval_size"), preset=preset, output_dir=text, checkpoint=text,
                             compare_random=flag, knn_train=count, knn_val=count),
        "segmentation": dict(checkpoint=_checkpoint, image=_image, preset=_choice(list(PRESETS), True), data=text,
                             train_size=count, val_size=count, steps=count, n_show=count, output_dir=text),
        "teacher": dict(train=flag, steps=count, teacher=text_or_none, output_dir=text, n_eval=count),
        "explore": dict(teacher=text_or_none, teacher_pretrained=text_or_none, checkpoint=_checkpoint, image=_image,
                        output_dir=text, paint_preset=_choice(PAINT_PRESETS), bank_scenes=count, timeline_knn_train=count,
                        timeline_knn_val=count, timeline_scenes=count),
        "tour": dict(checkpoint=_checkpoint, image=_image, output_dir=text, mask_ratio=_job_option(PretrainConfig, "mask_ratio"),
                     seed=_int(0), attention_scenes=count),
        "ablation": dict(preset=preset, variant=_choice(SCENE_KINDS), seeds=_list_of(_int(0)),
                         arms=_list_of(text, known=list(ARMS)), primary=_choice(PROBES),
                         epochs=count, offline_size=count, batch_size=count, max_steps=count_or_none, eval_train=count,
                         eval_val=count, seg_train=count, seg_val=count, seg_steps=count, output_dir=text),
    }


def check_parameters(notebook: str, **values) -> None:
    """Refuse a bad notebook parameter in one line naming it (papermill shows that line), before
    any work: wrong type, out of range, an empty list, an unknown name (listing the known ones)."""
    spec = _spec()[notebook]
    unchecked = set(values) ^ set(spec)
    if unchecked:  # the notebook and this table disagree: a bug, not a user error
        raise TypeError(f"check_parameters({notebook!r}): parameters {sorted(unchecked)} missing from the call or the table")
    for name, value in values.items():
        spec[name](name, value)
