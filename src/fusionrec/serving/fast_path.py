"""``POST /recommend`` without the framework's per-request machinery, for requests that are valid.

:class:`FastRecommend` is an ASGI layer in front of the FastAPI app. A ``POST /recommend`` with a JSON body within
the size limit, that validates against :class:`~fusionrec.serving.schemas.RecommendRequest`, passes the route's own
checks (``k`` range, id-list lengths, the key when reads need one) and is scored without an error, is answered here:
the body is parsed and validated in one step (``model_validate_json``), scored through the
:class:`~fusionrec.serving.batching.RecommendBatcher` and sent as the same JSON bytes the route would send. That skips
Starlette's routing, FastAPI's dependency solving and its Request objects, which cost more than the scoring itself.

Every other request, and any ``/recommend`` that does not pass all of the above (malformed JSON, a failed validation,
an out-of-range ``k``, a missing key, an unknown item id, a streamed or oversized body, a model not loaded yet, any
error while scoring), goes to the app with the body it has already read replayed, so its answer, status and error
message are the app's own. The route stays in the app and in the OpenAPI schema at ``/docs``."""

from __future__ import annotations

import json

from pydantic import ValidationError
from starlette.datastructures import Headers

from fusionrec.serving.auth import key_matches
from fusionrec.serving.batching import Query, RecommendBatcher
from fusionrec.serving.schemas import RecommendRequest
from fusionrec.serving.settings import ServeSettings

PATH = "/recommend"


class FastRecommend:
    """ASGI middleware answering valid ``POST /recommend`` requests itself (see the module docstring).

    ``model_version``: returns the version string replies carry (called after the batch is scored)."""

    def __init__(self, app, settings: ServeSettings, batcher: RecommendBatcher, model_version):
        self.app, self.settings, self.batcher, self.model_version = app, settings, batcher, model_version

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST" or scope.get("root_path"):
            return await self.app(scope, receive, send)
        received: list[dict] = []
        reply = None
        body = await self._read_body(scope, receive, received)
        if body is not None:
            reply = await self._reply(scope, body)
        if reply is None:  # the app answers, from the start of the body
            return await self.app(scope, _replay(received, receive), send)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(reply)).encode("latin-1")),
                                (b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": reply})

    async def _read_body(self, scope, receive, received: list[dict]) -> bytes | None:
        """The whole body of a JSON request with a Content-Length within the limit, or None (the app decides).
        Every message read is appended to ``received``."""
        length = content_type = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"content-type":
                content_type = value
        if content_type is None or content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            return None
        if length is None or not length.isdigit() or int(length) > self.settings.max_body_bytes:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _reply(self, scope, body: bytes) -> bytes | None:
        """The reply body for a request the route would answer 200, or None when the app should answer it."""
        settings = self.settings
        if settings.keyed_reads and not key_matches(Headers(scope=scope), settings.api_key):
            return None
        try:
            request = RecommendRequest.model_validate_json(body)
        except ValidationError:
            return None
        if settings.k_problem(request.k) or settings.id_list_problem(request.candidates, request.exclude):
            return None  # the route answers with the same check's message
        query = Query(request.user_id, request.k, request.exclude_seen,
                      None if request.candidates is None else tuple(request.candidates),
                      None if request.exclude is None else tuple(request.exclude))
        try:
            result = await self.batcher.recommend(query)
            return encode_reply(result, self.model_version())
        except Exception:  # noqa: BLE001 - the app scores this request alone and answers (or reports) it
            return None


def reply_dict(result, version: str) -> dict:
    """The ``/recommend`` reply for one :class:`~fusionrec.serving.ranking.Recommendation`."""
    return {"user_id": result.user_id, "items": [{"item_id": i, "score": s} for i, s in result.items],
            "source": result.source, "model_version": version}


def encode_reply(result, version: str) -> bytes:
    """The reply as the bytes Starlette's ``JSONResponse`` renders (compact, UTF-8, no NaN)."""
    return json.dumps(reply_dict(result, version), ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


def _replay(received: list[dict], receive):
    """A ``receive`` that gives the messages already read, then reads on."""
    pending = list(received)

    async def replay():
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
