"""Schema-driven fuzzing of the HTTP service: Schemathesis reads the service's own OpenAPI document and sends every
operation generated bodies, paths and queries, valid and invalid (its positive and negative modes), to a real
uvicorn server on the loopback. Whatever it sends, the service answers with no 5xx and within a bounded time (a
hung or reset connection fails the test). A planted FusionRec with text and a knowledge graph is served, so new
items, triples and explanations are exercised too; writes carry the API key so they reach validation and the store.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import schemathesis  # a test dependency (pyproject's test extra): never skipped
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from fusionrec.serving.app import create_app
from fusionrec.serving.settings import ServeSettings
from test_serving_app import embedding_server, planted_fusionrec, url_of

KEY = "fuzz-key"
REQUEST_TIMEOUT_S = 20  # generous for a busy machine; a hung connection runs into it and fails the test
EXAMPLES_PER_OPERATION = 30  # bounded so the whole file takes well under a minute here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A real server (uvicorn in a thread, loopback only) over a planted FusionRec; yields its base URL."""
    root = tmp_path_factory.mktemp("fuzz")
    with embedding_server() as embedder:
        model = planted_fusionrec(root / "model", url_of(embedder))
        settings_ = ServeSettings(db=root / "events.sqlite", api_key=KEY, embeddings_url=url_of(embedder))
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(model, settings_), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="on"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(30)


# the service's own OpenAPI document; building the app loads nothing (the model is loaded at startup), so the
# schema is known at collection and the generated requests go to the real server of the ``served`` fixture
schema = schemathesis.openapi.from_dict(create_app(Path("model-loaded-at-startup")).openapi())


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_gets_a_5xx_or_hangs(case, served):
    headers = {"Authorization": f"Bearer {KEY}"}
    case.call_and_validate(base_url=served, headers=headers, checks=[not_a_server_error],
                           timeout=REQUEST_TIMEOUT_S)


def test_the_schema_lists_every_endpoint_the_fuzzer_covers(served):
    """The fuzz run covers what the OpenAPI document lists; this pins that the document lists the endpoints (a route
    left out of it would silently escape the fuzzing)."""
    import httpx

    paths = set(httpx.get(f"{served}/openapi.json", timeout=REQUEST_TIMEOUT_S).json()["paths"])
    assert {"/recommend", "/recommend/batch", "/items/{item_id}/similar", "/interactions", "/items",
            "/users/{user_id}", "/explain", "/kg/triples", "/health", "/ready"} <= paths
