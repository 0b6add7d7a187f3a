"""The Python API over a saved model: raw ids in, raw ids with scores out.

A thin facade: ranking lives in :mod:`fusionrec.serving.ranking`, what is added while serving (interactions, items)
in :class:`~fusionrec.serving.live_state.LiveState`, knowledge edits in :class:`~fusionrec.serving.knowledge.LiveGraph`
and new items' content in :mod:`fusionrec.serving.new_items`. Lock discipline, the same for every write: the
write lock orders writers and is held while the event store is written (readers never wait for the disk); the read
lock is held only while memory changes, and by every read. The HTTP service calls these same methods."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.artifacts import ModelArtifact, load_artifact
from fusionrec.data.ids import IdMap
from fusionrec.errors import DataError, FusionrecError, UnknownIdError
from fusionrec.models.capabilities import KnowledgeEditable
from fusionrec.serving import ranking
from fusionrec.serving.event_store import Event, EventStore, StoredItem, weight_problem
from fusionrec.serving.knowledge import LiveGraph, RawTriple
from fusionrec.serving.live_state import LiveState
from fusionrec.serving.new_items import ContentPath, EmbeddingEndpoint, NewItem, UnsupportedError
from fusionrec.serving.ranking import Ranked, Recommendation
from fusionrec.serving.topk_index import TopKIndex, make_index

log = logging.getLogger("fusionrec.serving")


class DuplicateItemError(FusionrecError):
    """An item id that the catalogue already holds (or that a request gives twice)."""


@dataclass(frozen=True)
class ItemsAdded:
    """What :meth:`Recommender.add_items` did: ``added`` the new item ids; ``notes`` what was ignored (unknown
    entity ids, fields the text template does not read)."""

    added: list[str]
    notes: list[str]


class Recommender:
    """Recommends from a model artifact (the ``model/`` folder ``fusionrec train`` writes).

    >>> rec = Recommender.load("runs/bpr/model")
    >>> rec.recommend("196", k=3)            # one user -> [(item_id, score), ...]
    >>> rec.recommend(["196", "186"], k=3)   # many users -> one list per user

    ``store``: where added interactions and items are kept durably (replayed here); ``new_users``: accept user ids
    the model never saw (popularity until they have interactions, then their folded-in history) instead of raising;
    ``index``: the top-K index over item vectors (:data:`~fusionrec.serving.topk_index.INDEX_KINDS`), used when the
    model is a dot product (``Model.serving_vectors``); other models rank every item by ``score_all`` /
    ``score_histories``. ``index_options``: keyword arguments of a FAISS index (e.g. ``hnsw_m``, ``ef_search``; see
    :class:`~fusionrec.serving.topk_index.FaissIndex`), ignored by the exact one. ``embeddings``: the embeddings
    server new items' text goes to when the model was trained on a server's text vectors (required then: a
    ConfigError says so at once); the model folder's own address and key variable are never used.
    """

    def __init__(self, artifact: ModelArtifact, batch_users: int = 1024, store: EventStore | None = None,
                 new_users: bool = False, index: str = "auto", index_options: dict | None = None,
                 embeddings: EmbeddingEndpoint | None = None):
        self.artifact = artifact
        self.model = artifact.model.eval()
        self.users = artifact.users
        self.batch_users = batch_users
        self.store = store
        self.new_users = new_users
        self._lock = threading.RLock()  # the read lock: held by reads, and by writes while memory changes
        self._write_lock = threading.Lock()  # orders writers; held while the event store is written
        self._model_version: str | None = None
        self.state = LiveState(artifact.items, artifact.seen)
        self._index_kind = index
        self._index_options = dict(index_options or {})
        self.index: TopKIndex | None = None  # over item vectors, for dot-product models
        self._user_vecs: np.ndarray | None = None  # (n_users, d); None: the model is not served from vectors
        self._item_vecs: np.ndarray | None = None  # (n_trained_items, d), the model's own item vectors
        self._embeddings = embeddings
        self._content: ContentPath | None = None  # the content path for new items (None: the model has none)
        self.kg = LiveGraph(artifact.knowledge.graph, len(self.items))  # paths for explanations; edited by raw id
        self._load_vectors()
        if self._user_vecs is not None:
            try:  # built now, so a missing embeddings server is refused at start-up, not at the first new item
                self._content = ContentPath(artifact, embeddings)
            except UnsupportedError:
                pass  # add_items says why
        if store is not None:  # replayed before the index is built, so start-up builds it once
            self._replay_items(store.items())
            self.state.remember(self.state.replayable(store.events()))
            self._replay_triples(store.triple_ops())
        self._build_index()

    @classmethod
    def load(cls, path: str | Path, db: str | Path | None = None, new_users: bool = False,
             index: str = "auto", index_options: dict | None = None,
             embeddings: EmbeddingEndpoint | None = None) -> "Recommender":
        artifact = load_artifact(path)  # before the store opens: a bad model folder leaves no database behind
        return cls(artifact, store=EventStore(db) if db is not None else None, new_users=new_users,
                   index=index, index_options=index_options, embeddings=embeddings)

    @property
    def items(self) -> IdMap:
        """The item id map: trained items, then those added while serving."""
        return self.state.items

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def model_version(self) -> str:
        """The model name and a short hash of the artifact's config (changes whenever a new model is trained).
        Hashed once: every reply carries it."""
        if self._model_version is None:
            digest = hashlib.sha256(json.dumps(self.artifact.meta, sort_keys=True, default=str).encode()).hexdigest()
            self._model_version = f"{self.model.name}-{digest[:12]}"
        return self._model_version

    def warm(self) -> None:
        """Computes what the first fold-in or similar-items request would otherwise compute (the item similarity;
        nothing for a model served from vectors, whose index is built with the Recommender)."""
        if self.index is not None:
            return
        with self._lock, torch.no_grad():
            self.model.score_histories(sp.csr_matrix((1, len(self.items)), dtype=np.float32))

    # -- reading ------------------------------------------------------------------------------------------------
    def recommend(self, user_ids: str | Sequence[str], k: int = 10, exclude_seen: bool = True,
                  candidates: Sequence[str] | None = None,
                  exclude: Sequence[str] | None = None) -> Ranked | list[Ranked]:
        """Top-``k`` items for each user, best first, as ``(item_id, score)``.

        ``exclude_seen`` drops items the user interacted with; ``candidates`` restricts the ranking to these items;
        ``exclude`` removes these items for every user. Unknown user or item ids raise ``UnknownIdError`` (unknown
        users only without ``new_users``). Fewer than ``k`` items come back when fewer are eligible."""
        single = isinstance(user_ids, str)
        out = self.recommend_detailed([user_ids] if single else list(user_ids), k, exclude_seen, candidates, exclude)
        return out[0].items if single else [r.items for r in out]

    def recommend_detailed(self, user_ids: Sequence[str], k: int = 10, exclude_seen: bool = True,
                           candidates: Sequence[str] | None = None,
                           exclude: Sequence[str] | None = None) -> list[Recommendation]:
        """Like :meth:`recommend` for a list of users, saying how each ranking was scored."""
        if k < 1:
            raise FusionrecError(f"k must be at least 1, got {k}")
        raw_users = [str(u) for u in user_ids]
        index = self.users.indices(raw_users, missing="minus_one")
        if not self.new_users and (index < 0).any():
            raise UnknownIdError("user", raw_users[int(np.argmax(index < 0))])
        allowed = self.state.allowed_items(candidates, exclude)
        out: list[Recommendation] = []
        with self._lock, torch.no_grad():
            for start in range(0, len(raw_users), self.batch_users):
                chunk_raw, chunk = raw_users[start:start + self.batch_users], index[start:start + self.batch_users]
                if self.index is not None:
                    out += ranking.rank_by_index(self.index, self._user_vecs, self.state, chunk_raw, chunk, k,
                                                 exclude_seen, allowed, self.model)
                else:
                    out += ranking.rank_every_item(self.model, self.state, chunk_raw, chunk, k, exclude_seen,
                                                   allowed)
        return out

    def similar(self, item_id: str, k: int = 10) -> Ranked:
        """The ``k`` items most similar to this one: the cosine of item vectors for a model served from vectors
        (added items included), else the model's own item-item similarity (as used for fold-in)."""
        if k < 1:
            raise FusionrecError(f"k must be at least 1, got {k}")
        with self._lock, torch.no_grad():
            item = self.items.index(item_id)
            if self.index is not None:
                return ranking.similar_by_vectors(self.index.vectors, item, k, self.items)
            return ranking.similar_by_model(self.model, item, k, self.items)

    def knows_user(self, user_id: str) -> bool:
        """True for users of the training data and users with added interactions."""
        with self._lock:
            return user_id in self.users or self.state.has_added(user_id)

    def added_interactions(self, user_id: str) -> dict[int, float]:
        """The user's interactions added while serving: item index -> summed weight (a copy)."""
        with self._lock:
            return self.state.added_items(user_id)

    def ordered_history(self, user_id: str) -> np.ndarray:
        """A sequence model's reading of the user: item indices, oldest first (see :func:`ranking.ordered_history`)."""
        with self._lock:
            return ranking.ordered_history(self.model, self.state, user_id, self.users.get(user_id))

    def served_vectors(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(user vectors (n_users, d), item vectors (n_items, d), added items included) of a model served from
        vectors, else None."""
        with self._lock:
            if self.index is None or self._user_vecs is None:
                return None
            return self._user_vecs, self.index.vectors

    # -- writing ------------------------------------------------------------------------------------------------
    def add_interactions(self, events: Sequence[Event]) -> int:
        """Validates, stores durably (when there is a store) and folds in these interactions; returns how many.
        Unknown item ids raise ``UnknownIdError``; empty user ids, non-finite timestamps and weights outside
        [MIN_WEIGHT, MAX_WEIGHT] (event_store) raise ``DataError`` naming the row."""
        for row, e in enumerate(events):
            if not isinstance(e.user_id, str) or not e.user_id or len(e.user_id) > 256:
                raise DataError("user_id must be a non-empty string of at most 256 characters", line=row + 1,
                                field="user_id")
            if (problem := weight_problem(e.weight)) is not None:
                raise DataError(problem, line=row + 1, field="weight")
            if e.timestamp is not None and not math.isfinite(e.timestamp):
                raise DataError(f"timestamp must be finite, got {e.timestamp!r}", line=row + 1, field="timestamp")
        self.items.indices([e.item_id for e in events])  # raises naming the first unknown item
        if not self.new_users:
            self.users.indices([e.user_id for e in events])
        with self._write_lock:  # writers in order; readers wait only for the in-memory update, never the disk
            if self.store is not None:
                self.store.add(list(events))
            with self._lock:
                self.state.remember(events)
        return len(events)

    def add_items(self, items: Sequence[NewItem]) -> ItemsAdded:
        """Adds items the model was not trained on, placed by their content (see :mod:`.new_items`): each joins
        the id map and the top-K index, is recommendable and appears in :meth:`similar` at once, and interactions
        may name it. Stored durably first (when there is a store). Raises ``UnsupportedError`` for a model without
        a content path, ``DuplicateItemError`` for an id the catalogue (or the request) already has, and
        ``DataError`` for an item without usable content; then nothing is added."""
        items = list(items)
        if not items:
            raise DataError("give at least one item", field="items")
        for row, item in enumerate(items):
            if not isinstance(item.item_id, str) or not item.item_id or len(item.item_id) > 256:
                raise DataError("item_id must be a non-empty string of at most 256 characters", line=row + 1,
                                field="item_id")
        ids = [item.item_id for item in items]
        with self._write_lock:  # writers in order: no other write can take these ids meanwhile
            with self._lock:
                content = self._content_path()
                self._check_new_ids(ids)
            encoded = content.encode(items)  # no read lock: loading the encoder or asking a server stalls no read
            with self._lock:
                vectors = content.place(encoded)  # reads the model's current knowledge: under the read lock
            if self.store is not None:
                version = self.model_version
                self.store.add_items([StoredItem(item.item_id, {"fields": item.fields, "entities": item.entities},
                                                 vec, version) for item, vec in zip(items, vectors)])
            with self._lock:
                self._append_items(ids, vectors)
                self.kg.link_items(self.items, [(item.item_id, item.entities) for item in items])
            return ItemsAdded(ids, encoded.notes)

    def _check_new_ids(self, ids: list[str]) -> None:
        taken = [i for i in ids if i in self.items]
        if taken:
            raise DuplicateItemError(f"item id {taken[0]!r} already exists; item ids must be new")
        if len(set(ids)) < len(ids):
            twice = next(i for i in ids if ids.count(i) > 1)
            raise DuplicateItemError(f"item id {twice!r} is given more than once in the request")

    def _load_vectors(self) -> None:
        """The model's current user and item vectors (cached model state dropped first), or None for a model that
        is not served from vectors."""
        self.model.invalidate_cache()
        with torch.no_grad():
            vectors = self.model.serving_vectors()
        if vectors is None:
            return
        self._user_vecs = np.ascontiguousarray(vectors[0].float().numpy())
        self._item_vecs = np.ascontiguousarray(vectors[1].float().numpy())

    def _build_index(self) -> None:
        """The top-K index over the model's item vectors plus the items added while serving."""
        if self._item_vecs is None:
            return
        index = make_index(self._index_kind, self._item_vecs, **self._index_options)  # exact ignores the options
        if self.state.new_vectors:
            index.add(np.concatenate(self.state.new_vectors))
        self.index = index

    def forget_user(self, user_id: str) -> int:
        """Removes this user's added interactions (stored and folded in); returns how many stored events went.
        A trained user's vector stays in the model until it is retrained without them."""
        with self._write_lock:
            removed = self.store.delete_user(user_id) if self.store is not None else 0
            with self._lock:
                in_memory = self.state.forget(user_id)
            return removed if self.store is not None else in_memory

    # -- explanations and knowledge edits ------------------------------------------------------------------------
    def explain(self, user_id: str, item_id: str, n_history: int = 5, n_paths: int = 3) -> dict:
        """Why ``item_id`` suits ``user_id``: per-source contributions, the history items that contribute most and
        knowledge-graph paths from the history to the item (see :mod:`fusionrec.serving.explain`)."""
        from fusionrec.serving.explain import explain

        with self._lock, torch.no_grad():
            return explain(self, str(user_id), str(item_id), n_history=n_history, n_paths=n_paths)

    def add_triples(self, triples: Sequence[RawTriple | tuple[str, str, str]]) -> int:
        """Adds knowledge-graph triples given as raw (head, relation, tail) ids; returns how many were new. A head or
        tail may be an entity id, an item id (its linked entity) or a new entity id; an unknown relation id becomes a
        new relation (see :mod:`fusionrec.serving.knowledge`). Stored durably before it takes effect; explanations
        see it at once, and a model with a KG source (FusionRec) recomputes its items' KG vectors."""
        return self._edit_triples("add", triples)

    def remove_triples(self, triples: Sequence[RawTriple | tuple[str, str, str]]) -> int:
        """Removes triples (raw ids as for :meth:`add_triples`, all of them known: an unknown relation or entity
        raises ``UnknownIdError``); returns how many were in the graph."""
        return self._edit_triples("remove", triples)

    def _edit_triples(self, op: str, triples: Sequence) -> int:
        raw = [t if isinstance(t, RawTriple) else RawTriple(*t) for t in triples]
        with self._write_lock:
            with self._lock:
                self.kg.resolve(raw, self.items, create=op == "add")  # validates before anything is stored
            if self.store is not None:
                self.store.add_triples(op, [(t.head, t.relation, t.tail) for t in raw])
            with self._lock:
                changed = self.kg.add(raw, self.items) if op == "add" else self.kg.remove(raw, self.items)
                if changed:
                    self._sync_model_kg()
            return changed

    def _replay_triples(self, ops: Sequence[tuple[str, str, str, str]]) -> None:
        """Applies stored knowledge edits in order (consecutive rows of one op as one batch); at start-up, before the
        index is built, so only the vectors are reloaded."""
        changed, start = 0, 0
        for end in range(1, len(ops) + 1):
            if end == len(ops) or ops[end][0] != ops[start][0]:
                batch = [RawTriple(h, r, t) for _, h, r, t in ops[start:end]]
                if ops[start][0] == "add":
                    changed += self.kg.add(batch, self.items)
                else:
                    changed += self.kg.remove(batch, self.items, strict=False)
                start = end
        if changed:
            self._sync_model_kg(rebuild_index=False)

    def _sync_model_kg(self, rebuild_index: bool = True) -> None:
        """Gives a model with a KG source the edited triples (when its entity indices are the artifact graph's),
        then reloads its vectors (dropping cached vectors and similarity) and, unless told not to, the index."""
        if not isinstance(self.model, KnowledgeEditable) or not self.kg.from_artifact \
                or self.model.n_entities != self.kg.n_model_entities:
            return
        self.model.set_triples(torch.from_numpy(self.kg.triples))
        self._load_vectors()
        if rebuild_index:
            self._build_index()

    # -- internals ----------------------------------------------------------------------------------------------
    def _content_path(self) -> ContentPath:
        if self._user_vecs is None:
            raise UnsupportedError(f"model {self.model.name!r} cannot place new items: it is not served from item "
                                   "vectors. New items need a fusionrec model trained with item text and/or a "
                                   "knowledge graph")
        if self._content is None:
            self._content = ContentPath(self.artifact, self._embeddings)  # raises UnsupportedError: no content path
        return self._content

    def _append_items(self, ids: list[str], vectors: np.ndarray) -> None:
        """New items join the live state and, once it exists, the index."""
        self.state.append_items(ids, vectors)
        if self.index is not None:  # None while start-up replays stored items (the index is built after)
            self.index.add(vectors)

    def _replay_items(self, stored: Sequence[StoredItem]) -> None:
        """Re-adds stored items: with their stored vector when it was computed by this model, else recomputed from
        the stored fields and entities. Items the model now knows (a retrained catalogue) are skipped, and so is
        everything when the model has no content path (with a warning): their interactions are then ignored."""
        todo = [s for s in stored if s.item_id not in self.items]
        if not todo:
            return
        try:
            content = self._content_path()
        except FusionrecError as exc:
            log.warning("%d stored item(s) not added: %s", len(todo), exc)
            return
        version, width = self.model_version, self._item_vecs.shape[1]
        vectors = []
        stale = [s for s in todo if s.model_version != version or s.vector is None or len(s.vector) != width]
        fresh = {}
        if stale:
            with torch.no_grad():
                computed, _ = content.vectors([NewItem(s.item_id, s.payload.get("fields") or {},
                                                       s.payload.get("entities") or []) for s in stale])
            fresh = {s.item_id: v for s, v in zip(stale, computed)}
        for s in todo:
            vectors.append(fresh.get(s.item_id, s.vector))
        self._append_items([s.item_id for s in todo], np.stack(vectors))
        self.kg.link_items(self.items, [(s.item_id, s.payload.get("entities") or []) for s in todo])
