"""Small helpers the notebooks call, so that notebooks hold parameters, calls and plots only."""
from __future__ import annotations

import json
from pathlib import Path

from milan_lab.config import PRESETS, SCENE_KINDS
from milan_lab.engine.common import write_json
from milan_lab.errors import ConfigError, DataError
from milan_lab.models.masking import SAMPLERS
from milan_lab.tools.ablation import ARMS, PROBES


def overrides(**params) -> dict:
    """Notebook parameters -> config overrides; ``None`` means "keep the preset's value"."""
    return {k: v for k, v in params.items() if v is not None}


def save_figure(fig, output_dir: str | Path, name: str) -> str:
    path = Path(output_dir) / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return str(path)


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


# --- parameters: every notebook checks its own in its first cell, before any work -------------------
def _int(low: int, optional: bool = False):
    def check(name, v):
        if v is None and optional:
            return
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ConfigError(f"parameter {name!r}: expected an integer >= {low}{' or None' if optional else ''}, got {v!r}")
    return check


def _float(low: float, high: float, optional: bool = False):
    def check(name, v):
        if v is None and optional:
            return
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v < high:
            raise ConfigError(f"parameter {name!r}: expected a number in [{low:g}, {high:g}){' or None' if optional else ''}, "
                              f"got {v!r}")
    return check


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


def _spec() -> dict:
    text, flag = _of_type(str), _of_type(bool)
    text_or_none, count, count_or_none = _of_type(str, optional=True), _int(1), _int(1, optional=True)
    preset = _choice(list(PRESETS))
    # job options (epochs, lr, ...) are checked again by get_config, with their ranges
    job = dict(preset=preset, data=text, epochs=count_or_none, batch_size=count_or_none, lr=_float(0, 1e3, True),
               seed=_int(0), device=text, output_dir=text, max_steps=count_or_none, offline_size=count_or_none)
    return {
        "pretrain": dict(job, teacher=text_or_none, teacher_pretrained=text_or_none, sampler=_choice(SAMPLERS),
                         mask_ratio=_float(0, 1), decoder=_choice(("prompting", "mae")), target=_choice(("clip", "pixels")),
                         resume=flag, teacher_cache=_of_type(bool, optional=True)),
        "finetune": dict(job, checkpoint=text, eval_size=count_or_none),
        "linear_probe": dict(job, checkpoint=text, eval_size=count_or_none, compare_random=flag, knn_train=count),
        "segmentation": dict(checkpoint=text_or_none, preset=preset, data=text, train_size=count, val_size=count,
                             steps=count, n_show=count, output_dir=text),
        "teacher": dict(train=flag, steps=count, teacher=text_or_none, output_dir=text, n_eval=count),
        "explore": dict(teacher=text_or_none, teacher_pretrained=text_or_none, checkpoint=text_or_none, output_dir=text),
        "tour": dict(output_dir=text, image_index=_int(0), mask_ratio=_float(0, 1), seed=_int(0)),
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
