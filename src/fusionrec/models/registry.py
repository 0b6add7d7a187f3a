"""The registry of models by name: ``get_model_class("bpr")``."""

from __future__ import annotations

from fusionrec.models.base import Model

_REGISTRY: dict[str, type[Model]] = {}


def register(cls: type[Model]) -> type[Model]:
    """Class decorator adding a model under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"model name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get_model_class(name: str) -> type[Model]:
    _load_builtin()
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(model_names())}") from None


def model_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    import fusionrec.models.builtin  # noqa: F401  (imports every model file, each registers itself)
