"""What every sequence model shares: a causal self-attention encoder over a user's ordered items (SASRec's, Kang and
McAuley, ICDM 2018, with pre- or post-layer-norm blocks), and the scoring that reads a user's last items.

A model built on :class:`SequenceScoring` supplies only its item vectors (:meth:`SequenceScoring.item_table`): the
same vectors are the encoder's input and the output it scores against (tied), so where they come from (an id
table, text through an adapter, a fusion of sources) is the one thing two sequence models differ in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fusionrec.data.user_sequences import UserSequences
from fusionrec.errors import ConfigError, FusionrecError
from fusionrec.models.base import Batch, ForwardOut, HyperParameters, ModelInputs, window_targets
from fusionrec.models.graph_ops import check_users, data_sized_buffers
from fusionrec.models.similarity import catalogue_out, finish
from fusionrec.typed_config import PositiveInt, Range


@dataclass(frozen=True)
class SequenceEncoderParams(HyperParameters):
    """The encoder's hyper-parameters, shared by every sequence model's ``Params`` (which adds its own after)."""

    embedding_size: PositiveInt = 64  # d, item and hidden width; 32..256, a multiple of n_heads
    n_layers: PositiveInt = 2  # self-attention blocks; 1..4
    n_heads: PositiveInt = 2  # attention heads per block; 1..8
    max_length: PositiveInt = 50  # most recent items read; 20..200
    dropout: Annotated[float, Range(0.0, 0.9)] = 0.3  # on inputs, attention and blocks; 0.1..0.5
    # pre: LayerNorm before each block's attention and feed-forward, one after the last block; post: after each
    # residual add and on the input (the original Transformer's order, as RecBole's SASRec)
    norm: Literal["pre", "post"] = "pre"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.embedding_size % self.n_heads:
            raise ConfigError(f"embedding_size {self.embedding_size} must be a multiple of n_heads {self.n_heads}",
                              key=self.key_of("embedding_size"))


class _Block(nn.Module):
    """x + attention(LN(x)), then x + feed-forward(LN(x)) (``post_norm``: LN(x + attention(x)), then LN(x +
    feed-forward(x))); attention restricted by a boolean mask."""

    def __init__(self, d: int, n_heads: int, dropout: float, post_norm: bool = False):
        super().__init__()
        self.n_heads, self.dropout, self.post_norm = n_heads, dropout, post_norm
        self.norm_attention, self.norm_ff = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * d, d))
        self.drop = nn.Dropout(dropout)

    def _qkv(self, x: torch.Tensor) -> torch.Tensor:
        r, length, d = x.shape
        return self.qkv(x if self.post_norm else self.norm_attention(x)) \
            .view(r, length, 3, self.n_heads, d // self.n_heads) \
            .permute(2, 0, 3, 1, 4)  # q, k, v: each (R, heads, L, d / heads)

    def attention_of_last(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """(R, L): how the newest position's query weighs each key (softmax over the keys it may read), the mean
        over heads; what explanations show as the weight of each history item."""
        q, k, _ = self._qkv(x)
        logits = (q[:, :, -1:] @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])  # (R, heads, 1, L)
        logits = logits.masked_fill(~allowed[:, :, -1:], float("-inf"))
        return torch.softmax(logits, dim=-1).mean(1)[:, 0]

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """x (R, L, d), allowed (R, 1, L, L) bool: query i may read key j -> (R, L, d); ``last_only``: the newest
        position's output alone, (R, 1, d) (every position still serves as a key: the cost of scoring)."""
        r, length, d = x.shape
        q, k, v = self._qkv(x)
        if last_only:
            q, allowed, x, length = q[:, :, -1:], allowed[:, :, -1:], x[:, -1:], 1
        read = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                              dropout_p=self.dropout if self.training else 0.0)
        x = x + self.drop(self.out(read.transpose(1, 2).reshape(r, length, d)))
        if self.post_norm:
            x = self.norm_attention(x)
            return self.norm_ff(x + self.drop(self.ff(x)))
        return x + self.drop(self.ff(self.norm_ff(x)))


class CausalEncoder(nn.Module):
    """Hidden state of every position of right-aligned item sequences: position t reads items 0..t only.

    Positions are counted back from the newest item (its position embedding is ``max_length - 1``), so a window cut
    to a batch's longest history and a full ``max_length`` window get the same states."""

    def __init__(self, d: int, max_length: int, n_layers: int, n_heads: int, dropout: float, norm: str = "pre"):
        super().__init__()
        if d % n_heads:
            raise ValueError(f"embedding_size {d} must be a multiple of n_heads {n_heads}")
        if norm not in ("pre", "post"):
            raise ValueError(f"norm must be 'pre' or 'post', got {norm!r}")
        post = norm == "post"
        self.max_length = max_length
        self.positions = nn.Embedding(max_length, d)
        self.blocks = nn.ModuleList(_Block(d, n_heads, dropout, post) for _ in range(n_layers))
        # pre: one LayerNorm after the last block; post: one on the input (each block ends normalised)
        self.input_norm = nn.LayerNorm(d) if post else nn.Identity()
        self.norm = nn.Identity() if post else nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)
        nn.init.normal_(self.positions.weight, std=0.02)

    @classmethod
    def from_params(cls, params: SequenceEncoderParams) -> "CausalEncoder":
        return cls(params.embedding_size, params.max_length, params.n_layers, params.n_heads, params.dropout,
                   params.norm)

    def forward(self, vectors: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """vectors (R, L, d) of the items, present (R, L) bool (False: an empty slot), L <= max_length ->
        hidden states (R, L, d)."""
        x, allowed = self._start(vectors, present)
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x)

    def newest(self, vectors: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """The newest position's hidden state (R, d), what scoring reads: as ``forward(...)[:, -1]``, with the last
        block computing that position alone."""
        x, allowed = self._start(vectors, present)
        for block in self.blocks[:-1]:
            x = block(x, allowed)
        return self.norm(self.blocks[-1](x, allowed, last_only=True))[:, -1] if len(self.blocks) \
            else self.norm(x)[:, -1]

    def last_attention(self, vectors: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(R, L): the last block's attention of the newest position over the positions (mean over heads)."""
        x, allowed = self._start(vectors, present)
        for block in self.blocks[:-1]:
            x = block(x, allowed)
        return self.blocks[-1].attention_of_last(x, allowed)

    def _start(self, vectors: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        length = vectors.shape[1]
        x = self.drop(self.input_norm(vectors + self.positions.weight[self.max_length - length:]))
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        # a query reads earlier items that are present, and always itself (so an empty slot's row is never empty)
        allowed = (causal & present[:, None, :]) | torch.eye(length, dtype=torch.bool)
        return x, allowed[:, None]  # (R, 1, L, L), the same for every head


class SequenceScoring:
    """The :class:`~fusionrec.models.capabilities.SequenceModel` half of a sequence model: training on
    ``Batch.windows``, scoring from stored sequences (buffers ``seq_offsets``, ``seq_items``) and from any ordered
    histories. Listed before :class:`~fusionrec.models.base.Model` among the bases; the subclass builds
    ``self.encoder`` (a :class:`CausalEncoder`), calls :meth:`init_sequences` in its constructor and implements
    :meth:`item_table`."""

    encoder: CausalEncoder
    similarity: str = "dot"  # or "cosine": states and item vectors L2-normalised wherever they are scored

    def init_sequences(self) -> None:
        self.register_buffer("seq_offsets", torch.zeros(1, dtype=torch.long))
        self.register_buffer("seq_items", torch.zeros(0, dtype=torch.long))
        data_sized_buffers(self, ("seq_offsets", "seq_items"))

    def item_table(self) -> torch.Tensor:
        """Every item's vector (n_items, d), as read and as scored."""
        raise NotImplementedError

    def extra_terms(self) -> dict[str, torch.Tensor]:
        """Loss terms beside the recommendation loss (none by default)."""
        return {}

    @property
    def max_length(self) -> int:
        return self.encoder.max_length

    # -- data -----------------------------------------------------------------------------------------------------
    def prepare(self, inputs: ModelInputs) -> None:
        if inputs.sequences is None:
            raise FusionrecError(f"{self.name} reads each user's ordered history: the inputs carry no sequences")
        self.use_sequences(inputs.sequences)

    def use_sequences(self, sequences: UserSequences) -> None:
        if sequences.n_users != self.n_users or sequences.n_items > self.n_items:
            raise ValueError(f"sequences cover {sequences.n_users} users and {sequences.n_items} items; the model "
                             f"has {self.n_users} and {self.n_items}")
        self.seq_offsets = torch.from_numpy(np.ascontiguousarray(sequences.offsets, dtype=np.int64))
        self.seq_items = torch.from_numpy(np.ascontiguousarray(sequences.items, dtype=np.int64))
        self._cache.clear()

    def stored_sequences(self) -> UserSequences:
        if "sequences" not in self._cache:  # the buffers never change with the weights: kept in train mode too
            self._cache["sequences"] = UserSequences(self.seq_offsets.numpy(), self.seq_items.numpy(), self.n_items)
        return self._cache["sequences"]

    # -- encoding -------------------------------------------------------------------------------------------------
    def _encode(self, inputs: torch.Tensor, items: torch.Tensor, newest: bool = False) -> torch.Tensor:
        """Hidden states (R, L', d) of right-aligned inputs (R, L) (-1: empty), cut to the last
        min(L, max_length) columns and then to the longest history among the rows; ``newest``: the newest
        position's state alone, (R, d)."""
        inputs = inputs[:, -self.max_length:]
        present = inputs >= 0
        longest = int(present.sum(1).max()) if len(inputs) else 0
        inputs, present = inputs[:, inputs.shape[1] - max(longest, 1):], present[:, present.shape[1] - max(longest, 1):]
        vectors = items.index_select(0, inputs.clamp_min(0).reshape(-1)).view(*inputs.shape, -1)
        vectors = vectors * present.unsqueeze(-1)
        return self.encoder.newest(vectors, present) if newest else self.encoder(vectors, present)

    def _training_states(self, batch: Batch, items: torch.Tensor) -> torch.Tensor:
        """(B, d): the hidden state before each of the batch's training pairs."""
        if batch.windows is None:
            raise FusionrecError(f"{self.name} is trained on windows of ordered histories (Batch.windows)")
        inputs, mask, _ = window_targets(batch.windows)
        hidden = self._encode(inputs, items)
        return hidden[mask[:, mask.shape[1] - hidden.shape[1]:]]

    # -- training -------------------------------------------------------------------------------------------------
    def _scored_items(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(the item table as read, the item table as scored)."""
        items = self.item_table()
        return items, finish(items, self.similarity)

    def forward(self, batch: Batch) -> ForwardOut:
        read, items = self._scored_items()
        states = finish(self._training_states(batch, read), self.similarity)  # (B, d)
        pos = (states * items.index_select(0, batch.pos)).sum(-1)
        neg = torch.einsum("bd,bkd->bk", states, items[batch.neg])
        return ForwardOut(pos, neg, self.extra_terms())

    def forward_catalogue(self, batch: Batch) -> ForwardOut:
        read, items = self._scored_items()
        return catalogue_out(finish(self._training_states(batch, read), self.similarity), items, batch.pos,
                             self.extra_terms(), batch.candidates)

    # -- scoring --------------------------------------------------------------------------------------------------
    def score_sequences(self, windows: torch.Tensor) -> torch.Tensor:
        windows = torch.as_tensor(windows, dtype=torch.long)
        if windows.dim() != 2:
            raise ValueError(f"windows must have shape (B, L), got {tuple(windows.shape)}")
        if windows.numel() and int(windows.max()) >= self.n_items:
            raise IndexError(f"item index {int(windows.max())} is out of range: the model knows items "
                             f"0..{self.n_items - 1}")
        read, items = self.cached("item_table", self._scored_items)
        empty = ~(windows[:, -self.max_length:] >= 0).any(1)
        if len(windows) == 0 or windows.shape[1] == 0:
            return torch.zeros(len(windows), self.n_items)
        states = finish(self._encode(windows, read, newest=True), self.similarity)  # (B, d): after the newest item
        scores = states @ items.T
        return scores.masked_fill(empty[:, None], 0.0)  # nothing done yet: no preference (popularity breaks ties)

    def state_after(self, history: torch.Tensor) -> torch.Tensor:
        """The vector (d,) a history of item indices (L,) (oldest first) is scored with: ``score(i) = state .
        item_vector(i)`` (both as scored)."""
        return self.states_after(history[None].long())[0]

    def states_after(self, windows: torch.Tensor) -> torch.Tensor:
        """:meth:`state_after` of many histories at once: windows (B, L) right-aligned, -1 on the left -> (B, d)."""
        read, _ = self.cached("item_table", self._scored_items)
        return finish(self._encode(torch.as_tensor(windows).long(), read, newest=True), self.similarity)

    def history_attention(self, history: torch.Tensor) -> torch.Tensor:
        """(L,) how much the newest position attends to each item of ``history`` (L,) (oldest first) in the last
        block, mean over heads; the weights of the last ``max_length`` items sum to 1, older items get 0."""
        history = history.long()
        read, _ = self.cached("item_table", self._scored_items)
        window = history[-self.max_length:][None]
        vectors = read.index_select(0, window.reshape(-1)).view(*window.shape, -1)
        weights = self.encoder.last_attention(vectors, torch.ones_like(window, dtype=torch.bool))[0]
        return torch.cat([torch.zeros(len(history) - window.shape[1]), weights])

    def serving_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(the state after each user's stored sequence (n_users, d), the item vectors (n_items, d)), both as
        scored, so that ``score_all(users) == U[users] @ V.T`` and serving ranks known users with a top-K index;
        a user with an empty sequence gets a zero vector (score_all scores such a user 0). Computed once while in
        eval mode (again after :meth:`use_sequences`)."""
        return self.cached("serving_vectors", self._user_states)

    def _user_states(self, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        read, items = self._scored_items()
        sequences = self.stored_sequences()
        states = torch.zeros(self.n_users, read.shape[1])
        for start in range(0, self.n_users, chunk):
            users = np.arange(start, min(start + chunk, self.n_users))
            rows = users[sequences.lengths[users] > 0]
            if len(rows):
                states[torch.from_numpy(rows)] = self.states_after(torch.from_numpy(sequences.last(rows,
                                                                                                   self.max_length)))
        return states, items.detach()

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        check_users(users, self.n_users)
        windows = self.stored_sequences().last(users.numpy(), self.max_length)
        return self.score_sequences(torch.from_numpy(windows))
