"""A model folder that is missing a file, holds a corrupt or pickle-bearing file, or whose files disagree with each
other is refused with one line naming the file: never a traceback, never the wrong file blamed."""

import json
import pickle

import numpy as np
import pytest

from fusionrec.artifacts.knowledge import ArtifactKnowledge
from fusionrec.artifacts import load_artifact, save_artifact
from fusionrec.cli import main
from fusionrec.data.synthetic import make_synthetic
from fusionrec.errors import FusionrecError
from fusionrec.models.bpr import BPR, BPRParams


@pytest.fixture()
def model_dir(tmp_path):
    ds = make_synthetic(n_users=12, n_items=10, n_clusters=2, interactions_per_user=4, seed=1).dataset
    model = BPR(ds.n_users, ds.n_items, BPRParams(embedding_size=4))
    names = [f"Film {i}" for i in range(ds.n_items)]
    return save_artifact(tmp_path / "model", model, ds.users, ds.items, ds.interactions.to_csr(),
                         knowledge=ArtifactKnowledge(ds.kg, names))


def _json(value) -> bytes:
    return json.dumps(value).encode()


def _edit_json(path, change):
    value = json.loads(path.read_text())
    change(value)
    return json.dumps(value).encode()


def _npz_pickle() -> bytes:
    import io
    buf = io.BytesIO()
    np.savez(buf, indices=np.array([{"a": 1}], dtype=object), indptr=np.zeros(3), shape=np.array([2, 2]))
    return buf.getvalue()


# (file, a description, the bytes it is replaced with given the folder; None deletes it, what the message names)
CORRUPTIONS = [
    ("config.json", "truncated", lambda d: (d / "config.json").read_bytes()[:40]),
    ("config.json", "a list", lambda d: _json([1, 2])),
    ("config.json", "init_args missing", lambda d: _edit_json(d / "config.json", lambda v: v.pop("init_args"))),
    ("config.json", "a wrong n_items", lambda d: _edit_json(d / "config.json",
                                                          lambda v: v["init_args"].update(n_items="ten"))),
    ("config.json", "a future format", lambda d: _edit_json(d / "config.json", lambda v: v.update(format_version=9))),
    ("weights.safetensors", "garbage", lambda d: b"\x00not a safetensors file" * 4),
    ("weights.safetensors", "a pickle", lambda d: pickle.dumps({"user_emb.weight": [1.0]})),
    ("weights.safetensors", "missing", lambda d: None),
    ("users.json", "not JSON", lambda d: b"{users"),
    ("users.json", "a dict", lambda d: _json({"u": 1})),
    ("users.json", "one id short", lambda d: _edit_json(d / "users.json", lambda v: v.pop())),
    ("users.json", "numbers", lambda d: _json(list(range(12)))),
    ("items.json", "one id short", lambda d: _edit_json(d / "items.json", lambda v: v.pop())),
    ("items.json", "a repeated id", lambda d: _edit_json(d / "items.json", lambda v: v.__setitem__(1, v[0]))),
    ("items.json", "missing", lambda d: None),
    ("seen.npz", "garbage", lambda d: b"PK\x03\x04 broken zip"),
    ("seen.npz", "a pickled object array", lambda d: _npz_pickle()),
    ("seen.npz", "missing", lambda d: None),
    ("kg/links.npz", "garbage", lambda d: b"junk"),
    ("kg/entities.json", "not JSON", lambda d: b"[\"e1\""),
    ("item_names.json", "not JSON", lambda d: b"[Film"),
]


@pytest.mark.parametrize("name, what, replace", CORRUPTIONS, ids=[f"{c[0]}-{c[1]}" for c in CORRUPTIONS])
def test_a_bad_artifact_file_is_one_line_naming_it(model_dir, name, what, replace, capsys):
    target = model_dir / name
    assert target.is_file(), f"the fixture has no {name}"
    content = replace(model_dir)
    if content is None:
        target.unlink()
    else:
        target.write_bytes(content)
    with pytest.raises(FusionrecError) as err:
        load_artifact(model_dir)
    message = str(err.value)
    assert "\n" not in message and str(target) in message
    assert main(["recommend", "--model", str(model_dir), "--user", "u1"]) == 2
    printed = capsys.readouterr().err
    assert printed.startswith("error: ") and "Traceback" not in printed and len(printed.strip().splitlines()) == 1


def test_an_intact_artifact_still_loads(model_dir):
    art = load_artifact(model_dir)
    assert len(art.items) == art.model.n_items == 10 and art.knowledge.item_names[0] == "Film 0"
