"""The model contract every fusionrec model follows.

A model receives sizes and hyper-parameters in its constructor, and prebuilt inputs (the training matrix, later text
embeddings and the knowledge graph) through :meth:`Model.prepare`; it never reads files and never sees a config or
a dataset object. It scores (user, item) pairs and whole catalogues, and returns the scores the trainer needs to
compute the recommendation loss plus any named extra loss terms (``reg``, ``kg``, ...). The single trainer combines
them with the configured weights.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import scipy.sparse as sp
import torch
from torch import nn

from fusionrec.data.user_sequences import UserSequences
from fusionrec.typed_config import CheckedFields
from fusionrec.util.sparse_ops import binary_csr



@dataclass(frozen=True, eq=False)
class ModelInputs:
    """What a model may learn from, built outside the model (``fusionrec.training.inputs``).

    ``train``: binary user x item CSR matrix of the training interactions, shape (n_users, n_items).
    ``item_text``: frozen text embeddings, shape (n_items, d_text), or None; ``item_text_mask``: bool (n_items,),
    False where an item has no text. ``kg``: a :class:`fusionrec.data.KnowledgeGraph` or None. ``social``: the
    users' social graph as a symmetric 0/1 CSR (n_users, n_users) (a friendship read either way), or None.
    ``ratings``: the training interactions' explicit ratings as a float32 CSR (n_users, n_items) with the sparsity of
    ``train``, or None (given when the loss or a model's rating head needs them).
    ``user_features``: the users' own fields (``NAME.user``) as a float32 CSR (n_users, n_user_features), each row
    the mean of the user's one-hot features (an empty row: none), or None.
    ``sequences``: each user's training items in the order they happened, or None (given to sequence models).
    ``log``: where :meth:`Model.prepare` reports a long fit (sizes, memory and time estimates), one line per call;
    None: the ``fusionrec.models`` logger at INFO. ``progress``: whether a long ``prepare`` may show a progress bar
    (tqdm on stderr)."""

    n_users: int
    n_items: int
    train: sp.csr_matrix
    item_text: torch.Tensor | None = None
    item_text_mask: torch.Tensor | None = None
    kg: Any = None
    social: sp.csr_matrix | None = None
    ratings: sp.csr_matrix | None = None
    user_features: sp.csr_matrix | None = None
    sequences: UserSequences | None = None
    log: Callable[[str], None] | None = None
    progress: bool = False

    def report(self, message: str) -> None:
        """Sends one line about the fit to ``log`` (or the ``fusionrec.models`` logger): models never print."""
        if self.log is not None:
            self.log(message)
        else:
            logging.getLogger("fusionrec.models").info(message)


@dataclass(frozen=True)
class Batch:
    """One training batch. ``users``, ``pos``: LongTensor (B,); ``neg``: LongTensor (B, n_neg). ``candidates``:
    LongTensor (C,) or None, the items :meth:`Model.forward_catalogue` scores for every user of the batch (the
    sampled softmax's shared candidate set); None: every item.

    ``windows``: for a sequence model (:class:`fusionrec.models.capabilities.SequenceModel`), LongTensor (R, L + 1)
    of R windows of users' ordered training items, right-aligned, -1 on the left; else None. Its B training pairs
    are the slots :func:`window_targets` picks, in row-major order: ``pos`` holds their items and ``users`` their
    users, so a model scores position t's hidden state against ``pos``.

    ``ratings``: FloatTensor (B,), the explicit rating of each (user, pos) pair when the inputs carry ratings
    (:attr:`ModelInputs.ratings`), else None: the target of a rating loss or a model's rating term."""

    users: torch.Tensor
    pos: torch.Tensor
    neg: torch.Tensor
    candidates: torch.Tensor | None = None
    windows: torch.Tensor | None = None
    ratings: torch.Tensor | None = None


def window_targets(windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(inputs (R, L), mask (R, L) bool, targets (B,))`` of windows (R, L + 1): the input at position t is the
    window's item t, its target item t + 1; a slot is a training pair when both are items (not -1)."""
    inputs, following = windows[:, :-1], windows[:, 1:]
    mask = (inputs >= 0) & (following >= 0)
    return inputs, mask, following[mask]


@dataclass(frozen=True)
class ForwardOut:
    """``pos``: scores (B,) of the positives; ``neg``: scores (B, n_neg) of the negatives, as a tensor or, for a
    shared candidate set, as :class:`ScoreFactors` (never materialised); ``terms``: extra named loss terms (each a
    scalar tensor) such as ``reg`` or ``kg``, weighted by the trainer."""

    pos: torch.Tensor
    neg: "torch.Tensor | ScoreFactors"
    terms: dict[str, torch.Tensor] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class ScoreFactors:
    """Scores held as the product ``users @ items.T`` without forming it: ``users`` (B, d), ``items`` (C, d). What a
    vector model's :meth:`Model.forward_catalogue` returns as ``neg`` for a shared candidate set, so that the sampled
    softmax computes the (B, C) scores chunk by chunk in cache and never stores them or their gradient.
    ``shape`` (B, C); :meth:`dense` the (B, C) tensor."""

    users: torch.Tensor
    items: torch.Tensor

    @property
    def shape(self) -> torch.Size:
        return torch.Size((self.users.shape[0], self.items.shape[0]))

    def dense(self) -> torch.Tensor:
        return self.users @ self.items.T


def standardise(scores: torch.Tensor) -> torch.Tensor:
    """Each row to zero mean and unit standard deviation (constant rows become zeros): (B, n) -> (B, n); how two
    sources' scores are put on one scale before they are mixed."""
    mean = scores.mean(dim=1, keepdim=True)
    std = scores.std(dim=1, keepdim=True)
    return torch.where(std > 1e-12, (scores - mean) / std.clamp_min(1e-12), torch.zeros_like(scores))


def dense_scores(scores: "torch.Tensor | ScoreFactors") -> torch.Tensor:
    """``scores`` as a (B, n) tensor, formed when they are :class:`ScoreFactors`."""
    return scores.dense() if isinstance(scores, ScoreFactors) else scores


class HyperParameters(CheckedFields):
    """Base of every model's ``Params`` dataclass: fields typed with ``Literal`` choices and
    ``Annotated[..., Range]`` ranges (:mod:`fusionrec.typed_config`), checked when the config is read and when a
    ``Params`` is made in Python; cross-field rules in ``__post_init__``. Errors name ``model.params.KEY``."""

    config_key = "model.params"


@dataclass(frozen=True)
class NoParams(HyperParameters):
    """Hyper-parameters of a model that has none."""


class HistoryReader(abc.ABC):
    """Declared capability: a model whose scores read each user's interaction history (the scoring input of a
    neighbourhood model, the user-item graph of a propagation model) and can be handed a longer one after fitting,
    with nothing refitted or retrained.

    The experiment calls :meth:`use_history` with train + valid before scoring the test when
    ``split.test_history: train_valid`` (the leave-one-out protocol of published sequential tables); a model
    without this capability (free user vectors, popularity counts) keeps what it fitted. Checked with
    ``isinstance(model, HistoryReader)``."""

    @abc.abstractmethod
    def use_history(self, history: sp.csr_matrix) -> None:
        """Score from now on with ``history``, a user x item CSR matrix of shape (n_users, n_items) (any positive
        value counts as one interaction). The learned parameters (item-item weights, similarities, embeddings) stay
        as fitted; what the model keeps of the history lives in buffers, so a saved artifact holds it."""


def checked_history(history: sp.spmatrix, n_users: int, n_items: int) -> sp.csr_matrix:
    """A canonical 0/1 float32 CSR copy of ``history`` (duplicates summed, indices sorted) after checking its shape
    is (n_users, n_items); what :meth:`HistoryReader.use_history` implementations start from."""
    if history.shape != (n_users, n_items):
        raise ValueError(f"history has shape {history.shape}, the model has ({n_users}, {n_items})")
    return binary_csr(history)


class Model(nn.Module):
    """Base class. Subclasses set ``name``, ``Params`` (a frozen dataclass of hyper-parameters with defaults) and
    implement :meth:`score_all` (and :meth:`forward` when ``trainable``)."""

    name: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    trainable: ClassVar[bool] = True
    uses_kg_loss: ClassVar[bool] = False  # True: the trainer also feeds knowledge-graph batches to kg_terms()
    # Where a model mixes several sources so that no per-source split of a score exists (explanations say so), e.g.
    # "one item vector"; None: one source, or sources kept apart (``source_breakdown``).
    mixed_sources_in: ClassVar[str | None] = None
    # The one source a single-source model scores from: "cf" (behaviour), "text" or "kg" (explanations say it).
    score_source: ClassVar[str] = "cf"

    @classmethod
    def required_inputs(cls, params: Any) -> set[str]:
        """Which optional inputs these hyper-parameters need: a subset of {"text", "kg", "social",
        "user_features", "ratings", "sequences"}. The experiment
        builds (and, for text, encodes) only what is asked for."""
        return set()

    def __init__(self, n_users: int, n_items: int, params: Any = None):
        super().__init__()
        self.n_users, self.n_items = int(n_users), int(n_items)
        self.params = params if params is not None else self.Params()
        self._cache: dict[str, Any] = {}

    # -- building -------------------------------------------------------------------------------------------------
    @classmethod
    def from_inputs(cls, inputs: ModelInputs, params: Any = None) -> "Model":
        """A model sized for these inputs (models whose sizes depend on text width or graph size override this).
        The trainer still calls :meth:`prepare`."""
        return cls(inputs.n_users, inputs.n_items, params)

    def prepare(self, inputs: ModelInputs) -> None:
        """Take what the model needs from the training inputs (graphs, statistics, closed-form fits). Whatever must
        survive a save/load round trip is stored as a buffer or parameter."""

    def init_args(self) -> dict:
        """Constructor arguments, stored beside the state dict so loading needs nothing else."""
        return {"n_users": self.n_users, "n_items": self.n_items, "params": dataclasses.asdict(self.params)}

    # -- training -------------------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> ForwardOut:  # pragma: no cover - trainable models override
        raise NotImplementedError(f"{self.name} is not trained by gradient descent")

    def forward_catalogue(self, batch: Batch) -> ForwardOut:
        """Training-mode scores of EVERY item for the batch's users, for the ``full_softmax`` loss: ``pos`` (B,) the
        scores of ``batch.pos`` and ``neg`` (B, n_items) all items' scores (the positive's included), plus extra
        terms as in :meth:`forward`. ``batch.neg`` is empty. With ``batch.candidates`` (C,) (the ``sampled_softmax``
        loss) ``neg`` is (B, C): every user's scores of those items only, and ``pos`` is scored on its own. Vector
        models implement both with one matrix product (:func:`fusionrec.models.similarity.catalogue_out`)."""
        raise NotImplementedError(f"{self.name} cannot score the whole catalogue in training")

    def kg_terms(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor,
                 neg_tails: torch.Tensor) -> dict[str, torch.Tensor]:
        """Knowledge-graph loss terms for a batch of triples (models with ``uses_kg_loss``): heads, relations, tails
        (B,) and corrupted tails (B, n_neg) index ``inputs.kg``; returns e.g. ``{"kg": loss}``, weighted by the
        trainer's ``kg_alpha``."""
        raise NotImplementedError(f"{self.name} has no knowledge-graph loss")

    def epoch_end(self, epoch: int) -> None:
        """Called by the trainer after each training epoch (e.g. KGAT recomputes its attention here)."""

    def train(self, mode: bool = True):
        self.invalidate_cache()  # cached propagations are stale once weights move
        return super().train(mode)

    def invalidate_cache(self) -> None:
        """Drops everything computed from the weights and buffers (propagated vectors, similarities): a caller that
        changed them from outside (serving reloading vectors) calls this; the next score recomputes."""
        self._cache.clear()

    # -- scoring --------------------------------------------------------------------------------------------------
    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for these users: users LongTensor (B,) -> FloatTensor (B, n_items)."""
        raise NotImplementedError

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of given pairs: users (B,), items (B,) or (B, n) -> (B,) or (B, n)."""
        all_scores = self.score_all(users)
        if items.dim() == 1:
            return all_scores.gather(1, items[:, None]).squeeze(1)
        return all_scores.gather(1, items)

    def serving_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Final user and item vectors of a dot-product model: ``(U (n_users, d), V (n_items, d))`` with
        ``score_all(users) == U[users] @ V.T``, or None (the default) for a model whose scores are not one dot
        product (popularity, kNN). Serving ranks with a top-K index over ``V`` and folds new users in as vectors
        when this is not None, so it never builds an (n_items, n_items) matrix for such a model."""
        return None

    def cached(self, key: str, compute):
        """Value computed once while the model is in eval mode (e.g. propagated embeddings); recomputed in training."""
        if self.training:
            return compute()
        if key not in self._cache:
            with torch.no_grad():
                self._cache[key] = compute()
        return self._cache[key]

    # -- fold-in (serving) ----------------------------------------------------------------------------------------
    def score_histories(self, histories: sp.csr_matrix, chunk_users: int = 512) -> torch.Tensor:
        """Scores of every item for interaction histories that need no trained user vector (new users, or events
        added after training): histories scipy CSR (B, n_items) of weights -> FloatTensor (B, n_items).

        Default, valid for every model: item-item similarity read off the model's own scores. Each item's profile is
        its column of trained scores over all training users (scored ``chunk_users`` at a time); the similarity of
        two items is the Pearson correlation of their profiles (a zero diagonal), and a history scores item j as
        ``sum_i h_i sim(i, j)``. The (n_items, n_items) similarity is computed once while in eval mode. A model whose
        scores do not depend on the user (popularity) gets all-zero scores here: callers break such ties by
        popularity. Models with a cheaper native fold-in may override this."""
        sim = self.cached("foldin_item_sim", lambda: self._profile_similarity(chunk_users))
        h = sp.csr_matrix(histories, dtype="float32")
        if h.shape[1] != self.n_items:
            raise ValueError(f"histories have {h.shape[1]} item columns, the model has {self.n_items}")
        dense = torch.from_numpy(h.toarray())  # (B, n_items); B is one request's users
        return dense @ sim

    def _profile_similarity(self, chunk_users: int) -> torch.Tensor:
        """(n_items, n_items) Pearson correlation of item score profiles over the training users; zero diagonal."""
        n = self.n_users
        gram = torch.zeros(self.n_items, self.n_items, dtype=torch.float64)
        total = torch.zeros(self.n_items, dtype=torch.float64)
        with torch.no_grad():
            for start in range(0, n, chunk_users):
                users = torch.arange(start, min(start + chunk_users, n))
                p = self.score_all(users).double()  # (b, n_items)
                gram += p.T @ p
                total += p.sum(0)
        mean = total / max(n, 1)
        cov = gram / max(n, 1) - torch.outer(mean, mean)
        std = cov.diagonal().clamp_min(0).sqrt()
        sim = cov / (torch.outer(std, std) + 1e-12)
        sim[torch.outer(std, std) <= 1e-12] = 0.0  # items whose score never varies have no similarity
        sim.fill_diagonal_(0.0)
        return sim.float()
