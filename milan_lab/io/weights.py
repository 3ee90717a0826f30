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
import warnings
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

    The format is read off the file's first bytes (:func:`sniff_format`), not its name; a file
    that is no weights file at all is refused before any parser sees it, naming what it looks
    like (a CSV file, a PNG image, random bytes). Any failure of the parser itself becomes a
    :class:`CheckpointError` too: a damaged file makes a parser fail in many ways.

    ``allow_torchscript``: a TorchScript archive (OpenAI's CLIP release) is read with
    ``torch.jit.load`` and its state dict returned; otherwise it is refused like any non-weights file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file" + (" (it is a folder)" if path.is_dir() else ""))
    kind = sniff_format(path)
    if kind not in WEIGHT_FORMATS:
        raise CheckpointError(f"{path}: {kind}")
    if kind == "safetensors":
        return _parsed(path, kind, lambda: _read_safetensors(path))
    if allow_torchscript and is_torchscript(path):
        return _parsed(path, "TorchScript archive", lambda: torch.jit.load(str(path), map_location="cpu").state_dict())
    state = _parsed(path, kind, lambda: _torch_load(path), _explain_refusal)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a dict of weights")
    return state


WEIGHT_FORMATS = ("safetensors", "torch zip", "pickle")
_MAX_SAFETENSORS_HEADER = 100_000_000  # safetensors' own limit on the JSON header
# magic numbers of files people pass by mistake (outputs next to checkpoints, images, archives)
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"\x1f\x8b", "a gzip archive"), (b"\x93NUMPY", "a NumPy .npy array"),
          (b"\x89HDF", "an HDF5 file"), (b"%PDF", "a PDF document"), (b"7z\xbc\xaf", "a 7-Zip archive"))


def sniff_format(path: Path) -> str:
    """What the file holds, from its first bytes: one of :data:`WEIGHT_FORMATS` ("safetensors":
    an 8-byte little-endian header length then JSON; "torch zip": a zip archive, what
    ``torch.save`` writes; "pickle": a pickle of protocol 2-5, torch's legacy format), or else a
    short phrase for the message, such as "not a checkpoint (a CSV text file)"."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty (0 bytes); it is not a checkpoint"
    with open(path, "rb") as f:
        head = f.read(4096)
    header_len = int.from_bytes(head[:8], "little") if len(head) > 8 else None
    # safetensors first: a header of 640, 896, 1152 or 1408 bytes (mod 65536) begins with the
    # bytes of a pickle's protocol mark (80 02..80 05), so the length must be checked against the file
    if header_len is not None and head[8:9] == b"{" and 8 + header_len <= size and header_len < _MAX_SAFETENSORS_HEADER:
        return "safetensors"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "torch zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if header_len is not None and head[8:9] == b"{" and header_len < _MAX_SAFETENSORS_HEADER:
        return "safetensors"  # its header runs past the end (truncated): its parser says so
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "not a checkpoint (a WebP image)"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return f"not a checkpoint ({what})"
    text = _as_text(head)
    if text is not None:
        return f"not a checkpoint ({_text_kind(text)})"
    return "not a checkpoint (unreadable: random bytes?)"


def _as_text(head: bytes) -> str | None:
    """``head`` decoded as UTF-8 when it reads as text (printable, no NUL bytes), else None."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # only a character cut at the end of the 4096 bytes is forgiven
            return None
        text = head[:e.start].decode("utf-8")
    printable = sum(c.isprintable() or c in "\n\r\t" for c in text)
    return text if text and printable >= 0.95 * len(text) else None


def _text_kind(text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return "a JSON text file"
    lines = [ln for ln in stripped.splitlines() if ln.strip()][:5]
    if len(lines) >= 2 and all(ln.count(",") == lines[0].count(",") > 0 for ln in lines[:-1]):
        return "a CSV text file"
    return "a text file"


_DAMAGED = {"torch zip": "truncated or not a checkpoint (a damaged torch.save zip archive: {})",
            "pickle": "not a checkpoint, or truncated (unreadable pickle data: {})",
            "safetensors": "truncated or not a safetensors file ({})"}


def _parsed(path: Path, kind: str, parse: Callable[[], object], explain: Callable[[Path, Exception], str | None] | None = None):
    """``parse()``, with any failure of the parser turned into one CheckpointError naming the file
    (``explain(path, error)`` may give a more precise message than the format's own).

    Only the parsing call is wrapped, so a bug in the code that uses the result stays a traceback.
    The unpicklers and the zip reader fail on damaged bytes with almost any exception (IndexError,
    KeyError, UnicodeDecodeError, ...), hence the broad catch; a MemoryError is no damage and passes."""
    try:
        return parse()
    except MemoryError:
        raise
    except Exception as e:
        # torch's unpickling message is a page of advice about weights_only=False: the wrong advice here
        detail = "damaged, or not plain data" if isinstance(e, pickle.UnpicklingError) else _first_line(e)
        message = (explain(path, e) if explain else None) or _DAMAGED.get(kind, f"a damaged {kind} ({{}})").format(detail)
        raise CheckpointError(f"{path}: {message}") from None


def _explain_refusal(path: Path, e: Exception) -> str | None:
    """Why torch's weights_only loader refused a well-formed file: it imports Python objects, or
    it is TorchScript; None when the bytes are merely damaged."""
    if isinstance(e, pickle.UnpicklingError) and _imports_objects(path):
        return ("holds Python objects besides tensors and plain data; refused for safety (milan-lab loads only "
                "plain-tensor checkpoints; re-save its state dict, or use a .safetensors file)")
    if isinstance(e, RuntimeError) and is_torchscript(path):
        return "a TorchScript archive, not a state dict; only teacher files may be TorchScript (load_teacher(pretrained=...))"
    return None


def _torch_load(path: Path):
    with warnings.catch_warnings():
        # torch warns about any pickle protocol but 2 (plain pickle.dump writes 4 or 5): noise beside our
        # one-line error for a damaged file, and nothing to act on for a good one
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def _read_safetensors(path: Path) -> dict:
    from safetensors import safe_open
    from safetensors.torch import load_file
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    tensors = load_file(str(path))
    # milan_lab keeps a model's config (and its task) in the metadata, so the file alone rebuilds the model
    if "config" not in meta:
        return tensors
    return {"model": tensors, "config": json.loads(meta["config"]), **({"task": meta["task"]} if "task" in meta else {})}


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
        _fsync_folder(path.parent)  # make the rename itself durable: a crash now keeps the new file, not the old
    except BaseException as e:
        full = _is_disk_full(e, tmp, nbytes)
        written = tmp.stat().st_size if full and tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        if full:  # the free space the write left, before the partial file was removed
            free = shutil.disk_usage(path.parent).free - written
            raise DiskFull(_disk_full_message(path, max(nbytes, written), max(free, 0), "the partial file was removed")) from None
        raise
    return path


def _fsync_folder(folder: Path) -> None:
    """fsync a directory, which records a rename in it (POSIX); a no-op where directories cannot be
    opened (Windows has no ``os.O_DIRECTORY``)."""
    flag = getattr(os, "O_DIRECTORY", None)
    if flag is None:
        return
    fd = os.open(folder, os.O_RDONLY | flag)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_full_message(path: Path, nbytes: int, free: int, what: str) -> str:
    return (f"no space left on device while writing {path} (at least {nbytes / 1e6:.1f} MB needed, {free / 1e6:.1f} MB free); "
            f"{what}, earlier files are intact")


def save_weights(path: str | Path, state: dict, config: dict | None = None, task: str | None = None) -> Path:
    """A flat dict of tensors, as ``.safetensors`` when the name says so (``config`` and ``task`` in its
    metadata), else ``torch.save`` (``{"model": state, "config": config, "task": task}`` when a config
    is given). ``task``: the model's ("pretrain", "finetune", "linear"), which ``factory.load_model``
    reads back; it is stored only beside a config."""
    path = Path(path)
    state = {k: v.contiguous() for k, v in state.items()}
    extra = {"task": task} if task is not None and config is not None else {}
    if path.suffix in SAFETENSORS:
        from safetensors.torch import save_file
        meta = {"config": json.dumps(config), **extra} if config is not None else None
        return atomic_write(path, lambda tmp: save_file(state, str(tmp), metadata=meta), tensor_bytes(state))
    obj = {"model": state, "config": config, **extra} if config is not None else state
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
