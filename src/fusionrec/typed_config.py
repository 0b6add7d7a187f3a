"""Typed configuration: frozen dataclasses built from plain dicts (YAML), rejecting unknown keys and wrong types.

``build(Cls, mapping, key="training")`` returns a ``Cls`` or raises :class:`ConfigError` naming the offending key path.
Supported field types: bool, int, float, str, Literal[...], X | None, list[X], tuple[X, ...], dict[str, X], nested
frozen dataclasses and ``Any``. No ``eval``: values are checked, never executed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from fusionrec.errors import ConfigError

_MISSING = dataclasses.MISSING


def build(cls: type, data: Any, key: str = "", file: str | None = None):
    """Instance of dataclass ``cls`` from ``data`` (a mapping); unknown or mistyped keys raise ConfigError."""
    if data is None:
        data = {}
    if dataclasses.is_dataclass(data) and isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {type(data).__name__}", key=key or None, file=file)
    hints = typing.get_type_hints(cls)
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
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(tp) if a is not Ellipsis)}]"
    return getattr(tp, "__name__", str(tp))


def _coerce(tp: Any, value: Any, path: str, file: str | None) -> Any:
    def fail():
        raise ConfigError(f"expected {_type_name(tp)}, got {value!r} ({type(value).__name__})", key=path, file=file)

    if tp is Any:
        return value
    origin = typing.get_origin(tp)
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
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-6 (no dot) as a string; take it as the number it spells
            try:
                return float(value)
            except ValueError:
                pass
        fail()
    if tp is str:
        if isinstance(value, str):
            return value
        fail()
    if isinstance(value, tp):
        return value
    fail()
