"""Errors meant for the user: each message is one line that names the problem and what to do.

The CLI prints them without a traceback and exits with code 2; the API raises them as they are,
so a script can catch :class:`MilanLabError` (or the more specific type) and nothing else.
"""
from __future__ import annotations


class MilanLabError(Exception):
    """Base class of every error whose message is written for the user."""

    def _render_traceback_(self) -> list[str]:
        # IPython (and so a notebook run by papermill) shows this instead of a traceback
        return [f"{type(self).__name__}: {self}"]


class CheckpointError(MilanLabError, ValueError):
    """A weights or checkpoint file that cannot be used: missing, empty, truncated, not a
    checkpoint, unsafe (refused), or built for another architecture."""


class ConfigError(MilanLabError, ValueError):
    """A bad option: unknown or ambiguous key, a value of the wrong type or out of range."""


class TrainingDiverged(MilanLabError, FloatingPointError):
    """The loss became NaN or infinite."""


class DiskFull(MilanLabError, OSError):
    """No space left while writing a file; the partial file was removed."""


class OutputError(MilanLabError, OSError):
    """An output path (``--record``, ``--out``, an export target, ``output_dir``) that cannot be
    written: a folder where a file goes, a file on the way, a read-only place. Checked before
    any work, so no result is computed only to be lost."""


class DataError(MilanLabError, ValueError):
    """A dataset folder that cannot be used as it is: wrong layout, a missing split or file, an
    annotation that does not match its image."""


class BadImage(MilanLabError, ValueError):
    """An image that cannot be read or used."""


class DownloadError(MilanLabError, RuntimeError):
    """Weights that must be downloaded could not be (offline, or the network failed).

    ``option`` names the argument that takes a local file instead (``pretrained``): the message
    ends "pass the local file as pretrained=PATH", and :meth:`naming` spells it as a CLI flag."""

    def __init__(self, problem: str, option: str | None = None):
        self.problem, self.option = problem, option
        super().__init__(self.naming(f"{option}=PATH") if option else problem)

    def naming(self, usage: str) -> str:
        """The message with the local-file alternative written as ``usage`` ("--teacher-pretrained PATH")."""
        return f"{self.problem}; pass the local file as {usage}" if self.option else self.problem


class DataWarning(UserWarning):
    """A result computed on data with a caveat the user must see (pixels left out of a score)."""
