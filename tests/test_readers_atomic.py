"""RecBole atomic reader and the dataset loader, on hand-written four-line fixtures (tests/fixtures/atomic)."""

from pathlib import Path

import numpy as np
import pytest

from fusionrec.config import DatasetConfig
from fusionrec.data.atomic import read_atomic
from fusionrec.data.loading import load_dataset, resolve_dataset
from fusionrec.errors import ConfigError, DataError

FIXTURES = Path(__file__).parent / "fixtures" / "atomic"
TINY = FIXTURES / "tiny"
HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


@pytest.fixture(scope="module")
def tiny():
    return read_atomic(TINY, "tiny")


def test_ids_follow_first_appearance_then_side_files(tiny):
    # users: u1, u2, u3 from .inter, then u4 known only from .user; items: i2, i1, i3 from .inter, then i4 (.item)
    assert tiny.users.to_list() == ["u1", "u2", "u3", "u4"]
    assert tiny.items.to_list() == ["i2", "i1", "i3", "i4"]
    inter = tiny.interactions
    assert inter.users.tolist() == [0, 1, 0, 2] and inter.items.tolist() == [0, 1, 2, 0]
    assert inter.ratings.tolist() == [5, 3, 4, 1] and inter.timestamps.tolist() == [100, 101, 102, 103]
    assert inter.shape == (4, 4) and inter.weights is None


def test_item_fields_are_typed_by_name_and_content(tiny):
    info = tiny.item_info
    assert set(info.text) == {"movie_title"}  # token_seq with a text name
    assert info.text["movie_title"] == ["Alien", "The Big Sleep", "Toy Story", "Heat"]
    assert info.categorical["class"][2] == ("Animation", "Children's", "Comedy")
    assert info.categorical["release_year"] == [("1979",), ("1946",), ("1995",), ("1995",)]
    np.testing.assert_array_equal(info.numeric["price"], [np.nan, 9.5, 4.0, 7.0])


def test_long_token_seq_is_text_even_without_a_text_name(tmp_path):
    write(tmp_path, {"d.inter": "user_id:token\titem_id:token\nu\ta\nu\tb\n",
                     "d.item": "item_id:token\tblurb:token_seq\ttags:token_seq\n"
                               "a\ta dark and stormy night\tx y\nb\ttwo friends go fishing today\tz\n"})
    info = read_atomic(tmp_path, "d").item_info
    assert info.text["blurb"] == ["a dark and stormy night", "two friends go fishing today"]
    assert info.categorical["tags"] == [("x", "y"), ("z",)]


def test_knowledge_graph_and_partial_links(tiny):
    kg = tiny.kg
    assert kg.entities.to_list() == ["m.1", "g.crime", "m.2", "g.horror", "p.hawks", "m.4"]
    assert kg.relations.to_list() == ["film.genre", "film.director"]
    assert kg.triples.tolist() == [[0, 0, 1], [2, 0, 3], [0, 1, 4], [5, 0, 1]]
    # items i2, i1, i3, i4 -> m.2, m.1, (none), m.4; the link to i9 (not in the catalogue) is skipped and noted
    assert kg.item_entity.tolist() == [2, 0, -1, 5]
    assert any("skipped 1 link" in n and "'i9'" in n and "line 4" in n for n in tiny.notes)
    assert tiny.stats()["linked_items"] == 3


def test_duplicates_keep_drop_error(tmp_path):
    write(tmp_path, {"d.inter": HEADER + "u1\ti1\t4\t1\nu1\ti2\t2\t2\nu1\ti1\t5\t3\n"})
    assert len(read_atomic(tmp_path, "d").interactions) == 3
    dropped = read_atomic(tmp_path, "d", duplicates="drop")
    assert dropped.interactions.ratings.tolist() == [4, 2]  # the first (u1, i1) row wins
    assert any("1 duplicate" in n for n in dropped.notes)
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "d", duplicates="error")
    assert (err.value.line, err.value.field) == (4, "item_id") and "first seen on line 2" in str(err.value)
    assert str(err.value).startswith(str(tmp_path / "d.inter") + ":4")


def test_rating_threshold_keeps_ids_and_drops_rows(tiny):
    ds = read_atomic(TINY, "tiny", rating_threshold=4)
    assert ds.interactions.ratings.tolist() == [5, 4]
    assert ds.users == tiny.users and ds.items == tiny.items  # u3 (only a rating of 1) stays a known user


def test_presplit_concatenates_the_parts():
    ds = read_atomic(FIXTURES / "split", "split", presplit=True)
    assert {k: len(v) for k, v in ds.presplit.items()} == {"train": 3, "valid": 1, "test": 2}
    assert ds.items.to_list() == ["i1", "i2", "i3", "i4"] and ds.users.to_list() == ["u1", "u2", "u3"]
    assert ds.interactions.timestamps.tolist() == [1, 2, 3, 4, 5, 6]
    assert ds.presplit["test"].users.tolist() == [1, 2] and ds.presplit["test"].n_items == 4


def test_blank_lines_and_crlf_keep_line_numbers(tmp_path):
    (tmp_path / "d.inter").write_bytes(HEADER.encode() + b"u1\ti1\t4\t1\r\n\r\nu2\tnan\t5\t2\r\n")
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "d")
    assert (err.value.line, err.value.field) == (4, "item_id")


BAD_INTER = [
    # (name, .inter text, line, field, words in the message)
    ("empty file", "", 1, None, "empty file"),
    ("no user_id", "uid:token\titem_id:token\n1\t2\n", 1, "user_id", "uid, item_id"),
    ("header without type", "user_id:token\titem_id\n1\t2\n", 1, "item_id", "field:type"),
    ("unknown type", "user_id:token\titem_id:token\trating:int\n1\t2\t3\n", 1, "rating", "unknown type 'int'"),
    ("id typed float", "user_id:float\titem_id:token\n1\t2\n", 1, "user_id", "must be token"),
    ("too few columns", HEADER + "u1\ti1\t4\t1\nu1\ti2\t4\n", 3, "timestamp", "3 tab-separated columns"),
    ("too many columns", HEADER + "u1\ti1\t4\t1\t9\n", 2, "timestamp", "5 tab-separated columns"),
    ("not a number", HEADER + "u1\ti1\t4\t1\nu1\ti2\t4\t2\nu2\ti1\tfive\t3\n", 4, "rating", "'five' is not a number"),
    ("empty id", HEADER + "\ti1\t4\t1\n", 2, "user_id", "id is empty"),
    ("NaN id", HEADER + "u1\ti1\t4\t1\nu1\tNaN\t4\t1\n", 3, "item_id", "NaN"),
    ("only a header", HEADER, 2, "user_id", "no interaction rows"),
    ("50 MB id", HEADER + "u1\ti1\t4\t1\n" + "u" * 50_000_000 + "\ti1\t4\t1\n", 3, "user_id",
     "50,000,000 characters long"),
    ("NUL inside an id", HEADER + "u1\x00x\ti1\t4\t1\n", 2, "user_id", "control character '\\x00'"),
    ("inf rating", HEADER + "u1\ti1\t4\t1\nu1\ti2\tinf\t2\n", 3, "rating", "inf, not a finite number"),
    ("rating beyond a float", HEADER + "u1\ti1\t1e400\t1\n", 2, "rating", "inf, not a finite number"),
    ("nan rating", HEADER + "u1\ti1\tnan\t1\n", 2, "rating", "missing"),
    ("-inf timestamp", HEADER + "u1\ti1\t4\t-inf\n", 2, "timestamp", "-inf, not a finite number"),
]


@pytest.mark.parametrize("case", BAD_INTER, ids=[c[0] for c in BAD_INTER])
def test_bad_inter_file_names_file_line_and_field(tmp_path, case):
    _, text, line, field, words = case
    write(tmp_path, {"bad.inter": text})
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "bad")
    e = err.value
    assert (e.file, e.line, e.field) == (str(tmp_path / "bad.inter"), line, field)
    assert words in str(e) and f"bad.inter:{line}" in str(e)
    if field:
        assert f"field '{field}'" in str(e)


BAD_SIDE_FILES = [
    ("kg column count", "bad.kg", "head_id:token\trelation_id:token\ttail_id:token\nm1\tr\tm2\nm1\tr\n", 3,
     "tail_id"),
    ("kg no tail", "bad.kg", "head_id:token\trelation_id:token\nm1\tr\n", 1, "tail_id"),
    ("link empty entity", "bad.link", "item_id:token\tentity_id:token\ni1\tm1\ni2\t\n", 3, "entity_id"),
    ("item price", "bad.item", "item_id:token\tprice:float\ni1\t3\ni2\tcheap\n", 3, "price"),
    ("item twice", "bad.item", "item_id:token\tprice:float\ni1\t3\ni2\t1\ni1\t2\n", 4, "item_id"),
]


@pytest.mark.parametrize("case", BAD_SIDE_FILES, ids=[c[0] for c in BAD_SIDE_FILES])
def test_bad_side_file_names_file_line_and_field(tmp_path, case):
    _, fname, text, line, field = case
    write(tmp_path, {"bad.inter": HEADER + "u1\ti1\t4\t1\n", fname: text})
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "bad")
    assert (err.value.file, err.value.line, err.value.field) == (str(tmp_path / fname), line, field)


def test_missing_inter_and_missing_split_part(tmp_path):
    with pytest.raises(DataError, match="file not found") as err:
        read_atomic(tmp_path, "nothing")
    assert err.value.file == str(tmp_path / "nothing.inter")
    # a missing valid file gives an empty valid part (tests/test_readers_sequential.py); a missing test file fails
    write(tmp_path, {"s.train.inter": HEADER + "u\ti\t1\t1\n", "s.valid.inter": HEADER + "u\ti\t1\t1\n"})
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "s", presplit=True)
    assert err.value.file == str(tmp_path / "s.test.inter")


def test_threshold_without_ratings_is_an_error(tmp_path):
    write(tmp_path, {"d.inter": "user_id:token\titem_id:token\nu\ti\n"})
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "d", rating_threshold=3)
    assert (err.value.line, err.value.field) == (1, "rating")


def test_load_dataset_and_resolve_dataset(tmp_path):
    ds = load_dataset(DatasetConfig(name="tiny", path=str(TINY), duplicates="drop"))
    assert ds.stats()["interactions"] == 4 and ds.source == str(TINY)
    assert resolve_dataset(TINY).content_hash() == ds.content_hash()  # directory named like the dataset
    assert resolve_dataset(TINY / "tiny.inter").content_hash() == ds.content_hash()  # a .inter file
    split = resolve_dataset(FIXTURES / "split")  # only NAME.train/valid/test.inter: read as pre-split
    assert set(split.presplit) == {"train", "valid", "test"}
    write(tmp_path, {"other.inter": HEADER + "u\ti\t1\t1\n"})  # directory with a single .inter of another name
    assert resolve_dataset(tmp_path).name == "other"
    with pytest.raises(DataError, match="not a dataset we can fetch"):
        resolve_dataset(tmp_path / "no-such-thing")


def test_load_dataset_unknown_name_without_path(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_dataset(DatasetConfig(name="nope"), data_dir=tmp_path)
    assert err.value.key == "dataset.name"
    # a directory of that name in the data dir is used
    (tmp_path / "nope").mkdir()
    write(tmp_path / "nope", {"nope.inter": HEADER + "u\ti\t1\t1\n"})
    assert load_dataset(DatasetConfig(name="nope"), data_dir=tmp_path).n_users == 1


def test_link_to_unknown_item_can_be_an_error():
    """unknown_links='error': the link to i9 (line 4 of tiny.link) stops the load, naming file, line and field."""
    with pytest.raises(DataError, match=r"tiny\.link:4, field 'item_id': links item 'i9'"):
        read_atomic(TINY, "tiny", unknown_links="error")


# -- the users' social graph (NAME.net) ------------------------------------------------------------------------------
INTER = HEADER + "u1\ti1\t5\t1\nu2\ti2\t4\t2\nu3\ti1\t3\t3\nu4\ti2\t2\t4\n"
NET = "source_id:token\ttarget_id:token\n"


def test_social_file_is_read_over_the_interaction_users(tmp_path):
    net = NET + "u1\tu2\nu2\tu1\nu1\tu3\nu1\tghost\nu3\tu3\nu1\tu2\n"  # ghost: no interactions; u3 -> u3: a loop
    ds = read_atomic(write(tmp_path, {"s.inter": INTER, "s.net": net}), "s")
    u = ds.users.index
    assert ds.social.edges.tolist() == [[u("u1"), u("u2")], [u("u2"), u("u1")], [u("u1"), u("u3")]]
    assert ds.social.n_users == ds.n_users == 4
    adj = ds.social.adjacency().toarray()
    assert adj[u("u3"), u("u1")] == 1 and adj.sum() == 4  # symmetric: u1-u2 (given both ways), u1-u3 read both ways
    assert ds.social.adjacency(symmetric=False).toarray()[u("u3"), u("u1")] == 0
    notes = " ".join(ds.notes)
    assert "skipped 1 edge(s) naming a user without interactions (first: 'u1' -> 'ghost' on line 5)" in notes
    assert "skipped 1 self-loop(s)" in notes and "1 repeated edge(s) kept once" in notes
    stats = ds.stats()
    assert stats["social_edges"] == 3 and stats["users_with_friends"] == 3


def test_a_dataset_without_a_social_file_has_none_and_the_graph_changes_the_hash(tmp_path):
    plain = read_atomic(write(tmp_path, {"s.inter": INTER}), "s")
    assert plain.social is None and plain.stats()["social_edges"] == 0
    with_net = read_atomic(write(tmp_path, {"s.net": NET + "u1\tu2\n"}), "s")
    assert with_net.content_hash() != plain.content_hash()


@pytest.mark.parametrize("net, line, field", [
    ("source_id:token\n" + "u1\n", 1, "target_id"),  # no target column
    (NET + "u1\t\n", 2, "target_id"),  # an empty id
])
def test_a_bad_social_file_names_file_line_and_field(tmp_path, net, line, field):
    write(tmp_path, {"s.inter": INTER, "s.net": net})
    with pytest.raises(DataError) as err:
        read_atomic(tmp_path, "s")
    assert "s.net" in str(err.value) and err.value.field == field and err.value.line == line
