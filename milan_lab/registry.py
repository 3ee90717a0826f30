"""Registries of the choices a config names: mask samplers, decoders, reconstruction targets.

A choice of your own is registered with a one-line help and its flags (a sampler says whether it
needs the teacher's attention)::

    from milan_lab.models.masking import register_sampler

    @register_sampler("checkerboard", needs_teacher=False, help="every other patch")
    def checkerboard(n, num_patches, mask_ratio, importance, device, generator): ...

and from then on the config accepts ``sampler=checkerboard``, ``needs_teacher`` reads its flag,
``--help`` and the notebooks' parameter checks list it, the app offers it and pretraining runs it.
A registry is a read-only mapping: iterating it gives the names in display order (the built-ins'
declared order, then the registered ones), ``REG[name]`` the :class:`Entry` (callable as the
function or class it holds, with ``help`` and the flags as attributes).

Where the registries sit, and why. The config (this layer's neighbour) checks a choice before
any work, yet the choices are implemented in ``milan_lab.models``, above it: the config may not
import models (``[tool.importlinter]`` in pyproject.toml). So the registries themselves live here,
in a bottom-layer module that imports nothing of the package but the errors, and the built-in
choices are declared here too, statically (:data:`BUILTIN_SAMPLERS`, ...): name, help line, flags
and the implementation as ``"module:function"`` (as an entry point names it). Reading names and
flags (the config's check, ``needs_teacher``, ``--help``) therefore imports nothing: a typo is one
line in a fraction of a second, not after torch, timm and open_clip. The implementation is
imported the first time it is used (``entry.fn`` or calling the entry); the home module binds its
functions to the declared entries (:meth:`Registry.bind`, which checks that the declaration
names that very function). A user's :meth:`Registry.register` imports the home module first, so
user choices come after the built-ins and a name colliding with one is refused at that call.
Nothing below models ever runs models' code through a registry (a sampler's function is called
by ``models.masking.sample_mask``).

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


PREDICTS = ("features", "pixels")  # what a target's decoder predicts: the teacher's features, or patches of pixels


class Entry:
    """One choice: ``name``, ``fn`` (the function or class), ``help`` (one line) and its flags as
    attributes (``entry.needs_teacher``). Calling the entry calls ``fn``. A built-in entry is
    declared with ``impl`` ("module:function") instead of ``fn``; the function is imported the
    first time ``fn`` is read, so that its names and flags cost nothing to read."""

    def __init__(self, name: str, fn: Callable | None, help: str, flags: dict[str, Any], impl: str | None = None):
        self.name, self._fn, self.help, self.flags, self.impl = name, fn, help, dict(flags), impl

    @property
    def fn(self) -> Callable:
        if self._fn is None:
            self._fn = _resolve(self.impl)
        return self._fn

    def __getattr__(self, flag: str):
        flags = self.__dict__.get("flags", {})
        if flag in flags:
            return flags[flag]
        raise AttributeError(f"{type(self).__name__} {self.__dict__.get('name')!r} has no flag {flag!r}")

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        what = self.impl if self._fn is None else getattr(self._fn, "__name__", self._fn)
        return f"Entry({self.name!r}, {what!r}, flags={self.flags})"


def builtin(name: str, impl: str, help: str, **flags) -> Entry:
    """A built-in choice declared statically: ``impl`` is "module:function", imported when first used."""
    return Entry(name, None, help, flags, impl)


def _impl_name(fn: Callable) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


def _resolve(impl: str) -> Callable:
    """The object "module:function" names; importing the module binds it (see :meth:`Registry.bind`)."""
    module, _, attr = impl.partition(":")
    obj = importlib.import_module(module)
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        # a bug (the declaration and the code disagree), not a user error; and not an AttributeError,
        # which Entry.__getattr__ would turn into "has no flag 'fn'"
        raise ImportError(f"{impl!r}: {module} has no {attr!r}") from None
    return obj


class Registry(Mapping):
    """name -> :class:`Entry`; ``kind`` names a choice in messages ("sampler"), ``flags`` are the
    flags every entry must state, ``home`` the module that implements the built-ins, ``builtins``
    their static declarations (:func:`builtin`), in display order. Reading names, helps and flags
    imports nothing; a registry with a home but no declarations imports it on the first read."""

    def __init__(self, kind: str, home: str | None = None, flags: tuple[str, ...] = (), builtins: tuple[Entry, ...] = ()):
        self.kind, self.home, self.required = kind, home, tuple(flags)
        self._entries: dict[str, Entry] = {}
        self._loaded = home is None
        self._declared = bool(builtins) or home is None  # names and flags are known without importing home
        for entry in builtins:
            self._check(entry.name, entry.help, entry.flags)
            if entry.name in self._entries:
                raise ValueError(f"{kind} {entry.name!r} is declared twice")
            self._entries[entry.name] = entry

    def _check(self, name: str, help: str, flags: dict) -> None:
        if not isinstance(name, str) or not name or not name.strip() == name:
            raise ValueError(f"a {self.kind} name must be a non-empty string without surrounding spaces, got {name!r}")
        missing = [f for f in self.required if f not in flags]
        if missing:
            raise TypeError(f"register {self.kind} {name!r}: say {', '.join(f'{f}=...' for f in missing)}")
        if not help or "\n" in help:
            raise ValueError(f"register {self.kind} {name!r}: help must be one line")

    def register(self, name: str, *, help: str, **flags) -> Callable:
        """Decorator: register the decorated function (or class) under ``name``; returns it unchanged.
        The home module is imported first, so that the built-ins come first and a name registered
        twice (a built-in's included) is refused here: a second definition would silently replace the first."""
        self._load()
        self._check(name, help, flags)

        def add(fn: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered ({self._entries[name]!r})")
            self._entries[name] = Entry(name, fn, help, flags)
            return fn
        return add

    def bind(self, name: str) -> Callable:
        """Decorator for the home module: the decorated function implements the declared built-in
        ``name``; the declaration must name it ("module:function"), so the two cannot drift apart."""
        entry = self._entries.get(name)
        if entry is None or entry.impl is None:
            raise ValueError(f"{self.kind} {name!r} is not a declared built-in (see milan_lab.registry)")

        def add(fn: Callable) -> Callable:
            if _impl_name(fn) != entry.impl:
                raise ValueError(f"{self.kind} {name!r} is declared as {entry.impl!r}, not {_impl_name(fn)!r}")
            entry._fn = fn
            return fn
        return add

    def unregister(self, name: str) -> Entry:
        """Remove ``name`` (a choice registered for a while, as a test does); returns its entry."""
        return self._entries.pop(name)

    def __delitem__(self, name: str) -> None:
        """``del REG[name]``: :meth:`unregister` (the one way to change a registry besides registering)."""
        self.unregister(name)

    def lookup(self, name: str, key: str | None = None) -> Entry:
        """The entry for ``name``, or one :class:`ConfigError` line naming the option ``key`` (or the
        kind), the bad value, the choices and the closest one."""
        self._read()
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        what = f"bad value for {key!r}: {name!r}" if key else f"unknown {self.kind} {name!r}"
        raise ConfigError(f"{what}; expected one of {tuple(self._entries)}{hint}")

    def help_lines(self) -> list[str]:
        """``name: help`` for every entry, in display order."""
        return [f"{e.name}: {e.help}" for e in self.values()]

    def _read(self) -> None:
        # Declared built-ins are read without their home: a user's choice exists only after its
        # register call, which imported the home already, so a name missing now is missing.
        if not self._declared:
            self._load()

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # first: the home module may read its own registry while it is imported
            try:
                importlib.import_module(self.home)
            except BaseException:
                self._loaded = False  # an import that failed leaves no half-filled registry to be read as complete
                raise

    def __getitem__(self, name: str) -> Entry:
        self._read()
        return self._entries[name]

    def __contains__(self, name) -> bool:
        self._read()
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._read()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._read()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self)})"


# The built-in choices, in display order (MILAN's first, then MAE's, then the teaching extremes).
# Their helps and flags are here, beside the registries, so that reading them imports nothing;
# the functions live in the home modules, which bind them (``@SAMPLERS.bind("semantic")``).
_MASKING, _LOSSES, _DECODERS = "milan_lab.models.masking", "milan_lab.models.losses", "milan_lab.models.decoders"
BUILTIN_SAMPLERS = (
    builtin("semantic", f"{_MASKING}:_semantic", needs_teacher=True,
            help="MILAN: the patch order drawn without replacement, weighted by the teacher's attention"),
    builtin("random", f"{_MASKING}:_random", needs_teacher=False, help="MAE: a uniformly random patch order (no teacher)"),
    builtin("topk", f"{_MASKING}:_topk", needs_teacher=True,
            help="keeps the most attended patches, deterministically (for teaching: it hides all context)"),
    builtin("inverse", f"{_MASKING}:_inverse", needs_teacher=True,
            help="keeps the least attended patches, deterministically (for teaching: it hides the object)"),
)
BUILTIN_DECODERS = (
    builtin("prompting", f"{_DECODERS}:PromptingDecoder",
            help="MILAN: visible tokens are fixed prompts; only the mask tokens pass through the blocks"),
    builtin("mae", f"{_DECODERS}:MAEDecoder",
            help="MAE: visible and mask tokens alike pass through standard transformer blocks"),
)
BUILTIN_TARGETS = (
    builtin("clip", f"{_LOSSES}:clip_target_loss", needs_teacher=True, predicts="features",
            out_dim=lambda cfg: cfg.target_dim,
            help="MILAN: the teacher's features of every token, 2 - 2·cos (loss_on picks the tokens)"),
    builtin("pixels", f"{_LOSSES}:pixel_target_loss", needs_teacher=False, predicts="pixels",
            out_dim=lambda cfg: cfg.patch_size ** 2 * 3,
            help="MAE: the removed patches' pixels, mean squared error (norm_pix_loss: per-patch normalised)"),
)

# The registries (each re-exported by its home module: ``milan_lab.models.masking.SAMPLERS``).
SAMPLERS = Registry("sampler", _MASKING, flags=("needs_teacher",), builtins=BUILTIN_SAMPLERS)
DECODERS = Registry("decoder", _DECODERS, builtins=BUILTIN_DECODERS)
TARGETS = Registry("target", _LOSSES, flags=("needs_teacher", "out_dim", "predicts"), builtins=BUILTIN_TARGETS)
