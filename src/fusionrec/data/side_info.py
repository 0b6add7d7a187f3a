"""Item side information aligned to the item id map: text fields, categorical (multi-token) fields, numbers."""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class ItemSideInfo:
    """Per-item fields, every list/array of length ``n_items`` and indexed by internal item index.

    ``text``: field -> list of str ("" when missing). ``categorical``: field -> list of token tuples (empty when
    missing), e.g. genres. ``numeric``: field -> float array (NaN when missing). ``origin``: field -> how the reader
    decided its kind (``declared`` by the config or table mapping, ``guessed`` by the text rule, ``typed`` by the
    file's column type, ``format`` by the file's role such as ``NAME.text``); a field not in it was declared."""

    n_items: int
    text: dict[str, list[str]] = field(default_factory=dict)
    categorical: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in (self.text, self.categorical, self.numeric):
            for name, values in kind.items():
                if len(values) != self.n_items:
                    raise ValueError(f"item field '{name}' has {len(values)} values for {self.n_items} items")

    @property
    def fields(self) -> list[str]:
        return [*self.text, *self.categorical, *self.numeric]

    def kinds(self) -> dict[str, tuple[str, str]]:
        """field -> (kind, how it was decided): kind ``text``, ``categorical`` or ``numeric``."""
        kinds = {**{n: "text" for n in self.text}, **{n: "categorical" for n in self.categorical},
                 **{n: "numeric" for n in self.numeric}}
        return {n: (k, self.origin.get(n, "declared")) for n, k in kinds.items()}

    def value_text(self, name: str, item: int) -> str:
        """One field of one item rendered as text (tokens joined by ', ', NaN as '')."""
        if name in self.text:
            return self.text[name][item]
        if name in self.categorical:
            return ", ".join(self.categorical[name][item])
        if name in self.numeric:
            v = self.numeric[name][item]
            return "" if np.isnan(v) else (str(int(v)) if float(v).is_integer() else str(v))
        raise KeyError(f"unknown item field '{name}'; known fields: {', '.join(self.fields) or '(none)'}")

    def render(self, template: str | None = None) -> list[str]:
        """Item texts from a ``str.format``-style template over field names, e.g.
        ``"{movie_title} ({release_year}). Genres: {class}."``. Without a template, all text and categorical fields
        are joined as ``name: value``."""
        if template is None:
            names = [*self.text, *self.categorical]
            return ["; ".join(f"{n}: {self.value_text(n, i)}" for n in names if self.value_text(n, i))
                    for i in range(self.n_items)]
        wanted = [f for _, f, _, _ in string.Formatter().parse(template) if f]
        unknown = [f for f in wanted if f not in self.fields]
        if unknown:
            raise KeyError(f"text template names unknown item field(s) {unknown}; known: {', '.join(self.fields)}")
        return [template.format(**{f: self.value_text(f, i) for f in wanted}) for i in range(self.n_items)]

    def resized(self, n_items: int) -> "ItemSideInfo":
        extra = n_items - self.n_items
        return ItemSideInfo(
            n_items,
            {k: v + [""] * extra for k, v in self.text.items()},
            {k: v + [()] * extra for k, v in self.categorical.items()},
            {k: np.concatenate([v, np.full(extra, np.nan)]) for k, v in self.numeric.items()},
            origin=dict(self.origin),
        )

    def fingerprint(self) -> bytes:
        parts = []
        for name in sorted(self.text):
            parts.append(("T" + name + "\x1e" + "\x1f".join(self.text[name])).encode())
        for name in sorted(self.categorical):
            parts.append(("C" + name + "\x1e" + "\x1f".join("\x1d".join(t) for t in self.categorical[name])).encode())
        for name in sorted(self.numeric):
            parts.append(("N" + name).encode() + self.numeric[name].astype("<f8").tobytes())
        return b"|".join(parts)
