"""CKE (Zhang et al., KDD 2016): collaborative filtering whose item vectors add the item's knowledge-graph entity
(trained by TransR on the graph) and, in place of the paper's text autoencoder, a learned linear projection of the
frozen text embedding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from fusionrec.errors import ConfigError, DataError, FusionrecError
from fusionrec.knowledge.kg.embedding import TransR
from fusionrec.models.base import Batch, ForwardOut, HyperParameters, Model, ModelInputs
from fusionrec.models.graph_ops import data_sized_buffers
from fusionrec.models.registry import register
from fusionrec.models.similarity import ScoredByFinalVectors, Similarity, catalogue_out, finish
from fusionrec.typed_config import NonNegativeFloat, PositiveInt


@dataclass(frozen=True)
class CKEParams(HyperParameters):
    # d, width of user, item id and entity vectors (and of the text projection); 16..256
    embedding_size: PositiveInt = 64
    kg_embedding_size: PositiveInt = 64  # width of TransR's relation space; 16..256
    use_text: bool = True  # add W x_i, a linear projection of the item's text embedding (needs item text)
    # (L2 on the batch's user/item vectors, TransR's L2); 0..1e-1
    reg_weights: tuple[NonNegativeFloat, NonNegativeFloat] = (1e-5, 1e-5)
    similarity: Similarity = "dot"  # dot | cosine (user and item vectors L2-normalised before the product)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.reg_weights) != 2 or min(self.reg_weights) < 0:
            raise ConfigError(f"must be two weights >= 0, got {list(self.reg_weights)}", key=self.key_of("reg_weights"))


@register
class CKE(ScoredByFinalVectors, Model):
    """v_i = e_i + [i linked] z_{ent(i)} + [i has text] W x_i;  score(u, i) = <p_u, v_i>.

    ``e`` item id vectors (n_items, d); ``z`` entity vectors (n_entities, d), the SAME table TransR trains on the
    graph (``kg_terms``), so the KG loss shapes item vectors; ``x`` frozen text vectors (n_items, d_text) and ``W``
    (d, d_text) without bias; ``p`` user vectors (n_users, d). Unlinked items and items without text get no entity /
    text part.

    Buffers (data-sized, restored by ``load_state_dict``): ``item_entity`` (n_items,) entity index or -1;
    ``item_text`` (n_items, d_text) and ``text_mask`` (n_items,) when ``use_text``."""

    name = "cke"
    Params = CKEParams
    uses_kg_loss = True
    mixed_sources_in = "one item vector"

    @classmethod
    def required_inputs(cls, params: CKEParams) -> set[str]:
        return {"kg", "text"} if params.use_text else {"kg"}

    def __init__(self, n_users: int, n_items: int, params: CKEParams | None = None, n_entities: int = 1,
                 n_relations: int = 1, text_dim: int = 0):
        super().__init__(n_users, n_items, params)
        p = self.params
        if p.use_text and text_dim < 1:
            raise ConfigError("use_text needs the width of the item text vectors (text_dim >= 1)",
                              key="model.params.use_text")
        self.n_entities, self.n_relations, self.text_dim = int(n_entities), int(n_relations), int(text_dim)
        d = p.embedding_size
        self.user_emb = nn.Embedding(self.n_users, d)
        self.item_emb = nn.Embedding(self.n_items, d)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        # TransR owns the entity table (n_entities, d); item vectors read it through self.kg_model.entity_embedding
        self.kg_model = TransR(self.n_entities, self.n_relations, d, p.kg_embedding_size, margin=0.0)
        if p.use_text:
            self.text_proj = nn.Linear(self.text_dim, d, bias=False)
        self.register_buffer("item_entity", torch.zeros(0, dtype=torch.long))
        self.register_buffer("item_text", torch.zeros(0, self.text_dim))
        self.register_buffer("text_mask", torch.zeros(0, dtype=torch.bool))
        data_sized_buffers(self, ("item_entity", "item_text", "text_mask"))

    def init_args(self) -> dict:
        return {**super().init_args(), "n_entities": self.n_entities, "n_relations": self.n_relations,
                "text_dim": self.text_dim}

    @classmethod
    def from_inputs(cls, inputs: ModelInputs, params: CKEParams | None = None) -> "CKE":
        """Sized for the inputs' graph (entities, relations) and, with ``use_text``, text width."""
        params = params or CKEParams()
        kg = _require_kg(inputs)
        text_dim = 0
        if params.use_text:
            if inputs.item_text is None:
                raise DataError("cke with use_text needs item text vectors: add a text: section to the run config "
                                "or set model.params.use_text: false", field="item_text")
            text_dim = int(inputs.item_text.shape[1])
        return cls(inputs.n_users, inputs.n_items, params, n_entities=kg.n_entities, n_relations=kg.n_relations,
                   text_dim=text_dim)

    def prepare(self, inputs: ModelInputs) -> None:
        kg = _require_kg(inputs)
        if (kg.n_entities, kg.n_relations) != (self.n_entities, self.n_relations):
            raise DataError(f"cke was built for a graph of {self.n_entities} entities and {self.n_relations} "
                            f"relations; the inputs have {kg.n_entities} and {kg.n_relations}", field="kg")
        link = kg.item_entity.long()
        if len(link) < self.n_items:
            link = torch.cat([link, torch.full((self.n_items - len(link),), -1, dtype=torch.long)])
        self.item_entity = link[: self.n_items].clone()
        if self.params.use_text:
            text = inputs.item_text
            if text is None or tuple(text.shape) != (self.n_items, self.text_dim):
                raise DataError(f"cke was built for item text of shape ({self.n_items}, {self.text_dim}), got "
                                f"{None if text is None else tuple(text.shape)}", field="item_text")
            self.item_text = text.float().contiguous().clone()
            mask = inputs.item_text_mask
            self.text_mask = (torch.ones(self.n_items, dtype=torch.bool) if mask is None else mask.bool().clone())
        self._cache.clear()

    # -- vectors ------------------------------------------------------------------------------------------------------
    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """v_i for ``items`` LongTensor (any shape S) -> (*S, d); all items (n_items, d) when None."""
        if self.item_entity.numel() == 0:
            raise FusionrecError("cke has no item links yet: call prepare(inputs) or load a saved state dict")
        idx = torch.arange(self.n_items) if items is None else items
        vecs = self.item_emb(idx)
        link = self.item_entity[idx]
        linked = (link >= 0).unsqueeze(-1)
        vecs = vecs + self.kg_model.entity_embedding(link.clamp(min=0)) * linked
        if self.params.use_text:
            vecs = vecs + self.text_proj(self.item_text[idx]) * self.text_mask[idx].unsqueeze(-1)
        return vecs

    # -- training -----------------------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> ForwardOut:
        """users, pos (B,), neg (B, n_neg) -> scores (B,), (B, n_neg) and 'reg' =
        reg_weights[0] * (|p_u|^2 + |v_pos|^2 + sum_k |v_neg_k|^2) / (2 B)."""
        sim = self.params.similarity
        u = self.user_emb(batch.users)  # (B, d)
        v = self.item_vectors(torch.cat([batch.pos.unsqueeze(1), batch.neg], dim=1))  # (B, 1 + n_neg, d)
        scores = (finish(v, sim) * finish(u, sim).unsqueeze(1)).sum(-1)
        reg = self.params.reg_weights[0] * (u.square().sum() + v.square().sum()) / (2 * len(batch.users))
        return ForwardOut(scores[:, 0], scores[:, 1:], {"reg": reg})

    def forward_catalogue(self, batch: Batch) -> ForwardOut:
        """users, pos (B,) -> pos scores (B,), every item's scores (B, n_items) (or those (B, C) of
        ``batch.candidates``) and 'reg' on the users' and positives' vectors."""
        sim = self.params.similarity
        u, v = self.user_emb(batch.users), self.item_vectors()
        reg = self.params.reg_weights[0] * (u.square().sum() + v[batch.pos].square().sum()) / (2 * len(batch.users))
        return catalogue_out(finish(u, sim), finish(v, sim), batch.pos, {"reg": reg}, batch.candidates)

    def final_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """User and item vectors as scored (unit length under ``cosine``)."""
        sim = self.params.similarity
        return finish(self.user_emb.weight.clone(), sim), finish(self.item_vectors(), sim)

    def kg_terms(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor,
                 neg_tails: torch.Tensor) -> dict[str, torch.Tensor]:
        """TransR on the shared entity table: heads, relations, tails (B,), neg_tails (B, n_neg) index the graph.
        'kg' = mean softplus(f(h, r, t') - f(h, r, t)) (BPR on triples); 'kg_reg' = reg_weights[1] x TransR's
        half squared norms of the projected vectors."""
        loss, reg = self.kg_model.loss_and_regularization(heads, relations, tails, neg_tails)
        return {"kg": loss, "kg_reg": self.params.reg_weights[1] * reg}


def _require_kg(inputs: ModelInputs):
    if inputs.kg is None or inputs.kg.n_entities == 0 or inputs.kg.n_relations == 0:
        raise DataError("this model needs a knowledge graph with at least one triple: check the knowledge: section "
                        "(use_kg_file, attributes) and that the dataset has a .kg/.link", field="kg")
    return inputs.kg
