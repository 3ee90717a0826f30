"""Reading and writing weight files, safely and with errors a user can act on.

Every file milan-lab reads goes through :func:`read_weights`: ``.safetensors`` through
safetensors, anything else through ``torch.load(weights_only=True)`` (plain tensors and
containers only: a pickle that would run code is refused). Failures become one
:class:`~milan_lab.errors.CheckpointError` line naming the file and what is wrong with it.
Every file milan-lab writes goes through :func:`atomic_write`: a temporary file in the same
folder, fsync, rename, so a killed or failed write never leaves a half file under the real name.
"""
from __future__ import annotations

import errno
import json
import os
import pickle
import pickletools
import shutil
import zipfile
from pathlib import Path
from typing import Callable

import torch

from milan_lab.errors import CheckpointError, DiskFull

SAFETENSORS = (".safetensors",)
_UMASK = os.umask(0)
os.umask(_UMASK)


def read_weights(path: str | Path, allow_torchscript: bool = False) -> dict:
    """The dict stored in ``path`` (a checkpoint or a state dict), loaded on CPU.

    ``allow_torchscript``: a TorchScript archive (OpenAI's CLIP release) is read with
    ``torch.jit.load`` and its state dict returned; otherwise it is refused like any non-weights file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty (0 bytes); it is not a checkpoint")
    if path.suffix in SAFETENSORS:
        from safetensors import SafetensorError, safe_open
        from safetensors.torch import load_file
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{path}: truncated or not a safetensors file ({_first_line(e)})") from None
        # milan_lab keeps a model's config in the metadata, so the file alone rebuilds the model
        return {"model": tensors, "config": json.loads(meta["config"])} if "config" in meta else tensors
    if allow_torchscript and is_torchscript(path):
        try:
            return torch.jit.load(str(path), map_location="cpu").state_dict()
        except RuntimeError as e:
            raise CheckpointError(f"{path}: a damaged TorchScript archive ({_first_line(e)})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if _imports_objects(path):
            raise CheckpointError(
                f"{path}: holds Python objects besides tensors and plain data; refused for safety "
                f"(milan-lab loads only plain-tensor checkpoints; re-save its state dict, or use a .safetensors file)") from None
        raise CheckpointError(f"{path}: not a checkpoint, or truncated (unreadable pickle data)") from None
    except (EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: truncated or not a checkpoint ({type(e).__name__})") from None
    except RuntimeError as e:
        if is_torchscript(path):
            raise CheckpointError(f"{path}: a TorchScript archive, not a state dict; only teacher files may be "
                                  f"TorchScript (load_teacher(pretrained=...))") from None
        raise CheckpointError(f"{path}: truncated or not a checkpoint ({_first_line(e)})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a dict of weights")
    return state


def state_dict_of(state: dict) -> dict:
    """The weights inside a checkpoint dict (``state_dict`` / ``model`` entries) or the dict itself."""
    for key in ("state_dict", "model"):
        if isinstance(state.get(key), dict):
            return state[key]
    return state


def check_fits(module: torch.nn.Module, state: dict, source: str, ignore_prefix: str | tuple = "teacher.") -> None:
    """Fail with one line, before loading, if ``state`` does not fit ``module``: differing shapes
    (another architecture) or missing / unexpected tensors (another model or an incomplete file)."""
    own = {k: v for k, v in module.state_dict().items() if not k.startswith(ignore_prefix)}
    shapes = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own and not k.startswith(ignore_prefix)]
    if shapes:
        brief = "; ".join(f"{k} {list(a)} in the file vs {list(b)} here" for k, a, b in shapes[:3])
        raise CheckpointError(f"{source}: built for another architecture ({len(shapes)} tensors differ in shape: "
                              f"{brief}{'; ...' if len(shapes) > 3 else ''})")
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({', '.join(unexpected[:4])}"
                         f"{', ...' if len(unexpected) > 4 else ''})")
        raise CheckpointError(f"{source}: does not fit {type(module).__name__}: tensors {' and '.join(parts)}")


def load_into(module: torch.nn.Module, state: dict, source: str, ignore_prefix: str | tuple = "teacher.") -> None:
    """``check_fits`` then ``load_state_dict``; floating tensors are cast to the module's dtype
    (released files are often fp16)."""
    check_fits(module, state, source, ignore_prefix)
    own = module.state_dict()
    module.load_state_dict({k: v.to(own[k].dtype) if v.is_floating_point() else v for k, v in state.items()},
                           strict=False)


def tensor_bytes(obj) -> int:
    """Bytes of all tensors in a nested structure (what a checkpoint write needs, roughly)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def atomic_write(path: str | Path, write: Callable[[Path], None], nbytes: int = 0) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, make it durable, then rename it
    over ``path``. On any failure the temporary file is removed. A full disk becomes
    :class:`DiskFull` naming the space needed: refused before writing when ``nbytes`` (the
    tensors' size) exceeds the free space, and after a failed write whenever the disk has no room
    left for the rest of the file, whatever error the writer raised (torch's zip writer reports a
    full disk as "unexpected pos", safetensors as an I/O error)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(path.parent).free
    if nbytes > free:
        raise DiskFull(_disk_full_message(path, nbytes, free, "nothing was written"))
    tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)  # as a plain open() would create it (some writers use 0600)
        with open(tmp, "rb") as f:  # make the bytes durable before the rename publishes them
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        full = _is_disk_full(e, tmp, nbytes)
        written = tmp.stat().st_size if full and tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        if full:  # the free space the write left, before the partial file was removed
            free = shutil.disk_usage(path.parent).free - written
            raise DiskFull(_disk_full_message(path, max(nbytes, written), max(free, 0), "the partial file was removed")) from None
        raise
    return path


def _disk_full_message(path: Path, nbytes: int, free: int, what: str) -> str:
    return (f"no space left on device while writing {path} (at least {nbytes / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free); "
            f"{what}, earlier files are intact")


def save_weights(path: str | Path, state: dict, config: dict | None = None) -> Path:
    """A flat dict of tensors, as ``.safetensors`` when the name says so (``config`` in its
    metadata), else ``torch.save`` (``{"model": state, "config": config}`` when a config is given)."""
    path = Path(path)
    state = {k: v.contiguous() for k, v in state.items()}
    if path.suffix in SAFETENSORS:
        from safetensors.torch import save_file
        meta = {"config": json.dumps(config)} if config is not None else None
        return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta), tensor_bytes(state))
    obj = {"model": state, "config": config} if config is not None else state
    return atomic_write(path, lambda tmp: torch.save(obj, tmp), tensor_bytes(state))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete ``.*.tmp`` files a killed write left in ``folder``; returns what was removed."""
    folder = Path(folder)
    stale = [p for p in folder.glob(".*.tmp") if p.is_file()] if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _is_disk_full(e: BaseException, tmp: Path, nbytes: int) -> bool:
    """Whether a failed write ran out of space: the error says so, or (any I/O-ish error) the
    disk holding the partial file ``tmp`` has no room left for the rest of the ``nbytes``."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(e)
    if "file write failed" in text or "No space left" in text:  # torch's and safetensors' writers
        return True
    if isinstance(e, (KeyboardInterrupt, SystemExit)):
        return False
    try:
        written = tmp.stat().st_size if tmp.exists() else 0
        return shutil.disk_usage(tmp.parent).free < max(nbytes - written, 0) + _SLACK
    except OSError:
        return False


_SLACK = 1 << 20  # what a writer's headers and metadata may need beyond the tensors' bytes


def _imports_objects(path: Path) -> bool:
    """Whether the file is a well-formed pickle that imports Python objects (what torch's
    weights_only loader refuses), as opposed to bytes that are no pickle at all."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
        else:
            data = path.read_bytes()
        ops = {op.name for op, _, _ in pickletools.genops(data)}
    except Exception:  # not a pickle: any parse failure means the bytes are something else
        return False
    return bool(ops & {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"})


def is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
