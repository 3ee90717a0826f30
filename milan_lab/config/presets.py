"""Presets by name, and the config of a job built from a preset, a YAML file and overrides.

Presets are YAML files in ``milan_lab/presets/``, read by the same path as ``--config`` (:func:`get_config`);
every section and key of a config file is checked, whichever job runs. :func:`describe` lists a job's
options for ``--help``: each with its type or choices, its default at a preset, its range and its help,
all read from the fields' declarations (``schema.option``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from milan_lab.config.files import load_yaml, parse_yaml
from milan_lab.config.overrides import _did_you_mean, _flatten, _kind, _model_type, _naming, _type_name, apply_overrides
from milan_lab.config.options import field_types, is_optional, option_of
from milan_lab.config.schema import FinetuneConfig, LinearProbeConfig, PretrainConfig
from milan_lab.errors import ConfigError


# Presets: YAML files in milan_lab/presets/, one per name, read by the same path as --config:
# a ``model`` section (the pretraining model) and one section per job (pretrain, finetune, linear).
PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"
PRESETS: dict[str, dict] = {p.stem: load for p in sorted(PRESET_DIR.glob("*.yaml"))
                            if (load := parse_yaml(p.read_text(), str(p)))}
JOBS = {"pretrain": PretrainConfig, "finetune": FinetuneConfig, "linear": LinearProbeConfig}
SECTIONS = ("model", *JOBS)  # what a preset-style file holds at its top level


def get_config(job: str, preset: str | None = None, overrides=None, yaml_file: str | None = None):
    """Build the config for ``job`` ("pretrain" | "finetune" | "linear") from a preset, an
    optional YAML file and overrides (in that order), validated.

    The YAML file is either a preset-style file (a ``model`` section and one section per job; a
    copied preset is one) or flat options as on the command line (``epochs: 3``, ``model:
    {mask_ratio: 0.6}``). Every key of it is checked, in every section, whichever job runs: an
    unknown section or key is refused naming the file, the section and the closest known name."""
    if job not in JOBS:
        raise ConfigError(f"unknown job {job!r}; expected one of {list(JOBS)}")
    cls = JOBS[job]
    preset = preset or cls.preset
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    model_cls = _model_type(cls)
    cfg = cls(preset=preset, model=model_cls(**cls.MODEL_DEFAULTS))
    specs = [(str(PRESET_DIR / f"{preset}.yaml"), PRESETS[preset])]
    if yaml_file:
        specs.append((str(yaml_file), load_yaml(yaml_file)))
    for where, spec in specs:
        cfg = _naming(where, apply_overrides, cfg, _job_options(spec, job, where))
    cfg = apply_overrides(cfg, overrides or {})
    cfg.validate()
    return cfg


def _job_options(spec: dict, job: str, where: str) -> dict:
    """The options a YAML mapping (read from ``where``) sets for ``job``, after checking all of it.

    A preset-style mapping (a ``model`` section and job sections) gives the ``model`` fields this job's
    model uses (fine-tuning takes the encoder of a pretraining model description: the pretraining-only
    fields are checked as the pretraining model's, then left out) and its ``job`` section; the other
    job sections are checked against their own jobs, so that a typo in any of them is named. A flat
    mapping (options as on the command line) is taken whole, and checked by ``apply_overrides``."""
    sectioned = any(k in spec for k in JOBS)
    for name, value in spec.items():
        if name in SECTIONS:
            if value is not None and not isinstance(value, dict):
                raise ConfigError(f"{where}: section {name!r} must be a mapping of options, got {_kind(value)}")
        elif isinstance(value, dict) or (sectioned and value is None):
            raise ConfigError(f"{where}: unknown section {name!r}{_did_you_mean(name, SECTIONS)}; "
                              f"the sections are {', '.join(SECTIONS)}")
        elif sectioned:
            raise ConfigError(f"{where}: {name!r} is outside any section; in a file with job sections every option "
                              f"goes in one ({', '.join(SECTIONS)})")
    if not sectioned:
        return _flatten(spec)
    model = {f"model.{k}": v for k, v in _flatten(spec.get("model") or {}).items()}
    _naming(f"{where}: section 'model'", apply_overrides, PretrainConfig(), model)  # the pretraining model's fields
    for name, cls in JOBS.items():
        _naming(f"{where}: section {name!r}", apply_overrides, cls(), _flatten(spec.get(name) or {}))
    job_cls = JOBS[job]
    used = {f.name for f in dataclasses.fields(_model_type(job_cls))} - set(job_cls.UNUSED_MODEL_FIELDS)
    return {**{k: v for k, v in model.items() if k.split(".", 1)[1] in used}, **_flatten(spec.get(job) or {})}


def describe(cls, preset: str | None = None, details: bool = False) -> list[tuple]:
    """(key, type, default) for every option of a job config, model fields dotted; with ``details``,
    (key, type, default, range, help), the range as errors say it ("positive", "in [0, 1)", "" if none).
    For a job's config (one of :data:`JOBS`) the defaults are those a run gets: the values of ``preset``
    (the job's default preset if None); for any other config, its dataclass defaults."""
    job = next((name for name, job_cls in JOBS.items() if job_cls is cls), None)
    values = get_config(job, preset) if job else cls()
    unused = getattr(cls, "UNUSED_MODEL_FIELDS", {})
    rows = []
    for f in dataclasses.fields(cls):
        if f.name == "model" and dataclasses.is_dataclass(values.model):
            rows += [_row(type(values.model), m.name, f"model.{m.name}", getattr(values.model, m.name), details)
                     for m in dataclasses.fields(values.model) if m.name not in unused]
        else:
            rows.append(_row(cls, f.name, f.name, getattr(values, f.name), details))
    return rows


def _row(cls, name: str, key: str, value, details: bool) -> tuple:
    """One row of :func:`describe`: a field with choices shows them now (``{semantic,random,...}``, registered
    ones included) in place of its type."""
    spec, tp = option_of(cls, name), field_types(cls)[name]
    kind = "{" + ",".join(spec.names()) + "}" if spec is not None and spec.choices is not None else _type_name(tp)
    if not details:
        return key, kind, value
    bounds = spec.range_text() if spec is not None else ""
    if bounds and is_optional(tp):
        bounds += " or none"
    return key, kind, value, bounds, spec.help if spec is not None else ""
