"""One config field's declaration and the walk that checks it: a field's type, range or choices and
one-line help sit in the field itself (:func:`option`, read back with :func:`option_of`); :func:`check_fields`
refuses a value outside them in one line naming the key. The configs (``schema``) declare their fields with
it; ``--help`` (``presets.describe``) and the notebooks' parameter checks read the same declarations.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from milan_lab.errors import ConfigError
from milan_lab.registry import Registry


# --- one field's declaration --------------------------------------------------------------------------
@dataclass
class Option:
    """What a config field admits besides its type: bounds (``gt``/``ge`` below, ``lt``/``le`` above, any of
    them None) or ``choices`` (a tuple, or a registry whose names are read when checked), and a one-line
    ``help`` for ``--help``. None, for a field typed ``X | None``, always passes (it means "not set");
    :func:`check_fields` refuses it for any other field."""
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    choices: Any = None
    help: str = ""

    def admits(self, value) -> bool:
        """Whether ``value`` (a number) lies within the bounds."""
        return not ((self.gt is not None and value <= self.gt) or (self.ge is not None and value < self.ge)
                    or (self.lt is not None and value >= self.lt) or (self.le is not None and value > self.le))

    @property
    def bounded(self) -> bool:
        return any(b is not None for b in (self.gt, self.ge, self.lt, self.le))

    def range_text(self) -> str:
        """The bounds as an error and ``--help`` say them: "positive", "at least -1", "in [0, 1)"; "" if none."""
        low = self.gt if self.gt is not None else self.ge
        high = self.lt if self.lt is not None else self.le
        if low is not None and high is not None:
            return f"in {'(' if self.gt is not None else '['}{_bound(low)}, {_bound(high)}{')' if self.lt is not None else ']'}"
        if low is not None:
            return "positive" if self.gt == 0 else f"above {_bound(low)}" if self.gt is not None else f"at least {_bound(low)}"
        if high is not None:
            return f"below {_bound(high)}" if self.lt is not None else f"at most {_bound(high)}"
        return ""

    def span(self, step: float) -> tuple[float | None, float | None]:
        """(lowest, highest) value a control moving in ``step``s may offer: an open end moves one step inside
        (``ge=0, lt=1`` at step 0.05 spans 0.0 .. 0.95); an absent bound is None."""
        low = self.ge if self.ge is not None else None if self.gt is None else self.gt + step
        high = self.le if self.le is not None else None if self.lt is None else self.lt - step
        return tuple(None if b is None else round(b, 10) for b in (low, high))

    def names(self) -> list[str]:
        """The choices' names now (a registry's include the choices registered since the field was declared)."""
        return list(self.choices) if self.choices is not None else []

    def problem(self, value, optional: bool = False, listed: bool | None = None) -> str | None:
        """What is wrong with ``value`` ("'x'; expected one of (...)", "must be positive, got 0"), None if it is
        admitted: outside the choices (each item, for a list field) or the bounds. ``optional``: the field also
        takes None. ``listed``: whether the field is a list (``list[str]``), whose items are checked one by one; a
        list given to any other field is one value outside its choices. None: a list's items are checked, for a
        caller that has checked the value's type against the field's already."""
        if value is None:
            return None
        if self.choices is not None:
            if listed is None:
                listed = isinstance(value, list)
            if listed and not isinstance(value, list):
                return f"expected a list of {tuple(self.names())}, got {value!r}"
            for item in value if listed else [value]:
                if item not in self.choices:
                    return f"{item!r}; expected one of {tuple(self.names())}"
        if self.bounded and not self.admits(value):
            return f"must be {self.range_text()}{' (or none)' if optional else ''}, got {value}"
        return None

    def check(self, key: str, value, optional: bool = False, listed: bool | None = None) -> None:
        """Refuse ``value`` for ``key`` in one line (see :meth:`problem`); a registry's own error adds the closest name."""
        if isinstance(self.choices, Registry) and value is not None:
            self.choices.lookup(value, key)
        problem = self.problem(value, optional, listed)
        if problem:
            raise ConfigError(f"bad value for {key!r}: {problem}")


def option(default=dataclasses.MISSING, *, factory=dataclasses.MISSING, help: str = "", **admits):
    """A dataclass field with its :class:`Option` (``gt``, ``ge``, ``lt``, ``le``, ``choices``, ``help``) as metadata."""
    return field(default=default, default_factory=factory, metadata={"option": Option(help=help, **admits)})


def option_of(cls, name: str) -> Option | None:
    """The :class:`Option` declared for field ``name`` of config class ``cls``. A subclass that only changes a
    field's default (``epochs: int = 6``) keeps the declaration of the class that introduced the field."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "option" in f.metadata:
            return f.metadata["option"]
    return None


@functools.cache
def field_types(cls) -> dict[str, Any]:
    """Field name -> its type (annotations evaluated once per class)."""
    return typing.get_type_hints(cls)


def is_optional(tp) -> bool:
    """Whether a field's type is ``X | None``."""
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in typing.get_args(tp)


def is_list(tp) -> bool:
    """Whether a field's type is a list (``list[str]``), optional or not."""
    return typing.get_origin(tp) is list or any(typing.get_origin(a) is list for a in typing.get_args(tp))


def check_fields(cfg) -> None:
    """Every field of ``cfg`` against its declaration (nested configs are checked by their own ``validate``).

    Floats are checked to be finite first: NaN passes every comparison a range makes (``nan <= 0`` is false),
    and infinity passes the lower bounds. None is refused for every field whose type is not ``X | None``
    (set in code, ``cfg.steps = None``: the CLI and the YAML files refuse it as they read it), and the choices
    of a list field are checked item by item, while a list given to a field of one name is refused."""
    fields = dataclasses.fields(cfg)
    for f in fields:
        v = getattr(cfg, f.name)
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"bad value for {f.name!r}: must be a finite number, got {v}")
    hints = field_types(type(cfg))
    for f in fields:
        v, tp = getattr(cfg, f.name), hints[f.name]
        if v is None and not is_optional(tp):
            raise ConfigError(f"bad value for {f.name!r}: expected {_type_words(tp)}, got None")
        spec = option_of(type(cfg), f.name)
        if spec is not None:
            spec.check(f.name, v, is_optional(tp), is_list(tp))


def _type_words(tp) -> str:
    """A field's type as an error says it: "an integer", "a number", "a list of names", "an EncoderConfig"."""
    words = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if tp in words:
        return words[tp]
    if is_list(tp):
        return "a list of names"
    name = getattr(tp, "__name__", None)
    if name is None:
        return str(tp).replace("typing.", "")
    return f"{'an' if name[0].lower() in 'aeiou' else 'a'} {name}"


class Options:
    """A config's ``validate`` starts with the walk over its fields' declarations; subclasses add the
    checks that relate two fields after ``super().validate()``."""

    def validate(self) -> None:
        check_fields(self)


def _bound(x) -> str:
    """A bound as written in an error or --help: 0.5, -1, 2**32 (a large power of two)."""
    if isinstance(x, int) and x >= 2**16 and x & (x - 1) == 0:
        return f"2**{x.bit_length() - 1}"
    return f"{x:g}" if isinstance(x, float) else str(x)


def _shown(value, limit: int = 60) -> str:
    """A value as a user wrote it (true/false, 0.5), cut to ``limit`` characters for an error line."""
    text = str(value).lower() if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."
