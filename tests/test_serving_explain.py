"""Explanations and knowledge-graph edits while serving, on the planted model of test_serving_app with a
hand-written knowledge graph saved in its artifact, and on a small FusionRec with a KG source.

The graph (items i0..i19 linked to entities e_i0..e_i19; names "Film <n>"; i19 unlinked):

    e_i0 -directed_by-> dir_a <-directed_by- e_i2          u0 has seen i0: a 2-hop path from i0 to i2
    e_i10 -directed_by-> dir_b <-directed_by- e_i12
    e_i3 has no triple: no path until one is added
"""

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from fusionrec.artifacts.knowledge import ArtifactKnowledge
from fusionrec.artifacts import load_artifact, save_artifact
from fusionrec.data.ids import IdMap
from fusionrec.data.knowledge_graph import KnowledgeGraph
from fusionrec.errors import UnknownIdError
from fusionrec.serving.app import create_app
from fusionrec.serving.event_store import Event
from fusionrec.serving.recommender import Recommender
from fusionrec.serving.settings import ServeSettings
from test_serving_app import GROUP0, planted_model

KEY = "kg-key"
TRIPLES = [("e_i0", "directed_by", "dir_a"), ("e_i2", "directed_by", "dir_a"), ("e_i10", "directed_by", "dir_b"),
           ("e_i12", "directed_by", "dir_b")]


def planted_kg_model(path):
    """The planted BPR model of test_serving_app with the graph of the module docstring in its artifact."""
    art = load_artifact(planted_model(path.parent / (path.name + "-plain")))
    links = {f"i{i}": f"e_i{i}" for i in range(19)}
    kg = KnowledgeGraph.from_raw(TRIPLES, links, art.items)
    names = [f"Film {i}" for i in range(20)]
    return save_artifact(path, art.model, art.users, art.items, art.seen, knowledge=ArtifactKnowledge(kg, names))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return planted_kg_model(tmp_path_factory.mktemp("planted-kg") / "model")


@pytest.fixture
def client(model_dir, tmp_path):
    app = create_app(model_dir, ServeSettings(db=tmp_path / "events.sqlite", api_key=KEY))
    with TestClient(app) as c:
        yield c


def auth():
    return {"X-API-Key": KEY}


def path_texts(reply):
    return [p["text"] for p in reply["paths"]]


# -- the Python API ----------------------------------------------------------------------------------------------
def test_explain_names_the_source_the_history_and_a_kg_path(model_dir):
    rec = Recommender.load(model_dir)
    e = rec.explain("u0", "i2")
    assert e["item_id"] == "i2" and e["name"] == "Film 2" and e["model"] == "bpr" and e["score_source"] == "model"
    assert e["score"] == pytest.approx(dict(rec.recommend("u0", k=20))["i2"], abs=1e-5)
    assert [s["source"] for s in e["sources"]] == ["cf"] and "all of the score is collaborative" in e["notes"][0]
    seen = {rec.items.raw(i) for i in rec.artifact.seen[0].indices}  # u0's history: group-0 items
    assert {h["item_id"] for h in e["history"]} == seen and seen <= GROUP0
    assert all(h["similarity"] > 0.5 for h in e["history"])  # same group as i2: similar item vectors
    contributions = [h["contribution"] for h in e["history"]]
    assert contributions == sorted(contributions, reverse=True)
    (path,) = e["paths"]
    assert path["text"] == "Film 0 [i0] -directed_by-> dir_a <-directed_by- Film 2 [i2]"
    assert path["hops"] == 2 and [n.get("item_id") for n in path["nodes"]] == ["i0", None, "i2"]
    assert [r["direction"] for r in path["relations"]] == ["forward", "backward"]


def test_explain_notes_items_without_a_link_or_a_path(model_dir):
    rec = Recommender.load(model_dir)
    e = rec.explain("u0", "i19")
    assert e["paths"] == [] and any("no link to the knowledge graph" in n for n in e["notes"])
    e = rec.explain("u0", "i3")
    assert e["paths"] == [] and any("no path of at most 3 hops" in n for n in e["notes"])
    assert len(rec.explain("u0", "i2", n_history=1)["history"]) == 1
    seen = rec.explain("u0", "i0")  # an item of the user's own history
    assert "i0" not in [h["item_id"] for h in seen["history"]] and len(seen["history"]) == 2


def test_explain_for_a_new_user_uses_their_added_interactions(model_dir):
    rec = Recommender.load(model_dir, new_users=True)
    with pytest.raises(UnknownIdError, match="unknown user id 'newbie'"):
        rec.explain("newbie", "i2")
    rec.add_interactions([Event("newbie", "i0", weight=2.0)])
    e = rec.explain("newbie", "i2")
    assert e["score_source"] == "history" and [h["item_id"] for h in e["history"]] == ["i0"]
    assert e["history"][0]["weight"] == 2.0 and len(e["paths"]) == 1
    with pytest.raises(UnknownIdError, match="unknown item id 'nope'"):
        rec.explain("newbie", "nope")


def test_added_triples_change_paths_and_survive_a_reload_from_the_same_db(model_dir, tmp_path):
    db = tmp_path / "e.sqlite"
    rec = Recommender.load(model_dir, db=db)
    assert rec.explain("u0", "i3")["paths"] == []
    # items stand for their linked entities; a new relation and a new entity are accepted
    assert rec.add_triples([("i3", "directed_by", "dir_a"), ("i1", "based_on", "novel_x"),
                            ("i5", "based_on", "novel_x"), ("i3", "directed_by", "dir_a")]) == 3
    assert path_texts(rec.explain("u0", "i3")) == ["Film 0 [i0] -directed_by-> dir_a <-directed_by- Film 3 [i3]"]
    assert path_texts(rec.explain("u0", "i5")) == ["Film 1 [i1] -based_on-> novel_x <-based_on- Film 5 [i5]"]
    assert rec.add_triples([("i19", "based_on", "novel_x")]) == 1  # an unlinked item gets entity item:i19
    assert path_texts(rec.explain("u0", "i19")) == [
        "Film 1 [i1] -based_on-> novel_x <-based_on- Film 19 [i19]"]
    assert rec.remove_triples([("e_i3", "directed_by", "dir_a"), ("i2", "directed_by", "dir_b")]) == 1
    assert rec.explain("u0", "i3")["paths"] == []
    rec.store.close()

    again = Recommender.load(model_dir, db=db)  # the store's edits are replayed in order
    assert again.explain("u0", "i3")["paths"] == []
    assert path_texts(again.explain("u0", "i5")) == path_texts(rec.explain("u0", "i5"))
    assert len(again.explain("u0", "i19")["paths"]) == 1
    assert len(again.kg.triples) == len(TRIPLES) + 3


def test_bad_triples_change_nothing(model_dir, tmp_path):
    rec = Recommender.load(model_dir, db=tmp_path / "e.sqlite")
    with pytest.raises(UnknownIdError, match="unknown relation id 'likes'"):
        rec.remove_triples([("e_i0", "likes", "dir_a")])
    with pytest.raises(UnknownIdError, match="unknown entity id 'nobody'"):
        rec.remove_triples([("e_i0", "directed_by", "dir_a"), ("nobody", "directed_by", "dir_a")])
    with pytest.raises(Exception, match="~inverse"):
        rec.add_triples([("e_i0", "directed_by~inverse", "dir_a")])
    assert len(rec.kg.triples) == len(TRIPLES) and rec.store.triple_ops() == []


# -- FusionRec: KG edits move the KG source vectors -----------------------------------------------------------
@pytest.fixture(scope="module")
def fusion_dir(tmp_path_factory):
    from fusionrec.data.synthetic import make_synthetic
    from fusionrec.models.fusionrec import FusionRec, FusionRecParams
    from fusionrec.training.inputs import build_inputs

    ds = make_synthetic(n_users=16, n_items=12, n_clusters=2, interactions_per_user=4, seed=3).dataset
    kg = ds.kg.with_inverse_relations()
    inputs = build_inputs(ds.n_users, ds.n_items, ds.interactions, kg=kg)
    torch.manual_seed(0)
    model = FusionRec.from_inputs(inputs, FusionRecParams(embedding_size=8, n_layers=1, fusion="attention"))
    model.prepare(inputs)
    model.eval()
    path = tmp_path_factory.mktemp("fusion") / "model"
    return save_artifact(path, model, ds.users, ds.items, ds.interactions.to_csr(),
                         knowledge=ArtifactKnowledge(kg, ds.item_info.text["title"]))


def test_fusionrec_explains_per_source_weights_and_kg_edits_move_its_vectors(fusion_dir):
    rec = Recommender.load(fusion_dir)
    e = rec.explain("u0", "i1")
    cf, kg = e["sources"]
    assert (cf["source"], kg["source"]) == ("cf", "kg") and cf["present"] and kg["present"]
    assert cf["weight"] + kg["weight"] == pytest.approx(1.0)  # attention weights over present sources
    assert all(isinstance(s["drop"], float) and isinstance(s["alone"], float) for s in e["sources"])
    assert any("score decomposition" in n for n in e["notes"])

    before = rec.model.serving_vectors()[1].clone()
    assert rec.add_triples([("i1", "directed_by", "e_i7"), ("i1", "directed_by", "brand_new")]) == 2
    after = rec.model.serving_vectors()[1]
    moved = (after - before).abs().sum(1) > 1e-6
    assert moved[1] and moved[7]  # both ends of the new edge (brand_new has no embedding: skipped)
    assert rec.remove_triples([("i1", "directed_by", "e_i7"), ("i1", "directed_by", "brand_new")]) == 2
    assert torch.allclose(rec.model.serving_vectors()[1], before, atol=1e-6)


def test_items_added_while_serving_are_linked_to_their_entities_and_explained(fusion_dir, tmp_path):
    from fusionrec.serving.new_items import NewItem

    db = tmp_path / "e.sqlite"
    rec = Recommender.load(fusion_dir, db=db)
    rec.add_items([NewItem("new1", entities=["e_i1"]), NewItem("new2", entities=["e_i1", "e_i2", "unknown"])])
    assert rec.kg.entity_of_item(rec.items.index("new1")) == rec.kg.entities.index("e_i1")
    e = rec.explain("u0", "new2")
    assert e["sources"] == [] and any("added while serving" in n for n in e["notes"])
    assert e["paths"] and all(p["nodes"][-1]["entity"] == "item:new2" for p in e["paths"])
    assert all(p["relations"][-1] == {"relation": "linked_to", "direction": "backward"} for p in e["paths"])
    rec.store.close()
    again = Recommender.load(fusion_dir, db=db)  # replayed items keep their links
    assert path_texts(again.explain("u0", "new2")) == path_texts(e)


# -- the HTTP service ---------------------------------------------------------------------------------------------
def test_explain_endpoint(client):
    r = client.post("/explain", json={"user_id": "u0", "item_id": "i2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"].startswith("bpr-") and body["sources"][0]["source"] == "cf"
    assert path_texts(body) == ["Film 0 [i0] -directed_by-> dir_a <-directed_by- Film 2 [i2]"]
    assert len(body["history"]) == 3 and body["history"][0]["name"].startswith("Film ")


def test_posting_then_deleting_triples_changes_the_paths_and_is_durable(client):
    assert path_texts(client.post("/explain", json={"user_id": "u0", "item_id": "i3"}).json()) == []
    r = client.post("/kg/triples", headers=auth(), json=[{"head": "i3", "relation": "directed_by", "tail": "dir_a"}])
    assert r.status_code == 200 and r.json() == {"changed": 1, "triples": len(TRIPLES) + 1}
    assert path_texts(client.post("/explain", json={"user_id": "u0", "item_id": "i3"}).json()) == [
        "Film 0 [i0] -directed_by-> dir_a <-directed_by- Film 3 [i3]"]
    assert client.app.state.recommender.store.triple_ops() == [("add", "i3", "directed_by", "dir_a")]
    r = client.request("DELETE", "/kg/triples", headers=auth(),
                       json=[{"head": "i3", "relation": "directed_by", "tail": "dir_a"}])
    assert r.status_code == 200 and r.json()["changed"] == 1
    assert path_texts(client.post("/explain", json={"user_id": "u0", "item_id": "i3"}).json()) == []


@pytest.mark.parametrize("method, path, kwargs, status, message", [
    ("post", "/explain", {"json": {"user_id": "ghost", "item_id": "i2"}}, 404, "unknown user id 'ghost'"),
    ("post", "/explain", {"json": {"user_id": "u0", "item_id": "zzz"}}, 404, "unknown item id 'zzz'"),
    ("post", "/explain", {"json": {"user_id": "u0"}}, 422, "item_id"),
    ("post", "/explain", {"json": {"user_id": "u0", "item_id": "i2", "n_paths": 500}}, 422, "n_paths"),
    ("post", "/kg/triples", {"json": [{"head": "i3", "relation": "r", "tail": "x"}]}, 401, "missing API key"),
    ("delete", "/kg/triples", {"json": [{"head": "i3", "relation": "r", "tail": "x"}]}, 401, "missing API key"),
    ("post", "/kg/triples", {"json": [{"head": "i3", "relation": "r"}], "headers": auth()}, 422, "tail"),
    ("post", "/kg/triples", {"json": {"head": "i3", "relation": "r", "tail": "x"}, "headers": auth()}, 422, "list"),
    ("post", "/kg/triples", {"json": [], "headers": auth()}, 422, "non-empty"),
    ("post", "/kg/triples", {"json": [{"head": "i3", "relation": 5, "tail": "x"}], "headers": auth()}, 422,
     "string"),
    ("post", "/kg/triples", {"content": b"[{", "headers": {**auth(), "content-type": "application/json"}}, 422,
     "JSON"),
    ("delete", "/kg/triples", {"json": [{"head": "e_i0", "relation": "likes", "tail": "dir_a"}],
                               "headers": auth()}, 404, "unknown relation id 'likes'"),
    ("delete", "/kg/triples", {"json": [{"head": "nobody", "relation": "directed_by", "tail": "dir_a"}],
                               "headers": auth()}, 404, "unknown entity id 'nobody'"),
])
def test_bad_explain_and_kg_requests_are_4xx(client, method, path, kwargs, status, message):
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == status, r.text
    assert message in r.text and KEY not in r.text
    assert client.app.state.recommender.store.triple_ops() == []
    assert len(client.app.state.recommender.kg.triples) == len(TRIPLES)


# -- the command line ---------------------------------------------------------------------------------------------
def test_recommend_cli_explains_each_item(model_dir, capsys):
    from fusionrec.cli import main

    assert main(["recommend", "--model", str(model_dir), "--user", "u0", "-k", "7", "--explain"]) == 0
    out = capsys.readouterr().out  # u0's 7 unseen group-0 items, i2 among them
    assert out.count("because of: ") == 7 and "all of the score is collaborative" in out
    assert "kg: Film 0 [i0] -directed_by-> dir_a <-directed_by- Film 2 [i2]" in out
    assert main(["recommend", "--model", str(model_dir), "--user", "u0", "-k", "2", "--explain", "--json"]) == 0
    reply = __import__("json").loads(capsys.readouterr().out)
    assert [x["explanation"]["item_id"] for x in reply["u0"]] == [x["item_id"] for x in reply["u0"]]


@pytest.mark.parametrize("text_weight, note", [
    (0.0, "ease scores from one source: all of the score is collaborative"),
    (5.0, "ease mixes its sources inside one item-item weight matrix: no per-source split"),
])
def test_ease_explanations_say_whether_text_is_mixed_into_its_weights(tmp_path, text_weight, note):
    """Guards Model.mixed_sources_in: EASE with text in its Gram matrix must not claim a purely collaborative score."""
    from fusionrec.data.interactions import Interactions
    from fusionrec.models.ease import EASE, EASEParams
    from fusionrec.training.inputs import build_inputs
    from test_serving_app import planted_seen

    seen = planted_seen().tocoo()
    train = Interactions(seen.row.astype(np.int64), seen.col.astype(np.int64), 20, 20)
    text = np.random.default_rng(0).standard_normal((20, 8)).astype(np.float32)
    model = EASE(20, 20, EASEParams(l2=1.0, text_weight=text_weight))
    model.prepare(build_inputs(20, 20, train, item_text=text))
    path = save_artifact(tmp_path / "ease", model, IdMap("user", [f"u{u}" for u in range(20)]),
                         IdMap("item", [f"i{i}" for i in range(20)]), planted_seen())
    reply = Recommender.load(path).explain("u0", "i5")
    assert note in reply["notes"]
    assert reply["sources"] == ([] if text_weight else
                                [{"source": "cf", "present": True, "weight": 1.0, "alone": None, "drop": None}])
