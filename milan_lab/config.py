"""Configuration: one dataclass per job, presets by name, overrides from CLI / YAML / notebooks.

One object flows from a notebook's parameters cell or the CLI to the engine:
``PretrainConfig(model=ModelConfig(...), ...)``. ``apply_overrides`` takes ``key=value`` strings
or a dict; keys are field names (``epochs``) or dotted (``model.mask_ratio``); a field of the
nested model config may also be named alone when unambiguous (``mask_ratio``). Unknown keys and
bad values fail at once, naming the key.
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from milan_lab.models.masking import SAMPLERS


@dataclass
class ModelConfig:
    image_size: int = 224
    patch_size: int = 16
    embed_dim: int = 768            # encoder width
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    drop_path: float = 0.0
    decoder: str = "prompting"      # "prompting" (MILAN) | "mae"
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    target: str = "clip"            # "clip" (teacher features) | "pixels" (MAE)
    target_dim: int = 512           # width of the teacher's features (checked against the teacher)
    norm_pix_loss: bool = False     # pixel target only
    loss_on: str = "all"            # "all" tokens (references) | "masked" patches only
    sampler: str = "semantic"       # "random" | "semantic" | "topk" | "inverse"
    mask_ratio: float = 0.75
    teacher: str = "ViT-B-16"       # open_clip name, a teacher folder, or "shipped"
    teacher_pretrained: str | None = "openai"  # open_clip tag or a local checkpoint file
    teacher_input_norm: str = "same"  # "same": the student's ImageNet-normalised input; "clip"

    def validate(self) -> None:
        _choice("decoder", self.decoder, ("prompting", "mae"))
        _choice("target", self.target, ("clip", "pixels"))
        _choice("loss_on", self.loss_on, ("all", "masked"))
        _choice("sampler", self.sampler, SAMPLERS)
        _choice("teacher_input_norm", self.teacher_input_norm, ("same", "clip"))
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        for name, dim, heads in (("embed_dim", self.embed_dim, self.num_heads),
                                 ("decoder_embed_dim", self.decoder_embed_dim, self.decoder_num_heads)):
            if dim % heads:
                raise ValueError(f"{name} ({dim}) must be divisible by its number of heads ({heads})")

    @property
    def needs_teacher(self) -> bool:
        return self.target == "clip" or self.sampler != "random"


@dataclass
class PretrainConfig:
    preset: str = "milan_vit-tiny-p8_offline"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: str = "offline"           # "offline" (generated scenes) or an ImageNet-style folder
    offline_size: int = 12800       # offline training images per epoch
    epochs: int = 6
    warmup_epochs: float = 1.0
    batch_size: int = 128           # global batch (over all processes and accumulation steps)
    accum_steps: int = 1
    base_lr: float = 1.5e-4         # lr = base_lr * batch_size / 256 unless lr is set
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float = 0.05
    beta1: float = 0.9
    beta2: float = 0.95
    clip_grad: float | None = None
    min_crop_scale: float = 0.2     # RandomResizedCrop scale=(min_crop_scale, 1)
    seed: int = 0
    device: str = "auto"            # "auto" | "cpu" | "cuda" | "cuda:N"
    precision: str = "auto"         # "auto" (bf16 autocast on CUDA, fp32 on CPU) | "fp32" | "bf16" | "fp16"
    num_workers: int = -1           # -1: 0 on CPU, 8 on GPU
    output_dir: str = "runs/pretrain"
    resume: bool = True             # continue from output_dir's latest checkpoint if any
    checkpoint_every: int = 100     # steps
    keep_checkpoints: int = 2
    knn_every: int = 1              # epochs; 0 disables
    knn_train_size: int = 2048
    knn_val_size: int = 512
    log_every: int = 10
    max_steps: int | None = None    # stop early (tests, profiling); the schedule still spans all epochs
    progress: bool = True

    def validate(self) -> None:
        self.model.validate()
        _positive(self, "epochs", "batch_size", "accum_steps", "offline_size", "checkpoint_every")
        if self.batch_size % self.accum_steps:
            raise ValueError(f"batch_size ({self.batch_size}) must be divisible by accum_steps ({self.accum_steps})")
        _choice("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        if self.data != "offline" and not Path(self.data).is_dir():
            raise ValueError(f"data: {self.data!r} is neither 'offline' nor an existing folder")

    @property
    def effective_lr(self) -> float:
        return self.lr if self.lr is not None else self.base_lr * self.batch_size / 256


@dataclass
class FinetuneConfig:
    """The MILAN fine-tuning recipe (mmpretrain vit-base-p16_8xb128-coslr-100e_in1k)."""
    preset: str = "milan_vit-tiny-p8_offline"
    model: ModelConfig = field(default_factory=ModelConfig)
    checkpoint: str = ""            # pretraining checkpoint or output_dir; "" = random init
    data: str = "offline"
    num_classes: int = 0            # 0: from the data
    offline_size: int = 12800
    epochs: int = 100
    warmup_epochs: float = 5.0
    batch_size: int = 1024
    base_lr: float = 4e-4 * 256 / 1024  # lr 4e-4 at batch 1024
    lr: float | None = None
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    layer_decay: float = 0.65
    drop_path: float = 0.1
    mixup: float = 0.8
    cutmix: float = 1.0
    label_smoothing: float = 0.1
    rand_augment: str = "rand-m9-mstd0.5-inc1"
    random_erasing: float = 0.25
    min_crop_scale: float = 0.08    # RandomResizedCrop scale=(min_crop_scale, 1)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = -1
    output_dir: str = "runs/finetune"
    resume: bool = True
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    eval_size: int = 1024
    max_steps: int | None = None
    progress: bool = True

    def validate(self) -> None:
        self.model.validate()
        _positive(self, "epochs", "batch_size")
        _choice("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))

    @property
    def effective_lr(self) -> float:
        return self.lr if self.lr is not None else self.base_lr * self.batch_size / 256


@dataclass
class LinearProbeConfig:
    """The MILAN linear-probe recipe (mmpretrain vit-base-p16_8xb2048-linear-coslr-100e_in1k)."""
    preset: str = "milan_vit-tiny-p8_offline"
    model: ModelConfig = field(default_factory=ModelConfig)
    checkpoint: str = ""
    data: str = "offline"
    num_classes: int = 0
    offline_size: int = 12800
    epochs: int = 100
    warmup_epochs: float = 10.0
    batch_size: int = 2048
    base_lr: float = 3.2 * 256 / 2048  # LARS lr 3.2 at batch 2048
    lr: float | None = None
    weight_decay: float = 0.0
    momentum: float = 0.9
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = -1
    output_dir: str = "runs/linear"
    resume: bool = True
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    eval_size: int = 1024
    max_steps: int | None = None
    progress: bool = True

    def validate(self) -> None:
        self.model.validate()
        _positive(self, "epochs", "batch_size")
        _choice("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))

    @property
    def effective_lr(self) -> float:
        return self.lr if self.lr is not None else self.base_lr * self.batch_size / 256


# ---------------------------------------------------------------------------------------------
# Presets: a name -> (model fields, per-job fields)
VIT_B16 = dict(image_size=224, patch_size=16, embed_dim=768, depth=12, num_heads=12, decoder_embed_dim=512,
               decoder_depth=8, decoder_num_heads=16, target_dim=512, teacher="ViT-B-16", teacher_pretrained="openai")
TINY = dict(image_size=64, patch_size=8, embed_dim=192, depth=6, num_heads=3, decoder_embed_dim=128,
            decoder_depth=2, decoder_num_heads=4, target_dim=128, teacher="shipped", teacher_pretrained=None)

PRESETS: dict[str, dict] = {
    # The paper's model under the seed's (mmpretrain's) name: 16 GPUs x 256, AMP, cosine lr, 400 epochs.
    "milan_vit-base-p16_16xb256-amp-coslr-400e_in1k": dict(
        model=VIT_B16, pretrain=dict(epochs=400, warmup_epochs=40, batch_size=4096, base_lr=1.5e-4,
                                     output_dir="runs/milan_vit-base-p16")),
    # The offline default: trains on a 2-core CPU in minutes against the shipped small teacher.
    "milan_vit-tiny-p8_offline": dict(
        model=TINY, pretrain=dict(epochs=6, warmup_epochs=1, batch_size=128, base_lr=1.5e-3, offline_size=12800),
        # The label is the *main* object's shape: crops below ~1/3 of the image, CutMix/Mixup and random
        # erasing remove or blend that object and make labels wrong at 64 px, so the offline recipe drops them.
        finetune=dict(epochs=4, warmup_epochs=0.5, batch_size=128, base_lr=1e-3, layer_decay=0.75, offline_size=6400,
                      min_crop_scale=0.35, mixup=0.0, cutmix=0.0, random_erasing=0.0),
        linear=dict(epochs=10, warmup_epochs=1, batch_size=256, base_lr=0.1, offline_size=6400)),
    # Even smaller: for tests and the ablation grid.
    "milan_vit-micro-p8_offline": dict(
        model=dict(TINY, embed_dim=96, depth=2, num_heads=3, decoder_embed_dim=64, decoder_depth=1,
                   decoder_num_heads=2),
        pretrain=dict(epochs=2, warmup_epochs=0.5, batch_size=64, base_lr=3e-3, offline_size=1024,
                      knn_train_size=512, knn_val_size=256),
        finetune=dict(epochs=2, warmup_epochs=0.5, batch_size=64, base_lr=1e-3, offline_size=512),
        linear=dict(epochs=2, warmup_epochs=0.5, batch_size=64, base_lr=0.1, offline_size=512)),
}
JOBS = {"pretrain": PretrainConfig, "finetune": FinetuneConfig, "linear": LinearProbeConfig}


def list_presets() -> list[str]:
    return list(PRESETS)


def get_config(job: str, preset: str | None = None, overrides=None, yaml_file: str | None = None):
    """Build the config for ``job`` ("pretrain" | "finetune" | "linear") from a preset, an
    optional YAML file and overrides (in that order), validated."""
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; expected one of {list(JOBS)}")
    cls = JOBS[job]
    preset = preset or cls.preset
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(PRESETS)}")
    spec = PRESETS[preset]
    cfg = cls(preset=preset, model=ModelConfig(**spec["model"]))
    cfg = apply_overrides(cfg, spec.get(job, {}))
    if yaml_file:
        loaded = yaml.safe_load(Path(yaml_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{yaml_file}: expected a mapping of config keys")
        cfg = apply_overrides(cfg, _flatten(loaded))
    cfg = apply_overrides(cfg, overrides or {})
    cfg.validate()
    return cfg


def apply_overrides(cfg, overrides):
    """Return a copy of ``cfg`` with ``overrides`` (dict or ``["key=value", ...]``) applied."""
    cfg = copy.deepcopy(cfg)
    if not isinstance(overrides, dict):
        pairs = {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not of the form key=value")
            key, value = item.split("=", 1)
            pairs[key.strip()] = yaml.safe_load(value) if value.strip() else None
        overrides = pairs
    for key, value in overrides.items():
        target, name = _resolve(cfg, key)
        setattr(target, name, _coerce(key, value, _field_type(target, name)))
    return cfg


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict):
    data = dict(data)
    model = ModelConfig(**data.pop("model")) if "model" in data else ModelConfig()
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(model=model, **{k: v for k, v in data.items() if k in known})


def describe(cls) -> list[tuple[str, str, object]]:
    """(key, type, default) for every option of a job config, model fields dotted."""
    rows = []
    for f in dataclasses.fields(cls):
        if f.name == "model":
            rows += [(f"model.{m.name}", _type_name(m.type), m.default) for m in dataclasses.fields(ModelConfig)]
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            rows.append((f.name, _type_name(f.type), default))
    return rows


# ---------------------------------------------------------------------------------------------
def _resolve(cfg, key: str):
    parts = key.split(".")
    nested = dataclasses.is_dataclass(getattr(cfg, "model", None))
    top = {f.name for f in dataclasses.fields(cfg)} - ({"model"} if nested else set())
    sub = {f.name for f in dataclasses.fields(ModelConfig)} if nested else set()
    if len(parts) == 2 and parts[0] == "model" and parts[1] in sub:
        return cfg.model, parts[1]
    if len(parts) == 1 and parts[0] in top:
        return cfg, parts[0]
    if len(parts) == 1 and parts[0] in sub:
        return cfg.model, parts[0]
    raise ValueError(f"unknown config key {key!r}; run with --help to list the options")


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
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    raise ValueError(f"bad value for {key!r}: {value!r} is not a valid {_type_name(tp)}")


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _choice(name, value, options):
    if value not in options:
        raise ValueError(f"bad value for {name!r}: {value!r}; expected one of {tuple(options)}")


def _positive(cfg, *names):
    for name in names:
        if getattr(cfg, name) <= 0:
            raise ValueError(f"bad value for {name!r}: must be positive, got {getattr(cfg, name)}")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
