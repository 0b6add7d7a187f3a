"""The one public id map: raw ids (strings, as read from files) <-> dense internal indices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from fusionrec.errors import UnknownIdError


class IdMap:
    """Maps raw ids of one kind (users, items, entities, relations) to indices ``0..n-1`` and back.

    Raw ids are always strings. Indices are assigned in first-seen order and never change when the map is extended,
    so vectors indexed by an old map stay valid for the new one.
    """

    __slots__ = ("kind", "_raw", "_index")

    def __init__(self, kind: str, raw_ids: Iterable[object] = ()):
        self.kind = kind
        self._raw: list[str] = []
        self._index: dict[str, int] = {}
        for raw in raw_ids:
            self._add(str(raw))

    def _add(self, raw: str) -> int:
        idx = self._index.get(raw)
        if idx is None:
            idx = len(self._raw)
            self._index[raw] = idx
            self._raw.append(raw)
        return idx

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, raw: object) -> bool:
        return str(raw) in self._index

    def __iter__(self):
        return iter(self._raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self.kind == other.kind and self._raw == other._raw

    def __repr__(self) -> str:
        return f"IdMap({self.kind!r}, n={len(self)})"

    def index(self, raw: object) -> int:
        """Index of one raw id; raises :class:`UnknownIdError` naming the kind when unseen."""
        try:
            return self._index[str(raw)]
        except KeyError:
            raise UnknownIdError(self.kind, raw) from None

    def get(self, raw: object, default: int = -1) -> int:
        return self._index.get(str(raw), default)

    def indices(self, raws: Iterable[object], *, missing: str = "raise") -> np.ndarray:
        """Indices of many raw ids. ``missing='raise'`` raises on the first unknown id, ``'skip'`` drops them,
        ``'minus_one'`` maps them to -1."""
        if missing == "raise":
            return np.fromiter((self.index(r) for r in raws), dtype=np.int64)
        out = np.fromiter((self._index.get(str(r), -1) for r in raws), dtype=np.int64)
        if missing == "skip":
            return out[out >= 0]
        if missing == "minus_one":
            return out
        raise ValueError(f"missing must be 'raise', 'skip' or 'minus_one', not {missing!r}")

    def raw(self, index: int) -> str:
        return self._raw[int(index)]

    def raws(self, indices: Iterable[int]) -> list[str]:
        raw = self._raw
        return [raw[int(i)] for i in indices]

    def extended(self, raws: Iterable[object]) -> "IdMap":
        """A new map holding these ids plus any new raw ids appended at the end (existing indices unchanged)."""
        out = IdMap(self.kind, self._raw)
        for raw in raws:
            out._add(str(raw))
        return out

    def to_list(self) -> list[str]:
        return list(self._raw)

    @classmethod
    def from_list(cls, kind: str, raws: Sequence[str]) -> "IdMap":
        out = cls(kind, raws)
        if len(out) != len(raws):
            raise ValueError(f"{kind} id list holds duplicate raw ids")
        return out
