"""The HTTP service: ``create_app(model_dir, settings)`` builds a FastAPI app whose state (the Recommender, the
event store, the settings) lives on ``app.state``. Nothing is built at import; the model loads at startup.

Every endpoint calls the :class:`~fusionrec.serving.recommender.Recommender` (the same code path as the Python
API). Bad input is a 4xx with a message: 401 (API key), 404 (unknown id), 413 (body too large), 422 (malformed or
out-of-range body)."""

from __future__ import annotations

import gc
import logging
import math
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from fusionrec.errors import FusionrecError, UnknownIdError
from fusionrec.serving import schemas
from fusionrec.serving.auth import check_key
from fusionrec.serving.batching import RecommendBatcher
from fusionrec.serving.event_store import Event
from fusionrec.serving.fast_path import FastRecommend, reply_dict
from fusionrec.serving.limits import BodyLimit
from fusionrec.serving.new_items import NewItem
from fusionrec.serving.recommender import DuplicateItemError, Recommender
from fusionrec.serving.settings import ServeSettings
from fusionrec.serving.strict_json import StrictJSONRoute, validation_error_response

log = logging.getLogger("fusionrec.serving")


def load_recommender(model_dir: str | Path, settings: ServeSettings) -> Recommender:
    """The Recommender the service runs, built from ``settings`` (store, index, embeddings server)."""
    options = {k: v for k, v in (("hnsw_m", settings.hnsw_m), ("ef_search", settings.hnsw_ef_search))
               if v is not None}
    return Recommender.load(model_dir, db=settings.db, new_users=True, index=settings.index, index_options=options,
                            embeddings=settings.embedding_endpoint())


def create_app(model_dir: str | Path, settings: ServeSettings | None = None,
               recommender: Recommender | None = None) -> FastAPI:
    """The service over the model folder ``model_dir`` (``DIR/model`` from ``fusionrec train``); ``recommender``:
    one already built by :func:`load_recommender` (``fusionrec serve`` builds it first, so a bad model folder or
    setting is one error line before the server starts), else it is built at startup."""
    settings = settings or ServeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        rec = recommender if recommender is not None else load_recommender(model_dir, settings)
        rec.warm()
        app.state.recommender = rec
        if settings.freeze_gc:  # the model and everything loaded so far are never scanned by the cyclic GC again
            gc.collect()
            gc.freeze()
        if settings.api_key is None:
            log.warning("no API key set: write endpoints are open to anyone who can reach %s:%s",
                        settings.host, settings.port)
        try:
            yield
        finally:
            app.state.recommender = None
            if rec.store is not None:
                rec.store.close()

    app = FastAPI(title="fusionrec", summary="recommendations from a trained fusionrec model", lifespan=lifespan)
    app.state.settings = settings
    app.state.recommender = None
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # outermost (after ServerErrorMiddleware): valid POST /recommend requests are answered there, micro-batched
    app.state.batcher = RecommendBatcher(lambda: app.state.recommender)
    app.add_middleware(FastRecommend, settings=settings, batcher=app.state.batcher,
                       model_version=lambda: app.state.recommender.model_version)
    app.router.route_class = StrictJSONRoute  # NaN, Infinity, 1e400 and lone surrogates: 422 before validation
    _add_error_handlers(app)
    _add_routes(app, settings)
    return app


async def _recommender(request: Request) -> Recommender:
    rec = request.app.state.recommender
    if rec is None:
        raise HTTPException(503, "the model is not loaded yet")
    return rec


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError):
        return validation_error_response(exc)

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, exc: UnknownIdError):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(DuplicateItemError)
    async def duplicate(request: Request, exc: DuplicateItemError):
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(FusionrecError)
    async def bad_input(request: Request, exc: FusionrecError):
        return JSONResponse({"detail": str(exc)}, status_code=422)


def _add_routes(app: FastAPI, settings: ServeSettings) -> None:
    async def writer(request: Request) -> None:  # async: checked on the event loop, no thread-pool hop
        check_key(request, settings.api_key)

    async def reader(request: Request) -> None:
        if settings.keyed_reads:
            check_key(request, settings.api_key)

    def check_k(k: int) -> None:
        if problem := settings.k_problem(k):
            raise HTTPException(422, problem)

    def check_lists(*lists: list | None) -> None:
        if problem := settings.id_list_problem(*lists):
            raise HTTPException(413, problem)

    @app.get("/health")
    async def health() -> dict:  # async: no thread-pool hop for a constant
        """The process is up (the model may still be loading)."""
        return {"status": "ok"}

    @app.get("/ready")
    async def ready(request: Request):
        """200 once the model and its item similarity are loaded, 503 before."""
        rec = request.app.state.recommender
        if rec is None:
            return JSONResponse({"ready": False}, status_code=503)
        return {"ready": True, "model": rec.model_name, "model_version": rec.model_version,
                "users": len(rec.users), "items": len(rec.items)}

    @app.post("/recommend", response_model=schemas.RecommendResponse, dependencies=[Depends(reader)])
    async def recommend(body: schemas.RecommendRequest, rec: Recommender = Depends(_recommender)):
        """Top-k items for one user. A user the model never saw gets popular items (``source: "popularity"``)
        until they have interactions."""
        # valid requests are answered by FastRecommend (fast_path.py) before they get here; this route answers the
        # rest (its errors are the reference) and defines the endpoint in the OpenAPI schema
        check_k(body.k)
        check_lists(body.candidates, body.exclude)
        (result,) = rec.recommend_detailed([body.user_id], body.k, body.exclude_seen, body.candidates, body.exclude)
        return JSONResponse(reply_dict(result, rec.model_version))

    @app.post("/recommend/batch", response_model=schemas.BatchRecommendResponse, dependencies=[Depends(reader)])
    def recommend_batch(body: schemas.BatchRecommendRequest, rec: Recommender = Depends(_recommender)):
        """Top-k items for each of many users (at most ``max_batch_users``)."""
        check_k(body.k)
        check_lists(body.candidates, body.exclude)
        if len(body.user_ids) > settings.max_batch_users:
            raise HTTPException(413, f"at most {settings.max_batch_users} users per batch, got {len(body.user_ids)}")
        results = rec.recommend_detailed(body.user_ids, body.k, body.exclude_seen, body.candidates, body.exclude)
        version = rec.model_version
        return {"results": [reply_dict(r, version) for r in results], "model_version": version}

    @app.get("/items/{item_id}/similar", response_model=schemas.SimilarResponse, dependencies=[Depends(reader)])
    def similar(item_id: str, k: int = Query(10), rec: Recommender = Depends(_recommender)):
        """The k items most similar to this one."""
        check_k(k)
        items = rec.similar(item_id, k)
        return {"item_id": item_id, "items": [{"item_id": i, "score": s} for i, s in items],
                "model_version": rec.model_version}

    @app.post("/interactions", response_model=schemas.InteractionsResponse, dependencies=[Depends(writer)])
    def interactions(body: list[schemas.Interaction], rec: Recommender = Depends(_recommender)):
        """Adds interactions; they are durable (committed to the event store) before the reply, and the users'
        next recommendations fold them in. Unknown item ids are a 404 naming the id; nothing is stored then."""
        if not body:
            raise HTTPException(422, "the body must be a non-empty list of interactions")
        if len(body) > settings.max_interactions:
            raise HTTPException(413, f"at most {settings.max_interactions} interactions per request, got {len(body)}")
        events = [Event(b.user_id, b.item_id, None if b.timestamp is None else _as_float(b.timestamp),
                        _as_float(b.weight)) for b in body]
        return {"added": rec.add_interactions(events)}

    @app.post("/items", response_model=schemas.ItemsAddedResponse, dependencies=[Depends(writer)])
    def add_items(body: list[schemas.NewItemBody], rec: Recommender = Depends(_recommender)):
        """Adds items the model was not trained on, placed by their content (text fields and linked entities):
        recommendable and in similar-items at once, durable before the reply. 409 for an existing item id; 422 for
        a model without a content path (only fusionrec with text and/or a knowledge graph has one) or an item
        without usable content. Unknown entity ids are ignored and named in ``notes``."""
        if not body:
            raise HTTPException(422, "the body must be a non-empty list of items")
        if len(body) > settings.max_new_items:
            raise HTTPException(413, f"at most {settings.max_new_items} items per request, got {len(body)}")
        done = rec.add_items([NewItem(b.item_id, dict(b.fields), list(b.entities)) for b in body])
        return {"added": done.added, "notes": done.notes, "items": len(rec.items)}

    @app.delete("/users/{user_id}", response_model=schemas.ForgetResponse, dependencies=[Depends(writer)])
    def forget(user_id: str, rec: Recommender = Depends(_recommender)):
        """Forgets a user's added interactions (stored events and folded-in state). 404 for a user id that is
        neither in the training data nor has added interactions."""
        if not rec.knows_user(user_id):
            raise UnknownIdError("user", user_id)
        return {"user_id": user_id, "removed_events": rec.forget_user(user_id)}

    @app.post("/explain", response_model=schemas.ExplainResponse, dependencies=[Depends(reader)])
    def explain(body: schemas.ExplainRequest, rec: Recommender = Depends(_recommender)):
        """Why an item suits a user: per-source contributions, the history items behind it and knowledge-graph
        paths from the history to the item. 404 for an unknown item, or a user with neither training nor added
        interactions."""
        return {**rec.explain(body.user_id, body.item_id, body.n_history, body.n_paths),
                "model_version": rec.model_version}

    def check_triples(body: list[schemas.Triple]) -> list[tuple[str, str, str]]:
        if not body:
            raise HTTPException(422, "the body must be a non-empty list of triples")
        if len(body) > settings.max_interactions:
            raise HTTPException(413, f"at most {settings.max_interactions} triples per request, got {len(body)}")
        return [(t.head, t.relation, t.tail) for t in body]

    @app.post("/kg/triples", response_model=schemas.TriplesResponse, dependencies=[Depends(writer)])
    def add_triples(body: list[schemas.Triple], rec: Recommender = Depends(_recommender)):
        """Adds knowledge-graph triples by raw id (head/tail: an entity id, an item id for its linked entity, or a
        new entity; unknown relations become new relations). Durable before the reply; explanations use them at
        once and FusionRec's KG source vectors are recomputed."""
        changed = rec.add_triples(check_triples(body))
        return {"changed": changed, "triples": len(rec.kg.triples)}

    @app.delete("/kg/triples", response_model=schemas.TriplesResponse, dependencies=[Depends(writer)])
    def remove_triples(body: list[schemas.Triple], rec: Recommender = Depends(_recommender)):
        """Removes knowledge-graph triples by raw id; an unknown relation or entity is a 404 and nothing changes."""
        changed = rec.remove_triples(check_triples(body))
        return {"changed": changed, "triples": len(rec.kg.triples)}


def _as_float(value: int | float) -> float:
    """A JSON number as a float; an integer beyond any float becomes inf, which validation then refuses by name."""
    try:
        return float(value)
    except OverflowError:
        return math.inf
