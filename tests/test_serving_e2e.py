"""The real server: ``python -m fusionrec.cli serve`` in a subprocess on a free loopback port, driven over HTTP.

Checks every endpoint, that posted interactions change a new user's recommendations, that bad requests are 4xx
while the server keeps serving, and that acknowledged writes survive SIGKILL (the event store commits before the
reply)."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from fusionrec.serving.event_store import EventStore
from test_serving_app import (COMEDY_ITEM, GROUP0, GROUP1, embedding_server, planted_fusionrec, planted_model,
                              url_of)

KEY = "e2e-key"
READY_TIMEOUT_S = 90  # generous: the machine running the tests may be busy; the loop ends as soon as /ready is 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A ``fusionrec serve`` subprocess; ``start()`` waits (bounded) for /ready, ``kill()`` sends SIGKILL."""

    def __init__(self, model_dir, db, log_path, extra_args=()):
        self.model_dir, self.db, self.log_path, self.extra_args = model_dir, db, log_path, list(extra_args)
        self.proc = None
        self.url = None

    def start(self) -> "Server":
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, OMP_NUM_THREADS="1")
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "fusionrec.cli", "serve", "--model", str(self.model_dir),
                                      "--port", str(port), "--db", str(self.db), "--api-key", KEY,
                                      *self.extra_args],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.kill()
        raise AssertionError(f"server not ready after {READY_TIMEOUT_S}s: {self.log_path.read_text()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        if getattr(self, "log", None):
            self.log.close()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return planted_model(tmp_path_factory.mktemp("planted") / "model")


@pytest.fixture
def server(model_dir, tmp_path):
    srv = Server(model_dir, tmp_path / "events.sqlite", tmp_path / "server.log")
    try:
        yield srv.start()
    finally:
        srv.kill()


def ids(reply):
    return [x["item_id"] for x in reply["items"]]


def test_every_endpoint_and_fold_in_for_a_new_user(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/health").json() == {"status": "ok"}
        assert http.get("/ready").json()["ready"] is True
        assert http.get("/docs").status_code == 200
        known = http.post("/recommend", json={"user_id": "u0", "k": 3}).json()
        assert known["source"] == "model" and set(ids(known)) <= GROUP0
        batch = http.post("/recommend/batch", json={"user_ids": ["u0", "u1"], "k": 3}).json()["results"]
        assert set(ids(batch[1])) <= GROUP1
        assert set(ids(http.get("/items/i11/similar", params={"k": 4}).json())) <= GROUP1

        before = http.post("/recommend", json={"user_id": "zoe", "k": 5}).json()
        assert before["source"] == "popularity"
        key = {"Authorization": f"Bearer {KEY}"}
        r = http.post("/interactions", headers=key, json=[{"user_id": "zoe", "item_id": "i14"},
                                                          {"user_id": "zoe", "item_id": "i16"}])
        assert r.status_code == 200, r.text
        after = http.post("/recommend", json={"user_id": "zoe", "k": 5}).json()
        assert after["source"] == "history" and set(ids(after)) <= GROUP1 - {"i14", "i16"}
        assert ids(after) != ids(before)

        for bad, status in [(http.post("/recommend", content=b"[[", headers={"content-type": "application/json"}),
                             422),
                            (http.post("/recommend", json={"user_id": "u0", "k": 10**12}), 422),
                            (http.post("/interactions", json=[{"user_id": "z", "item_id": "i1"}]), 401),
                            (http.post("/interactions", headers=key, json=[{"user_id": "z", "item_id": "?"}]), 404),
                            (http.post("/recommend", content=b"x" * 2_000_000,
                                       headers={"content-type": "application/json"}), 413)]:
            assert bad.status_code == status, bad.text
            assert bad.json()["detail"]
        assert http.delete("/users/zoe", headers={"X-API-Key": KEY}).json()["removed_events"] == 2
        assert http.post("/recommend", json={"user_id": "zoe", "k": 5}).json()["source"] == "popularity"


def test_acknowledged_writes_survive_sigkill(server):
    key = {"Authorization": f"Bearer {KEY}"}
    acknowledged = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for n in range(20):
            row = {"user_id": f"k{n}", "item_id": f"i{n % 20}", "timestamp": float(n)}
            assert http.post("/interactions", headers=key, json=[row]).status_code == 200
            acknowledged.append(row)
    server.kill()  # SIGKILL right after the last acknowledged write: no shutdown hook runs

    stored = {(e.user_id, e.item_id, e.timestamp) for e in EventStore(server.db).events()}
    assert stored == {(r["user_id"], r["item_id"], r["timestamp"]) for r in acknowledged}
    server.start()  # same database: the events are replayed into fold-in
    with httpx.Client(base_url=server.url, timeout=30) as http:
        replies = http.post("/recommend/batch", json={"user_ids": [r["user_id"] for r in acknowledged],
                                                      "k": 3}).json()["results"]
    assert all(r["source"] == "history" for r in replies)
    assert all(row["item_id"] not in ids(reply) for row, reply in zip(acknowledged, replies))


def test_new_item_posted_to_a_real_server_is_recommendable_and_similar(tmp_path):
    """A FusionRec served for real; its text encoder (the run's kind, an OpenAI-compatible client) reaches the fake
    embedding server given by --embeddings-url, never the one the model folder names. The new comedy lands among the
    comedies and survives a SIGKILL."""
    key = {"Authorization": f"Bearer {KEY}"}
    with embedding_server() as embedder, embedding_server() as named_in_folder:
        model = planted_fusionrec(tmp_path / "model", url_of(named_in_folder))
        srv = Server(model, tmp_path / "events.sqlite", tmp_path / "server.log",
                     ["--embeddings-url", url_of(embedder)])
        try:
            srv.start()
            with httpx.Client(base_url=srv.url, timeout=30) as http:
                r = http.post("/items", headers=key, json=[COMEDY_ITEM])
                assert r.status_code == 200 and r.json()["added"] == ["new-comedy"], r.text
                assert "new-comedy" in ids(http.get("/items/i4/similar", params={"k": 10}).json())
                assert "new-comedy" in ids(http.post("/recommend", json={"user_id": "u2", "k": 8}).json())
                assert http.post("/items", headers=key, json=[COMEDY_ITEM]).status_code == 409
            srv.kill()
            srv.start()  # replayed from the items table
            with httpx.Client(base_url=srv.url, timeout=30) as http:
                assert http.get("/ready").json()["items"] == 21
                assert set(ids(http.get("/items/new-comedy/similar", params={"k": 9}).json())) <= GROUP0
        finally:
            srv.kill()
        assert embedder.texts and named_in_folder.texts == []


def test_posted_triples_change_explanations_on_a_real_server_and_survive_sigkill(tmp_path):
    """The planted model with a hand-written KG (test_serving_explain): a posted triple gives item i3 a path from
    u0's history at once, and the replayed triples table keeps it after a SIGKILL."""
    from test_serving_explain import planted_kg_model

    srv = Server(planted_kg_model(tmp_path / "model"), tmp_path / "events.sqlite", tmp_path / "server.log")
    key = {"X-API-Key": KEY}
    explain = {"user_id": "u0", "item_id": "i3"}
    try:
        srv.start()
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            assert http.post("/explain", json=explain).json()["paths"] == []
            r = http.post("/kg/triples", headers=key, json=[{"head": "i3", "relation": "directed_by", "tail": "dir_a"}])
            assert r.status_code == 200 and r.json()["changed"] == 1, r.text
            paths = [p["text"] for p in http.post("/explain", json=explain).json()["paths"]]
            assert paths == ["Film 0 [i0] -directed_by-> dir_a <-directed_by- Film 3 [i3]"]
            bad = http.request("DELETE", "/kg/triples", headers=key,
                               json=[{"head": "i3", "relation": "likes", "tail": "dir_a"}])
            assert bad.status_code == 404 and "unknown relation id 'likes'" in bad.text
        srv.kill()
        srv.start()
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            assert [p["text"] for p in http.post("/explain", json=explain).json()["paths"]] == paths
    finally:
        srv.kill()
