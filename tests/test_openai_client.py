"""The OpenAI-compatible embeddings client against a real HTTP server on 127.0.0.1 (ephemeral port, in a thread)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from fusionrec.config import TextConfig
from fusionrec.errors import ConfigError
from fusionrec.knowledge.text import EncoderError, OpenAIEmbeddingEncoder, make_encoder

DIM = 4


def server_vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [float(b) - 128.0 for b in digest[:DIM]]


class Behaviour:
    """What the fake server does; every request is recorded."""

    def __init__(self):
        self.fail_first, self.fail_status, self.retry_after = 0, 503, None
        self.sleep_first, self.sleep_s = 0, 0.0
        self.reject = None  # (status, body) answered to every request
        self.reverse = False  # list the data in reverse index order
        self.drop_one = False
        self.requests: list[dict] = []


class Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        b = self.server.behaviour
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = len(b.requests)
        b.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if n < b.sleep_first:
            time.sleep(b.sleep_s)
        if b.reject is not None:
            return self._send(b.reject[0], b.reject[1])
        if n < b.fail_first:
            headers = {"Retry-After": str(b.retry_after)} if b.retry_after is not None else {}
            return self._send(b.fail_status, {"error": {"message": "busy, try later"}}, headers)
        data = [{"object": "embedding", "index": i, "embedding": server_vector(t)} for i, t in enumerate(body["input"])]
        if b.reverse:
            data = data[::-1]
        if b.drop_one:
            data = data[1:]
        self._send(200, {"object": "list", "data": data, "model": body["model"]})

    def _send(self, status, payload, headers=None):
        raw = json.dumps(payload).encode() if not isinstance(payload, bytes) else payload
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(raw)
        except OSError:  # the client gave up (timeout test)
            pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.behaviour = Behaviour()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def base_url(httpd) -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}/v1"


class Sleeps(list):
    """Records the backoff delays instead of sleeping."""

    def __call__(self, seconds):
        self.append(seconds)


def client(httpd, **kwargs) -> OpenAIEmbeddingEncoder:
    kwargs.setdefault("sleep", Sleeps())
    kwargs.setdefault("normalize", False)
    return OpenAIEmbeddingEncoder(base_url(httpd), "test-embed", **kwargs)


TEXTS = [f"text number {i}" for i in range(10)]


def test_batches_by_batch_size_and_orders_by_index(server):
    server.behaviour.reverse = True
    enc = client(server, batch_size=4)
    out = enc.encode(TEXTS)
    assert [len(r["body"]["input"]) for r in server.behaviour.requests] == [4, 4, 2]
    assert all(r["path"] == "/v1/embeddings" and r["body"]["model"] == "test-embed" for r in server.behaviour.requests)
    np.testing.assert_array_equal(out, np.array([server_vector(t) for t in TEXTS], dtype=np.float32))
    assert out.dtype == np.float32 and enc.dim == DIM


def test_normalize_gives_unit_rows_in_the_servers_directions(server):
    out = client(server, normalize=True).encode(TEXTS[:3])
    raw = np.array([server_vector(t) for t in TEXTS[:3]])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out, raw / np.linalg.norm(raw, axis=1, keepdims=True), rtol=1e-6)


def test_dim_before_any_encode_asks_the_server_once(server):
    enc = client(server)
    assert enc.dim == DIM and enc.dim == DIM
    assert len(server.behaviour.requests) == 1


@pytest.mark.parametrize("status", [503, 429, 500])
def test_retries_on_busy_server_with_growing_backoff(server, status):
    server.behaviour.fail_first, server.behaviour.fail_status = 3, status
    sleeps = Sleeps()
    enc = client(server, max_retries=5, backoff_s=0.1, sleep=sleeps, seed=1)
    out = enc.encode(TEXTS[:2])
    assert len(server.behaviour.requests) == 4 and out.shape == (2, DIM)
    assert len(sleeps) == 3
    for attempt, delay in enumerate(sleeps):  # base * 2**attempt, scaled by a jitter factor in [0.5, 1]
        assert 0.5 * 0.1 * 2 ** attempt <= delay <= 0.1 * 2 ** attempt


def test_retry_after_header_is_honoured(server):
    server.behaviour.fail_first, server.behaviour.fail_status, server.behaviour.retry_after = 1, 429, 2
    sleeps = Sleeps()
    client(server, sleep=sleeps).encode(TEXTS[:1])
    assert sleeps == [2.0]


def test_gives_up_after_max_retries_and_says_why(server):
    server.behaviour.fail_first = 100
    enc = client(server, max_retries=2)
    with pytest.raises(EncoderError) as err:
        enc.encode(TEXTS[:1])
    msg = str(err.value)
    assert base_url(server) + "/embeddings" in msg and "3 attempt(s)" in msg and "HTTP 503" in msg
    assert "busy, try later" in msg and len(server.behaviour.requests) == 3


def test_a_slow_answer_times_out_and_is_retried(server):
    server.behaviour.sleep_first, server.behaviour.sleep_s = 1, 1.0
    enc = client(server, timeout_s=0.2, max_retries=1)
    out = enc.encode(TEXTS[:2])
    assert out.shape == (2, DIM) and len(server.behaviour.requests) == 2


def test_timeouts_on_every_attempt_fail_with_a_clear_error(server):
    server.behaviour.sleep_first, server.behaviour.sleep_s = 100, 0.6
    enc = client(server, timeout_s=0.15, max_retries=1)
    with pytest.raises(EncoderError, match=r"2 attempt\(s\).*timed out"):
        enc.encode(TEXTS[:1])


def test_a_4xx_answer_fails_at_once_with_the_servers_message(server):
    server.behaviour.reject = (400, {"error": {"message": "input is longer than 512 tokens", "type": "invalid"}})
    enc = client(server, max_retries=5)
    with pytest.raises(EncoderError, match="HTTP 400: input is longer than 512 tokens"):
        enc.encode(TEXTS[:1])
    assert len(server.behaviour.requests) == 1


def test_tei_style_error_body_is_shown(server):
    server.behaviour.reject = (413, {"error": "batch size 64 > maximum allowed batch size 32", "error_type": "Val"})
    with pytest.raises(EncoderError, match="HTTP 413: batch size 64 > maximum allowed batch size 32"):
        client(server).encode(TEXTS[:1])


def test_bearer_token_from_the_named_environment_variable(server, monkeypatch):
    monkeypatch.setenv("FUSIONREC_TEST_KEY", "sekret-123")
    client(server, api_key_env="FUSIONREC_TEST_KEY").encode(TEXTS[:1])
    client(server).encode(TEXTS[:1])
    assert [r["auth"] for r in server.behaviour.requests] == ["Bearer sekret-123", None]


def test_named_key_variable_that_is_not_set_is_an_error(server, monkeypatch):
    monkeypatch.delenv("FUSIONREC_TEST_KEY", raising=False)
    with pytest.raises(EncoderError, match="FUSIONREC_TEST_KEY"):
        client(server, api_key_env="FUSIONREC_TEST_KEY")


def test_a_wrong_number_of_embeddings_is_an_error(server):
    server.behaviour.drop_one = True
    with pytest.raises(EncoderError, match="returned 2 embeddings .* for 3 inputs"):
        client(server).encode(TEXTS[:3])


def test_unreachable_server_names_the_url_attempts_and_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    enc = OpenAIEmbeddingEncoder(f"http://127.0.0.1:{port}/v1", "m", max_retries=2, sleep=sleeps)
    with pytest.raises(EncoderError) as err:
        enc.encode(["hello"])
    msg = str(err.value)
    assert f"http://127.0.0.1:{port}/v1/embeddings" in msg and "3 attempt(s)" in msg
    assert "refused" in msg.lower() and len(sleeps) == 2


def test_make_encoder_builds_the_client_and_its_id_names_host_and_model(server):
    cfg = TextConfig(encoder="openai", model="bge-small", base_url=base_url(server) + "/", batch_size=3)
    enc = make_encoder(cfg)
    port = server.server_address[1]
    assert enc.encoder_id == f"openai:127.0.0.1:{port}/v1:bge-small:norm"
    assert server.behaviour.requests == []  # building the encoder sends nothing
    assert enc.encode(TEXTS[:7]).shape == (7, DIM)
    assert [len(r["body"]["input"]) for r in server.behaviour.requests] == [3, 3, 1]


def test_openai_encoder_without_base_url_is_a_config_error():
    with pytest.raises(ConfigError, match="text.base_url"):
        make_encoder(TextConfig(encoder="openai", model="m"))
