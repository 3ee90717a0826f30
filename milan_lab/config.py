"""Configuration: one dataclass per job, presets by name, overrides from CLI / YAML / notebooks.

One object flows from a notebook's parameters cell or the CLI to the engine:
``PretrainConfig(model=ModelConfig(...), ...)``. ``apply_overrides`` takes ``key=value`` strings
or a dict; keys are field names (``epochs``) or dotted (``model.mask_ratio``); a field of the
nested model config may also be named alone (``mask_ratio``) when no job field has that name; a
short key that names two fields is refused, listing both. Unknown keys (with the closest known
one), bad values, values out of range and options that contradict each other fail at once
(:class:`~milan_lab.errors.ConfigError`), naming the key.

YAML (config files, presets, ``key=value`` values) is read by one loader that refuses aliases and
deep nesting before anything is built from it (:func:`parse_yaml`); every section and key of a
config file is checked, whichever job runs (:func:`get_config`).
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import yaml

from milan_lab.errors import ConfigError
from milan_lab.registry import DECODERS, SAMPLERS, TARGETS  # filled by milan_lab.models (see milan_lab.registry)

# The small CLIP teachers shipped in the package (milan_lab.factory.teachers finds their folders), named by
# what their training captions named; "shipped" and "default" are the shape-aware one, as they always were.
SHIPPED_TEACHERS = {"offline-shape": "captions name colour, size, shape and place",
                    "offline-noshape": "captions name colour, size and place, never the shape"}
TEACHER_ALIASES = {"shipped": "offline-shape", "default": "offline-shape"}
LOGGERS = ("tensorboard", "wandb", "mlflow")  # milan_lab.engine.loggers implements each
# Offline scene kinds, in display order (milan_lab.data.scenes draws each; its docstring says what each holds):
# one list for the config, the studies and the notebooks' checks.
SCENE_KINDS = ("dense", "sparse", "mid")


@dataclass
class EncoderConfig:
    """The ViT encoder's architecture: what every job builds (pretraining, fine-tuning, probing)."""
    image_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768            # encoder width
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    drop_path: float = 0.0

    def validate(self) -> None:
        _finite(self)
        _fraction(self, "drop_path", closed_right=False)
        _positive(self, "image_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio")
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim ({self.embed_dim}) must be divisible by its number of heads ({self.num_heads})")


@dataclass
class ModelConfig(EncoderConfig):
    """The MILAN pretraining model: the encoder, plus the decoder, the target, the masking and the
    teacher, which only pretraining reads."""
    decoder: str = "prompting"      # one of DECODERS: "prompting" (MILAN) | "mae" | ...
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    target: str = "clip"            # one of TARGETS: "clip" (teacher features) | "pixels" (MAE) | ...
    target_dim: int = 512           # width of the teacher's features (checked against the teacher)
    norm_pix_loss: bool = False     # pixel target only
    loss_on: str = "all"            # "all" tokens (references) | "masked" patches only | "masked+cls" (and the class token)
    sampler: str = "semantic"       # one of SAMPLERS: "semantic" | "random" | "topk" | "inverse" | ...
    mask_ratio: float = 0.75
    masks_per_image: int = 1        # masked views per teacher pass (1: the references; >1 amortises the teacher)
    teacher: str = "ViT-B-16"       # open_clip name, a teacher folder, or a shipped teacher (SHIPPED_TEACHERS)
    teacher_pretrained: str | None = "openai"  # open_clip tag or a local checkpoint file
    teacher_input_norm: str = "same"  # "same": the student's ImageNet-normalised input; "clip"

    def validate(self) -> None:
        super().validate()
        for key, registry in REGISTERED_CHOICES.items():
            registry.lookup(getattr(self, key), key)
        _choice("loss_on", self.loss_on, ("all", "masked", "masked+cls"))
        _choice("teacher_input_norm", self.teacher_input_norm, ("same", "clip"))
        if self.needs_teacher:
            check_shipped_teacher(self.teacher, self.teacher_pretrained, "teacher_pretrained")
        _fraction(self, "mask_ratio", closed_right=False)
        _positive(self, "masks_per_image", "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "target_dim")
        if self.decoder_embed_dim % self.decoder_num_heads:
            raise ConfigError(f"decoder_embed_dim ({self.decoder_embed_dim}) must be divisible by its number of heads "
                              f"({self.decoder_num_heads})")

    @property
    def needs_teacher(self) -> bool:
        """Whether the target or the sampler reads the teacher (their registered flags): a run loads CLIP only then."""
        return (TARGETS.lookup(self.target, "target").needs_teacher
                or SAMPLERS.lookup(self.sampler, "sampler").needs_teacher)


# ModelConfig fields whose values are the names of registered choices: checked against the registry,
# listed by describe (--help) and the notebooks' parameter checks.
REGISTERED_CHOICES = {"decoder": DECODERS, "target": TARGETS, "sampler": SAMPLERS}


# Model fields that only pretraining reads, and what a classifier job lacks that would use them.
PRETRAIN_ONLY = {
    **dict.fromkeys(("sampler", "mask_ratio", "masks_per_image"), "has no masking"),
    **dict.fromkeys(("decoder", "decoder_embed_dim", "decoder_depth", "decoder_num_heads"), "has no decoder"),
    **dict.fromkeys(("target", "target_dim", "norm_pix_loss", "loss_on"), "has no reconstruction target"),
    **dict.fromkeys(("teacher", "teacher_pretrained", "teacher_input_norm"), "has no teacher"),
}


@dataclass
class TrainerConfig:
    """What the one training loop (``engine/trainer.py``) reads, for every job alike."""
    batch_size: int = 1024          # global batch (over all processes and accumulation steps)
    accum_steps: int = 1
    clip_grad: float | None = None
    seed: int = 0
    device: str = "auto"            # "auto" | "cpu" | "cuda" | "cuda:N"
    precision: str = "auto"         # "auto" (bf16 autocast on CUDA, fp32 on CPU) | "fp32" | "bf16" | "fp16"
    output_dir: str = "outputs/job"
    resume: bool = True             # continue from output_dir's latest checkpoint if any
    checkpoint_every: int = 200     # steps
    keep_checkpoints: int = 2       # 0 keeps all
    log_every: int = 10             # steps between logged rows (and host syncs for the loss)
    max_steps: int | None = None    # stop early (tests, profiling); the schedule still spans the whole run
    progress: bool = True
    compile: bool = False           # torch.compile the model (GPU); a failure falls back to eager with one warning
    # where metrics go besides metrics.csv: tensorboard | wandb | mlflow, or a list (logger=[tensorboard,mlflow])
    logger: list[str] = field(default_factory=lambda: ["tensorboard"])

    def validate(self) -> None:
        _finite(self)
        _positive(self, "batch_size", "accum_steps", "checkpoint_every", "log_every")
        _at_least(self, 0, "keep_checkpoints")
        if not 0 <= self.seed < 2**32:  # torch's and numpy's generators take seeds in [0, 2**32) alike
            raise ConfigError(f"bad value for 'seed': must be in [0, 2**32), got {self.seed}")
        if not str(self.output_dir).strip():
            raise ConfigError("bad value for 'output_dir': must name a folder, got an empty string")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ConfigError(f"bad value for 'clip_grad': must be positive (or none), got {self.clip_grad}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"bad value for 'max_steps': must be at least 1 (or none), got {self.max_steps}")
        if self.batch_size % self.accum_steps:
            raise ConfigError(f"batch_size ({self.batch_size}) must be divisible by accum_steps ({self.accum_steps})")
        _choice("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        for name in self.logger:
            _choice("logger", name, LOGGERS)
        check_device(self.device)


@dataclass
class JobConfig(TrainerConfig):
    """A training job on images: the loop's options, the model, the data and the lr schedule."""
    preset: str = "milan_vit-tiny-p8_offline"
    model: EncoderConfig = field(default_factory=EncoderConfig)
    data: str = "offline"           # "offline" (generated scenes) or an ImageNet-style folder
    offline_size: int = 12800       # offline training images per epoch
    offline_cache_mb: int = 512     # keep rendered offline scenes in memory up to this size (0: render each time)
    offline_variant: str = "dense"  # offline scene kind (SCENE_KINDS): "dense" (one large object) | "sparse" | "mid"
    num_workers: int = -1           # data loader processes; -1: 0 on CPU, 8 on GPU
    epochs: int = 100
    warmup_epochs: float = 5.0
    base_lr: float = 1e-3           # lr = base_lr * batch_size / 256 unless lr is set
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float = 0.05

    # model fields whose default differs for this job (fine-tuning uses drop path 0.1)
    MODEL_DEFAULTS: ClassVar[dict] = {}
    # model fields this job does not use -> why; setting one is refused rather than silently ignored
    UNUSED_MODEL_FIELDS: ClassVar[dict] = {}
    JOB_NAME: ClassVar[str] = "this job"

    def validate(self) -> None:
        super().validate()
        self.model.validate()
        _positive(self, "epochs", "offline_size", "base_lr")
        _at_least(self, 0, "warmup_epochs", "weight_decay", "min_lr", "offline_cache_mb")
        _at_least(self, -1, "num_workers")
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"bad value for 'lr': must be positive (or none), got {self.lr}")
        if self.min_lr > self.effective_lr:
            raise ConfigError(f"bad value for 'min_lr': {self.min_lr} is above the peak lr {self.effective_lr:g}")
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"bad value for 'warmup_epochs': {self.warmup_epochs} is more than epochs={self.epochs}")
        _choice("offline_variant", self.offline_variant, SCENE_KINDS)
        if self.data != "offline" and not Path(self.data).is_dir():
            raise ConfigError(f"data: {self.data!r} is neither 'offline' nor an existing folder")

    @property
    def effective_lr(self) -> float:
        return self.lr if self.lr is not None else self.base_lr * self.batch_size / 256


@dataclass
class PretrainConfig(JobConfig):
    """The MILAN pretraining recipe (mmpretrain milan_vit-base-p16_16xb256-amp-coslr-400e_in1k)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = 6
    warmup_epochs: float = 1.0
    batch_size: int = 128
    base_lr: float = 1.5e-4
    beta1: float = 0.9
    beta2: float = 0.95
    min_crop_scale: float = 0.2     # RandomResizedCrop scale=(min_crop_scale, 1)
    # fixed views (the full image, no crop or flip) whose teacher targets are computed once per
    # image and reused every epoch (jobs/teacher_cache.py); needs min_crop_scale=1
    teacher_cache: bool = False
    fixed_views: bool = False       # the full image, no crop or flip, without the cache (teacher_cache implies it)
    cache_views: int = 1            # with teacher_cache: K > 1 fixed random crops per offline scene, one drawn per epoch
    output_dir: str = "outputs/pretrain"
    checkpoint_every: int = 100
    knn_every: int = 1              # epochs; 0 disables
    knn_every_steps: int = 0        # steps between kNN evaluations instead (0: every knn_every epochs)
    knn_train_size: int = 2048
    knn_val_size: int = 512
    # steps between small encoder-only snapshots in output_dir/timeline/ (io/timeline.py); -1: about 8 over the run; 0: none
    keep_every: int = -1

    def validate(self) -> None:
        super().validate()
        _fraction(self, "beta1", "beta2", closed_right=False)
        _unit_interval(self, "min_crop_scale")
        _positive(self, "cache_views")
        check_views(self)
        _at_least(self, 0, "knn_every", "knn_every_steps")
        _positive(self, "knn_train_size", "knn_val_size")
        _at_least(self, -1, "keep_every")


# The options that choose pretraining's views (jobs/pretrain.py, jobs/teacher_cache.py), and every pair of
# them that contradicts itself. What each asks for: fixed_views=true, the full image (no crop, no flip);
# teacher_cache=true with cache_views=1, the same full-image views with their teacher targets computed once;
# cache_views=K>1, K fixed random crops per offline scene with their cached targets; min_crop_scale<1, random
# crops down to that share of the image. Each row: (option A, does A ask for it, option B, does B, why the two
# cannot both hold, with {a} and {b} their values); check_views refuses the first pair that holds, naming both.
VIEW_CONFLICTS = (
    ("fixed_views", lambda c: c.fixed_views, "min_crop_scale", lambda c: c.min_crop_scale != 1,
     "fixed views are the full image, never a crop, so min_crop_scale must be 1 (got {b}); for random crops "
     "set fixed_views=false"),
    ("fixed_views", lambda c: c.fixed_views, "cache_views", lambda c: c.cache_views > 1,
     "fixed views are the full image, while cache_views={b} caches {b} random crops per scene; keep one of them"),
    ("teacher_cache", lambda c: c.teacher_cache and c.cache_views == 1, "min_crop_scale", lambda c: c.min_crop_scale != 1,
     "the cache holds one fixed full-image view per scene, so min_crop_scale must be 1 (got {b}); for random crops "
     "set teacher_cache=false, or cache_views=K for K fixed crops per scene"),
    ("cache_views", lambda c: c.cache_views > 1, "teacher_cache", lambda c: not c.teacher_cache,
     "cache_views={a} caches K fixed crops of offline scenes with their teacher targets: it needs teacher_cache=true"),
    ("cache_views", lambda c: c.cache_views > 1, "data", lambda c: c.data != "offline",
     "cache_views={a} caches K fixed crops of offline scenes (rendered in memory): it needs data=offline"),
)


def check_views(cfg) -> None:
    """Refuse the first pair of :data:`VIEW_CONFLICTS` that ``cfg`` (a :class:`PretrainConfig`) asks for."""
    for a, a_holds, b, b_holds, why in VIEW_CONFLICTS:
        if a_holds(cfg) and b_holds(cfg):
            va, vb = _shown(getattr(cfg, a)), _shown(getattr(cfg, b))
            raise ConfigError(f"{a}={va} and {b}={vb} contradict each other: {why.format(a=va, b=vb)}")


@dataclass
class ClassifierJobConfig(JobConfig):
    """Fields of the jobs that train a classifier on a (pretrained) encoder."""
    checkpoint: str = ""            # pretraining checkpoint or output_dir; "" = random init
    num_classes: int = 0            # 0: from the data
    eval_size: int = 1024

    def validate(self) -> None:
        super().validate()
        _at_least(self, 0, "num_classes")
        _positive(self, "eval_size")


@dataclass
class FinetuneConfig(ClassifierJobConfig):
    """The MILAN fine-tuning recipe (mmpretrain vit-base-p16_8xb128-coslr-100e_in1k); drop path
    is ``model.drop_path`` (0.1 by default for this job)."""
    base_lr: float = 4e-4 * 256 / 1024  # lr 4e-4 at batch 1024
    min_lr: float = 1e-6
    layer_decay: float = 0.65
    mixup: float = 0.8
    cutmix: float = 1.0
    label_smoothing: float = 0.1
    rand_augment: str = "rand-m9-mstd0.5-inc1"
    random_erasing: float = 0.25
    min_crop_scale: float = 0.08    # RandomResizedCrop scale=(min_crop_scale, 1)
    output_dir: str = "outputs/finetune"

    MODEL_DEFAULTS: ClassVar[dict] = {"drop_path": 0.1}
    JOB_NAME: ClassVar[str] = "fine-tuning"

    def validate(self) -> None:
        super().validate()
        _unit_interval(self, "layer_decay", "min_crop_scale")
        _at_least(self, 0, "mixup", "cutmix")
        _fraction(self, "label_smoothing", closed_right=False)
        _fraction(self, "random_erasing")


@dataclass
class LinearProbeConfig(ClassifierJobConfig):
    """The MILAN linear-probe recipe (mmpretrain vit-base-p16_8xb2048-linear-coslr-100e_in1k)."""
    warmup_epochs: float = 10.0
    batch_size: int = 2048
    base_lr: float = 3.2 * 256 / 2048  # LARS lr 3.2 at batch 2048
    weight_decay: float = 0.0
    momentum: float = 0.9
    output_dir: str = "outputs/linear"

    JOB_NAME: ClassVar[str] = "linear probing"
    UNUSED_MODEL_FIELDS: ClassVar[dict] = {"drop_path": "has no drop path (the frozen encoder runs in eval mode)"}

    def validate(self) -> None:
        super().validate()
        _fraction(self, "momentum", closed_right=False)


# ---------------------------------------------------------------------------------------------
# YAML: config files, presets and the values of key=value overrides are all read by parse_yaml.
MAX_YAML_CHARS = 1 << 20  # a config file is a few hundred characters; one of megabytes is not a config file
MAX_YAML_DEPTH = 16       # options nest two or three levels deep (section, model, option)


class _Refused(yaml.MarkedYAMLError):
    """YAML that is well formed but not accepted in a config (its ``problem`` says why)."""


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader that refuses aliases (``*name``) and nesting deeper than MAX_YAML_DEPTH.

    An alias makes the loaded value a graph that shares nodes: ten lines of nested aliases ("billion
    laughs") stand for billions of values as soon as anything walks the result (flattening sections,
    printing a bad value). The composer meets each alias as a single event before anything is expanded,
    so refusing it there keeps reading linear in the text's size. The composer recurses once per level
    of nesting, hence the bound on depth."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _Refused(problem="YAML aliases (*name) are not accepted in config files: write the value out",
                           problem_mark=self.peek_event().start_mark)
        self.config_depth = getattr(self, "config_depth", 0) + 1
        try:
            if self.config_depth > MAX_YAML_DEPTH:
                raise _Refused(problem=f"nested more than {MAX_YAML_DEPTH} levels deep",
                               problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self.config_depth -= 1


def parse_yaml(text: str, where: str, lines: bool = True):
    """``text`` read as YAML (no aliases, bounded size and depth: :class:`_ConfigLoader`); any problem
    is one :class:`ConfigError` line starting with ``where`` (a file), with ``:line:column`` if ``lines``."""
    if len(text) > MAX_YAML_CHARS:
        raise ConfigError(f"{where}: {len(text):,} characters, more than a config holds (at most {MAX_YAML_CHARS:,})")
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f"{where}:{mark.line + 1}:{mark.column + 1}" if lines and mark is not None else where
        problem = getattr(e, "problem", None) or e
        if isinstance(e, _Refused):
            raise ConfigError(f"{at}: {problem}") from None
        if not lines:  # one value of a key=value override: show it
            raise ConfigError(f"{at}: {_shown(text)!r} cannot be parsed as YAML ({problem})") from None
        raise ConfigError(f"{at}: YAML syntax error: {problem}") from None


# ---------------------------------------------------------------------------------------------
# Presets: YAML files in milan_lab/presets/, one per name, read by the same path as --config:
# a ``model`` section (the pretraining model) and one section per job (pretrain, finetune, linear).
PRESET_DIR = Path(__file__).resolve().parent / "presets"
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


def _naming(where: str, fn, *args):
    """``fn(*args)``, its ConfigError prefixed with ``where`` (the file and section the options came from)."""
    try:
        return fn(*args)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


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


def model_config_from(saved: dict) -> ModelConfig:
    """The ModelConfig stored in a saved job config (fields added since are left at defaults)."""
    model = saved.get("model", {}) if isinstance(saved, dict) else {}
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(**{k: v for k, v in model.items() if k in known})


def load_yaml(path: str | Path) -> dict:
    """A YAML file of options; a syntax error is reported as file:line:column in one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    if path.stat().st_size > MAX_YAML_CHARS * 4:  # refused before reading: at most 4 bytes a character
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes, more than a config holds")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text (UTF-8) file: {e.reason} at byte {e.start}") from None
    loaded = parse_yaml(text, str(path))
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got a {type(loaded).__name__}")
    return loaded


def check_device(name: str) -> None:
    """A device string torch accepts and this machine has (CUDA asked for but absent is refused)."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", str(name)):
        raise ConfigError(f"bad value for 'device': {name!r}; expected auto, cpu, cuda or cuda:N")
    if name.startswith("cuda"):
        import torch
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r} but CUDA is not available on this machine; use device=cpu or auto")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device={name!r} but this machine has {torch.cuda.device_count()} CUDA device(s)")


def describe(cls, preset: str | None = None) -> list[tuple[str, str, object]]:
    """(key, type, default) for every option of a job config, model fields dotted. For a job's config
    (one of :data:`JOBS`) the defaults are those a run gets: the values of ``preset`` (the job's
    default preset if None); for any other config, its dataclass defaults."""
    job = next((name for name, job_cls in JOBS.items() if job_cls is cls), None)
    values = get_config(job, preset) if job else cls()
    unused = getattr(cls, "UNUSED_MODEL_FIELDS", {})
    rows = []
    for f in dataclasses.fields(cls):
        if f.name == "model" and dataclasses.is_dataclass(values.model):
            rows += [(f"model.{m.name}", _choices_or_type(m), getattr(values.model, m.name))
                     for m in dataclasses.fields(values.model) if m.name not in unused]
        else:
            rows.append((f.name, _type_name(f.type), getattr(values, f.name)))
    return rows


# ---------------------------------------------------------------------------------------------
def _resolve(cfg, key: str):
    parts = key.split(".")
    nested = dataclasses.is_dataclass(getattr(cfg, "model", None))
    top = {f.name for f in dataclasses.fields(cfg)} - ({"model"} if nested else set())
    sub = {f.name for f in dataclasses.fields(cfg.model)} if nested else set()
    name = parts[-1]
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


def _shown(value, limit: int = 60) -> str:
    """A value as a user wrote it (true/false, 0.5), cut to ``limit`` characters for an error line."""
    text = str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _model_type(cls) -> type:
    return typing.get_type_hints(cls)["model"]


def _field_type(obj, name):
    hints = typing.get_type_hints(type(obj))
    return hints[name]


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


def _choices_or_type(f: dataclasses.Field) -> str:
    """A model field's type as ``--help`` shows it: a registered choice lists the names registered now
    (``{semantic,random,topk,inverse}``), any other field its type."""
    registry = REGISTERED_CHOICES.get(f.name)
    return "{" + ",".join(registry) + "}" if registry is not None else _type_name(f.type)


def check_shipped_teacher(name: str | None, pretrained: str | None, pretrained_option: str = "pretrained") -> None:
    """Refuse a shipped teacher's name with a pretrained tag or file (its weights are in the package),
    and an ``offline-`` name that is no shipped teacher (nor a folder), naming the shipped ones."""
    shipped = name in SHIPPED_TEACHERS or name in TEACHER_ALIASES
    if shipped and pretrained is not None:
        raise ConfigError(f"bad value for {pretrained_option!r}: the teacher {name!r} is shipped in the package and takes "
                          f"no pretrained weights, got {pretrained!r}; set {pretrained_option}=null")
    if not shipped and name and name.startswith("offline-") and not Path(name).is_dir():
        raise ConfigError(f"bad value for 'teacher': no shipped teacher {name!r}; the shipped teachers are "
                          f"{', '.join(SHIPPED_TEACHERS)} (or give an open_clip name or a teacher folder)")


def _choice(name, value, options):
    if value not in options:
        raise ConfigError(f"bad value for {name!r}: {value!r}; expected one of {tuple(options)}")


def _positive(cfg, *names):
    for name in names:
        if getattr(cfg, name) <= 0:
            raise ConfigError(f"bad value for {name!r}: must be positive, got {getattr(cfg, name)}")


def _at_least(cfg, low, *names):
    for name in names:
        if getattr(cfg, name) < low:
            raise ConfigError(f"bad value for {name!r}: must be at least {low}, got {getattr(cfg, name)}")


def _fraction(cfg, *names, closed_right: bool = True):
    """Each value in [0, 1] ([0, 1) when not ``closed_right``)."""
    for name in names:
        v = getattr(cfg, name)
        if not (0 <= v <= 1) or (v == 1 and not closed_right):
            raise ConfigError(f"bad value for {name!r}: must be in [0, 1{']' if closed_right else ')'}, got {v}")


def _unit_interval(cfg, *names):
    """Each value in (0, 1]."""
    for name in names:
        v = getattr(cfg, name)
        if not 0 < v <= 1:
            raise ConfigError(f"bad value for {name!r}: must be in (0, 1], got {v}")


def _finite(cfg):
    """Every float field of ``cfg`` a finite number. Checked first: NaN passes every comparison the range
    checks make (``nan <= 0`` is false), and infinity passes the lower bounds."""
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"bad value for {f.name!r}: must be a finite number, got {v}")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
