"""FusionRec: each item's vector fused from its collaborative signal, its text and its place in the knowledge graph.

Per item i, up to three sources, each of width d:

* ``cf``   the id embedding (present only for items seen in training);
* ``text`` a learned projection of the frozen language-model embedding of the item's text;
* ``kg``   the linked entity's embedding, optionally averaged with its graph neighbours' (present only if linked).

A fusion strategy (``concat``, ``gate``, ``attention``; :mod:`fusionrec.fusion`) turns the present sources into the
item's layer-0 vector; users and items are then smoothed over the user-item graph as in LightGCN. A missing source is
masked, never averaged in as zeros. The entity table is shared with a TransE/TransR loss over the knowledge graph
(``kg_terms``), which the trainer weighs by ``kg_alpha``.

Cold items. An item without interactions has no trained id vector and no graph neighbours, so it is scored by its
*content vector*: the fusion of its text and KG sources alone. ``source_dropout`` trains that path: in each step a
share of the batch's positive and negative items is scored by its content vector instead of its full vector, so the
content path learns to land where the item's collaborative vector would.

``cold_path: neighbours`` scores such an item instead by borrowing: its final vector is the softmax(cos/
``cold_temperature``)-weighted mean of the final vectors of the ``cold_neighbours`` warm items whose text is most
similar to its own, rescaled to their weighted mean norm times ``cold_scale``. Nothing of the content path needs
training, so the warm items keep the accuracy of a model trained without source dropout; ``cold_scale`` sets how
far new items reach into the lists (1: like their neighbours). Items without text fall back to the content vector.

Two optional sources beyond the items'. ``use_social``: each user's next layer also averages their friends' vectors
(share ``social_weight``; SocialLGN's smoothing, as ``social-lightgcn``), so a friend's taste reaches a user whose
own history says little. ``item_item``: an item-item regression (EASE's closed form, the items' text similarity in
its Gram matrix with ``item_item_text_weight``) scores each user's history and is mixed into the score by a share
chosen on validation after training (:class:`~fusionrec.models.item_item_source.ItemItemShare`; 0 keeps the model
as trained), so a dataset where co-occurrence says more than the vectors uses it and one where it does not
switches it off.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fusionrec.errors import ConfigError, DataError, FusionrecError
from fusionrec.fusion import make_fusion
from fusionrec.knowledge.kg.aggregate import RowMix
from fusionrec.knowledge.kg.item_entities import item_entity_matrix
from fusionrec.knowledge.kg.embedding import TransE, TransR
from fusionrec.models.base import Batch, ForwardOut, HistoryReader, Model, ModelInputs, checked_history, dense_scores
from fusionrec.models.capabilities import RatingPredictor
from fusionrec.models.fusionrec_content import FusionRecContent
from fusionrec.models.fusionrec_knowledge import FusionRecKnowledge
from fusionrec.models.fusionrec_params import FusionRecParams
from fusionrec.models.graph_ops import (BipartiteGraph, SocialMix, bipartite_graph, buffers_from_scipy, check_users,
                                        data_sized_buffers, history_buffers, history_columns, mean_over_layers,
                                        normalized_bipartite_adjacency, normalized_social, optional_buffers,
                                        sparse_from_buffers)
from fusionrec.models.fusionrec_choices import FusionRecChoices
from fusionrec.models.item_item_source import ItemItemSource
from fusionrec.models.rating_head import RatingHead
from fusionrec.models.registry import register
from fusionrec.models.similarity import catalogue_out, finish
from fusionrec.models.text_adapter import text_pca

__all__ = ["FusionRec", "FusionRecParams"]

SOURCES = ("cf", "text", "kg")


@register
class FusionRec(Model, HistoryReader, FusionRecContent, FusionRecKnowledge, FusionRecChoices, RatingPredictor):
    name = "fusionrec"
    Params = FusionRecParams
    uses_kg_loss = True

    @classmethod
    def required_inputs(cls, params: FusionRecParams) -> set[str]:
        text = params.use_text or (params.item_item and params.item_item_text_weight > 0)
        return ({"text"} if text else set()) | ({"kg"} if params.use_kg else set()) \
            | ({"social"} if params.use_social else set()) | ({"user_features"} if params.use_user_features else set()) \
            | ({"ratings"} if params.rating_head else set())

    def __init__(self, n_users: int, n_items: int, params: FusionRecParams | None = None, text_dim: int = 0,
                 n_entities: int = 0, n_relations: int = 0, n_user_features: int = 0):
        super().__init__(n_users, n_items, params)
        p = self.params
        d = p.embedding_size
        self.text_dim, self.n_entities, self.n_relations = int(text_dim), int(n_entities), int(n_relations)
        self.n_user_features = int(n_user_features) if p.use_user_features else 0
        if p.use_user_features:  # one vector per feature (gender=F, age=q2, ...), small at the start
            self.user_feature_emb = nn.Embedding(max(self.n_user_features, 1), d)
            nn.init.normal_(self.user_feature_emb.weight, std=0.01)
        self.user_emb = nn.Embedding(self.n_users, d)
        self.item_emb = nn.Embedding(self.n_items, d)
        nn.init.xavier_uniform_(self.user_emb.weight)
        nn.init.xavier_uniform_(self.item_emb.weight)
        self.sources = ["cf"]
        if not 0 <= p.text_components <= max(self.text_dim, 0) and self.text_dim:
            raise ConfigError(f"must be between 0 and the text width {self.text_dim}, got {p.text_components}",
                              key="model.params.text_components")
        if p.use_text and self.text_dim:
            self.sources.append("text")
            text_in = p.text_components or self.text_dim
            if p.text_hidden:
                self.text_proj = nn.Sequential(nn.Linear(text_in, p.text_hidden), nn.Tanh(),
                                               nn.Linear(p.text_hidden, d))
            else:
                self.text_proj = nn.Linear(text_in, d)
            if p.text_components:  # a frozen PCA of the text embeddings: centre, then project on the top components
                self.register_buffer("text_mean", torch.zeros(self.text_dim))
                self.register_buffer("text_basis", torch.zeros(self.text_dim, p.text_components))
        if p.use_kg and self.n_entities:
            self.sources.append("kg")
            if p.kg_loss == "transe":
                self.kg_model = TransE(self.n_entities, self.n_relations, d, margin=p.kg_margin)
            else:
                self.kg_model = TransR(self.n_entities, self.n_relations, d, d, margin=p.kg_margin)
        self.fusion = make_fusion(p.fusion, len(self.sources), d)
        self.item_item = ItemItemSource.optional(self.n_items, p.item_item, p.item_item_max_memory_gb)
        self.rating = RatingHead(self.n_users, self.n_items) if p.rating_head else None
        # Data-sized buffers, filled by prepare() and restored by load_state_dict.
        for name, dtype in (("adj_indices", torch.long), ("adj_values", torch.float), ("item_degree", torch.float),
                            ("item_text", torch.float), ("text_mask", torch.bool), ("item_entity", torch.long),
                            ("kg_indices", torch.long), ("kg_values", torch.float),
                            ("social_indices", torch.long), ("social_values", torch.float),
                            ("has_friends", torch.bool), ("hist_indptr", torch.long), ("hist_items", torch.long),
                            ("uf_indices", torch.long), ("uf_values", torch.float)):
            self.register_buffer(name, torch.zeros((2, 0) if name.endswith("indices") else (0,), dtype=dtype))
        # cold_path neighbours: per borrowing item, its neighbour items (-1: none) and their weights, (n_items, k)
        self.register_buffer("cold_nbr_index", torch.zeros(0, 0, dtype=torch.long))
        self.register_buffer("cold_nbr_weight", torch.zeros(0, 0))
        self.register_buffer("cold_scale_now", torch.tensor(float(p.cold_scale)))  # cold_warm_tolerance: chosen
        later = ("cold_nbr_index", "cold_nbr_weight", "cold_scale_now", "social_indices", "social_values", "has_friends",
                 "hist_indptr", "hist_items", "uf_indices", "uf_values")
        data_sized_buffers(self, ("adj_indices", "adj_values", "item_degree", "item_text", "text_mask",
                                  "item_entity", "kg_indices", "kg_values") + later)
        optional_buffers(self, later)  # artifacts saved before cold_path, the social and item-item sources existed

    def init_args(self) -> dict:
        return {**super().init_args(), "text_dim": self.text_dim, "n_entities": self.n_entities,
                "n_relations": self.n_relations, "n_user_features": self.n_user_features}

    @classmethod
    def from_inputs(cls, inputs: ModelInputs, params: FusionRecParams | None = None) -> "FusionRec":
        """The model sized for these inputs (text width, entity and relation counts); ``prepare`` still follows."""
        params = params or FusionRecParams()
        text_dim = int(inputs.item_text.shape[1]) if (params.use_text and inputs.item_text is not None) else 0
        kg = inputs.kg if params.use_kg else None
        features = inputs.user_features if params.use_user_features else None
        return cls(inputs.n_users, inputs.n_items, params, text_dim=text_dim,
                   n_entities=kg.n_entities if kg is not None else 0, n_relations=kg.n_relations if kg else 0,
                   n_user_features=features.shape[1] if features is not None else 0)

    # -- inputs -------------------------------------------------------------------------------------------------------
    def prepare(self, inputs: ModelInputs) -> None:
        self.adj_indices, self.adj_values = buffers_from_scipy(normalized_bipartite_adjacency(inputs.train))
        self.item_degree = torch.from_numpy(np.asarray(inputs.train.sum(axis=0)).ravel().astype(np.float32))
        if "text" in self.sources:
            if inputs.item_text is None or inputs.item_text.shape[1] != self.text_dim:
                raise FusionrecError(f"fusionrec was built for {self.text_dim}-d item text; the inputs have "
                                     f"{None if inputs.item_text is None else inputs.item_text.shape[1]}")
            self.item_text = inputs.item_text.float().contiguous()
            self.text_mask = inputs.item_text_mask.bool().contiguous()
            if self.params.text_components:
                self._fit_text_components()
            if self.params.cold_path == "neighbours":
                borrowing = (self.item_degree <= 0) & self.text_mask
                index, weight = self.text_neighbours(self.item_text[borrowing], self.text_mask[borrowing])
                self.cold_nbr_index = torch.full((self.n_items, index.shape[1]), -1, dtype=torch.long)
                self.cold_nbr_weight = torch.zeros(self.n_items, index.shape[1])
                self.cold_nbr_index[borrowing], self.cold_nbr_weight[borrowing] = index, weight
        if "kg" in self.sources:
            kg = inputs.kg
            if kg is None or kg.n_entities != self.n_entities:
                raise FusionrecError("fusionrec was built for a different knowledge graph than the inputs hold")
            self.item_entity = kg.item_entity.clone()
            self.kg_indices, self.kg_values = buffers_from_scipy(
                item_entity_matrix(kg.triples, kg.item_entity.numpy(), kg.n_entities, self.params.kg_neighbours))
        if self.params.use_social:
            if inputs.social is None or inputs.social.shape != (self.n_users, self.n_users):
                raise DataError("fusionrec with use_social needs the users' social graph (RecBole's NAME.net)",
                                field="social")
            self.social_indices, self.social_values = buffers_from_scipy(normalized_social(inputs.social))
            self.has_friends = torch.from_numpy(np.diff(inputs.social.tocsr().indptr) > 0)
        if self.rating is not None:
            self.rating.fit_mean(inputs.ratings, "fusionrec")
        if self.params.use_user_features:
            features = inputs.user_features
            if features is None or features.shape != (self.n_users, self.n_user_features):
                raise DataError(f"fusionrec with use_user_features was built for {self.n_user_features} user "
                                f"features; the inputs have {None if features is None else features.shape[1]} "
                                "(RecBole's NAME.user)", field="user_features")
            self.uf_indices, self.uf_values = buffers_from_scipy(features)
        if self.item_item is not None:
            self.item_item.fit(inputs, self.params.item_item_l2, self.params.item_item_text_weight, "fusionrec")
            self.hist_indptr, self.hist_items = history_buffers(checked_history(inputs.train, self.n_users,
                                                                                self.n_items))
        self._cache.clear()

    def use_history(self, history) -> None:
        """Propagate over the user-item graph of ``history`` (scipy CSR (n_users, n_items)), normalised afresh; the
        weights, and which items count as warm (``item_degree``: training interactions, so the cold path and the
        fused layer-0 vectors stay as trained), are unchanged."""
        history = checked_history(history, self.n_users, self.n_items)
        self.adj_indices, self.adj_values = buffers_from_scipy(normalized_bipartite_adjacency(history))
        if self.item_item is not None:  # the regression reads the same history
            self.hist_indptr, self.hist_items = history_buffers(history)
        self._cache.clear()

    def _fit_text_components(self) -> None:
        """PCA of the text embeddings of the items that have text (:func:`text_pca`)."""
        self.text_mean, self.text_basis = text_pca(self.item_text, self.text_mask, self.params.text_components)

    def text_features(self, text: torch.Tensor) -> torch.Tensor:
        """What the text projection reads: text (N, text_dim) -> (N, text_components), or the text itself."""
        if not self.params.text_components:
            return text
        return (text - self.text_mean) @ self.text_basis

    # -- vectors ------------------------------------------------------------------------------------------------------
    def _graph(self) -> BipartiteGraph:
        if "graph" not in self._cache:  # the graph never changes with the weights: kept in train mode too
            if self.adj_values.numel() == 0:
                raise FusionrecError("fusionrec has no graph yet: call prepare(inputs) or load a saved state dict")
            self._cache["graph"] = bipartite_graph(self.adj_indices, self.adj_values, self.n_users, self.n_items)
        return self._cache["graph"]

    def _social(self) -> SocialMix | None:
        """With ``use_social``: the friends' share of each user's next layer (as social-lightgcn), else None."""
        if not self.params.use_social:
            return None
        if "social" not in self._cache:  # constant: kept in train mode too
            if self.has_friends.numel() != self.n_users:
                raise FusionrecError("fusionrec has no social graph yet: call prepare(inputs) or load a state dict")
            matrix = sparse_from_buffers(self.social_indices, self.social_values, (self.n_users, self.n_users))
            self._cache["social"] = SocialMix(matrix, self.params.social_weight
                                              * self.has_friends.float().unsqueeze(1))
        return self._cache["social"]

    def _user_feature_mix(self) -> RowMix:
        """The (n_users, n_user_features) feature means as a :class:`RowMix` over the feature table."""
        if "user_feature_mix" not in self._cache:  # constant: kept in train mode too
            self._cache["user_feature_mix"] = RowMix(self.uf_indices, self.uf_values,
                                                     (self.n_users, self.user_feature_emb.num_embeddings))
        return self._cache["user_feature_mix"]

    def _item_kg_mix(self) -> RowMix:
        """The (n_items, n_entities) neighbour-mean matrix as a :class:`RowMix`: a gather-and-sum forward and one
        transposed sparse product backward, the same maths as the sparse product at a lookup's cost."""
        if "item_kg_mix" not in self._cache:  # the graph never changes with the weights: kept in train mode too
            if self.kg_values.numel() == 0:
                raise FusionrecError("fusionrec has no graph yet: call prepare(inputs) or load a saved state dict")
            self._cache["item_kg_mix"] = RowMix(self.kg_indices, self.kg_values, (self.n_items, self.n_entities))
        return self._cache["item_kg_mix"]

    def source_vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every item's sources (n_items, S, d) and their presence mask (n_items, S); S follows ``self.sources``."""
        # use_id false: no item reads its id vector, every item is placed by its content (warm items propagate it)
        vecs, masks = [self.item_emb.weight], [(self.item_degree > 0) & self.params.use_id]
        if "text" in self.sources:
            if "text_features" not in self._cache:  # frozen inputs: computed once, in train mode too
                self._cache["text_features"] = self.text_features(self.item_text)
            vecs.append(self.text_proj(self._cache["text_features"]))
            masks.append(self.text_mask)
        if "kg" in self.sources:
            ent = self.kg_model.entity_embedding.weight
            linked = self.item_entity >= 0
            if self.params.kg_neighbours:
                vecs.append(self._item_kg_mix()(ent))  # unlinked: zero rows
            else:  # a plain gather: much cheaper than a sparse product over the whole entity table
                vecs.append(ent.index_select(0, self.item_entity.clamp(min=0)) * linked.unsqueeze(1))
            masks.append(linked)
        return torch.stack(vecs, dim=1), torch.stack(masks, dim=1)

    def item_vectors(self) -> dict[str, torch.Tensor]:
        """``full`` (n_items, d): fused vectors of all sources; ``content`` (n_items, d): fused without the
        collaborative source (all zeros for an item with neither text nor KG); ``weights`` (n_items, S) or absent."""
        sources, mask = self.source_vectors()
        content_mask = mask.clone()
        content_mask[:, 0] = False
        if self.training and self.params.source_dropout == 0 and self.params.content_align == 0:
            # Training reads the content vector only for items without training interactions (their layer-0
            # vector): fuse just those rows for that view. Warm rows of ``content`` are zeros here.
            full = self.fusion(sources, mask)
            cold = torch.nonzero(self.item_degree <= 0).squeeze(1)
            content_vectors = torch.zeros_like(full.vectors)
            if len(cold):
                part = self.fusion(sources[cold], content_mask[cold]).vectors
                content_vectors = content_vectors.index_copy(0, cold, part)
        else:
            # Both views (full, content-only) from one pass: gate and attention compute their logits once.
            full, content = self.fusion.forward_views(sources, [mask, content_mask])
            content_vectors = content.vectors
        out = {"full": full.vectors, "content": content_vectors * content_mask.any(1, keepdim=True)}
        if full.weights is not None:
            out["weights"] = full.weights
        return out

    def propagate(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(users (n_users, d), items (n_items, d), content (n_items, d)): LightGCN over the fused layer-0 item
        vectors. An item without training interactions keeps its layer-0 vector (it has no neighbours to average
        with), and its layer-0 vector is its content vector."""
        vecs = self.item_vectors()
        warm = (self.item_degree > 0).unsqueeze(1)
        ego_items = torch.where(warm, vecs["full"], vecs["content"])
        users, items = self.user_emb.weight, ego_items
        if self.params.use_user_features:
            users = users + self._user_feature_mix()(self.user_feature_emb.weight)
        if self.params.n_layers:
            users, items = mean_over_layers(self._graph(), users, items, self.params.n_layers, self._social())
        return users, torch.where(warm, items, ego_items), vecs["content"]

    # -- training -----------------------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> ForwardOut:
        """users, pos (B,), neg (B, n_neg) -> scores; a ``source_dropout`` share of the positive and negative items is
        scored by its content vector. Extra term ``reg`` on the batch's layer-0 user and item id vectors; with
        ``content_align`` > 0 also ``align``: the mean squared gap, over the batch's (user, warm item) pairs, between
        the score of the item's content vector and its full score, both user and full vectors detached, so only the
        content path moves: a cold item's score is then on the warm items' scale (it competes with them in one
        ranking) and approximates the score its collaborative vector would get.

            align = content_align * mean over warm (u, i) of (sg(e_u) . c_i - sg(e_u . e_i))^2"""
        p = self.params
        users, items, content = self.final_vectors()
        u = users[batch.users]  # (B, d)
        idx = torch.cat([batch.pos.unsqueeze(1), batch.neg], 1)  # (B, 1 + n_neg)
        full = (items[idx] * u.unsqueeze(1)).sum(-1)  # (B, 1 + n_neg)
        scores = full
        has_content = len(self.sources) > 1
        if p.source_dropout > 0 and has_content:
            drop = torch.rand(idx.shape) < p.source_dropout
            scores = torch.where(drop, (content[idx] * u.unsqueeze(1)).sum(-1), full)
        terms = self._terms(batch.users, idx, u, content, full)
        if self.rating is not None and batch.ratings is not None:  # multi-task: ranking + rating
            terms["rating"] = self.rating.loss(batch.users, batch.pos, full[:, 0], batch.ratings)
        return ForwardOut(scores[:, 0], scores[:, 1:], terms)

    def forward_catalogue(self, batch: Batch) -> ForwardOut:
        """users, pos (B,) -> pos scores (B,) and every item's scores (B, n_items), or those (B, C) of
        ``batch.candidates`` (the positives then scored apart); a ``source_dropout`` share of the (user, item) scores
        read the item's content vector. ``reg`` on the layer-0 vectors of the batch's users and positives; ``align``
        (with ``content_align``) over the (user, warm positive) pairs, as :meth:`forward`."""
        p = self.params
        users, items, content = self.final_vectors()
        u = users[batch.users]  # (B, d)
        out = catalogue_out(u, items, batch.pos, candidates=batch.candidates)
        scores, pos = out.neg, out.pos
        has_content = len(self.sources) > 1
        if p.source_dropout > 0 and has_content:
            by_content = catalogue_out(u, content, batch.pos, candidates=batch.candidates)
            drop = torch.rand(scores.shape) < p.source_dropout
            scores = torch.where(drop, dense_scores(by_content.neg), dense_scores(scores))
            pos = scores.gather(1, batch.pos.unsqueeze(1)).squeeze(1) if batch.candidates is None \
                else torch.where(torch.rand(pos.shape) < p.source_dropout, by_content.pos, pos)
        terms = self._terms(batch.users, batch.pos.unsqueeze(1), u, content, out.pos.unsqueeze(1))
        if self.rating is not None and batch.ratings is not None:  # multi-task: ranking + rating
            terms["rating"] = self.rating.loss(batch.users, batch.pos, out.pos, batch.ratings)
        return ForwardOut(pos, scores, terms)

    # -- RatingPredictor ----------------------------------------------------------------------------------------------
    def predicts_ratings(self) -> bool:
        return self.rating is not None

    def predict_ratings(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """users, items (B,) -> mu + b_u + b_i + s * score(u, i) (B,) (:mod:`~fusionrec.models.rating_head`)."""
        if self.rating is None:
            raise FusionrecError("fusionrec predicts ratings with rating_head: true only")
        user_vecs, item_vecs, _ = self.cached("propagated", self.final_vectors)
        return self.rating(users, items, (user_vecs[users] * item_vecs[items]).sum(-1))

    def forward_ratings(self, batch: Batch) -> ForwardOut:
        """The mse loss's step: the batch's predicted ratings (B,); ``reg`` as :meth:`forward`."""
        users, items, content = self.final_vectors()
        u = users[batch.users]
        dots = (u * items[batch.pos]).sum(-1)
        pred = self.rating(batch.users, batch.pos, dots)
        return ForwardOut(pred, pred.new_zeros(len(pred), 0),
                          self._terms(batch.users, batch.pos.unsqueeze(1), u, content, dots.unsqueeze(1)))

    def _terms(self, users: torch.Tensor, idx: torch.Tensor, u: torch.Tensor, content: torch.Tensor,
               full: torch.Tensor) -> dict[str, torch.Tensor]:
        """'reg' on the layer-0 vectors of ``users`` (B,) and items ``idx`` (B, n); with ``content_align``, "align"
        over the (user, warm item) pairs of ``idx``: ``u`` (B, d) the users' final vectors, ``content`` every item's
        content vector, ``full`` (B, n) the pairs' full scores (see :meth:`forward`)."""
        p = self.params
        ego = (self.user_emb.weight.index_select(0, users).square().sum()
               + self.item_emb.weight.index_select(0, idx.reshape(-1)).square().sum())
        terms = {"reg": p.reg_weight * ego / (2 * len(users))}
        if p.content_align > 0 and len(self.sources) > 1:
            warm = (self.item_degree[idx] > 0).float()  # (B, n)
            gap = (content[idx] * u.detach().unsqueeze(1)).sum(-1) - full.detach()
            terms["align"] = p.content_align * (gap.square() * warm).sum() / warm.sum().clamp(min=1.0)
        return terms

    def final_vectors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`propagate`'s users, items and content vectors as scored (unit length under ``cosine``); with
        ``cold_path: neighbours`` the items that borrow (no training interactions, with text) carry their borrowed
        vectors instead."""
        sim = self.params.similarity
        users, items, content = (finish(x, sim) for x in self.propagate())
        if self.params.cold_path == "neighbours" and self.cold_nbr_index.numel():
            rows = torch.nonzero(self.cold_nbr_index[:, 0] >= 0).squeeze(1)
            if len(rows):
                borrowed = self.borrow(items, self.cold_nbr_index[rows], self.cold_nbr_weight[rows])
                items = items.index_copy(0, rows, borrowed)
        return users, items, content

    def kg_terms(self, heads, relations, tails, neg_tails) -> dict[str, torch.Tensor]:
        """TransE/TransR loss on the shared entity table: heads, relations, tails (B,), neg_tails (B, n_neg)."""
        if "kg" not in self.sources:
            return {}
        return {"kg": self.kg_model.loss(heads, relations, tails, neg_tails)}

    # -- scoring ------------------------------------------------------------------------------------------------------
    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """users (B,) -> (B, n_items); propagation computed once in eval mode."""
        check_users(users, self.n_users)
        user_vecs, item_vecs, _ = self.cached("propagated", self.final_vectors)
        scores = user_vecs[users] @ item_vecs.T
        if self.item_item is None or float(self.item_item.share) == 0.0:
            return scores
        bags = history_columns(self.hist_indptr, self.hist_items, users, self.n_items).T  # (B, n_items)
        return self.item_item.mix_bag(scores, bags)

    def serving_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The propagated (n_users, d) and (n_items, d) vectors that :meth:`score_all` multiplies; None when the
        item-item source has a share of the score (no dot product gives the scores then)."""
        if self.item_item is not None and float(self.item_item.share) > 0:
            return None
        user_vecs, item_vecs, _ = self.cached("propagated", self.final_vectors)
        return user_vecs.detach(), item_vecs.detach()
