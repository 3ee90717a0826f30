"""Creating and loading models: the one path every caller (jobs, zoo, explorer, evaluation, CLI)
takes from a config or a file to a model, and back to a file (``export_timm``).

A milan_lab checkpoint carries its own config and its task ("pretrain", "finetune", "linear":
what ``create_model`` builds), so the model is rebuilt from the file alone; an mmpretrain file
carries neither, so the caller names the architecture (``cfg``, e.g. from a zoo entry). For files
without a stored task (mmpretrain files, exports, milan_lab checkpoints written before the task was
stored) it is read off the weights: a decoder means pretraining, a head with BatchNorm statistics a
linear probe, any other head fine-tuning.
"""
from __future__ import annotations

from pathlib import Path

import torch

from milan_lab.config import EncoderConfig, ModelConfig, model_config_from
from milan_lab.convert import EXPORT_FORMATS, encoder_to_timm, from_mmpretrain
from milan_lab.errors import CheckpointError, ConfigError
from milan_lab.factory.teachers import load_teacher
from milan_lab.io.checkpoints import resolve_checkpoint
from milan_lab.io.targets import check_writable
from milan_lab.io.weights import check_fits, load_into, read_weights, save_weights, state_dict_of
from milan_lab.models.classifier import MILANClassifier
from milan_lab.models.milan import MILAN, check_teacher
from milan_lab.models.vit import ViTEncoder

TASKS = ("pretrain", "finetune", "linear")


def read_checkpoint(source: str | Path) -> tuple[Path, dict]:
    """(file, its dict) for a checkpoint file or a run folder (its newest checkpoint)."""
    path = resolve_checkpoint(source)
    return path, read_weights(path)


def saved_config(state: dict) -> dict | None:
    """The job config a milan_lab checkpoint carries (None for other files)."""
    return state["config"] if isinstance(state.get("config"), dict) else None


def checkpoint_task(state: dict, source: str | Path = "") -> str:
    """'pretrain' | 'finetune' | 'linear': the task a checkpoint stores (``state["task"]``, written by the
    trainer and ``save_weights``), else, for files without one, read off the weight names (``task_of``)."""
    task = state.get("task")
    if task is None:
        return task_of(state_dict_of(state))
    if task not in TASKS:
        raise CheckpointError(f"{source}: stores the task {task!r}, none of {', '.join(TASKS)}")
    return task


def task_of_model(model) -> str | None:
    """The task of a model ``create_model`` builds (what a checkpoint of it stores), None for any other module."""
    if isinstance(model, MILAN):
        return "pretrain"
    if isinstance(model, MILANClassifier):
        return model.head_type
    return None


def task_of(weights: dict) -> str:
    """'pretrain' | 'finetune' | 'linear', from the weight names (milan_lab or mmpretrain layout)."""
    if any(k.startswith(("decoder.", "neck.decoder")) for k in weights):
        return "pretrain"
    if any(k.startswith(("fc_norm.running_mean", "neck.bn.")) for k in weights):
        return "linear"
    if any(k.startswith(("head.", "head.fc.")) for k in weights):
        return "finetune"
    return "pretrain"  # encoder-only files (e.g. exports) load as a pretraining model without a decoder check


def weights_for(state: dict, task: str, source: str) -> dict:
    """The model's weights in milan_lab's layout (mmpretrain files are converted)."""
    weights = state_dict_of(state)
    if not weights or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{source}: holds no tensors under 'model' / 'state_dict' (keys: {list(state)[:5]})")
    if any(k.startswith("backbone.") for k in weights):
        try:
            weights = from_mmpretrain(weights, task)
        except KeyError as e:
            raise CheckpointError(f"{source}: {e.args[0]}") from None
    return weights


def create_model(cfg: ModelConfig, task: str = "pretrain", num_classes: int = 0, teacher="auto",
                 device: str | torch.device = "cpu", seed: int | None = None):
    """A randomly initialised MILAN (``task`` "pretrain") or MILANClassifier ("finetune" /
    "linear") for ``cfg``, on ``device``. ``teacher``: "auto" (the teacher ``cfg`` names, loaded
    when the config needs one), "none" (features only), or a :class:`Teacher` that must fit.
    With ``seed``, the initial weights depend on it alone (drawn after the teacher is loaded)."""
    if task not in TASKS:
        raise ConfigError(f"task must be one of {TASKS}, got {task!r}")
    teacher = _teacher_for(cfg, teacher, device) if task == "pretrain" else None
    if seed is not None:
        torch.manual_seed(seed)
    if task == "pretrain":
        return MILAN(cfg, teacher, require_teacher=False).to(device)
    return MILANClassifier(cfg, num_classes, task).to(device)


def load_model(source: str | Path, cfg: ModelConfig | None = None, task: str | None = None, teacher="none",
               device: str | torch.device = "cpu", own_teacher_if_misfit: bool = False):
    """A MILAN (pretraining) or MILANClassifier model with the weights of ``source`` (a file or a
    run folder), in eval mode.

    ``cfg``: the architecture when the file has no config of its own (mmpretrain files);
    ``task``: expected task, checked against the file. ``teacher``: "none" (features only),
    "auto" (the teacher named in the checkpoint's config, loaded when the model needs one), or a
    :class:`~milan_lab.models.teacher.Teacher`, which must fit the checkpoint's student, or, with
    ``own_teacher_if_misfit``, is used when it fits and otherwise replaced by the checkpoint's own ("auto")."""
    path, state = read_checkpoint(source)
    saved = saved_config(state)
    if saved is not None:
        cfg = model_config_from(saved)
    elif cfg is None:
        raise CheckpointError(f"{path}: has no config of its own; name its architecture (a zoo model or preset)")
    found = checkpoint_task(state, path)
    if task is not None and task != found and found != "pretrain":
        raise CheckpointError(f"{path}: a {found} checkpoint, but a {task} model was asked for")
    task = task or found
    weights = weights_for(state, task, str(path))
    num_classes = weights["head.weight"].shape[0] if "head.weight" in weights else 0
    if own_teacher_if_misfit and not isinstance(teacher, str) and teacher is not None and not _fits(cfg, teacher):
        teacher = "auto"
    model = create_model(cfg, task, num_classes, teacher, device)
    if task == "pretrain" and not any(k.startswith("decoder.") for k in weights):
        load_into(model.encoder, _strip(weights, "encoder."), str(path))  # an encoder-only file
    else:
        load_into(model, weights, str(path))
    model.checkpoint_path = str(path)
    return model.to(device).eval()


def load_encoder_weights(model, source: str | Path) -> dict:
    """Copy the encoder of a checkpoint into ``model.encoder`` (fine-tuning, probing); returns
    the checkpoint's config. Refuses, naming the differences, a checkpoint of another size."""
    path, state = read_checkpoint(source)
    weights = weights_for(state, checkpoint_task(state, path), str(path))
    encoder = _strip(weights, "encoder.")
    if isinstance(model.encoder.norm, torch.nn.Identity):  # fine-tuning pools without the final norm
        encoder = {k: v for k, v in encoder.items() if not k.startswith("norm.")}
    if not encoder:
        raise CheckpointError(f"{path}: holds no encoder weights (keys like {list(weights)[:3]})")
    saved = saved_config(state)
    try:
        load_into(model.encoder, encoder, str(path))
    except CheckpointError:
        if saved is not None:  # name the config fields that differ: more useful than tensor shapes
            diff = _arch_diff(model_config_from(saved), model.cfg)
            if diff:
                raise CheckpointError(f"{path}: built for another architecture ({diff}); use the preset it was "
                                      f"trained with (--preset) or set these model.* options") from None
        raise
    return saved or {}


def load_encoder(source: str | Path | None, cfg: ModelConfig, seed: int = 0) -> ViTEncoder:
    """The encoder of a checkpoint (architecture from the file when it has a config), or a
    randomly initialised one of ``cfg`` for ``source`` None / 'random'."""
    if source in (None, "", "random"):
        torch.manual_seed(seed)
        return ViTEncoder.from_config(cfg).eval()
    model = load_model(source, cfg)
    if isinstance(model, MILANClassifier):
        raise CheckpointError(f"{source}: a {model.head_type} classifier; give a pretraining checkpoint")
    return model.encoder.eval()


ARCH_FIELDS = ("image_size", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio", "decoder",
               "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "target", "target_dim")


def _arch_diff(saved: ModelConfig, current: EncoderConfig) -> str:
    """'embed_dim 192 in the checkpoint vs 48 here, ...' for the architecture fields that differ
    (those ``current`` has: an encoder's alone for a classifier)."""
    return ", ".join(f"{f} {getattr(saved, f)} in the checkpoint vs {getattr(current, f)} here"
                     for f in ARCH_FIELDS if hasattr(current, f) and getattr(saved, f) != getattr(current, f))


def check_resumable(model, state: dict, path: Path, output_dir: str | Path, saved_cfg: dict | None,
                    current: EncoderConfig | None) -> None:
    """Before resuming: the checkpoint in ``output_dir`` must fit ``model``."""
    comparable = isinstance(current, EncoderConfig) and isinstance((saved_cfg or {}).get("model"), dict)
    diff = _arch_diff(model_config_from(saved_cfg), current) if comparable else ""
    try:
        check_fits(model, state, str(path))
    except CheckpointError as e:
        raise CheckpointError(f"output_dir {output_dir} holds checkpoints of another architecture "
                              f"({diff or str(e).split(': ', 1)[-1]}); use a new output_dir, or resume=false "
                              f"to start over there") from None


def _teacher_for(cfg: ModelConfig, teacher, device):
    if teacher == "none" or teacher is None:
        return None
    if not isinstance(teacher, str):
        check_teacher(cfg, teacher)  # a teacher that does not fit is refused, naming why (never swapped)
        return teacher
    if teacher != "auto":
        raise ConfigError(f"teacher must be 'auto', 'none' or a Teacher, got {teacher!r}")
    if not cfg.needs_teacher:
        return None
    return load_teacher(cfg.teacher, cfg.teacher_pretrained, device=device, input_norm=cfg.teacher_input_norm)


def _fits(cfg: ModelConfig, teacher) -> bool:
    try:
        check_teacher(cfg, teacher)
    except ConfigError:
        return False
    return True


def _strip(weights: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}


def export_timm(checkpoint: str | Path, out: str | Path) -> str:
    """Write ``out`` (``.safetensors``, timm's and the hub's format for weights; ``.pth``/``.pt``
    also work) loadable by ``timm.create_model('vit_base_patch16_224', pretrained=True,
    pretrained_cfg_overlay=dict(file=out), num_classes=0)`` (with the matching timm model for
    other sizes). ``checkpoint``: a milan_lab or mmpretrain file, or a run folder."""
    if Path(out).suffix not in EXPORT_FORMATS:
        raise ConfigError(f"{out}: unsupported export format {Path(out).suffix or '(no extension)'!r}; "
                          f"name the file {' or '.join(EXPORT_FORMATS)}")
    check_writable(out, "export target")
    path, state = read_checkpoint(checkpoint)
    weights = weights_for(state, checkpoint_task(state, path), str(path))
    return str(save_weights(out, encoder_to_timm(weights)))
