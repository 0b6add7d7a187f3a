"""The text of every item, built from its side-information fields with a template, and which items have any."""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from fusionrec.errors import ConfigError, DataError

if TYPE_CHECKING:  # only for annotations: the text package itself never needs torch
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.side_info import ItemSideInfo


class ItemTexts(NamedTuple):
    """``texts``: n_items strings indexed by internal item index (an item without text gets its raw id, so the
    list never holds an empty string); ``mask``: (n_items,) bool, True where the item has text of its own."""

    texts: list[str]
    mask: np.ndarray


def template_fields(template: str | None, info: ItemSideInfo) -> list[str]:
    """The item fields ``template`` reads (all text and categorical fields when it is None); unknown or positional
    fields and malformed templates raise ConfigError naming ``text.template``."""
    if template is None:
        return [*info.text, *info.categorical]
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"not a valid template ({exc}): {template!r}", key="text.template") from None
    if "" in names:
        raise ConfigError("positional '{}' fields are not allowed; name an item field, e.g. {movie_title}",
                          key="text.template")
    unknown = [n for n in names if n not in info.fields]
    if unknown:
        raise ConfigError(f"names unknown item field(s) {unknown}; the items have: "
                          f"{', '.join(info.fields) or '(no fields)'}", key="text.template")
    return list(dict.fromkeys(names))


def has_value(info: ItemSideInfo, name: str) -> np.ndarray:
    """(n_items,) bool: the item has a non-empty value in field ``name``."""
    if name in info.text:
        return np.fromiter(map(bool, info.text[name]), dtype=bool, count=info.n_items)
    if name in info.categorical:
        return np.fromiter(map(bool, info.categorical[name]), dtype=bool, count=info.n_items)
    return ~np.isnan(info.numeric[name])


def item_texts(dataset: Dataset, template: str | None = None) -> ItemTexts:
    """Texts of all ``dataset.n_items`` items from ``template`` (``str.format`` over field names, e.g.
    ``"{movie_title} ({release_year}). Genres: {class}."``; None: every text and categorical field as
    ``name: value``). An item has text when any field the template reads is non-empty for it."""
    info = dataset.item_info
    if info is None:
        raise DataError(f"dataset {dataset.name!r} has no item side information (no .item file or items table), "
                        f"so there is no item text to encode", file=dataset.source)
    if info.n_items < dataset.n_items:
        info = info.resized(dataset.n_items)
    fields = template_fields(template, info)
    mask = np.zeros(info.n_items, dtype=bool)
    for name in fields:
        mask |= has_value(info, name)
    try:
        rendered = info.render(template)
    except (ValueError, KeyError, IndexError, AttributeError) as exc:  # e.g. a format spec like {price:.1f}
        raise ConfigError(f"cannot render {template!r}: {type(exc).__name__}: {exc} (every field is formatted "
                          f"as text)", key="text.template") from None
    ids = dataset.items.to_list()
    texts = [text if keep and text.strip() else raw for text, keep, raw in zip(rendered, mask, ids)]
    return ItemTexts(texts, mask & np.fromiter((bool(t.strip()) for t in rendered), dtype=bool, count=len(rendered)))
