"""The HTTP service in process (FastAPI TestClient) and the Recommender's fold-in, on a planted model.

The planted BPR model: users u0..u19 and items i0..i19 in two groups (even users / items i0..i9 are group 0, odd
users / items i10..i19 group 1); a user's vector points at their group's item vectors, so the right answers are
known: a user is recommended items of their own group, and an item's most similar items are in its group."""

import contextlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from fastapi.testclient import TestClient

from fusionrec.artifacts import save_artifact
from fusionrec.data.ids import IdMap
from fusionrec.errors import ConfigError, UnknownIdError
from fusionrec.models.bpr import BPR, BPRParams
from fusionrec.serving.app import create_app
from fusionrec.serving.event_store import Event, EventStore
from fusionrec.serving.new_items import EmbeddingEndpoint
from fusionrec.serving.recommender import Recommender
from fusionrec.serving.settings import ServeSettings

KEY = "s3cret-key"
GROUP0 = {f"i{i}" for i in range(10)}
GROUP1 = {f"i{i}" for i in range(10, 20)}


def planted_model(path):
    """Saves the planted model (see the module docstring) to ``path``; each user has seen 3 items of their group,
    and items i0 / i10 are the most popular. Returns ``path``."""
    g = torch.Generator().manual_seed(0)
    model = BPR(20, 20, BPRParams(embedding_size=4))
    user_group = torch.arange(20) % 2
    item_group = (torch.arange(20) >= 10).long()
    with torch.no_grad():
        model.user_emb.weight.copy_(torch.nn.functional.one_hot(user_group, 4).float()
                                    + 0.1 * torch.randn(20, 4, generator=g))
        model.item_emb.weight.copy_(torch.nn.functional.one_hot(item_group, 4).float()
                                    + 0.1 * torch.randn(20, 4, generator=g))
    seen = planted_seen()
    save_artifact(path, model, IdMap("user", [f"u{u}" for u in range(20)]),
                  IdMap("item", [f"i{i}" for i in range(20)]), seen)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return planted_model(tmp_path_factory.mktemp("planted") / "model")


@pytest.fixture
def client(model_dir, tmp_path):
    app = create_app(model_dir, ServeSettings(db=tmp_path / "events.sqlite", api_key=KEY, max_body_bytes=20_000))
    with TestClient(app) as c:
        yield c


def auth(key=KEY):
    return {"Authorization": f"Bearer {key}"}


def ids(reply):
    return [x["item_id"] for x in reply["items"]]


# -- fold-in -----------------------------------------------------------------------------------------------------
def test_score_histories_is_item_similarity_read_off_the_scores(model_dir):
    rec = Recommender.load(model_dir)
    model = rec.model
    history = sp.csr_matrix(([1.0], ([0], [3])), shape=(1, 20), dtype=np.float32)
    got = model.score_histories(history)[0]
    with torch.no_grad():
        profiles = model.score_all(torch.arange(20)).double().numpy()  # (users, items)
    expected = np.corrcoef(profiles.T)[3]  # Pearson correlation of item 3's profile with every item's
    expected[3] = 0.0
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)
    assert set(np.argsort(-got.numpy())[:9]) == set(range(10)) - {3}


def test_new_user_gets_popularity_then_their_history(model_dir):
    rec = Recommender.load(model_dir, new_users=True)
    (before,) = rec.recommend_detailed(["newbie"], k=2)
    assert before.source == "popularity"
    assert {i for i, _ in before.items} == {"i0", "i10"}  # the two most popular items
    rec.add_interactions([Event("newbie", "i12"), Event("newbie", "i15")])
    (after,) = rec.recommend_detailed(["newbie"], k=5)
    assert after.source == "history"
    got = [i for i, _ in after.items]
    assert set(got) <= GROUP1 and not {"i12", "i15"} & set(got)  # own group, seen items excluded


def test_known_user_keeps_their_vector_and_folds_in_new_items(model_dir):
    rec = Recommender.load(model_dir)
    plain = rec.recommend("u0", k=20)
    assert {i for i, _ in plain[:7]} <= GROUP0
    rec.add_interactions([Event("u0", "i11"), Event("u0", "i13"), Event("u0", "i17")])
    folded = [i for i, _ in rec.recommend("u0", k=20)]
    assert not {"i11", "i13", "i17"} & set(folded)
    assert set(folded[:4]) & GROUP0 and set(folded) & GROUP1  # both tastes now reach the top
    assert rec.forget_user("u0") == 3
    assert [i for i, _ in rec.recommend("u0", k=20)] == [i for i, _ in plain]


def test_recommender_without_new_users_still_rejects_unknown_users(model_dir):
    rec = Recommender.load(model_dir)
    with pytest.raises(UnknownIdError, match="unknown user id 'nobody'"):
        rec.recommend("nobody")
    with pytest.raises(UnknownIdError, match="unknown item id 'nope'"):
        rec.add_interactions([Event("u1", "nope")])


def test_a_stored_weight_outside_the_bounds_is_not_replayed_and_the_user_still_gets_a_list(model_dir, tmp_path):
    db = tmp_path / "e.sqlite"
    store = EventStore(db)  # a store written before the bound, or by hand: rows the service would now refuse
    store.add([Event("tampered", "i4", None, 1e300), Event("tampered", "i4", None, 1.7e308),
               Event("tampered", "i2", None, 1e-320), Event("tampered", "i1", None, 2.0)])
    store.close()
    rec = Recommender.load(model_dir, db=db, new_users=True)
    reply = rec.recommend("tampered", k=5)
    assert len(reply) == 5 and all(np.isfinite(score) for _, score in reply)
    fresh = Recommender.load(model_dir, new_users=True)
    fresh.add_interactions([Event("tampered", "i1", None, 2.0)])  # what the one valid row alone gives
    assert reply == fresh.recommend("tampered", k=5)


def test_store_is_replayed_by_a_new_recommender(model_dir, tmp_path):
    db = tmp_path / "e.sqlite"
    first = Recommender.load(model_dir, db=db, new_users=True)
    first.add_interactions([Event("fresh", "i4", 5.0, 2.0)])
    expected = first.recommend("fresh", k=5)
    first.store.close()
    second = Recommender.load(model_dir, db=db, new_users=True)
    assert second.recommend_detailed(["fresh"], k=5)[0].source == "history"
    assert second.recommend("fresh", k=5) == expected


# -- endpoints ---------------------------------------------------------------------------------------------------
def test_health_ready_and_docs(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready").json()
    assert ready["ready"] is True and ready["model"] == "bpr" and ready["items"] == 20
    assert client.get("/docs").status_code == 200
    assert "/recommend" in client.get("/openapi.json").json()["paths"]


def test_recommend_known_user(client):
    r = client.post("/recommend", json={"user_id": "u1", "k": 4})
    assert r.status_code == 200
    body = r.json()
    assert body["source"] == "model" and body["model_version"].startswith("bpr-")
    assert len(body["items"]) == 4 and set(ids(body)) <= GROUP1
    assert "i10" not in ids(body)  # seen
    r = client.post("/recommend", json={"user_id": "u1", "k": 3, "candidates": ["i0", "i1", "i12"],
                                        "exclude": ["i12"]})
    assert set(ids(r.json())) == {"i0", "i1"}


def test_batch_and_similar(client):
    r = client.post("/recommend/batch", json={"user_ids": ["u0", "u1", "ghost"], "k": 3})
    results = r.json()["results"]
    assert [x["source"] for x in results] == ["model", "model", "popularity"]
    assert set(ids(results[0])) <= GROUP0 and set(ids(results[1])) <= GROUP1
    r = client.get("/items/i2/similar", params={"k": 5})
    assert r.status_code == 200 and set(ids(r.json())) <= GROUP0 and "i2" not in ids(r.json())


def test_interactions_change_a_new_users_recommendations_and_delete_forgets(client):
    assert client.post("/recommend", json={"user_id": "ann", "k": 3}).json()["source"] == "popularity"
    r = client.post("/interactions", headers=auth(), json=[{"user_id": "ann", "item_id": "i3", "timestamp": 1.0},
                                                           {"user_id": "ann", "item_id": "i5", "weight": 2}])
    assert r.status_code == 200 and r.json() == {"added": 2}
    body = client.post("/recommend", json={"user_id": "ann", "k": 5}).json()
    assert body["source"] == "history" and set(ids(body)) <= GROUP0 - {"i3", "i5"}
    r = client.delete("/users/ann", headers={"X-API-Key": KEY})
    assert r.json() == {"user_id": "ann", "removed_events": 2}
    assert client.post("/recommend", json={"user_id": "ann", "k": 3}).json()["source"] == "popularity"
    assert client.delete("/users/ann", headers=auth()).status_code == 404


@pytest.mark.parametrize("request_args, status, message", [
    (("post", "/recommend", {"content": b"{not json", "headers": {"content-type": "application/json"}}), 422, "JSON"),
    (("post", "/recommend", {"json": {"user_id": 5}}), 422, "string"),
    (("post", "/recommend", {"json": {"user_id": "u1", "k": "5"}}), 422, "integer"),
    (("post", "/recommend", {"json": {"user_id": "u1", "k": 10**9}}), 422, "k must be between 1 and 1000"),
    (("post", "/recommend", {"json": {"user_id": "u1", "k": 0}}), 422, "k must be between"),
    (("post", "/recommend", {"json": {"user_id": "u1", "bogus": 1}}), 422, "bogus"),
    (("post", "/recommend", {"json": {"user_id": "u1", "candidates": ["zzz"]}}), 404, "unknown item id 'zzz'"),
    (("get", "/items/zzz/similar", {}), 404, "unknown item id 'zzz'"),
    (("get", "/items/i1/similar", {"params": {"k": "lots"}}), 422, "integer"),
    (("post", "/recommend", {"json": {"user_id": "u1", "exclude": ["i1"] * 5000}}), 413, "larger than 20000"),
    (("post", "/interactions", {"json": [{"user_id": "u1", "item_id": "i1"}]}), 401, "missing API key"),
    (("post", "/interactions", {"json": [{"user_id": "u1", "item_id": "i1"}], "headers": auth("guess")}), 401,
     "wrong API key"),
    (("post", "/interactions", {"json": [{"user_id": "u1", "item_id": "nope"}], "headers": auth()}), 404,
     "unknown item id 'nope'"),
    (("post", "/interactions", {"json": [{"user_id": "u1", "item_id": "i1", "weight": -1}], "headers": auth()}),
     422, "weight"),
    (("post", "/interactions", {"json": [{"user_id": "u1", "item_id": "i1", "weight": 1e300}], "headers": auth()}),
     422, "between"),  # would overflow the user's summed weights: NaN scores, an empty list forever
    (("post", "/interactions", {"json": [{"user_id": "u1", "item_id": "i1", "weight": 1e-320}], "headers": auth()}),
     422, "between"),  # all-zero scores
    (("post", "/interactions", {"content": '[{"user_id": "u1", "item_id": "i1", "weight": 1' + "0" * 400 + "}]",
                                "headers": {**auth(), "content-type": "application/json"}}), 422, "finite"),
    (("post", "/interactions", {"json": [], "headers": auth()}), 422, "non-empty"),
    (("post", "/interactions", {"json": {"user_id": "u1"}, "headers": auth()}), 422, "list"),
    (("delete", "/users/u1", {}), 401, "missing API key"),
])
def test_bad_requests_are_4xx_with_a_message_and_the_server_keeps_serving(client, request_args, status, message):
    method, path, kwargs = request_args
    r = client.request(method.upper(), path, **kwargs)
    assert r.status_code == status, r.text
    assert message in r.text
    assert KEY not in r.text
    assert client.post("/recommend", json={"user_id": "u1", "k": 1}).status_code == 200


def test_unknown_item_in_a_batch_stores_nothing(client):
    r = client.post("/interactions", headers=auth(), json=[{"user_id": "bob", "item_id": "i1"},
                                                           {"user_id": "bob", "item_id": "nope"}])
    assert r.status_code == 404
    assert client.app.state.recommender.store.events("bob") == []


def test_keyed_reads(model_dir, tmp_path):
    app = create_app(model_dir, ServeSettings(api_key=KEY, keyed_reads=True))
    with TestClient(app) as c:
        assert c.post("/recommend", json={"user_id": "u1"}).status_code == 401
        assert c.post("/recommend", json={"user_id": "u1"}, headers=auth()).status_code == 200
        assert c.get("/health").status_code == 200


@pytest.mark.parametrize("headers, status", [
    ({"Authorization": f"Bearer {KEY}"}, 200),
    ({"X-API-Key": KEY}, 200),
    ({"Authorization": f"Bearer {KEY}", "X-API-Key": KEY}, 200),
    ({"Authorization": f"Bearer {KEY}", "X-API-Key": "guess"}, 401),  # one right header is not enough
    ({"Authorization": "Bearer guess", "X-API-Key": KEY}, 401),
    ({"Authorization": f"Basic {KEY}", "X-API-Key": KEY}, 401),  # another scheme is a credential too, and wrong
    ({"Authorization": "Bearer ", "X-API-Key": KEY}, 401),
])
def test_every_key_a_request_carries_must_match(client, headers, status):
    r = client.post("/interactions", headers=headers, json=[{"user_id": "u9", "item_id": "i1"}])
    assert r.status_code == status, r.text
    assert KEY not in r.text
    assert (client.app.state.recommender.store.events("u9") != []) == (status == 200)


def test_streamed_body_without_a_length_is_bounded_too(client):
    chunks = iter([b"[" + b" " * 15_000, b" " * 15_000 + b"]"])  # no Content-Length: sent chunked
    r = client.post("/interactions", headers={**auth(), "content-type": "application/json"}, content=chunks)
    assert r.status_code == 413 and "larger than 20000" in r.text
    assert client.post("/recommend", json={"user_id": "u1", "k": 1}).status_code == 200


def test_serve_cli_rejects_a_folder_that_is_not_a_model(tmp_path, capsys):
    from fusionrec.cli import main

    assert main(["serve", "--model", str(tmp_path)]) == 2
    assert "is not a fusionrec model directory" in capsys.readouterr().err


@pytest.mark.parametrize("name", __import__("fusionrec.models", fromlist=["model_names"]).model_names())
def test_score_histories_default_works_for_every_registered_model(name):
    """Shapes and finiteness for every model (untrained weights); models fit without training (kNN) also show the
    checkerboard's signal: a history of group-0 items ranks group-0 items first."""
    from test_model_contract import GROUP_ITEMS, N_ITEMS, checkerboard, make

    inputs = checkerboard()
    model = make(name, inputs)
    model.prepare(inputs)
    model.eval()
    history = sp.csr_matrix(([1.0, 1.0, 2.0], ([0, 0, 1], [1, 2, 13])), shape=(2, N_ITEMS), dtype=np.float32)
    scores = model.score_histories(history)
    assert scores.shape == (2, N_ITEMS) and torch.isfinite(scores).all()
    if not model.trainable and name != "pop":
        top = torch.topk(scores[0], GROUP_ITEMS - 1).indices
        assert (top < GROUP_ITEMS).all()


# -- vector path and new items ------------------------------------------------------------------------------------
# A planted FusionRec with text and KG sources, served from vectors. Its text encoder is the run's "openai" encoder
# pointed at a fake embedding server on loopback (started by the test), so adding an item encodes offline and fast
# through the same code path as production. The fake embedding counts genre words: "comedy"/"funny" on dimension 0
# (group 0), "horror"/"scary" on dimension 1 (group 1), plus a small constant.
GENRE_WORDS = {"comedy": 0, "funny": 0, "horror": 1, "scary": 1}
TEMPLATE = "{movie_title}. Genres: {class}."


def fake_embedding(text: str) -> list[float]:
    v = [0.0, 0.0, 0.0, 0.2]
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in GENRE_WORDS:
            v[GENRE_WORDS[word]] += 1.0
    return v


class EmbeddingHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.texts.extend(body["input"])
        self.server.headers.append(dict(self.headers))
        raw = json.dumps({"data": [{"index": i, "embedding": fake_embedding(t)}
                                   for i, t in enumerate(body["input"])]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@contextlib.contextmanager
def embedding_server():
    """A fake OpenAI-compatible embedding server; yields its base URL (``.texts`` on the server lists requests)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), EmbeddingHandler)
    httpd.texts, httpd.headers = [], []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def planted_fusionrec(path, base_url: str):
    """A FusionRec over the planted groups with text (the fake embedding of "<genre> film k") and a KG (item -> its
    group's genre entity), fusion = the plain mean of the present sources, no propagation; saved to ``path``."""
    from fusionrec.artifacts.knowledge import ArtifactKnowledge
    from fusionrec.data import Interactions, KnowledgeGraph
    from fusionrec.models.fusionrec import FusionRec, FusionRecParams
    from fusionrec.training import build_inputs

    genre = ["comedy" if i < 10 else "horror" for i in range(20)]
    titles = [f"{g.title()} film {i}" for i, g in enumerate(genre)]
    text = np.array([fake_embedding(TEMPLATE.format(movie_title=t, **{"class": g})) for t, g in zip(titles, genre)])
    text /= np.linalg.norm(text, axis=1, keepdims=True)  # the run's encoder normalises
    items = IdMap("item", [f"i{i}" for i in range(20)])
    kg = KnowledgeGraph.from_raw([(f"e_{g}", "genre_of", f"e_i{i}") for i, g in enumerate(genre)],
                                 {f"i{i}": f"e_{genre[i]}" for i in range(20)}, items)
    seen = sp.csr_matrix(planted_seen())
    coo = seen.tocoo()
    inputs = build_inputs(20, 20, Interactions(coo.row, coo.col, 20, 20), item_text=text.astype(np.float32), kg=kg)
    params = FusionRecParams(embedding_size=4, n_layers=0, kg_neighbours=False, source_dropout=0.0)
    model = FusionRec.from_inputs(inputs, params)
    model.prepare(inputs)
    g = torch.Generator().manual_seed(0)
    group = (torch.arange(20) >= 10).long()
    with torch.no_grad():
        model.user_emb.weight.copy_(torch.nn.functional.one_hot(torch.arange(20) % 2, 4).float()
                                    + 0.1 * torch.randn(20, 4, generator=g))
        model.item_emb.weight.copy_(torch.nn.functional.one_hot(group, 4).float() + 0.1 * torch.randn(20, 4, generator=g))
        model.text_proj.weight.copy_(torch.eye(4))
        model.text_proj.bias.zero_()
        ent = torch.zeros(kg.n_entities, 4)
        ent[kg.entities.index("e_comedy"), 0] = ent[kg.entities.index("e_horror"), 1] = 1.0
        model.kg_model.entity_embedding.weight.copy_(ent)
    run_config = {"text": {"encoder": "openai", "base_url": base_url, "model": "fake", "template": TEMPLATE}}
    save_artifact(path, model.eval(), IdMap("user", [f"u{u}" for u in range(20)]), items, seen,
                  run_config=run_config, knowledge=ArtifactKnowledge(graph=kg))
    return path


def planted_seen() -> sp.csr_matrix:
    """The planted model's training interactions (see :func:`planted_model`)."""
    rows, cols = [], []
    for u in range(20):
        base = 10 * (u % 2)
        for i in (base, base + 1 + (u // 2) % 9, base + 1 + (u // 2 + 3) % 9):
            rows.append(u)
            cols.append(i)
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(20, 20))


@pytest.fixture(scope="module")
def embedder():
    with embedding_server() as httpd:
        yield httpd


@pytest.fixture(scope="module")
def fusion_dir(tmp_path_factory, embedder):
    return planted_fusionrec(tmp_path_factory.mktemp("fusion") / "model", url_of(embedder))


def url_of(httpd) -> str:
    host, port = httpd.server_address[:2]
    return f"http://{host}:{port}/v1"


@pytest.fixture(scope="module")
def endpoint(embedder):
    """The service's own embeddings setting, pointing at the fake server."""
    return EmbeddingEndpoint(url_of(embedder))


COMEDY_ITEM = {"item_id": "new-comedy", "fields": {"movie_title": "A funny night", "class": ["Comedy"]}}


def test_vector_path_matches_score_all_for_trained_users(fusion_dir, endpoint):
    rec = Recommender.load(fusion_dir, index="exact", embeddings=endpoint)
    assert rec.index is not None
    with torch.no_grad():
        scores = rec.model.score_all(torch.tensor([0, 1]))
    for u in (0, 1):
        got = rec.recommend(f"u{u}", k=5)
        s = scores[u].clone()
        s[torch.from_numpy(planted_seen()[u].indices.astype(np.int64))] = -torch.inf
        assert [i for i, _ in got] == rec.items.raws(torch.topk(s, 5).indices.numpy())


@pytest.mark.parametrize("kind", ["exact", "faiss-flat", "faiss-hnsw"])
def test_recommender_on_vectors_keeps_the_fold_in_behaviour(model_dir, kind):
    rec = Recommender.load(model_dir, new_users=True, index=kind)
    assert rec.index is not None and rec.index.kind == kind
    (before,) = rec.recommend_detailed(["newbie"], k=2)
    assert before.source == "popularity" and {i for i, _ in before.items} == {"i0", "i10"}
    rec.add_interactions([Event("newbie", "i12"), Event("newbie", "i15")])
    (after,) = rec.recommend_detailed(["newbie"], k=5)
    got = [i for i, _ in after.items]
    assert after.source == "history" and set(got) <= GROUP1 and not {"i12", "i15"} & set(got)
    assert {i for i, _ in rec.similar("i2", k=5)} <= GROUP0
    assert rec.model._cache.get("foldin_item_sim") is None  # no (n_items x n_items) similarity was built


def test_serve_settings_hnsw_options_reach_the_served_index(model_dir):
    pytest.importorskip("faiss")
    app = create_app(model_dir, ServeSettings(index="faiss-hnsw", hnsw_m=8, hnsw_ef_search=17))
    with TestClient(app):
        hnsw = app.state.recommender.index.index.hnsw
        assert (hnsw.nb_neighbors(1), hnsw.efSearch) == (8, 17)


def test_new_item_is_recommendable_and_similar_to_the_items_its_text_resembles(fusion_dir, tmp_path, embedder):
    app = create_app(fusion_dir, ServeSettings(db=tmp_path / "e.sqlite", api_key=KEY, index="faiss-flat",
                                               embeddings_url=url_of(embedder)))
    with TestClient(app) as c:
        r = c.post("/items", headers=auth(), json=[COMEDY_ITEM])
        assert r.status_code == 200, r.text
        assert r.json() == {"added": ["new-comedy"], "notes": [], "items": 21}
        assert "A funny night. Genres: Comedy." in embedder.texts  # the run's template, the run's encoder
        assert "new-comedy" in ids(c.get("/items/i3/similar", params={"k": 10}).json())
        assert set(ids(c.get("/items/new-comedy/similar", params={"k": 9}).json())) <= GROUP0
        assert "new-comedy" in ids(c.post("/recommend", json={"user_id": "u0", "k": 8}).json())
        assert "new-comedy" not in ids(c.post("/recommend", json={"user_id": "u1", "k": 8}).json())
        body = c.post("/recommend", json={"user_id": "u0", "k": 1, "candidates": ["i11", "new-comedy", "i13"]}).json()
        assert ids(body) == ["new-comedy"]
        r = c.post("/interactions", headers=auth(), json=[{"user_id": "fan", "item_id": "new-comedy"}])
        assert r.status_code == 200, r.text
        fan = c.post("/recommend", json={"user_id": "fan", "k": 5}).json()
        assert fan["source"] == "history" and set(ids(fan)) <= GROUP0
    # durable: a new app over the same store has the item (its stored vector: the encoder is not asked again)
    asked = len(embedder.texts)
    settings = ServeSettings(db=tmp_path / "e.sqlite", api_key=KEY, embeddings_url=url_of(embedder))
    with TestClient(create_app(fusion_dir, settings)) as c:
        assert c.get("/ready").json()["items"] == 21
        assert "new-comedy" in ids(c.post("/recommend", json={"user_id": "u0", "k": 8}).json())
        assert c.post("/recommend", json={"user_id": "fan", "k": 5}).json()["source"] == "history"
    assert len(embedder.texts) == asked


def test_new_item_from_entities_alone_notes_unknown_ids(fusion_dir, embedder, endpoint):
    rec = Recommender.load(fusion_dir, embeddings=endpoint)
    asked = len(embedder.texts)
    from fusionrec.serving.new_items import NewItem

    done = rec.add_items([NewItem("new-horror", {}, ["e_horror", "m.nowhere"])])
    assert done.added == ["new-horror"] and "unknown entity ids ignored: ['m.nowhere']" in done.notes[0]
    assert len(embedder.texts) == asked  # no text: the encoder was not asked
    assert {i for i, _ in rec.similar("new-horror", k=10)} == GROUP1
    assert rec.recommend("u1", k=1, candidates=["new-horror", "i2"])[0][0] == "new-horror"


@pytest.mark.parametrize("body, status, message", [
    ([{"item_id": "i3", "fields": {"movie_title": "Comedy again"}}], 409, "item id 'i3' already exists"),
    ([COMEDY_ITEM, COMEDY_ITEM], 409, "given more than once"),
    ([{"item_id": "blank", "fields": {"rating": "5"}}], 422, "no content the model can use"),
    ([{"item_id": "x", "entities": ["m.nowhere"]}], 422, "no content the model can use"),
    ([], 422, "non-empty"),
    ([{"item_id": "x", "fields": {"movie_title": {"nested": 1}}}], 422, "movie_title"),
])
def test_bad_new_items_are_4xx_and_store_nothing(fusion_dir, tmp_path, body, status, message, embedder):
    app = create_app(fusion_dir, ServeSettings(db=tmp_path / "e.sqlite", api_key=KEY, embeddings_url=url_of(embedder)))
    with TestClient(app) as c:
        r = c.post("/items", headers=auth(), json=body)
        assert r.status_code == status, r.text
        assert message in r.text
        assert c.get("/ready").json()["items"] == 20
        assert app.state.recommender.store.items() == []


# -- a tampered model folder chooses neither where text goes nor which secret goes with it -------------------------
@pytest.fixture()
def tampered_dir(tmp_path):
    """The planted FusionRec whose config.json sends text to an attacker's server with the service's own API key
    (``api_key_env: FUSIONREC_API_KEY``) and chooses where ONNX exports and caches are written."""
    with embedding_server() as attacker:
        path = planted_fusionrec(tmp_path / "model", url_of(attacker))
        meta = json.loads((path / "config.json").read_text())
        meta["run_config"]["text"].update(api_key_env="FUSIONREC_API_KEY", cache_dir=str(tmp_path / "loot"),
                                          onnx_dir=str(tmp_path / "loot"))
        (path / "config.json").write_text(json.dumps(meta))
        yield path, attacker


def test_a_tampered_model_folder_sends_no_text_and_no_secret_to_its_address(tampered_dir, tmp_path, monkeypatch):
    path, attacker = tampered_dir
    monkeypatch.setenv("FUSIONREC_API_KEY", KEY)
    monkeypatch.setenv("EMBED_TOKEN", "embedding-server-token")
    with embedding_server() as ours:
        settings = ServeSettings(api_key=KEY, embeddings_url=url_of(ours), embeddings_key_env="EMBED_TOKEN")
        with TestClient(create_app(path, settings)) as c:
            r = c.post("/items", headers=auth(), json=[COMEDY_ITEM])
            assert r.status_code == 200, r.text
            assert "new-comedy" in ids(c.post("/recommend", json={"user_id": "u0", "k": 8}).json())
        assert ours.texts == ["A funny night. Genres: Comedy."]
        assert [h.get("Authorization") for h in ours.headers] == ["Bearer embedding-server-token"]
    assert attacker.texts == [] and attacker.headers == []
    assert not (tmp_path / "loot").exists()


def test_a_model_trained_on_a_server_needs_the_services_own_endpoint(tampered_dir, capsys):
    path, attacker = tampered_dir
    with pytest.raises(ConfigError, match="--embeddings-url"):
        Recommender.load(path)
    from fusionrec.cli import main

    assert main(["serve", "--model", str(path), "--port", "1"]) == 2  # refused before any server starts
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--embeddings-url" in err and len(err.strip().splitlines()) == 1
    assert attacker.texts == []


# -- encoding a new item's text stalls no read -----------------------------------------------------------------
class BlockingEncoder:
    """Stands in for the run's encoder: ``encode`` waits until the test releases it (a slow model load)."""

    def __init__(self, inner):
        self.inner, self.entered, self.release = inner, threading.Event(), threading.Event()

    def encode(self, texts):
        self.entered.set()
        assert self.release.wait(30), "the test never released the encoder"
        return self.inner.encode(texts)


def test_recommend_and_health_answer_while_a_new_item_is_being_encoded(fusion_dir, embedder):
    app = create_app(fusion_dir, ServeSettings(api_key=KEY, embeddings_url=url_of(embedder)))
    with TestClient(app) as c:
        content = app.state.recommender._content
        blocking = BlockingEncoder(content.encoder())
        content._encoder = blocking
        added = {}
        writer = threading.Thread(target=lambda: added.update(r=c.post("/items", headers=auth(), json=[COMEDY_ITEM])))
        writer.start()
        try:
            assert blocking.entered.wait(30)
            # the encoder is stuck inside POST /items: reads must not wait for it
            done = {}
            reader = threading.Thread(target=lambda: done.update(
                rec=c.post("/recommend", json={"user_id": "u0", "k": 3}), health=c.get("/health")))
            reader.start()
            reader.join(10)
            assert not reader.is_alive(), "/recommend or /health waited for the encoder"
            assert done["rec"].status_code == 200 and done["health"].status_code == 200
        finally:
            blocking.release.set()
            writer.join(30)
        assert added["r"].status_code == 200 and added["r"].json()["added"] == ["new-comedy"]
        assert "new-comedy" in ids(c.post("/recommend", json={"user_id": "u0", "k": 8}).json())


def test_models_without_a_content_path_refuse_new_items_naming_the_model(client):
    r = client.post("/items", headers=auth(), json=[COMEDY_ITEM])
    assert r.status_code == 422 and "model 'bpr' cannot place new items" in r.text
    assert client.post("/items", json=[COMEDY_ITEM]).status_code == 401


# -- bodies Python's json would accept and an echoing 422 handler could not write ------------------------------------
POISON = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity", "1e400": "1e400",
          "lone surrogate": '"\\ud800"'}
BODIES = {  # endpoint -> a body with one invalid field, as JSON text with the poison in that field
    "/recommend": '{{"user_id": "u1", "k": {}}}',
    "/recommend/batch": '{{"user_ids": ["u1"], "k": {}}}',
    "/explain": '{{"user_id": "u1", "item_id": "i1", "n_history": {}}}',
    "/interactions": '[{{"user_id": "u1", "item_id": "i1", "weight": {}}}]',
    "/kg/triples": '[{{"head": "i1", "relation": "r", "tail": {}}}]',
}


@pytest.mark.parametrize("poison", POISON, ids=list(POISON))
@pytest.mark.parametrize("path", BODIES)
def test_nan_infinity_huge_numbers_and_lone_surrogates_are_a_422_and_the_connection_keeps_serving(client, path,
                                                                                                  poison):
    body = BODIES[path].format(POISON[poison])
    r = client.post(path, content=body, headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail and all({"loc", "msg", "type"} <= set(d) for d in detail)
    r.content.decode("ascii")  # the reply is plain ASCII JSON: nothing sent back can fail to encode
    after = client.post("/recommend", json={"user_id": "u1", "k": 2})
    assert after.status_code == 200 and len(after.json()["items"]) == 2


def test_a_plain_validation_error_still_names_the_field_and_rule(client):
    r = client.post("/recommend", json={"user_id": "u1", "k": "5"})
    assert r.status_code == 422
    (error,) = r.json()["detail"]
    assert error["loc"] == ["body", "k"] and "integer" in error["msg"] and error["type"] == "int_type"
