"""A served sequence model reads each user's ordered history, including what they did while serving: a brand-new
user's next list follows their last click at once (planted next-item rule: every item has one successor)."""

import pytest
import torch
from fastapi.testclient import TestClient

from fusionrec.artifacts import save_artifact
from fusionrec.config import TrainingConfig
from fusionrec.data.ids import IdMap
from fusionrec.data.synthetic_sequences import planted_sequences
from fusionrec.models.sasrec import SASRec, SASRecParams
from fusionrec.serving.app import create_app
from fusionrec.serving.event_store import Event
from fusionrec.serving.recommender import Recommender
from fusionrec.serving.settings import ServeSettings
from fusionrec.training import Trainer, build_inputs, seed_everything

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    data = planted_sequences(n_users=600, n_items=80, runs=6, run_length=3, seed=3)
    inputs = build_inputs(data.train.n_users, data.train.n_items, data.train, sequences=True)
    seed_everything(0)
    model = SASRec(inputs.n_users, inputs.n_items, SASRecParams(embedding_size=32, n_layers=1, n_heads=1,
                                                               max_length=20, dropout=0.1))
    Trainer(TrainingConfig(loss="full_softmax", epochs=25, lr=5e-3, batch_size=512, progress=False),
            seed=0).fit(model, inputs)
    path = tmp_path_factory.mktemp("sasrec") / "model"
    save_artifact(path, model.eval(), IdMap("user", [f"u{u}" for u in range(inputs.n_users)]),
                  IdMap("item", [f"i{i}" for i in range(inputs.n_items)]), inputs.train)
    return path, data.successor


def _top(rec: Recommender, user: str) -> str:
    return rec.recommend(user, k=1)[0][0]


def test_a_new_users_next_item_follows_their_last_click_at_once(served, tmp_path):
    path, successor = served
    rec = Recommender.load(path, new_users=True)
    a, b = 5, 40
    rec.add_interactions([Event("ann", f"i{a}", 1.0), Event("ann", f"i{b}", 2.0)])
    assert _top(rec, "ann") == f"i{successor[b]}"
    rec.add_interactions([Event("bob", f"i{b}", 1.0), Event("bob", f"i{a}", 2.0)])  # same items, other order
    assert _top(rec, "bob") == f"i{successor[a]}"
    c = next(i for i in range(80) if i not in (a, b, successor[a], successor[b]))
    rec.add_interactions([Event("ann", f"i{c}", 3.0)])
    assert _top(rec, "ann") == f"i{successor[c]}"


def test_a_trained_users_list_follows_what_they_add_while_serving(served):
    path, successor = served
    rec = Recommender.load(path, new_users=True)
    seen = set(rec.model.stored_sequences().of(7).tolist())
    c = next(i for i in range(80) if i not in seen and successor[i] not in seen)
    rec.add_interactions([Event("u7", f"i{c}", 1.0)])
    assert _top(rec, "u7") == f"i{successor[c]}"
    assert rec.recommend_detailed(["u7", "nobody"], k=1)[0].source == "history"
    assert rec.recommend_detailed(["u7", "nobody"], k=1)[1].source == "popularity"


def test_the_http_service_serves_it(served, tmp_path):
    path, successor = served
    app = create_app(path, ServeSettings(db=tmp_path / "events.sqlite", api_key=KEY))
    with TestClient(app) as client:
        r = client.post("/interactions", headers={"Authorization": f"Bearer {KEY}"},
                        json=[{"user_id": "cy", "item_id": "i11", "timestamp": 1.0}])
        assert r.status_code == 200, r.text
        body = client.post("/recommend", json={"user_id": "cy", "k": 3}).json()
    assert body["items"][0]["item_id"] == f"i{successor[11]}"
    assert body["source"] == "history"


def test_explain_names_the_history_items_the_model_attends_to(served, tmp_path):
    path, successor = served
    rec = Recommender.load(path, new_users=True)
    rec.add_interactions([Event("dee", "i3", 1.0), Event("dee", "i30", 2.0), Event("dee", "i50", 3.0)])
    target = f"i{successor[50]}"
    out = rec.explain("dee", target)
    assert out["model"] == "sasrec" and out["score_source"] == "history"
    steps = {h["item_id"]: h for h in out["history"]}
    assert set(steps) == {"i3", "i30", "i50"}
    assert steps["i50"]["steps_back"] == 1 and steps["i3"]["steps_back"] == 3
    assert sum(h["attention"] for h in out["history"]) == pytest.approx(1.0, abs=1e-5)
    app = create_app(path, ServeSettings(db=tmp_path / "events.sqlite", api_key=KEY))
    with TestClient(app) as client:
        client.post("/interactions", headers={"Authorization": f"Bearer {KEY}"},
                    json=[{"user_id": "dee", "item_id": "i50", "timestamp": 1.0}])
        r = client.post("/explain", json={"user_id": "dee", "item_id": target})
    assert r.status_code == 200, r.text
    assert r.json()["history"][0]["item_id"] == "i50" and r.json()["history"][0]["steps_back"] == 1
