"""Options from the command line, YAML and notebooks onto a config: key resolution and value coercion.

``apply_overrides`` takes ``key=value`` strings or a dict; keys are field names (``epochs``) or dotted
(``model.mask_ratio``); a field of the nested model config may also be named alone (``mask_ratio``) when
no job field has that name; a short key that names two fields is refused, listing both. Unknown keys (with
the closest known one) and values of the wrong type fail at once (:class:`~milan_lab.errors.ConfigError`),
naming the key; ranges and choices are the config's own ``validate`` (its fields' declarations).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing

from milan_lab.config.files import parse_yaml
from milan_lab.config.options import _shown, field_types
from milan_lab.config.schema import PRETRAIN_ONLY, JobConfig
from milan_lab.errors import ConfigError


def apply_overrides(cfg, overrides):
    """Return a copy of ``cfg`` with ``overrides`` (dict or ``["key=value", ...]``) applied."""
    cfg = copy.deepcopy(cfg)
    if not isinstance(overrides, dict):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not of the form key=value")
            key, value = item.split("=", 1)
            pairs[key.strip()] = parse_yaml(value, f"bad value for {key.strip()!r}", lines=False) if value.strip() else None
        overrides = pairs
    for key, value in overrides.items():
        key = str(key)  # a YAML key may be a number or a boolean
        target, name = _resolve(cfg, key)
        why = getattr(cfg, "UNUSED_MODEL_FIELDS", {}).get(name) if target is not cfg else None
        if why:
            raise ConfigError(f"{name} is a fine-tuning option; {cfg.JOB_NAME} {why}")
        setattr(target, name, _coerce(key, value, _field_type(target, name)))
    return cfg


def field_of(cls, key: str) -> tuple[type, str]:
    """(the config class that holds it, the field's name) for option ``key`` of config class ``cls``, resolved as
    ``apply_overrides`` resolves it (``mask_ratio`` -> (ModelConfig, "mask_ratio")); an unknown key is one line."""
    target, name = _resolve(cls(), key)
    return type(target), name


def _naming(where: str, fn, *args):
    """``fn(*args)``, its ConfigError prefixed with ``where`` (the file and section the options came from)."""
    try:
        return fn(*args)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def _resolve(cfg, key: str):
    parts = key.split(".")
    nested = dataclasses.is_dataclass(getattr(cfg, "model", None))
    top = {f.name for f in dataclasses.fields(cfg)} - ({"model"} if nested else set())
    sub = {f.name for f in dataclasses.fields(cfg.model)} if nested else set()
    name = parts[-1]
    renamed = getattr(cfg, "RENAMED", {}).get(key)
    if renamed:  # a key this config once had: name the one that took its place rather than guess a close one
        raise ConfigError(f"{key!r} is not an option of {cfg.JOB_NAME}: it is called {renamed!r} ({renamed}=VALUE)")
    if key == "preset" and isinstance(cfg, JobConfig):  # setting it would relabel the run, not load the preset
        raise ConfigError("'preset' is not an option: choose the preset with --preset (get_config's preset argument)")
    if key == "model" and nested:
        raise ConfigError("'model' is a section: set its options as model.KEY=VALUE (or a mapping under model:)")
    if len(parts) == 2 and parts[0] == "model" and name in sub:
        return cfg.model, name
    if len(parts) == 1 and name in top and name in sub:
        raise ConfigError(f"ambiguous config key {key!r}: it names both {key!r} and 'model.{key}'; say which")
    if len(parts) == 1 and name in top:
        return cfg, name
    if len(parts) == 1 and name in sub:
        return cfg.model, name
    if nested and name in PRETRAIN_ONLY and len(parts) <= 2 and parts[0] in ("model", name):
        raise ConfigError(f"{name} is a pretraining option; {getattr(cfg, 'JOB_NAME', 'this job')} {PRETRAIN_ONLY[name]}")
    unused = getattr(cfg, "UNUSED_MODEL_FIELDS", {})
    known = (top - {"preset"}) | {n for n in sub if n not in unused} | {f"model.{n}" for n in sub if n not in unused}
    raise ConfigError(f"unknown config key {key!r}{_did_you_mean(key, known)}; run with --help to list the options")


def _did_you_mean(name, known) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``name``, or "" if none is close."""
    close = difflib.get_close_matches(str(name), sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _kind(value) -> str:
    """How a value that should have been a mapping reads in an error: 'a list', 'the number 3'."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (bool, int, float)):
        return f"{'the value' if isinstance(value, bool) else 'the number'} {_shown(value)}"
    return f"the text {_shown(value)!r}" if isinstance(value, str) else f"a {type(value).__name__}"


def _model_type(cls) -> type:
    return field_types(cls)["model"]


def _field_type(obj, name):
    return field_types(type(obj))[name]


def _coerce(key, value, tp):
    args = typing.get_args(tp)
    optional = (typing.get_origin(tp) in (typing.Union, types.UnionType)) and type(None) in args
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        tp = next(a for a in args if a is not type(None))
    try:
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
                return value.lower() in ("true", "1", "yes")
            raise ValueError
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if value is None or isinstance(value, (list, dict)):  # None: ``key=`` or ``key:`` with nothing after it
                raise ValueError
            return str(value)
        if typing.get_origin(tp) is list:  # a list (logger=[a,b]), one name, or names separated by commas
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
                raise ValueError
            return [v.strip() for v in items if v.strip()]
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf), float(10**400)
        pass
    else:
        return value
    if value is None:
        raise ConfigError(f"bad value for {key!r}: nothing given, expected a {_type_name(tp)}")
    raise ConfigError(f"bad value for {key!r}: {_shown(repr(value))} is not a valid {_type_name(tp)}")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
