"""``torch.compile`` for the training loop, and the one warning of a run that falls back to eager.

A run with ``compile=true`` compiles its model where it can and otherwise trains eagerly, as a run
without it would, after one warning line: :func:`compiled` catches what fails up front (torch.compile
missing or refusing, no C++ compiler for inductor on CPU), and
:meth:`Trainer.fit <milan_lab.engine.trainer.Trainer.fit>` catches what fails in the first compiled step.
"""
from __future__ import annotations

import torch


def compiled(module: torch.nn.Module, device: torch.device | None = None) -> torch.nn.Module:
    """``torch.compile(module)``, or ``module`` itself with one warning line when compilation is not
    possible here: torch.compile missing or refusing, or (on CPU) no working C++ compiler for inductor,
    checked up front as inductor itself looks for one (``$CXX``, else g++), because inductor compiles
    lazily, inside the first step, after dynamo has traced the whole model. Whatever fails later, in the
    first compiled step, is caught by :meth:`~milan_lab.engine.trainer.Trainer.fit`, which takes that step again eagerly."""
    try:
        if device is not None and device.type == "cpu" and (get_cpp_compiler := _cpp_compiler_check()):
            get_cpp_compiler()  # runs "$CXX --version"; raises InvalidCxxCompiler when there is none
        return torch.compile(module)
    except Exception as e:  # noqa: BLE001 -- any failure to set up compilation means: run eagerly
        eager_warning("torch.compile is not available here", e)
        return module


def _cpp_compiler_check():
    """inductor's own search for a C++ compiler, or None when this torch has it elsewhere: the module is
    private and moves between releases, and a missing check is no missing compiler (the first step's
    fallback in :meth:`~milan_lab.engine.trainer.Trainer.fit` still catches a compile that fails)."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:
        return None
    return get_cpp_compiler


def eager_warning(what: str, error: BaseException) -> None:
    """The one warning of a run that asked for compile=true and runs eagerly: ``what`` and the error's first line."""
    import warnings
    first = (str(error).strip().splitlines() or [""])[0][:200]
    warnings.warn(f"compile=true: {what} ({type(error).__name__}: {first}); running eagerly", RuntimeWarning,
                  stacklevel=3)
