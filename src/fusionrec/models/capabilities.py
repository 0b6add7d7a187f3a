"""Declared capabilities: what a caller (serving, the experiment) may rely on beyond the :class:`Model` contract.

Each is a small abstract mixin that a model class inherits when it has the capability; a caller checks
``isinstance(model, Capability)`` once, never probes attributes. Every capability has a contract test that runs for
every registered model declaring it (tests/test_model_contract.py, ``CAPABILITY_TESTS``), and a meta-test fails when
a capability exists that no test exercises. :class:`~fusionrec.models.base.HistoryReader` (scoring from a longer
history than the one trained on) lives in base.py beside the contract it extends; the others are here.
"""

from __future__ import annotations

import abc

import torch

from fusionrec.data.user_sequences import UserSequences
from fusionrec.models.base import ForwardOut, HistoryReader


class ContentPlacer(abc.ABC):
    """A model that places an item it was never trained on from its content alone (its text and the knowledge-graph
    entities it names), where a cold catalogue item with the same content would land: how serving adds items
    (``POST /items``)."""

    @property
    @abc.abstractmethod
    def content_sources(self) -> frozenset[str]:
        """Which content the model reads: a subset of {"text", "kg"}; empty when these hyper-parameters use none
        (then the model cannot place a new item)."""

    @abc.abstractmethod
    def content_vectors(self, text: torch.Tensor | None, text_mask: torch.Tensor | None,
                        entity_lists: list[list[int]] | None = None,
                        triples: torch.Tensor | None = None) -> torch.Tensor:
        """Vectors (N, d), as scored, of N new items. ``text`` (N, text_dim) frozen text embeddings with
        ``text_mask`` (N,) bool (False: no text); ``entity_lists`` the model's entity indices each item links to;
        ``triples`` (T, 3) the graph those entities live in now (knowledge edits included). Any may be None when
        absent; an item with no content gets a zero vector."""


class SourceReporter(abc.ABC):
    """A model that keeps its sources apart and can say what each adds to one item's score (explanations)."""

    sources: list[str]  # the model's sources in fusion order, e.g. ["cf", "text", "kg"]

    @abc.abstractmethod
    def source_breakdown(self, item: int, user_vector: torch.Tensor) -> dict:
        """For a user vector (d,): ``{"full": score, "sources": [{"source", "present", "weight", "alone", "drop"},
        ...]}``, one entry per source in :attr:`sources` order."""


class KnowledgeEditable(abc.ABC):
    """A model whose scores read the knowledge graph's triples at scoring time, so that triples added or removed
    while serving take effect without retraining (entities keep their trained vectors)."""

    n_entities: int  # the entity indices the model was trained on: 0 .. n_entities - 1

    @abc.abstractmethod
    def set_triples(self, triples: torch.Tensor) -> None:
        """Score from now on with ``triples`` (T, 3) over the model's entity indices (entities >= n_entities are
        ignored); cached vectors are dropped."""


class SequenceModel(abc.ABC):
    """A model that reads each user's history IN ORDER. The trainer feeds it windows of the users' training sequences
    (``Batch.windows``, one training pair per item that follows another); it scores a user from the last
    :attr:`max_length` items they did, kept as buffers (so an artifact holds them) and replaced by
    :meth:`use_sequences`; :meth:`score_sequences` scores any ordered histories (evaluation and serving)."""

    @property
    @abc.abstractmethod
    def max_length(self) -> int:
        """How many of a user's most recent items the model reads."""

    @abc.abstractmethod
    def stored_sequences(self) -> UserSequences:
        """The users' ordered histories the model scores them from now."""

    @abc.abstractmethod
    def use_sequences(self, sequences: UserSequences) -> None:
        """Score users from now on from ``sequences`` (the leave-one-out test reads train + valid); nothing is
        refitted."""

    @abc.abstractmethod
    def score_sequences(self, windows: torch.Tensor) -> torch.Tensor:
        """Scores of every item after each ordered history: ``windows`` LongTensor (B, L) of item indices,
        right-aligned, -1 on the left (any L; the last :attr:`max_length` are read) -> FloatTensor (B, n_items)."""

    @abc.abstractmethod
    def state_after(self, history: torch.Tensor) -> torch.Tensor:
        """The vector (d,) that scores the items after ``history`` (L,) item indices, oldest first."""

    @abc.abstractmethod
    def states_after(self, windows: torch.Tensor) -> torch.Tensor:
        """:meth:`state_after` of many histories: ``windows`` (B, L) as :meth:`score_sequences` reads them ->
        (B, d)."""

    @abc.abstractmethod
    def history_attention(self, history: torch.Tensor) -> torch.Tensor:
        """(L,) the weight the model gives each item of ``history`` (L,) when scoring what comes next
        (explanations); sums to 1 over the items it reads."""


class Transferable(abc.ABC):
    """A model some of whose learned parameters do not depend on the catalogue (they read item content, never item
    ids), so they carry over to a model of another dataset: ``model.init_from`` starts a run from them (then
    fine-tunes, or with ``training.epochs: 0`` uses them as they are) and ``fusionrec pretrain`` makes them."""

    @abc.abstractmethod
    def transferable_state(self) -> dict[str, torch.Tensor]:
        """The catalogue-free learned parameters under these hyper-parameters, by state-dict name (empty when the
        model reads item ids only)."""

    def load_transferable(self, state: dict[str, torch.Tensor]) -> list[str]:
        """Copies the entries of ``state`` (another model's :meth:`transferable_state`) that this model's
        :meth:`transferable_state` also has; returns their names. Raises ValueError when none is shared, or naming
        the first shared one whose shape differs (another text width, width or number of layers), or a shared module
        whose parts differ (another architecture, such as the encoder's LayerNorms in other places)."""
        own = self.transferable_state()
        shared = sorted(set(state) & set(own))
        if not shared:
            raise ValueError(f"nothing to carry over: the source has {', '.join(sorted(state)) or 'nothing'}, "
                             f"this model takes {', '.join(sorted(own)) or 'nothing'}")
        for module in sorted({name.split(".")[0] for name in shared}):
            theirs = {n for n in state if n.split(".")[0] == module}
            mine = {n for n in own if n.split(".")[0] == module}
            if theirs != mine:
                raise ValueError(f"{module}: another architecture in the source (only there: "
                                 f"{', '.join(sorted(theirs - mine)) or 'nothing'}; only here: "
                                 f"{', '.join(sorted(mine - theirs)) or 'nothing'}), e.g. another encoder norm")
        for name in shared:
            if tuple(own[name].shape) != tuple(state[name].shape):
                raise ValueError(f"{name}: shape {tuple(state[name].shape)} in the source, {tuple(own[name].shape)} "
                                 "here")
        with torch.no_grad():
            for name in shared:
                own[name].copy_(state[name])
        self.invalidate_cache()
        return shared


class ValidationTuned(abc.ABC):
    """A model with settings chosen on the validation set after training, such as how much each source weighs in
    the score: the experiment scores every setting of :meth:`validation_grid`, keeps the best with :meth:`choose`
    and writes them all into results.json. A chosen setting is kept as a buffer, so the artifact serves it."""

    @abc.abstractmethod
    def validation_grid(self) -> list[dict[str, float]]:
        """The settings to try, the first being the one the model trained with; empty: nothing to choose under
        these hyper-parameters."""

    @abc.abstractmethod
    def choose(self, setting: dict[str, float]) -> None:
        """Score with ``setting`` (one of :meth:`validation_grid`) from now on; nothing is refitted."""

    @abc.abstractmethod
    def chosen(self) -> dict[str, float]:
        """The setting the model scores with now."""

    def validation_metrics(self) -> tuple[str, ...]:
        """Validation metrics (such as ``warm_items/ndcg@10``) that :meth:`select` reads beside the run's own, recorded
        for every setting; none by default."""
        return ()

    def select(self, grid: list[dict[str, float]], scores: list[dict[str, float]]) -> int | None:
        """The index into ``grid`` of the setting to keep, from each setting's :meth:`validation_metrics` in
        ``scores``, for a model with a rule of its own; None (the default): the best by the run's validation metric."""
        return None


class RatingPredictor(abc.ABC):
    """A model that predicts explicit ratings (on the data's own scale), trained by the ``mse`` loss or, beside a
    ranking loss, by a ``rating`` term of its own (multi-task); evaluated by RMSE and MAE. Its ratings need
    ``"ratings"`` among its :meth:`~fusionrec.models.base.Model.required_inputs` whenever it predicts them."""

    @abc.abstractmethod
    def predicts_ratings(self) -> bool:
        """Whether these hyper-parameters give the model a rating prediction (a model with an optional rating
        head says False without it)."""

    @abc.abstractmethod
    def predict_ratings(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """users, items (B,) -> predicted ratings (B,); differentiable in training."""

    @abc.abstractmethod
    def forward_ratings(self, batch) -> ForwardOut:
        """The ``mse`` loss's step: ``pos`` (B,) the predicted ratings of ``batch.users`` x ``batch.pos``, ``neg``
        (B, 0), ``terms`` the model's extra terms (e.g. ``reg``)."""


CAPABILITIES: tuple[type, ...] = (HistoryReader, ContentPlacer, SourceReporter, KnowledgeEditable, SequenceModel,
                                  Transferable, ValidationTuned, RatingPredictor)
