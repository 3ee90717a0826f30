"""The configs' dataclasses, each field declared once: its type, default, range or choices and help.

A field's range, choices and one-line help sit in the field itself (``options.option``, read back with
``options.option_of``); one generic walk (``options.check_fields``, run first by every config's ``validate``)
refuses a value outside them in one line naming the key, and ``--help`` (``describe``) and the
notebooks' parameter checks (``milan_lab.tools.notebook``) read the same declaration. Only the checks
that relate two fields (``image_size % patch_size``, ``batch_size % accum_steps``, the views'
conflicts, ...) stay as code in the ``validate`` methods.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from milan_lab.config.devices import check_device
from milan_lab.config.options import Options, _shown, option
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
# What the teacher's training captions name (TeacherTrainConfig.captions).
CAPTIONS = {"all": "colour, size, shape and place", "no-shape": "colour, size and place, never the shape"}


# --- the configs ---------------------------------------------------------------------------------------
@dataclass
class EncoderConfig(Options):
    """The ViT encoder's architecture: what every job builds (pretraining, fine-tuning, probing)."""
    image_size: int = option(224, gt=0, help="input side in pixels (a multiple of patch_size)")
    patch_size: int = option(16, gt=0, help="patch side in pixels")
    embed_dim: int = option(768, gt=0, help="encoder width (divisible by num_heads)")
    depth: int = option(12, gt=0, help="encoder blocks")
    num_heads: int = option(12, gt=0, help="attention heads per block")
    mlp_ratio: float = option(4.0, gt=0, help="MLP width / embed_dim")
    drop_path: float = option(0.0, ge=0, lt=1, help="stochastic depth rate of the last block")

    def validate(self) -> None:
        super().validate()
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size ({self.image_size}) must be a multiple of patch_size ({self.patch_size})")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"embed_dim ({self.embed_dim}) must be divisible by its number of heads ({self.num_heads})")


@dataclass
class ModelConfig(EncoderConfig):
    """The MILAN pretraining model: the encoder, plus the decoder, the target, the masking and the
    teacher, which only pretraining reads."""
    decoder: str = option("prompting", choices=DECODERS, help="the decoder: prompting (MILAN), mae, ...")
    decoder_embed_dim: int = option(512, gt=0, help="decoder width (divisible by decoder_num_heads)")
    decoder_depth: int = option(8, gt=0, help="decoder blocks")
    decoder_num_heads: int = option(16, gt=0, help="decoder attention heads")
    target: str = option("clip", choices=TARGETS, help="what is reconstructed: clip (teacher features), pixels (MAE), ...")
    target_dim: int = option(512, gt=0, help="width of the teacher's features (checked against the teacher)")
    norm_pix_loss: bool = option(False, help="normalise each target patch (pixel targets only)")
    loss_on: str = option("all", choices=("all", "masked", "masked+cls"),
                          help="all tokens (the references), the masked patches only, or those and the class token")
    sampler: str = option("semantic", choices=SAMPLERS, help="which patches are masked: semantic, random, topk, ...")
    mask_ratio: float = option(0.75, ge=0, lt=1, help="share of the patches masked")
    masks_per_image: int = option(1, gt=0, help="masked views per teacher pass (>1 amortises the teacher)")
    teacher: str = option("ViT-B-16", help="open_clip name, a teacher folder, or a shipped teacher (offline-shape, ...)")
    teacher_pretrained: str | None = option("openai", help="open_clip tag or a local checkpoint file")
    teacher_input_norm: str = option("same", choices=("same", "clip"),
                                     help="same: the student's ImageNet-normalised input; clip: CLIP's normalisation")

    def validate(self) -> None:
        super().validate()
        if self.needs_teacher:
            check_shipped_teacher(self.teacher, self.teacher_pretrained, "teacher_pretrained")
        if self.decoder_embed_dim % self.decoder_num_heads:
            raise ConfigError(f"decoder_embed_dim ({self.decoder_embed_dim}) must be divisible by its number of heads "
                              f"({self.decoder_num_heads})")

    @property
    def needs_teacher(self) -> bool:
        """Whether the target or the sampler reads the teacher (their registered flags): a run loads CLIP only then."""
        return (TARGETS.lookup(self.target, "target").needs_teacher
                or SAMPLERS.lookup(self.sampler, "sampler").needs_teacher)


# Model fields that only pretraining reads, and what a classifier job lacks that would use them.
PRETRAIN_ONLY = {
    **dict.fromkeys(("sampler", "mask_ratio", "masks_per_image"), "has no masking"),
    **dict.fromkeys(("decoder", "decoder_embed_dim", "decoder_depth", "decoder_num_heads"), "has no decoder"),
    **dict.fromkeys(("target", "target_dim", "norm_pix_loss", "loss_on"), "has no reconstruction target"),
    **dict.fromkeys(("teacher", "teacher_pretrained", "teacher_input_norm"), "has no teacher"),
}


@dataclass
class TrainerConfig(Options):
    """What the one training loop (``engine/trainer.py``) reads, for every job alike."""
    batch_size: int = option(1024, gt=0, help="global batch (over all processes and accumulation steps)")
    accum_steps: int = option(1, gt=0, help="micro-batches per optimiser step (divides batch_size)")
    clip_grad: float | None = option(None, gt=0, help="clip the gradient norm to this (none: no clipping)")
    # torch's and numpy's generators take seeds in [0, 2**32) alike
    seed: int = option(0, ge=0, lt=2**32, help="seeds the data order, the masks and the initialisation")
    device: str = option("auto", help="auto | cpu | cuda | cuda:N (a device this machine has)")
    precision: str = option("auto", choices=("auto", "fp32", "bf16", "fp16"),
                            help="auto: bf16 autocast on CUDA, fp32 on CPU")
    output_dir: str = option("outputs/job", help="the run's folder: checkpoints, metrics, logs")
    resume: bool = option(True, help="continue from output_dir's latest checkpoint if any")
    checkpoint_every: int = option(200, gt=0, help="steps between checkpoints")
    keep_checkpoints: int = option(2, ge=0, help="checkpoints kept (0 keeps all)")
    log_every: int = option(10, gt=0, help="steps between logged rows (and host syncs for the loss)")
    max_steps: int | None = option(None, ge=1, help="stop early (tests, profiling); the schedule still spans the whole run")
    progress: bool = option(True, help="show a progress bar")
    compile: bool = option(False, help="torch.compile the model (GPU); a failure falls back to eager with one warning")
    logger: list[str] = option(factory=lambda: ["tensorboard"], choices=LOGGERS,
                               help="where metrics go besides metrics.csv, one or a list (logger=[tensorboard,mlflow])")

    def validate(self) -> None:
        super().validate()
        if not str(self.output_dir).strip():
            raise ConfigError("bad value for 'output_dir': must name a folder, got an empty string")
        if self.batch_size % self.accum_steps:
            raise ConfigError(f"batch_size ({self.batch_size}) must be divisible by accum_steps ({self.accum_steps})")
        check_device(self.device)


@dataclass
class JobConfig(TrainerConfig):
    """A training job on images: the loop's options, the model, the data and the lr schedule."""
    preset: str = "milan_vit-tiny-p8_offline"
    model: EncoderConfig = field(default_factory=EncoderConfig)
    data: str = option("offline", help="offline (generated scenes) or an ImageNet-style folder")
    offline_size: int = option(12800, gt=0, help="offline training images per epoch")
    offline_cache_mb: int = option(512, ge=0, help="keep rendered offline scenes in memory up to this size (0: render each time)")
    offline_variant: str = option("dense", choices=SCENE_KINDS, help="offline scene kind: dense (one large object), sparse, mid")
    num_workers: int = option(-1, ge=-1, help="data loader processes; -1: 0 on CPU, 8 on GPU")
    epochs: int = option(100, gt=0, help="passes over the data")
    warmup_epochs: float = option(5.0, ge=0, help="epochs of linear lr warm-up (at most epochs)")
    base_lr: float = option(1e-3, gt=0, help="lr = base_lr * batch_size / 256 unless lr is set")
    lr: float | None = option(None, gt=0, help="the peak lr itself (none: from base_lr)")
    min_lr: float = option(0.0, ge=0, help="the cosine schedule's floor (at most the peak lr)")
    weight_decay: float = option(0.05, ge=0, help="AdamW weight decay")

    # model fields whose default differs for this job (fine-tuning uses drop path 0.1)
    MODEL_DEFAULTS: ClassVar[dict] = {}
    # model fields this job does not use -> why; setting one is refused rather than silently ignored
    UNUSED_MODEL_FIELDS: ClassVar[dict] = {}
    JOB_NAME: ClassVar[str] = "this job"

    def validate(self) -> None:
        super().validate()
        self.model.validate()
        if self.min_lr > self.effective_lr:
            raise ConfigError(f"bad value for 'min_lr': {self.min_lr} is above the peak lr {self.effective_lr:g}")
        if self.warmup_epochs > self.epochs:
            raise ConfigError(f"bad value for 'warmup_epochs': {self.warmup_epochs} is more than epochs={self.epochs}")
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
    beta1: float = option(0.9, ge=0, lt=1, help="AdamW beta1")
    beta2: float = option(0.95, ge=0, lt=1, help="AdamW beta2")
    min_crop_scale: float = option(0.2, gt=0, le=1, help="RandomResizedCrop scale=(min_crop_scale, 1)")
    # fixed views (the full image, no crop or flip) whose teacher targets are computed once per
    # image and reused every epoch (jobs/teacher_cache.py); needs min_crop_scale=1
    teacher_cache: bool = option(False, help="compute the teacher's targets of fixed views once and reuse them every epoch")
    fixed_views: bool = option(False, help="the full image, no crop or flip, without the cache (teacher_cache implies it)")
    cache_views: int = option(1, gt=0, help="with teacher_cache: K > 1 fixed random crops per offline scene, one drawn per epoch")
    output_dir: str = "outputs/pretrain"
    checkpoint_every: int = 100
    knn_every: int = option(1, ge=0, help="epochs between kNN evaluations, and one after the last step (0 disables)")
    knn_every_steps: int = option(0, ge=0, help="steps between kNN evaluations instead (0: every knn_every epochs)")
    knn_train_size: int = option(2048, gt=0, help="kNN bank images")
    knn_val_size: int = option(512, gt=0, help="kNN query images")
    keep_every: int = option(-1, ge=-1, help="steps between encoder snapshots in output_dir/timeline/; -1: about 8; 0: none")

    def validate(self) -> None:
        super().validate()
        check_views(self)


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
    checkpoint: str = option("", help="pretraining checkpoint or output_dir; empty: random init")
    num_classes: int = option(0, ge=0, help="classes (0: from the data)")
    eval_size: int = option(1024, gt=0, help="evaluation images")
    # read by the trainer's schedule (engine/contract.py EvalSchedule), which also evaluates after the last step
    eval_every: int | str = option("epoch", help="steps between evaluations on the validation set, or 'epoch'")

    def validate(self) -> None:
        super().validate()
        if self.eval_every != "epoch" and not (type(self.eval_every) is int and self.eval_every > 0):
            raise ConfigError(f"bad value for 'eval_every': expected a positive number of steps or 'epoch', "
                              f"got {self.eval_every!r}")


@dataclass
class FinetuneConfig(ClassifierJobConfig):
    """The MILAN fine-tuning recipe (mmpretrain vit-base-p16_8xb128-coslr-100e_in1k); drop path
    is ``model.drop_path`` (0.1 by default for this job)."""
    base_lr: float = 4e-4 * 256 / 1024  # lr 4e-4 at batch 1024
    min_lr: float = 1e-6
    layer_decay: float = option(0.65, gt=0, le=1, help="lr decay per block from the head down")
    mixup: float = option(0.8, ge=0, help="mixup alpha (0: off)")
    cutmix: float = option(1.0, ge=0, help="cutmix alpha (0: off)")
    label_smoothing: float = option(0.1, ge=0, lt=1, help="label smoothing")
    rand_augment: str = option("rand-m9-mstd0.5-inc1", help="timm RandAugment policy")
    random_erasing: float = option(0.25, ge=0, le=1, help="random erasing probability")
    min_crop_scale: float = option(0.08, gt=0, le=1, help="RandomResizedCrop scale=(min_crop_scale, 1)")
    output_dir: str = "outputs/finetune"

    MODEL_DEFAULTS: ClassVar[dict] = {"drop_path": 0.1}
    JOB_NAME: ClassVar[str] = "fine-tuning"


@dataclass
class LinearProbeConfig(ClassifierJobConfig):
    """The MILAN linear-probe recipe (mmpretrain vit-base-p16_8xb2048-linear-coslr-100e_in1k)."""
    warmup_epochs: float = 10.0
    batch_size: int = 2048
    base_lr: float = 3.2 * 256 / 2048  # LARS lr 3.2 at batch 2048
    weight_decay: float = 0.0
    momentum: float = option(0.9, ge=0, lt=1, help="LARS momentum")
    output_dir: str = "outputs/linear"

    JOB_NAME: ClassVar[str] = "linear probing"
    UNUSED_MODEL_FIELDS: ClassVar[dict] = {"drop_path": "has no drop path (the frozen encoder runs in eval mode)"}


@dataclass
class TeacherTrainConfig(TrainerConfig):
    """Teacher training (``milan-lab teacher train``, ``milan_lab.jobs.teacher``): the loop's options
    (:class:`TrainerConfig`) and the teacher's recipe, one pass of ``steps`` generated batches."""
    clip_model: str = option("milan-clip-tiny", help="an open_clip config name (milan-clip-tiny is registered by the package)")
    steps: int = option(1500, gt=0, help="generated batches")
    batch_size: int = 128
    group_size: int = option(8, gt=0, help="scenes per hard-negative group (divides batch_size)")
    lr: float = option(1e-3, gt=0, help="AdamW peak lr")
    weight_decay: float = option(0.1, ge=0, help="AdamW weight decay")
    warmup_steps: int = option(100, ge=0, help="steps of linear lr warm-up")
    caption_drop: float = option(0.3, ge=0, le=1, help="probability of leaving out each of colour / size / place")
    image_size: int = option(64, gt=0, help="scene side in pixels")
    device: str = "cpu"
    output_dir: str = "outputs/teacher"
    checkpoint_every: int = 250
    keep_checkpoints: int = 1
    threads: int = option(0, ge=0, help="torch CPU threads; 0 keeps torch's default")
    captions: str = option("all", choices=tuple(CAPTIONS), help="all: captions name the shape; no-shape: none does")

    JOB_NAME: ClassVar[str] = "teacher training"
    # keys this config once had -> the key that took their place (refused naming it: see overrides._resolve)
    RENAMED: ClassVar[dict] = {"model": "clip_model"}
    # checks that need the scenes' attributes (milan_lab.data, a layer above the config), added by
    # milan_lab.jobs.teacher when it is imported, as the models fill the registries
    SCENE_CHECKS: ClassVar[dict] = {}

    def validate(self) -> None:
        super().validate()
        if self.accum_steps != 1:  # the contrastive loss compares every pair in the whole batch
            raise ConfigError(f"bad value for 'accum_steps': teacher training needs the whole batch at once, got "
                              f"{self.accum_steps}")
        if self.batch_size % self.group_size:
            raise ConfigError(f"group_size ({self.group_size}) must divide batch_size ({self.batch_size})")
        for check in self.SCENE_CHECKS.values():
            check(self)


def model_config_from(saved: dict) -> ModelConfig:
    """The ModelConfig stored in a saved job config (fields added since are left at defaults)."""
    model = saved.get("model", {}) if isinstance(saved, dict) else {}
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(**{k: v for k, v in model.items() if k in known})


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
