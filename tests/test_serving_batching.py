"""Micro-batched POST /recommend: concurrent requests scored in one Recommender call each get the answer they would
get alone, and anything the fast path does not answer gets the route's own reply. On the planted model of
test_serving_app (users u0..u19, items i0..i19 in two groups)."""

import asyncio
import json

import httpx
import pytest
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from fusionrec.serving.app import create_app
from fusionrec.serving.batching import Query, RecommendBatcher
from fusionrec.serving.event_store import Event
from fusionrec.serving.fast_path import reply_dict
from fusionrec.serving.recommender import Recommender
from fusionrec.serving.settings import ServeSettings
from test_serving_app import KEY, auth, planted_model

# one request per line: users known, new (popularity) and with added interactions, different k, exclude_seen,
# candidates and exclude; the last has an unknown candidate (404) and must not fail the others
BODIES = [
    {"user_id": "u0", "k": 3}, {"user_id": "u1", "k": 3}, {"user_id": "u2"}, {"user_id": "u3", "k": 5},
    {"user_id": "u4", "k": 3, "exclude_seen": False}, {"user_id": "ghost", "k": 4}, {"user_id": "u5", "k": 3},
    {"user_id": "folded", "k": 4}, {"user_id": "u6", "k": 3, "candidates": ["i0", "i1", "i12", "i13"]},
    {"user_id": "u7", "k": 3, "candidates": ["i0", "i1", "i12", "i13"]}, {"user_id": "u8", "exclude": ["i2", "i4"]},
    {"user_id": "u0", "k": 3}, {"user_id": "u9", "k": 3, "candidates": ["i0", "nope"]},
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return planted_model(tmp_path_factory.mktemp("planted") / "model")


async def _post_all(app, bodies, concurrent: bool):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        if concurrent:
            replies = await asyncio.gather(*(client.post("/recommend", json=b) for b in bodies))
        else:
            replies = [await client.post("/recommend", json=b) for b in bodies]
    return [(r.status_code, r.content) for r in replies]


async def _serve(model_dir, tmp_path, bodies, concurrent: bool):
    app = create_app(model_dir, ServeSettings(db=tmp_path / "events.sqlite", api_key=KEY))
    async with app.router.lifespan_context(app):
        app.state.recommender.add_interactions([Event("folded", "i12"), Event("folded", "i15")])
        replies = await _post_all(app, bodies, concurrent)
        return replies, app.state.batcher.calls


def test_concurrent_requests_are_batched_and_each_gets_its_sequential_answer(model_dir, tmp_path):
    sequential, calls_alone = asyncio.run(_serve(model_dir, tmp_path / "a", BODIES, concurrent=False))
    together, calls_together = asyncio.run(_serve(model_dir, tmp_path / "b", BODIES, concurrent=True))
    assert calls_alone == len(BODIES)
    # groups by options: k=3 (u0 u1 u5 u0), k=10, k=5, exclude_seen=False, k=4 (ghost, folded), two candidate
    # lists, exclude: 8 calls for 13 requests
    assert calls_together == 8
    for body, (status, content), (status_alone, content_alone) in zip(BODIES, together, sequential):
        assert status == status_alone, body
        got, alone = json.loads(content), json.loads(content_alone)
        if status != 200:
            assert got == alone and "unknown item id 'nope'" in got["detail"]
            continue
        assert got["user_id"] == body["user_id"] and got["source"] == alone["source"]
        assert [x["item_id"] for x in got["items"]] == [x["item_id"] for x in alone["items"]], body
        assert [x["score"] for x in got["items"]] == pytest.approx([x["score"] for x in alone["items"]], abs=1e-6)
    sources = {b["user_id"]: json.loads(c)["source"] for b, (s, c) in zip(BODIES, together) if s == 200}
    assert sources["ghost"] == "popularity" and sources["folded"] == "history" and sources["u0"] == "model"


def test_batcher_groups_by_options_and_fails_only_the_failing_group(model_dir):
    rec = Recommender.load(model_dir, new_users=True)
    batcher = RecommendBatcher(lambda: rec)
    queries = [Query("u0", 3), Query("u1", 3), Query("u2", 3, candidates=("i0", "zzz")), Query("u3", 2)]

    async def run():
        return await asyncio.gather(*(batcher.recommend(q) for q in queries), return_exceptions=True)

    results = asyncio.run(run())
    assert batcher.calls == 3
    assert "unknown item id 'zzz'" in str(results[2])
    for q, r in zip(queries, results):
        if q.user_id != "u2":  # the same ranking; scores may differ in the last bits (one product for many rows)
            (alone,) = rec.recommend_detailed([q.user_id], q.k)
            assert (r.user_id, r.source, [i for i, _ in r.items]) == (alone.user_id, alone.source,
                                                                       [i for i, _ in alone.items])
            assert [s for _, s in r.items] == pytest.approx([s for _, s in alone.items], abs=1e-6)


def test_a_write_acknowledged_before_a_request_is_in_its_batch(model_dir, tmp_path):
    app = create_app(model_dir, ServeSettings(db=tmp_path / "events.sqlite", api_key=KEY))
    with TestClient(app) as client:
        assert client.post("/recommend", json={"user_id": "ann", "k": 3}).json()["source"] == "popularity"
        r = client.post("/interactions", headers=auth(), json=[{"user_id": "ann", "item_id": "i3"}])
        assert r.status_code == 200
        body = client.post("/recommend", json={"user_id": "ann", "k": 3}).json()
        assert body["source"] == "history" and "i3" not in [x["item_id"] for x in body["items"]]


def test_fast_path_reply_is_the_routes_bytes_and_other_requests_reach_the_route(model_dir, tmp_path):
    app = create_app(model_dir, ServeSettings(api_key=KEY, keyed_reads=True))
    with TestClient(app) as client:
        rec = app.state.recommender
        r = client.post("/recommend", json={"user_id": "u1", "k": 4}, headers=auth())
        expected = JSONResponse(reply_dict(rec.recommend_detailed(["u1"], 4)[0], rec.model_version))
        assert r.status_code == 200 and r.content == expected.body
        assert r.headers["content-type"] == expected.headers["content-type"]
        calls = app.state.batcher.calls
        assert client.post("/recommend", json={"user_id": "u1"}).status_code == 401  # the route's 401
        assert client.post("/recommend", json={"user_id": "u1"}, headers=auth("guess")).status_code == 401
        r = client.post("/recommend", content=json.dumps({"user_id": "u1", "k": 2}),
                        headers={**auth(), "content-type": "text/plain"})
        assert r.status_code == 422  # FastAPI reads only JSON bodies: the route's answer
        assert app.state.batcher.calls == calls  # none of these went through the batcher
