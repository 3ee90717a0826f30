"""Configuration: one dataclass per job, presets by name, overrides from CLI / YAML / notebooks.

One object flows from a notebook's parameters cell or the CLI to the engine:
``PretrainConfig(model=ModelConfig(...), ...)``. Each field is declared once, with its type, default,
range or choices and help (:mod:`.schema`); ``apply_overrides`` puts ``key=value`` strings or a dict
onto a config (:mod:`.overrides`); ``get_config`` builds a job's config from a preset, a YAML file and
overrides, and ``describe`` lists its options for ``--help`` (:mod:`.presets`); YAML is read by one
loader that refuses aliases and deep nesting (:mod:`.files`). Unknown keys (with the closest known
one), bad values, values out of range and options that contradict each other fail at once
(:class:`~milan_lab.errors.ConfigError`), naming the key.
"""
from milan_lab.config.devices import check_device
from milan_lab.config.files import MAX_YAML_CHARS, MAX_YAML_DEPTH, load_yaml, parse_yaml
from milan_lab.config.overrides import apply_overrides, field_of
from milan_lab.config.presets import JOBS, PRESET_DIR, PRESETS, SECTIONS, describe, get_config
from milan_lab.config.options import Option, Options, check_fields, field_types, is_optional, option, option_of
from milan_lab.config.schema import (
    CAPTIONS, LOGGERS, PRETRAIN_ONLY, SCENE_KINDS, SHIPPED_TEACHERS, TEACHER_ALIASES, VIEW_CONFLICTS,
    ClassifierJobConfig, EncoderConfig, FinetuneConfig, JobConfig, LinearProbeConfig, ModelConfig,
    PretrainConfig, TeacherTrainConfig, TrainerConfig, check_shipped_teacher, check_views, model_config_from,
)

__all__ = [
    "CAPTIONS", "JOBS", "LOGGERS", "MAX_YAML_CHARS", "MAX_YAML_DEPTH", "PRESETS", "PRESET_DIR", "PRETRAIN_ONLY",
    "SCENE_KINDS", "SECTIONS", "SHIPPED_TEACHERS", "TEACHER_ALIASES", "VIEW_CONFLICTS",
    "ClassifierJobConfig", "EncoderConfig", "FinetuneConfig", "JobConfig", "LinearProbeConfig", "ModelConfig", "Option",
    "Options", "PretrainConfig", "TeacherTrainConfig", "TrainerConfig", "apply_overrides", "check_device",
    "check_fields", "check_shipped_teacher", "check_views", "describe", "field_of", "field_types", "get_config",
    "is_optional", "load_yaml", "model_config_from", "option", "option_of", "parse_yaml",
]
