"""Registries of the choices a config names: mask samplers, decoders, reconstruction targets.

Each choice is registered by the module that implements it, with a one-line help and its flags
(a sampler says whether it needs the teacher's attention)::

    from milan_lab.models.masking import register_sampler

    @register_sampler("checkerboard", needs_teacher=False, help="every other patch")
    def checkerboard(n, num_patches, mask_ratio, importance, device, generator): ...

and from then on the config accepts ``sampler=checkerboard``, ``needs_teacher`` reads its flag,
``--help`` and the notebooks' parameter checks list it, the app offers it and pretraining runs it.
A registry is a read-only mapping: iterating it gives the names in display order (the order of
registration, the implementing module's first), ``REG[name]`` the :class:`Entry` (callable as the
function or class it holds, with ``help`` and the flags as attributes).

Where the registries sit, and why. The config (this layer's neighbour) checks a choice before
any work, yet the choices are implemented in ``milan_lab.models``, above it: the config may not
import models (``[tool.importlinter]`` in pyproject.toml). So the registries themselves live here,
in a bottom-layer module that imports nothing of the package but the errors; the models import
them and register into them; the config reads names and flags only, never the choices' code.
Each registry knows the name of its home module (as an entry point names a module) and imports
it the first time it is read, so that the built-in choices are there whoever reads first: the
one dependency upward is a module name resolved at run time, and nothing below models ever runs
models' code through it (a sampler's function is called by ``models.masking.sample_mask``). The
cost is that the first read imports that module (torch, and timm for the decoders).

Written by hand rather than with timm's ``register_model``: timm's registry is for models (it
keeps pretrained tags, architecture names and module filters, and its entries are model
constructors); ours holds a function, a help line and a few flags, in a few lines.
"""
from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from milan_lab.errors import ConfigError


class Entry:
    """One registered choice: ``name``, ``fn`` (the function or class), ``help`` (one line) and
    its flags as attributes (``entry.needs_teacher``). Calling the entry calls ``fn``."""

    def __init__(self, name: str, fn: Callable, help: str, flags: dict[str, Any]):
        self.name, self.fn, self.help, self.flags = name, fn, help, dict(flags)

    def __getattr__(self, flag: str):
        flags = self.__dict__.get("flags", {})
        if flag in flags:
            return flags[flag]
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('name')!r} has no flag {flag!r}")

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, {getattr(self.fn, '__name__', self.fn)!r}, flags={self.flags})"


class Registry(Mapping):
    """name -> :class:`Entry`, filled by :meth:`register`; ``kind`` names a choice in messages
    ("sampler"), ``flags`` are the flags every entry must state, ``home`` the module that
    registers the built-in entries (imported on the first read)."""

    def __init__(self, kind: str, home: str | None = None, flags: tuple[str, ...] = ()):
        self.kind, self.home, self.required = kind, home, tuple(flags)
        self._entries: dict[str, Entry] = {}
        self._loaded = home is None

    def register(self, name: str, *, help: str, **flags) -> Callable:
        """Decorator: register the decorated function (or class) under ``name``; returns it unchanged.
        A name registered twice is refused (a second definition would silently replace the first)."""
        if not isinstance(name, str) or not name or not name.strip() == name:
            raise ValueError(f"a {self.kind} name must be a non-empty string without surrounding spaces, got {name!r}")
        missing = [f for f in self.required if f not in flags]
        if missing:
            raise TypeError(f"register {self.kind} {name!r}: say {', '.join(f'{f}=...' for f in missing)}")
        if not help or "\n" in help:
            raise ValueError(f"register {self.kind} {name!r}: help must be one line")

        def add(fn: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name].fn!r})")
            self._entries[name] = Entry(name, fn, help, flags)
            return fn
        return add

    def unregister(self, name: str) -> Entry:
        """Remove ``name`` (a choice registered for a while, as a test does); returns its entry."""
        return self._entries.pop(name)

    def lookup(self, name: str, key: str | None = None) -> Entry:
        """The entry for ``name``, or one :class:`ConfigError` line naming the option ``key`` (or the
        kind), the bad value, the choices and the closest one."""
        self._load()
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        what = f"bad value for {key!r}: {name!r}" if key else f"unknown {self.kind} {name!r}"
        raise ConfigError(f"{what}; expected one of {tuple(self._entries)}{hint}")

    def help_lines(self) -> list[str]:
        """``name: help`` for every entry, in display order."""
        return [f"{e.name}: {e.help}" for e in self.values()]

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # first: the home module may read its own registry while it is imported
            try:
                importlib.import_module(self.home)
            except BaseException:
                self._loaded = False  # an import that failed leaves no half-filled registry to be read as complete
                raise

    def __getitem__(self, name: str) -> Entry:
        self._load()
        return self._entries[name]

    def __contains__(self, name) -> bool:
        self._load()
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self)})"


# The registries, each filled by the module named (which re-exports it: ``milan_lab.models.masking.SAMPLERS``).
SAMPLERS = Registry("sampler", "milan_lab.models.masking", flags=("needs_teacher",))
DECODERS = Registry("decoder", "milan_lab.models.decoders")
TARGETS = Registry("target", "milan_lab.models.losses", flags=("needs_teacher", "out_dim"))
