"""From a dataset config (or a name or path typed on the command line) to a :class:`Dataset`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from fusionrec.config import DatasetConfig
from fusionrec.data.atomic import SPLIT_PARTS, read_atomic
from fusionrec.data.dataset import Dataset
from fusionrec.data.fetch import DATASETS, fetch_dataset, known_datasets, resolve_data_dir
from fusionrec.data.tables import read_tables
from fusionrec.errors import ConfigError, DataError


def load_dataset(cfg: DatasetConfig, data_dir: str | Path | None = None) -> Dataset:
    """``format: atomic``: the atomic files ``cfg.name`` in ``cfg.path`` or, with no path, in the data directory
    (fetched first when ``cfg.name`` is a known dataset). ``format: table``: the tables the config maps, relative
    to ``cfg.path`` (default: the working directory)."""
    if cfg.format == "table":
        return read_tables(_declare_table_fields(cfg), cfg.path or ".")
    options = dict(duplicates=cfg.duplicates, rating_threshold=cfg.rating_threshold, presplit=cfg.presplit,
                   unknown_links=cfg.unknown_links, fields=cfg.fields)
    if cfg.path is not None:
        path = Path(cfg.path).expanduser()
        if path.is_file() and path.suffix == ".inter":  # path: data/foo/foo.inter
            return read_atomic(path.parent, _inter_stem(path), **options)
        return read_atomic(path, cfg.name, **options)
    cached = resolve_data_dir(data_dir) / cfg.name
    if cfg.name in DATASETS:
        return read_atomic(fetch_dataset(cfg.name, data_dir), cfg.name, **options)
    if cached.is_dir():
        return read_atomic(cached, cfg.name, **options)
    raise ConfigError(f"{cfg.name!r} is not a dataset we can fetch ({', '.join(known_datasets())}) and "
                      f"{cached} does not exist; set dataset.path to a directory of atomic files",
                      key="dataset.name")


def resolve_dataset(name_or_path: str | Path, data_dir: str | Path | None = None,
                    fields: Mapping[str, str] | None = None) -> Dataset:
    """The dataset a user names on the command line: a known name (fetched when needed), a directory of atomic
    files (named after the directory, or after its single ``*.inter`` file), or a path to a ``.inter`` file.
    A directory holding only ``NAME.train/valid/test.inter`` is read as pre-split. ``fields``: item field kinds
    as ``dataset.fields``."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        if path.suffix != ".inter":
            raise DataError("expected a directory of atomic files or a .inter file", file=str(path))
        stem = _inter_stem(path)
        return read_atomic(path.parent, stem, presplit=_only_presplit(path.parent, stem), fields=fields)
    if path.is_dir():
        name = _name_in(path)
        return read_atomic(path, name, presplit=_only_presplit(path, name), fields=fields)
    name = str(name_or_path)
    if name in DATASETS:
        return read_atomic(fetch_dataset(name, data_dir), name, fields=fields)
    cached = resolve_data_dir(data_dir) / name
    if cached.is_dir():
        return resolve_dataset(cached, fields=fields)
    raise DataError(f"no such file or directory, and not a dataset we can fetch ({', '.join(known_datasets())})",
                    file=name)


def _declare_table_fields(cfg: DatasetConfig) -> DatasetConfig:
    """``dataset.fields`` for tables: each named column moves to that kind's list of ``dataset.items`` (``ignore``
    drops it), so the mapping and the override say the same thing."""
    if not cfg.fields:
        return cfg
    if cfg.items is None:
        raise ConfigError("dataset.fields sets item field kinds but there is no items table", key="dataset.fields")
    lists = {"text": list(cfg.items.text), "categorical": list(cfg.items.categorical),
             "numeric": list(cfg.items.numeric)}
    for name, kind in cfg.fields.items():
        for names in lists.values():
            if name in names:
                names.remove(name)
        if kind != "ignore":
            lists[kind].append(name)
    return replace(cfg, items=replace(cfg.items, **lists))


def _inter_stem(path: Path) -> str:
    """``foo`` for ``foo.inter`` and for ``foo.train.inter``."""
    stem = path.name[: -len(".inter")]
    for part in SPLIT_PARTS:
        if stem.endswith("." + part):
            return stem[: -len(part) - 1]
    return stem


def _name_in(directory: Path) -> str:
    if (directory / f"{directory.name}.inter").is_file() or (directory / f"{directory.name}.train.inter").is_file():
        return directory.name
    names = sorted({_inter_stem(p) for p in directory.glob("*.inter")})
    if len(names) == 1:
        return names[0]
    found = ", ".join(names) if names else "none"
    raise DataError(f"cannot tell which dataset to read: expected {directory.name}.inter or a single NAME.inter "
                    f"(found: {found})", file=str(directory))


def _only_presplit(directory: Path, name: str) -> bool:
    return not (directory / f"{name}.inter").is_file() and (directory / f"{name}.train.inter").is_file()
