"""Table reader (CSV/TSV/Parquet mapped by the dataset config), on hand-written fixtures in tests/fixtures/tables."""

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from fusionrec.config import DatasetConfig, config_from_dict
from fusionrec.data.loading import load_dataset
from fusionrec.data.tables import read_tables
from fusionrec.errors import ConfigError, DataError

TABLES = Path(__file__).parent / "fixtures" / "tables"
MAPPING = {
    "name": "movies",
    "format": "table",
    "interactions": {"file": "ratings.csv", "user": "user", "item": "movie", "rating": "stars", "timestamp": "when"},
    "items": {"file": "movies.csv", "id": "movie_id", "text": ["title"], "categorical": ["genres"],
              "numeric": ["year"]},
    "kg": {"file": "kg.tsv", "head": "h", "relation": "r", "tail": "t"},
    "links": {"file": "links.csv", "item": "movie", "entity": "entity"},
}


def config(**changes) -> DatasetConfig:
    data = {**MAPPING, **changes}
    return config_from_dict({"dataset": data}).dataset


def test_tables_map_columns_to_roles():
    ds = read_tables(config(), TABLES)
    assert ds.users.to_list() == ["ann", "bob"] and ds.items.to_list() == ["m2", "m1", "m3", "m4"]
    inter = ds.interactions
    assert inter.users.tolist() == [0, 1, 0] and inter.items.tolist() == [0, 1, 2]
    assert inter.ratings.tolist() == [5, 3, 4]
    # an ISO-8601 date (naive = UTC) and plain epoch seconds both become seconds
    assert inter.timestamps.tolist() == [datetime(2021, 1, 1, tzinfo=timezone.utc).timestamp(), 1609459300, 1609459400]
    info = ds.item_info
    assert info.text["title"][1] == "The Big Sleep, a noir"  # quoted comma kept
    assert info.categorical["genres"][0] == ("Horror", "Sci-Fi")  # split on token_sep '|'
    np.testing.assert_array_equal(info.numeric["year"], [1979, 1946, 1995, np.nan])
    kg = ds.kg
    assert kg.entities.to_list() == ["m1", "crime", "m2", "horror", "m4"]
    assert kg.item_entity.tolist() == [2, 0, -1, 4]  # m3 unlinked; link to m7 skipped
    assert any("skipped 1 link" in n and "'m7'" in n for n in ds.notes)


def test_load_dataset_reads_tables_relative_to_path():
    ds = load_dataset(config(path=str(TABLES)))
    assert ds.stats()["linked_items"] == 3 and ds.name == "movies"


def test_missing_interactions_section_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        read_tables(DatasetConfig(format="table"), TABLES)
    assert err.value.key == "dataset.interactions"


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def inter_only(file="r.csv", **columns) -> DatasetConfig:
    return config_from_dict({"dataset": {"format": "table", "interactions": {"file": file, **columns}}}).dataset


BAD_CSV = [
    # (name, csv text, columns, line, field, words in the message)
    ("unknown column", "uid,item_id\n1,2\n", {}, 1, "user_id", "the file has columns: uid, item_id"),
    ("empty file", "", {}, 1, None, "empty file"),
    ("wrong column count", "user_id,item_id\n1,2\n1\n", {}, 3, "item_id", "1 columns but the header names 2"),
    ("NaN id", "user_id,item_id\n1,2\n1,nan\n", {}, 3, "item_id", "NaN"),
    ("empty id", "user_id,item_id\n,2\n", {}, 2, "user_id", "id is empty"),
    ("rating not a number", "user_id,item_id,r\n1,2,4\n1,3,x\n", {"rating": "r"}, 3, "r", "'x' is not a number"),
    ("bad date", "user_id,item_id,t\n1,2,yesterday\n", {"timestamp": "t"}, 2, "t", "ISO-8601"),
]


@pytest.mark.parametrize("case", BAD_CSV, ids=[c[0] for c in BAD_CSV])
def test_bad_csv_names_file_line_and_column(tmp_path, case):
    _, text, columns, line, field, words = case
    write(tmp_path, "r.csv", text)
    with pytest.raises(DataError) as err:
        read_tables(inter_only(**columns), tmp_path)
    assert (err.value.file, err.value.line, err.value.field) == (str(tmp_path / "r.csv"), line, field)
    assert words in str(err.value)


def test_line_numbers_count_quoted_newlines_and_blank_lines(tmp_path):
    write(tmp_path, "r.csv", 'user_id,item_id,note\n1,2,"two\nlines"\n\n1,,x\n')
    with pytest.raises(DataError) as err:
        read_tables(inter_only(), tmp_path)
    assert (err.value.line, err.value.field) == (5, "item_id")


def test_duplicates_policy_in_tables(tmp_path):
    write(tmp_path, "r.tsv", "user_id\titem_id\n1\t2\n1\t3\n1\t2\n")
    cfg = inter_only("r.tsv")
    assert len(read_tables(cfg, tmp_path).interactions) == 3
    drop = config_from_dict({"dataset": {"format": "table", "duplicates": "drop",
                                         "interactions": {"file": "r.tsv"}}}).dataset
    assert read_tables(drop, tmp_path).interactions.items.tolist() == [0, 1]
    error = config_from_dict({"dataset": {"format": "table", "duplicates": "error",
                                          "interactions": {"file": "r.tsv"}}}).dataset
    with pytest.raises(DataError) as err:
        read_tables(error, tmp_path)
    assert (err.value.line, err.value.field) == (4, "item_id")


def test_unknown_suffix_and_missing_file(tmp_path):
    write(tmp_path, "r.dat", "user_id,item_id\n1,2\n")
    with pytest.raises(DataError, match="set sep"):
        read_tables(inter_only("r.dat"), tmp_path)
    assert len(read_tables(inter_only("r.dat", sep=","), tmp_path).interactions) == 1
    with pytest.raises(DataError, match="file not found"):
        read_tables(inter_only("absent.csv"), tmp_path)


def test_parquet_tables_and_row_numbers(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame({"user_id": [1, 2, 1], "item_id": ["a", "b", "c"], "rating": [4.0, 5.0, 3.0],
                  "ts": pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-03"])}).to_parquet(tmp_path / "r.parquet")
    pd.DataFrame({"item_id": ["a", "b"], "tags": [["x", "y"], ["z"]], "price": [1.5, None]}).to_parquet(
        tmp_path / "i.parquet")
    cfg = config_from_dict({"dataset": {"format": "table",
                                        "interactions": {"file": "r.parquet", "rating": "rating", "timestamp": "ts"},
                                        "items": {"file": "i.parquet", "categorical": ["tags"],
                                                  "numeric": ["price"]}}}).dataset
    ds = read_tables(cfg, tmp_path)
    assert ds.users.to_list() == ["1", "2"] and ds.items.to_list() == ["a", "b", "c"]
    assert ds.interactions.timestamps[1] == datetime(2021, 1, 2, tzinfo=timezone.utc).timestamp()
    assert ds.item_info.categorical["tags"] == [("x", "y"), ("z",), ()]
    np.testing.assert_array_equal(ds.item_info.numeric["price"], [1.5, np.nan, np.nan])

    pd.DataFrame({"user_id": [1.0, None], "item_id": ["a", "b"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(DataError) as err:
        read_tables(inter_only("bad.parquet"), tmp_path)
    assert (err.value.line, err.value.field) == (2, "user_id")  # row 2
    with pytest.raises(DataError, match="the file has columns: user_id, item_id"):
        read_tables(inter_only("bad.parquet", rating="stars"), tmp_path)


def test_a_social_table_becomes_the_datasets_social_graph(tmp_path):
    write(tmp_path, "r.tsv", "user_id\titem_id\na\t1\nb\t2\nc\t1\n")
    write(tmp_path, "friends.csv", "who,whom\na,b\nb,a\nc,ghost\n,a\n")
    cfg = config_from_dict({"dataset": {"format": "table", "interactions": {"file": "r.tsv"},
                                        "social": {"file": "friends.csv", "source": "who", "target": "whom"}}}).dataset
    with pytest.raises(DataError) as err:  # line 5 has an empty source id
        read_tables(cfg, tmp_path)
    assert "friends.csv" in str(err.value) and (err.value.line, err.value.field) == (5, "who")
    write(tmp_path, "friends.csv", "who,whom\na,b\nb,a\nc,ghost\n")
    ds = read_tables(cfg, tmp_path)
    assert ds.social.edges.tolist() == [[ds.users.index("a"), ds.users.index("b")],
                                        [ds.users.index("b"), ds.users.index("a")]]
    assert any("naming a user without interactions" in n for n in ds.notes)
