"""RecBole's sequential atomic format (item_id_list + target), NAME.text, NAME.item2index / user2index, a missing
valid file, item field kinds and `data info`, on hand-written fixtures (tests/fixtures/atomic/seq) and, when present,
the shared amazon-scientific data."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fusionrec.cli import main
from fusionrec.config import DatasetConfig, InteractionTable, ItemTable
from fusionrec.data.atomic import read_atomic
from fusionrec.data.loading import load_dataset, resolve_dataset
from fusionrec.data.splits import make_split
from fusionrec.errors import ConfigError, DataError

SEQ = Path(__file__).parent / "fixtures" / "atomic" / "seq"
TABLES = Path(__file__).parent / "fixtures" / "tables"
SCIENTIFIC = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "amazon-scientific"
HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def history(ds, part: str, user: str) -> list[str]:
    """The raw items of one user in one part, in timestamp (position) order."""
    inter = ds.presplit[part] if part else ds.interactions
    rows = np.flatnonzero(inter.users == ds.users.index(user))
    rows = rows[np.argsort(inter.timestamps[rows], kind="stable")]
    return [ds.items.raw(i) for i in inter.items[rows].tolist()]


@pytest.fixture(scope="module")
def seq():
    return read_atomic(SEQ, "seq", presplit=True)


def test_prefixes_collapse_into_one_ordered_history(seq):
    # alice's three prefix rows (written longest first, as UniSRec does) give B01 B02 B03 B04, not one target row
    assert history(seq, "train", "alice") == ["B01", "B02", "B03", "B04"]
    assert history(seq, "train", "bob") == ["B03", "B01"]
    assert history(seq, "valid", "alice") == ["B05"] and history(seq, "test", "alice") == ["B06"]
    assert {k: len(v) for k, v in seq.presplit.items()} == {"train": 6, "valid": 2, "test": 2}
    # positions continue across the parts, so a temporal order over train + valid + test is the user's sequence
    alice = seq.users.index("alice")
    for part, want in (("train", [0, 1, 2, 3]), ("valid", [4]), ("test", [5])):
        inter = seq.presplit[part]
        assert sorted(inter.timestamps[inter.users == alice].tolist()) == want
    assert seq.history_order == "position"
    assert seq.stats()["histories"] == "ordered (positions in the sequence files)"


def test_index_files_give_raw_ids_and_the_item_order(seq):
    assert seq.users.to_list() == ["alice", "bob"]
    # item2index order first (B05 has no text, B06 no interaction but is in the map), then B07 known only from .text
    assert seq.items.to_list() == ["B01", "B02", "B03", "B04", "B05", "B06", "B07"]
    text = seq.item_info.text["text"]
    assert text[seq.items.index("B03")] == "Stapler. Office Binding. Bolt." and text[seq.items.index("B05")] == ""
    assert seq.item_info.kinds() == {"text": ("text", "format")}
    assert any("1 item(s) of" in n and "seq.text" in n and "no interaction" in n for n in seq.notes)


def test_truncated_histories_chain_beyond_the_window(tmp_path):
    # histories cut to their last 2 items (as UniSRec cuts to 50): the longest prefix alone would lose 'a'
    write(tmp_path, {"w.inter": HEADER + "u\tc d\te\nu\tb c\td\nu\ta b\tc\nu\ta\tb\nv\tx\ty\n"})
    ds = read_atomic(tmp_path, "w")
    assert history(ds, "", "u") == ["a", "b", "c", "d", "e"]
    assert ds.interactions.timestamps[ds.interactions.users == ds.users.index("u")].tolist() == [0, 1, 2, 3, 4]
    # the order feeds leave-one-out: the last item of the sequence is u's test row, the one before it valid
    split = make_split(ds, "leave_one_out")
    u = ds.users.index("u")
    assert [ds.items.raw(i) for i in split.test.items[split.test.users == u].tolist()] == ["e"]
    assert [ds.items.raw(i) for i in split.valid.items[split.valid.users == u].tolist()] == ["d"]


def test_rows_that_do_not_chain_name_the_line(tmp_path):
    write(tmp_path, {"w.inter": HEADER + "u\ta\tb\nu\ta b\tc\nu\ta x\ty\n"})
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "w")
    assert (err.value.file, err.value.line, err.value.field) == (str(tmp_path / "w.inter"), 4, "item_id_list")


@pytest.mark.parametrize("part, text, line, words", [
    ("valid", HEADER + "0\t0 1 2 3\t4\n1\t2 9\t1\n", 3, "item 2 of the history is '9'"),
    ("valid", HEADER + "0\t1 2 3\t4\n1\t2 0\t1\n", 2, "holds 3 items"),
    ("test", HEADER + "0\t0 1 2 3 4\t5\n1\t2 0\t3\n", 3, "plus the validation target"),
    ("valid", HEADER + "0\t0 1 2 3\t4\n0\t0 1 2 3\t4\n", 3, "second row"),
])
def test_valid_and_test_histories_are_checked_against_train(tmp_path, part, text, line, words):
    for name in ("train", "valid", "test"):
        (tmp_path / f"seq.{name}.inter").write_text((SEQ / f"seq.{name}.inter").read_text())
    (tmp_path / f"seq.{part}.inter").write_text(text)
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "seq", presplit=True)
    assert (err.value.file, err.value.line) == (str(tmp_path / f"seq.{part}.inter"), line)
    assert err.value.field in ("item_id_list", "user_id") and words in str(err.value)


def test_missing_valid_file_gives_an_empty_valid_part(tmp_path):
    write(tmp_path, {"s.train.inter": HEADER + "u\ta\tb\n", "s.test.inter": HEADER + "u\ta b\tc\n"})
    ds = load_dataset(DatasetConfig(name="s", path=str(tmp_path), presplit=True))
    assert "valid" not in ds.presplit and any("no s.valid.inter" in n for n in ds.notes)
    split = make_split(ds, "given")
    assert len(split.valid) == 0 and len(split.train) == 2 and len(split.test) == 1
    assert history(ds, "test", "u") == ["c"]
    # plain (non-sequential) split files too
    plain = "user_id:token\titem_id:token\n"
    write(tmp_path, {"p.train.inter": plain + "u\ta\n", "p.test.inter": plain + "u\tb\n"})
    assert len(make_split(read_atomic(tmp_path, "p", presplit=True), "given").valid) == 0


def test_unknown_integer_id_names_file_and_line(tmp_path):
    write(tmp_path, {"m.inter": HEADER + "0\t0\t7\n", "m.item2index": "A\t0\nB\t1\n"})
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "m")
    assert (err.value.file, err.value.line, err.value.field) == (str(tmp_path / "m.inter"), 2, "item_id")
    write(tmp_path, {"m.item2index": "A\t0\nB\t0\n"})
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "m")
    assert (err.value.file, err.value.line) == (str(tmp_path / "m.item2index"), 2)


ITEMS = "item_id:token\ttags:token_seq\tyear:token\n" \
        "a\tred green blue yellow\t1999\nb\tsmall large huge tiny\t2001\n"


def test_field_kinds_override_the_guess(tmp_path):
    write(tmp_path, {"d.inter": "user_id:token\titem_id:token\nu\ta\nu\tb\n", "d.item": ITEMS})
    guessed = read_atomic(tmp_path, "d").item_info  # four words a cell: the average-length rule says text
    assert guessed.kinds() == {"tags": ("text", "guessed"), "year": ("categorical", "guessed")}
    declared = load_dataset(DatasetConfig(name="d", path=str(tmp_path),
                                          fields={"tags": "categorical", "year": "numeric"})).item_info
    assert declared.kinds() == {"tags": ("categorical", "declared"), "year": ("numeric", "declared")}
    assert declared.categorical["tags"][1] == ("small", "large", "huge", "tiny")
    assert declared.numeric["year"].tolist() == [1999.0, 2001.0]
    assert read_atomic(tmp_path, "d", fields={"tags": "ignore"}).item_info.fields == ["year"]
    with pytest.raises(ConfigError, match="no item file") as err:
        read_atomic(tmp_path, "d", fields={"genre": "categorical"})
    assert err.value.key == "dataset.fields.genre"


def test_field_kinds_for_tables_move_the_column():
    cfg = DatasetConfig(name="movies", format="table", path=str(TABLES),
                        interactions=InteractionTable(file="ratings.csv", user="user", item="movie"),
                        items=ItemTable(file="movies.csv", id="movie_id", text=["title"]))
    assert load_dataset(cfg).item_info.kinds() == {"title": ("text", "declared")}
    moved = load_dataset(replace(cfg, fields={"title": "categorical"})).item_info
    assert moved.kinds() == {"title": ("categorical", "declared")}


def test_data_info_lists_field_kinds_and_order(tmp_path, capsys):
    write(tmp_path, {"d.inter": "user_id:token\titem_id:token\nu\ta\nu\tb\n", "d.item": ITEMS})
    assert main(["data", "info", str(tmp_path / "d.inter"), "--field", "tags=categorical"]) == 0
    out = capsys.readouterr().out
    assert "tags: categorical (declared), year: categorical (guessed)" in out
    assert "unordered (no timestamps)" in out
    assert main(["data", "info", str(SEQ), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["field_kinds"] == {"text": "text (format)"}
    assert stats["histories"] == "ordered (positions in the sequence files)"
    assert stats["presplit"] == {"train": 6, "valid": 2, "test": 2}
    assert main(["data", "info", str(tmp_path), "--field", "tags=colour"]) == 2
    assert "tags" in capsys.readouterr().err


@pytest.mark.skipif(not (SCIENTIFIC / "Scientific.train.inter").exists(), reason="shared amazon-scientific absent")
def test_amazon_scientific_counts_match_its_readme():
    ds = resolve_dataset(SCIENTIFIC)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (8442, 4385, 59427)
    assert {k: len(v) for k, v in ds.presplit.items()} == {"train": 42543, "valid": 8442, "test": 8442}
    assert ds.items.raw(0) == "B00TNNWMXI" and ds.users.raw(0) == "ABW8NXS7SV55K"  # item2index / user2index order
    assert ds.item_info.text["text"][0].startswith("eSUN Bronze filament")
    # user 1412 of the files (internal index 1412: the id maps follow user2index) has 57 prefix rows, so 58
    # training items, more than the 50 a history holds; the longest prefix + its target would give 51
    assert int((ds.presplit["train"].users == 1412).sum()) == 58
