"""SASRec (Kang and McAuley, ICDM 2018): the next item from a causal self-attention encoder over the user's last
items, each an id vector tied between input and output.

Trained on every position of every user's training sequence at once (one training pair per item that follows
another), with any of the trainer's losses; RecBole's cross-entropy over the catalogue is ``training.loss:
full_softmax``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from torch import nn

from fusionrec.models.base import HyperParameters, Model
from fusionrec.models.capabilities import SequenceModel
from fusionrec.models.registry import register
from fusionrec.models.sequence_encoder import CausalEncoder, SequenceScoring, check_heads
from fusionrec.typed_config import PositiveInt, Range


@dataclass(frozen=True)
class SASRecParams(HyperParameters):
    embedding_size: PositiveInt = 64  # d, item and hidden width; 32..256, a multiple of n_heads
    n_layers: PositiveInt = 2  # self-attention blocks; 1..4
    n_heads: PositiveInt = 2  # attention heads per block; 1..8
    max_length: PositiveInt = 50  # most recent items read; 20..200
    dropout: Annotated[float, Range(0.0, 0.9)] = 0.3  # on inputs, attention and blocks; 0.1..0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check_heads(self)


@register
class SASRec(SequenceScoring, Model, SequenceModel):
    """score(history, i) = <h_t, E_i>, h_t the encoder's state after the newest item, E the item table."""

    name = "sasrec"
    Params = SASRecParams

    @classmethod
    def required_inputs(cls, params) -> set[str]:
        return {"sequences"}

    def __init__(self, n_users: int, n_items: int, params: SASRecParams | None = None):
        super().__init__(n_users, n_items, params)
        p = self.params
        self.item_emb = nn.Embedding(self.n_items, p.embedding_size)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        self.encoder = CausalEncoder(p.embedding_size, p.max_length, p.n_layers, p.n_heads, p.dropout)
        self.init_sequences()

    def item_table(self):
        return self.item_emb.weight
