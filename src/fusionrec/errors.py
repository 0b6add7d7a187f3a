"""Exceptions that fusionrec raises for bad input.

Every data error names the file, the line and the field so that a user can fix the input without reading our source.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


class FusionrecError(Exception):
    """Base class of every error fusionrec raises on purpose."""


class DataError(FusionrecError, ValueError):
    """Bad input data: names the file, the (1-based) line and the field when they are known."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field, self.reason = file, line, field, message
        where = []
        if file is not None:
            where.append(str(file) + (f":{line}" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__((", ".join(where) + ": " if where else "") + message)


class ConfigError(FusionrecError, ValueError):
    """A configuration key that is unknown, missing or of the wrong type; names the key path (e.g. ``training.lr``)."""

    def __init__(self, message: str, *, key: str | None = None, file: str | None = None):
        self.key, self.file, self.message = key, file, message
        prefix = f"{file}: " if file else ""
        super().__init__(prefix + (f"'{key}': " if key else "") + message)


class UnknownIdError(FusionrecError, KeyError):
    """A raw id that the id map has never seen."""

    def __init__(self, kind: str, raw_id: object):
        self.kind, self.raw_id = kind, raw_id
        super().__init__(f"unknown {kind} id {raw_id!r}: it was never seen in the data this model was built from")

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class ArtifactError(FusionrecError):
    """A model folder that cannot be loaded: one line naming the file and what is wrong with it."""


@contextmanager
def reading_artifact_file(file: Path, what: str):
    """Turns any failure while reading ``file`` into one :class:`ArtifactError` line "<file>: <what>: <cause>"
    (a FusionrecError raised inside passes through as it is)."""
    try:
        yield
    except FusionrecError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the file holds, the user gets one line naming it
        if not Path(file).exists():
            cause = "the file is missing"
        elif isinstance(exc, KeyError):
            cause = f"missing key {exc}"
        else:
            cause = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ArtifactError(f"{file}: {what}: {cause}") from None
