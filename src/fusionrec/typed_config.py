"""Typed configuration: frozen dataclasses built from plain dicts (YAML), rejecting unknown keys and wrong types.

``build(Cls, mapping, key="training")`` returns a ``Cls`` or raises :class:`ConfigError` naming the offending key path.
Supported field types: bool, int, float, str, Literal[...], X | None, list[X], tuple[X, ...], dict[str, X], nested
frozen dataclasses and ``Any``; ``Annotated[X, Range(...)]`` adds an allowed range to a number (checked when built and,
for a dataclass deriving from :class:`CheckedFields`, when constructed directly). Floats must be finite. No ``eval``:
values are checked, never executed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from fusionrec.errors import ConfigError

_MISSING = dataclasses.MISSING


@dataclass(frozen=True)
class Range:
    """The allowed range of a number, as field metadata: ``Annotated[float, Range(0, 1, high_open=True)]`` is
    [0, 1). ``None`` bounds are open-ended; None values (``X | None`` fields) are always allowed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.high_open else value > self.high))

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


AtLeast0 = Range(0)
AtLeast1 = Range(1)
Positive = Range(0, low_open=True)
PositiveInt = Annotated[int, AtLeast1]
NonNegativeInt = Annotated[int, AtLeast0]
PositiveFloat = Annotated[float, Positive]
NonNegativeFloat = Annotated[float, AtLeast0]


def range_problem(tp: Any, value: Any) -> str | None:
    """Why ``value`` breaks a :class:`Range` in ``tp``'s Annotated metadata (None when it does not)."""
    if typing.get_origin(tp) is not Annotated or value is None or isinstance(value, bool):
        return None
    for rule in tp.__metadata__:
        if isinstance(rule, Range) and isinstance(value, (int, float)) and not rule.allows(value):
            return f"{value!r} is out of range: must be {rule}"
    return None


def choice_problem(tp: Any, value: Any) -> str | None:
    """Why ``value`` is not one of a ``Literal`` type's choices (also inside ``X | None``); None when it is."""
    if typing.get_origin(tp) is Literal:
        options = [tp]
    elif typing.get_origin(tp) in (Union, types.UnionType) and value is not None:  # None is X | None's other arm
        options = [a for a in typing.get_args(tp) if typing.get_origin(a) is Literal]
    else:
        return None
    choices = [c for option in options for c in typing.get_args(option)]
    if options and value not in choices:
        return f"expected one of {', '.join(repr(c) for c in choices)}, got {value!r}"
    return None


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    """A class's resolved annotations, Annotated metadata kept: resolved once per class, not per instance."""
    return typing.get_type_hints(cls, include_extras=True)


class CheckedFields:
    """Mixin for config dataclasses: ``__post_init__`` checks every ``Annotated[..., Range]`` field and every
    ``Literal`` field, so an instance made in Python (not through :func:`build`) is held to the same ranges and
    choices. ``config_key``: where the section sits in
    a run config (``training``, ``model.params``), so errors name the full key. Subclasses with their own
    ``__post_init__`` (cross-field rules) call ``super().__post_init__()`` and raise with :meth:`key_of`."""

    config_key: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name, tp in _field_types(type(self)).items():
            value = getattr(self, name, None)
            problem = range_problem(tp, value) or choice_problem(tp, value)
            if problem is not None:
                raise ConfigError(problem, key=self.key_of(name))

    def key_of(self, name: str) -> str:
        return _join(self.config_key, name)


def build(cls: type, data: Any, key: str = "", file: str | None = None):
    """Instance of dataclass ``cls`` from ``data`` (a mapping); unknown or mistyped keys raise ConfigError."""
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {type(data).__name__}", key=key or None, file=file)
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        path = _join(key, str(unknown[0]))
        raise ConfigError(f"unknown key; allowed keys here: {', '.join(sorted(fields))}", key=path, file=file)
    values = {}
    for name, f in fields.items():
        path = _join(key, name)
        if name in data:
            values[name] = _coerce(hints[name], data[name], path, file)
        elif f.default is _MISSING and f.default_factory is _MISSING:
            raise ConfigError("required key is missing", key=path, file=file)
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        if isinstance(exc, ConfigError):
            if file is None or exc.file is not None:
                raise
            raise ConfigError(exc.message, key=exc.key, file=file) from None  # a dataclass's own check
        raise ConfigError(str(exc), key=key or None, file=file) from None


def to_dict(obj: Any) -> Any:
    """Plain JSON-ready dict of a config dataclass (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is Annotated:
        return _type_name(tp.__origin__)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(tp) if a is not Ellipsis)}]"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, path: str, file: str | None) -> Any:
    def fail():
        raise ConfigError(f"expected {_type_name(tp)}, got {value!r} ({type(value).__name__})", key=path, file=file)

    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin is Annotated:
        coerced = _coerce(tp.__origin__, value, path, file)
        problem = range_problem(tp, coerced)
        if problem is not None:
            raise ConfigError(problem, key=path, file=file)
        return coerced
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            fail()
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, path, file)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        fail()
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        fail()
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            fail()
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, f"{path}[{i}]", file) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            fail()
        _, val_tp = typing.get_args(tp) or (str, Any)
        return {str(k): _coerce(val_tp, v, _join(path, str(k)), file) for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, path, file)
    if tp is bool:
        if isinstance(value, bool):
            return value
        fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        fail()
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value) if not isinstance(value, int) or abs(value) < 2 ** 1023 else math.inf
        elif isinstance(value, str):  # YAML 1.1 reads 1e-6 (no dot) as a string; take it as the number it spells
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            fail()
        if not math.isfinite(number):
            raise ConfigError(f"expected a finite number, got {value!r}", key=path, file=file)
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        fail()
    if isinstance(value, tp):
        return value
    fail()
