"""KGAT (Wang et al., KDD 2019): attentive bi-interaction propagation over the collaborative knowledge graph (users,
items and entities in one graph), with TransR trained on the knowledge graph sharing the node vectors and the
relation projections that the attention uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import torch
from torch import nn

from fusionrec.errors import ConfigError, DataError, FusionrecError
from fusionrec.knowledge.kg.attention import KGATAttention, attention_logits, relation_groups, segment_softmax
from fusionrec.knowledge.kg.collaborative import CKG, INTERACT, collaborative_graph
from fusionrec.knowledge.kg.embedding import TransR
from fusionrec.models.base import Batch, ForwardOut, HyperParameters, Model, ModelInputs
from fusionrec.models.graph_ops import data_sized_buffers
from fusionrec.models.registry import register
from fusionrec.models.similarity import ScoredByFinalVectors, Similarity, catalogue_out, finish
from fusionrec.typed_config import NonNegativeFloat, PositiveInt, Range

_GRAPH_BUFFERS = ("ckg_heads", "ckg_relations", "ckg_tails", "attention", "item_node")


@dataclass(frozen=True)
class KGATParams(HyperParameters):
    embedding_size: PositiveInt = 64  # d, width of the layer-0 node vectors (users, items, entities); 16..256
    kg_embedding_size: PositiveInt = 64  # width of TransR's relation space, also the attention's; 16..256
    layers: tuple[PositiveInt, ...] = (64, 32, 16)  # output width of each bi-interaction layer; 1..4 layers
    # message dropout after each layer in training; 0..0.5
    mess_dropout: Annotated[float, Range(0, 1, high_open=True)] = 0.1
    # L2 on the batch's final vectors ('reg') and on TransR's projections ('kg_reg'); 0..1e-2
    reg_weight: NonNegativeFloat = 1e-5
    similarity: Similarity = "dot"  # dot | cosine (final vectors L2-normalised before the product)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= len(self.layers) <= 8 or min(self.layers) < 1:
            raise ConfigError(f"must list 1..8 layer widths >= 1, got {list(self.layers)}", key=self.key_of("layers"))


@register
class KGAT(ScoredByFinalVectors, Model):
    """Nodes of the collaborative KG (:func:`~fusionrec.knowledge.kg.collaborative_graph`): entities (a linked item is
    its entity), one node per unlinked item, then users; edges: the KG triples (relation r -> r + 1) and
    user <-> item ``interact`` edges (relation 0). Per layer l, with attention A fixed within an epoch::

        e_N = A e^(l-1);   e^(l) = LeakyReLU(W1 (e^(l-1) + e_N)) + LeakyReLU(W2 (e^(l-1) * e_N))

    final vector = [e^(0), |e^(1)|, ..., |e^(L)|] (row-normalised layers concatenated; d + sum(layers) wide) and
    score(u, i) = <e*_u, e*_i>. ``A[h, t] = softmax over h's out-edges of (W_r e_t)^T tanh(W_r e_h + e_r)``,
    recomputed in :meth:`epoch_end`; ``W_r``, ``e_r`` and the entity rows of the node table are TransR's, trained by
    ``kg_terms`` (:class:`~fusionrec.knowledge.kg.KGATAttention` does the propagation).

    Buffers (data-sized, restored by ``load_state_dict`` so a loaded model needs no inputs): ``ckg_heads``,
    ``ckg_relations``, ``ckg_tails`` (E,) the CKG edges; ``attention`` (E,) the current per-edge weights;
    ``item_node`` (n_items,) each item's node."""

    name = "kgat"
    Params = KGATParams
    uses_kg_loss = True
    mixed_sources_in = "one item vector"

    @classmethod
    def required_inputs(cls, params: KGATParams) -> set[str]:
        return {"kg"}

    def __init__(self, n_users: int, n_items: int, params: KGATParams | None = None, n_entities: int = 1,
                 n_relations: int = 1, n_unlinked: int = 0):
        super().__init__(n_users, n_items, params)
        p = self.params
        self.n_entities, self.n_relations, self.n_unlinked = int(n_entities), int(n_relations), int(n_unlinked)
        self.user_offset = self.n_entities + self.n_unlinked
        n_nodes = self.user_offset + self.n_users
        d = p.embedding_size
        node_emb = nn.Embedding(n_nodes, d)  # (n_nodes, d): entities, unlinked items, users
        nn.init.xavier_uniform_(node_emb.weight)
        # TransR over the CKG's relations (0 = interact, KG relation r = r + 1) owns the node table; the KG loss sees
        # its first n_entities rows, the attention uses its projections as W_r.
        self.kg_model = TransR(self.n_entities, self.n_relations + 1, d, p.kg_embedding_size, margin=0.0,
                               entity_embedding=node_emb)
        self.propagation = KGATAttention(d, p.layers, dropout=p.mess_dropout, combine="concat", normalize=True)
        for layer in self.propagation.layers:  # as KGAT/RecBole: xavier-normal aggregator weights, zero biases
            for linear in (layer.w1, layer.w2):
                nn.init.xavier_normal_(linear.weight)
                nn.init.zeros_(linear.bias)
        for name in _GRAPH_BUFFERS:
            self.register_buffer(name, torch.zeros(0, dtype=torch.float if name == "attention" else torch.long))
        data_sized_buffers(self, _GRAPH_BUFFERS)
        self._graph_ready = False  # is self.propagation holding the buffers' graph and attention?
        self.register_load_state_dict_pre_hook(self._graph_changed)

    def init_args(self) -> dict:
        return {**super().init_args(), "n_entities": self.n_entities, "n_relations": self.n_relations,
                "n_unlinked": self.n_unlinked}

    @classmethod
    def from_inputs(cls, inputs: ModelInputs, params: KGATParams | None = None) -> "KGAT":
        """Sized for the inputs' graph: entities, relations and items without a link (each gets its own node)."""
        kg = inputs.kg
        if kg is None or kg.n_entities == 0 or kg.n_relations == 0:
            raise DataError("kgat needs a knowledge graph with at least one triple: check the knowledge: section "
                            "(use_kg_file, attributes) and that the dataset has a .kg/.link", field="kg")
        link = kg.item_entity[: inputs.n_items]
        n_unlinked = int((link < 0).sum()) + max(0, inputs.n_items - len(link))
        return cls(inputs.n_users, inputs.n_items, params, n_entities=kg.n_entities, n_relations=kg.n_relations,
                   n_unlinked=n_unlinked)

    @property
    def n_nodes(self) -> int:
        return self.user_offset + self.n_users

    # -- the graph ----------------------------------------------------------------------------------------------------
    def prepare(self, inputs: ModelInputs) -> None:
        """Builds the CKG of the training matrix and ``inputs.kg`` and its first attention (from the initial
        vectors)."""
        kg = inputs.kg
        if kg is None or (kg.n_entities, kg.n_relations) != (self.n_entities, self.n_relations):
            raise DataError(f"kgat was built for a graph of {self.n_entities} entities and {self.n_relations} "
                            "relations; the inputs hold "
                            f"{'none' if kg is None else (kg.n_entities, kg.n_relations)}", field="kg")
        ckg = collaborative_graph(inputs.train, kg)
        if ckg.user_offset != self.user_offset:
            raise DataError(f"kgat was built for {self.n_unlinked} items without a KG link; the inputs have "
                            f"{ckg.user_offset - ckg.n_entities}", field="kg")
        self.ckg_heads, self.ckg_relations, self.ckg_tails = ckg.heads, ckg.relations, ckg.tails
        self.item_node = ckg.item_node.clone()
        self.attention = torch.zeros(ckg.n_edges)
        self._use_graph(ckg)
        self.update_attention()

    def _graph_changed(self, *_) -> None:
        self._graph_ready = False  # the loaded buffers hold a graph and attention that the propagation lacks

    def _use_graph(self, ckg: CKG) -> None:
        self._groups = relation_groups(ckg.heads, ckg.relations, ckg.tails, ckg.n_relations, ckg.n_nodes)
        self.propagation.set_graph(ckg)
        self._graph_ready = True
        self._cache.clear()

    def _ensure_graph(self) -> None:
        """Restores the propagation graph and attention from the buffers (after ``load_state_dict``)."""
        if self._graph_ready:
            return
        if self.ckg_heads.numel() == 0:
            raise FusionrecError("kgat has no graph yet: call prepare(inputs) or load a saved state dict")
        names = [INTERACT, *(f"r{r}" for r in range(self.n_relations))]
        ckg = CKG(self.ckg_heads, self.ckg_relations, self.ckg_tails, self.item_node, self.n_entities,
                  self.user_offset, self.n_users, names)
        self._use_graph(ckg)
        self.propagation.set_attention(self.attention)

    @torch.no_grad()
    def update_attention(self) -> torch.Tensor:
        """Recomputes the per-edge attention (E,) from the current vectors, keeps it as the ``attention`` buffer and
        as the propagation matrix; returns it. Each node's out-edge weights sum to 1."""
        self._ensure_graph()
        kg = self.kg_model
        node = kg.entity_embedding.weight
        logits = attention_logits(node, kg.relation_embedding.weight, kg.projection, self._groups)
        weights = segment_softmax(logits, self.ckg_heads, self.n_nodes)
        self.attention.copy_(weights)
        self.propagation.set_attention(self.attention)
        self._cache.clear()
        return self.attention

    def epoch_end(self, epoch: int) -> None:
        """KGAT recomputes its attention after every epoch."""
        self.update_attention()

    # -- vectors ------------------------------------------------------------------------------------------------------
    def propagate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final (n_users, d + sum(layers)) and (n_items, d + sum(layers)) vectors."""
        self._ensure_graph()
        out = self.propagation(self.kg_model.entity_embedding.weight)  # (n_nodes, d + sum(layers))
        return out[self.user_offset:], out.index_select(0, self.item_node)

    # -- training -----------------------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> ForwardOut:
        """users, pos (B,), neg (B, n_neg) -> scores (B,), (B, n_neg) and 'reg' =
        reg_weight * (|e*_u|^2 + |e*_pos|^2 + sum_k |e*_neg_k|^2) / (2 B) over the final vectors (as KGAT)."""
        self._ensure_graph()
        out = self.propagation(self.kg_model.entity_embedding.weight)  # (n_nodes, D)
        idx = torch.cat([batch.pos.unsqueeze(1), batch.neg], dim=1)  # (B, 1 + n_neg)
        n = len(batch.users)
        rows = out.index_select(0, torch.cat([batch.users + self.user_offset, self.item_node[idx.reshape(-1)]]))
        u, v = rows[:n], rows[n:].view(*idx.shape, -1)  # (B, D), (B, 1 + n_neg, D); one gather, one backward
        sim = self.params.similarity
        scores = (finish(v, sim) * finish(u, sim).unsqueeze(1)).sum(-1)
        reg = self.params.reg_weight * (u.square().sum() + v.square().sum()) / (2 * len(batch.users))
        return ForwardOut(scores[:, 0], scores[:, 1:], {"reg": reg})

    def forward_catalogue(self, batch: Batch) -> ForwardOut:
        """users, pos (B,) -> pos scores (B,), every item's scores (B, n_items) (or those (B, C) of
        ``batch.candidates``) and 'reg' on the final vectors of the batch's users and positives."""
        users, items = self.propagate()
        u = users.index_select(0, batch.users)
        reg = self.params.reg_weight * (u.square().sum() + items[batch.pos].square().sum()) / (2 * len(batch.users))
        sim = self.params.similarity
        return catalogue_out(finish(u, sim), finish(items, sim), batch.pos, {"reg": reg}, batch.candidates)

    def final_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The propagated vectors as scored (unit length under ``cosine``)."""
        users, items = self.propagate()
        return finish(users, self.params.similarity), finish(items, self.params.similarity)

    def kg_terms(self, heads: torch.Tensor, relations: torch.Tensor, tails: torch.Tensor,
                 neg_tails: torch.Tensor) -> dict[str, torch.Tensor]:
        """TransR on the KG triples (heads, relations, tails (B,), neg_tails (B, n_neg) index ``inputs.kg``):
        'kg' = mean softplus(f(h, r, t') - f(h, r, t)) (KGAT's -log sigmoid); 'kg_reg' = reg_weight x the half
        squared norms of the projected vectors."""
        rel = relations + 1  # CKG relation numbers: 0 is interact
        loss, reg = self.kg_model.loss_and_regularization(heads, rel, tails, neg_tails)
        return {"kg": loss, "kg_reg": self.params.reg_weight * reg}
