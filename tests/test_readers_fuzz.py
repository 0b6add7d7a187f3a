"""Hypothesis-generated atomic files and CSV tables: whatever a file holds, the readers either load it or raise a
FusionrecError (DataError / ConfigError) naming the file; never another exception, never a traceback."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st  # a test dependency: never skipped

from fusionrec.config import DatasetConfig, InteractionTable, ItemTable
from fusionrec.data.atomic import read_atomic
from fusionrec.data.tables import read_tables
from fusionrec.errors import FusionrecError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)

# cells a careless export or a hostile file might hold
CELL = st.one_of(
    st.sampled_from(["1", "2", "3", "u1", "i1", "", " ", "nan", "NaN", "inf", "-inf", "1e400", "-1", "0", "4.5",
                     "1e308", "9" * 40, "a\x00b", "\x07", "é", "\ud7ff", "x" * 600, "\"", "'", "\\", "1,2", "a b"]),
    st.text(min_size=0, max_size=8),
)
ATOMIC_TYPES = ["token", "float", "token_seq", "float_seq", "int", "", "weird"]
HEADER_NAMES = ["user_id", "item_id", "rating", "timestamp", "weight", "item_id_list", "title", "class",
                "head_id", "relation_id", "tail_id", "entity_id", "", "x"]


@st.composite
def atomic_file(draw, names: list[str]) -> str:
    """An atomic file: a header of (mostly) the expected fields with random types, then rows of random cells,
    sometimes with too few or too many cells."""
    fields = draw(st.lists(st.sampled_from(names + HEADER_NAMES), min_size=1, max_size=5))
    header = "\t".join(f"{f}:{draw(st.sampled_from(ATOMIC_TYPES))}" if draw(st.booleans()) or not f else f
                       for f in fields)
    rows = draw(st.lists(st.lists(CELL, min_size=max(0, len(fields) - 1), max_size=len(fields) + 1), max_size=8))
    return "\n".join([header, *("\t".join(r) for r in rows)]) + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))


def _fresh_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="fusionrec-fuzz-"))


@FUZZ
@given(inter=atomic_file(["user_id", "item_id", "rating", "timestamp"]),
       item=st.none() | atomic_file(["item_id", "title", "class"]),
       kg=st.none() | atomic_file(["head_id", "relation_id", "tail_id"]),
       link=st.none() | atomic_file(["item_id", "entity_id"]))
def test_any_atomic_files_load_or_raise_a_fusionrec_error(inter, item, kg, link):
    folder = _fresh_dir()
    try:
        for ext, text in (("inter", inter), ("item", item), ("kg", kg), ("link", link)):
            if text is not None:
                (folder / f"fz.{ext}").write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            dataset = read_atomic(folder, "fz")
        except FusionrecError as exc:
            assert "\n" not in str(exc).strip()
            assert "fz." in str(exc) or "field" in str(exc), str(exc)
        else:
            assert dataset.n_items >= 1 and dataset.n_users >= 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@FUZZ
@given(header=st.lists(st.sampled_from(["user", "item", "rating", "ts", "title", "genres", ""]), min_size=1,
                       max_size=5),
       rows=st.lists(st.lists(CELL, min_size=0, max_size=6), max_size=8),
       sep=st.sampled_from([",", "\t", ";"]),
       items=st.none() | st.lists(st.lists(CELL, min_size=0, max_size=4), max_size=5))
def test_any_csv_tables_load_or_raise_a_fusionrec_error(header, rows, sep, items):
    folder = _fresh_dir()
    try:
        (folder / "inter.csv").write_text("\n".join([sep.join(header), *(sep.join(r) for r in rows)]),
                                          encoding="utf-8", errors="surrogatepass")
        items_table = None
        if items is not None:
            (folder / "items.csv").write_text("\n".join(["item,title,genres", *(",".join(r) for r in items)]),
                                              encoding="utf-8", errors="surrogatepass")
            items_table = ItemTable(file="items.csv", id="item", text=["title"], categorical=["genres"])
        cfg = DatasetConfig(format="table", interactions=InteractionTable(
            file="inter.csv", user="user", item="item", rating="rating", timestamp="ts", sep=sep), items=items_table)
        try:
            dataset = read_tables(cfg, folder)
        except FusionrecError as exc:
            assert "\n" not in str(exc).strip()
            assert ".csv" in str(exc) or "dataset." in str(exc), str(exc)
        else:
            assert dataset.n_items >= 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)
