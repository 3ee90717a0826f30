"""Where a command will write, checked before it does any work.

A measurement of minutes (or a study of hours) must not end in a traceback because its record
cannot be written: every output path (``--record``, ``--out``, an export target, a run's
``output_dir``) goes through :func:`check_writable` when the command starts, and a path that
cannot be written is one :class:`~milan_lab.errors.OutputError` line naming it and why.

Nothing is created: a missing folder is judged by the nearest folder that exists. Whether that
folder takes new files is found by creating (and removing) a temporary file in it, not by
``os.access``: a root process passes every permission check, but not a read-only file system or
a kernel file system such as ``/sys``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from milan_lab.errors import OutputError


def check_writable(path: str | Path, what: str | None = None, folder: bool = False) -> Path:
    """``path`` as a Path if a file (``folder=False``) or a folder (``folder=True``) can be written
    there; else an :class:`OutputError` "WHAT PATH: reason" (a folder where a file goes or the
    reverse, a file on the way, a folder that takes no new files, a file that cannot be opened
    for writing). Nothing is left behind."""
    path = Path(path)
    name = f"{what} {path}" if what else str(path)
    if path.exists():
        if folder:
            if not path.is_dir():
                raise OutputError(f"{name}: is a file, not a folder; give a folder")
            _probe(path, name)
            return path
        if path.is_dir():
            raise OutputError(f"{name}: is a folder; give a file name (e.g. {path / 'record.json'})")
        if not path.is_file():  # /dev/null, a pipe: a rename over it would replace the device
            raise OutputError(f"{name}: is not a regular file")
        _probe(path.parent, name)
        try:  # a file the user made read-only is not replaced
            with open(path, "ab"):
                pass
        except OSError as e:
            raise OutputError(f"{name}: cannot be written ({e.strerror or type(e).__name__})") from None
        return path
    parent = _nearest_existing(path)
    if not parent.is_dir():
        raise OutputError(f"{name}: cannot be created: {parent} is a file, not a folder")
    _probe(parent, name)
    return path


def _nearest_existing(path: Path) -> Path:
    """The closest of ``path``'s ancestors that exists (the folders between would be created)."""
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path(path.absolute().anchor)


def _probe(folder: Path, name: str) -> None:
    """Create and remove a temporary file in ``folder``: what atomic_write (and a mkdir) will do."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".milan-lab-probe-")
    except OSError as e:
        raise OutputError(f"{name}: cannot write in {folder} ({e.strerror or type(e).__name__})") from None
    os.close(fd)
    os.unlink(tmp)
