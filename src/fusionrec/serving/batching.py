"""Micro-batching of ``POST /recommend`` on the event loop.

The service answers ``/recommend`` on its event loop, one request at a time. Under concurrent load, requests arrive
while another is being scored; scoring each alone pays the Recommender's fixed cost per call (id look-ups, the
seen-item filter, one matrix product or FAISS search) once per request. :class:`RecommendBatcher` instead queues every
request that reaches it and scores the queue at the next turn of the loop, after the requests already read from the
sockets have queued too: one :meth:`Recommender.recommend_detailed` call per group of compatible requests (same
``k``, ``exclude_seen``, ``candidates`` and ``exclude``; they differ only in the user), each request answered with its
own user's ranking. With one request in flight the batch is that request alone: it waits for nothing but one turn of
the loop. Under load the batch is whatever arrived while the previous one was scored, so it grows with the load and
adds no timer.

A batch is read after every write acknowledged before its requests arrived, so freshness holds: the queue is scored
on the loop, under the Recommender's lock, after the requests were read."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from fusionrec.serving.ranking import Recommendation
from fusionrec.serving.recommender import Recommender


@dataclass(frozen=True)
class Query:
    """One ``/recommend`` request: a user and the options that must be equal for requests to share a call."""

    user_id: str
    k: int = 10
    exclude_seen: bool = True
    candidates: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None

    @property
    def options(self) -> tuple:
        return self.k, self.exclude_seen, self.candidates, self.exclude


class RecommendBatcher:
    """Queues queries and scores them in groups at the next turn of the event loop (see the module docstring).

    ``recommender``: returns the Recommender to use (None while the model is not loaded: the queries then fail with
    :class:`NotLoadedError`). A group whose call raises fails each of its queries with that exception; the caller
    decides what to do (the HTTP fast path answers each such request alone through the app)."""

    def __init__(self, recommender: Callable[[], Recommender | None]):
        self._recommender = recommender
        self._queue: list[tuple[Query, asyncio.Future]] = []
        self._flush_scheduled = False
        self.calls = 0  # Recommender calls made (tests and benchmarks read it)

    async def recommend(self, query: Query) -> Recommendation:
        """The ranking for ``query``, scored together with the queries queued in the same turn of the loop."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((query, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)  # after the callbacks already ready: the requests read in this turn
        return await future

    def _flush(self) -> None:
        queue, self._queue = self._queue, []
        self._flush_scheduled = False
        groups: dict[tuple, list[tuple[Query, asyncio.Future]]] = {}
        for query, future in queue:
            if not future.cancelled():
                groups.setdefault(query.options, []).append((query, future))
        rec = self._recommender()
        for (k, exclude_seen, candidates, exclude), members in groups.items():
            try:
                if rec is None:
                    raise NotLoadedError("the model is not loaded yet")
                self.calls += 1
                results = rec.recommend_detailed([q.user_id for q, _ in members], k, exclude_seen, candidates,
                                                 exclude)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request of the group
                for _, future in members:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(members, results):
                if not future.done():
                    future.set_result(result)


class NotLoadedError(RuntimeError):
    """The service has no Recommender (still starting, or shutting down)."""
