"""SASRec (Kang and McAuley, ICDM 2018): the next item from a causal self-attention encoder over the user's last
items, each an id vector tied between input and output.

Trained on every position of every user's training sequence at once (one training pair per item that follows
another), with any of the trainer's losses; RecBole's cross-entropy over the catalogue is ``training.loss:
full_softmax``."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from fusionrec.models.base import Model
from fusionrec.models.capabilities import SequenceModel
from fusionrec.models.registry import register
from fusionrec.models.sequence_encoder import CausalEncoder, SequenceEncoderParams, SequenceScoring


@dataclass(frozen=True)
class SASRecParams(SequenceEncoderParams):
    """The encoder's hyper-parameters alone: the item table is an id embedding."""


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
        self.encoder = CausalEncoder.from_params(p)
        self.init_sequences()

    def item_table(self):
        return self.item_emb.weight
