"""FusionRec-Seq: SASRec's causal encoder over the user's ordered items, each item a fusion of the sources FusionRec
reads: its id vector (``cf``), its frozen language-model text through UniSRec's mixture-of-experts adapter
(``text``) and its linked knowledge-graph entity (``kg``).

The same fused item vectors are the encoder's input and what it scores against. A source an item lacks is masked in
the fusion (an item without training interactions has no id source; one without text no text source). With
``use_id: false`` every item vector comes from content alone, so the model recommends (and reads in a history) items
never seen in training: the inductive setting of UniSRec's text-only model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
import torch
from torch import nn

from fusionrec.errors import ConfigError, FusionrecError
from fusionrec.fusion import make_fusion
from fusionrec.fusion.base import source_shares
from fusionrec.models.base import Model, ModelInputs
from fusionrec.models.capabilities import SequenceModel, SourceReporter, Transferable
from fusionrec.models.item_item_source import ItemItemShare, ItemItemSource
from fusionrec.models.graph_ops import check_users, data_sized_buffers
from fusionrec.models.registry import register
from fusionrec.models.sequence_encoder import CausalEncoder, SequenceEncoderParams, SequenceScoring
from fusionrec.models.similarity import Similarity
from fusionrec.models.text_adapter import MoEAdapter, text_pca
from fusionrec.typed_config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range


@dataclass(frozen=True)
class FusionRecSeqParams(SequenceEncoderParams):
    use_id: bool = True  # the id source (false: content only, inductive)
    use_text: bool = True  # the text source (needs a text: section)
    use_kg: bool = False  # the linked entity's vector (needs a knowledge graph)
    fusion: Literal["concat", "gate", "attention"] = "gate"  # how the sources become one item vector
    n_experts: PositiveInt = 8  # the text adapter's whitening experts; 1..16
    text_components: NonNegativeInt = 0  # > 0: the adapter reads this many principal components of the text
    adapter_dropout: Annotated[float, Range(0.0, 0.9)] = 0.2  # on the frozen text vectors; 0..0.5
    similarity: Similarity = "dot"  # cosine: with training.temperature, UniSRec's set-up (0.07)
    item_item: bool = False  # also an item-item regression source (collective EASE), its share chosen on validation
    item_item_l2: PositiveFloat = 50.0  # the regression's l2; 10..1000
    item_item_text_weight: NonNegativeFloat = 0.0  # text similarity in its Gram matrix (needs a text: section)
    # the regression's history weights tried on validation beside the share: the item k places before the newest
    # weighs decay ** k; each in (0, 1]; [1.0]: a bag of items
    item_item_decays: tuple[float, ...] = (1.0,)
    item_item_max_memory_gb: PositiveFloat = 8.0  # refuse a catalogue whose dense item-item fit needs more

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.item_item_decays or any(not 0.0 < d <= 1.0 for d in self.item_item_decays) \
                or len(set(self.item_item_decays)) != len(self.item_item_decays):
            raise ConfigError(f"must be distinct numbers in (0, 1], at least one; got {list(self.item_item_decays)}",
                              key=self.key_of("item_item_decays"))
        if self.text_components and not self.use_text:
            raise ConfigError("text_components needs use_text", key=self.key_of("text_components"))
        if not (self.use_id or self.use_text or self.use_kg):
            raise ConfigError("at least one of use_id, use_text, use_kg must be true", key=self.key_of("use_id"))


@register
class FusionRecSeq(SequenceScoring, Model, SequenceModel, SourceReporter, Transferable, ItemItemShare):
    """score(history, i) = <h_t, v_i>, v_i = fuse(id_i, adapter(text_i), entity_i) over the sources item i has."""

    name = "fusionrec-seq"
    Params = FusionRecSeqParams

    @classmethod
    def required_inputs(cls, params) -> set[str]:
        params = params or FusionRecSeqParams()
        text = params.use_text or (params.item_item and params.item_item_text_weight > 0)
        return {"sequences"} | ({"text"} if text else set()) | ({"kg"} if params.use_kg else set())

    @classmethod
    def from_inputs(cls, inputs: ModelInputs, params: FusionRecSeqParams | None = None) -> "FusionRecSeq":
        params = params or FusionRecSeqParams()
        text_dim = int(inputs.item_text.shape[1]) if params.use_text and inputs.item_text is not None else 0
        n_entities = inputs.kg.n_entities if params.use_kg and inputs.kg is not None else 0
        return cls(inputs.n_users, inputs.n_items, params, text_dim=text_dim, n_entities=n_entities)

    def __init__(self, n_users: int, n_items: int, params: FusionRecSeqParams | None = None, text_dim: int = 0,
                 n_entities: int = 0):
        super().__init__(n_users, n_items, params)
        p = self.params
        d = p.embedding_size
        self.text_dim, self.n_entities, self.similarity = int(text_dim), int(n_entities), p.similarity
        self.sources = [s for s, on in (("cf", p.use_id), ("text", p.use_text), ("kg", p.use_kg)) if on]
        if p.use_text and not self.text_dim:
            raise FusionrecError("fusionrec-seq with use_text needs item text vectors (a text: section)")
        if p.use_kg and not self.n_entities:
            raise FusionrecError("fusionrec-seq with use_kg needs a knowledge graph")
        self.item_emb = nn.Embedding(self.n_items, d) if p.use_id else None
        if p.text_components > self.text_dim:
            raise ConfigError(f"must be at most the text width {self.text_dim}, got {p.text_components}",
                              key="model.params.text_components")
        self.adapter = MoEAdapter(p.text_components or self.text_dim, d, p.n_experts, p.adapter_dropout) \
            if p.use_text else None
        self.entity_emb = nn.Embedding(self.n_entities, d) if p.use_kg else None
        for table in (self.item_emb, self.entity_emb):
            if table is not None:
                nn.init.normal_(table.weight, std=0.02)
        self.fusion = make_fusion(p.fusion, len(self.sources), d)
        self.encoder = CausalEncoder.from_params(p)
        self.item_item = ItemItemSource.optional(self.n_items, p.item_item, p.item_item_max_memory_gb)
        self.register_buffer("item_text", torch.zeros(0, self.text_dim))
        self.register_buffer("text_mask", torch.zeros(0, dtype=torch.bool))
        self.register_buffer("text_mean", torch.zeros(self.text_dim))  # the frozen PCA (text_components > 0)
        self.register_buffer("text_basis", torch.zeros(self.text_dim, p.text_components))
        self.register_buffer("trained_items", torch.zeros(0, dtype=torch.bool))
        self.register_buffer("item_entity", torch.zeros(0, dtype=torch.long))
        data_sized_buffers(self, ("item_text", "text_mask", "trained_items", "item_entity"))
        self.init_sequences()

    def init_args(self) -> dict:
        return {**super().init_args(), "text_dim": self.text_dim, "n_entities": self.n_entities}

    def prepare(self, inputs: ModelInputs) -> None:
        super().prepare(inputs)
        self.trained_items = torch.from_numpy(np.asarray(inputs.train.sum(axis=0)).ravel() > 0)
        if self.adapter is not None:
            if inputs.item_text is None or inputs.item_text.shape[1] != self.text_dim:
                raise FusionrecError(f"fusionrec-seq was built for {self.text_dim}-d item text; the inputs have "
                                     f"{None if inputs.item_text is None else inputs.item_text.shape[1]}")
            self.item_text, self.text_mask = inputs.item_text.float(), inputs.item_text_mask.bool()
            if self.params.text_components:
                self.text_mean, self.text_basis = text_pca(self.item_text, self.text_mask,
                                                           self.params.text_components)
        if self.entity_emb is not None:
            if inputs.kg is None:
                raise FusionrecError("fusionrec-seq with use_kg needs a knowledge graph in its inputs")
            self.item_entity = inputs.kg.item_entity.long()
        if self.item_item is not None:
            self.item_item.fit(inputs, self.params.item_item_l2, self.params.item_item_text_weight, "fusionrec-seq")
        self._cache.clear()

    def item_item_decays(self) -> tuple[float, ...]:
        return tuple(float(d) for d in self.params.item_item_decays)

    def serving_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """As :class:`SequenceScoring`'s, unless the item-item source has a share of the score (then no dot
        product gives the scores: None)."""
        if self.item_item is not None and float(self.item_item.share) > 0:
            return None
        return super().serving_vectors()

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """As :class:`SequenceScoring`'s; while the item-item source has a share in eval mode, the states after
        the stored sequences come from :meth:`serving_vectors`'s cache (computed once, until the weights or the
        sequences change) and only the mix is redone, so trying the validation grid's shares and decays encodes
        each sequence once."""
        if self.training or self.item_item is None or float(self.item_item.share) == 0.0:
            return super().score_all(users)
        check_users(users, self.n_users)
        states, items = self.cached("serving_vectors", self._user_states)
        windows = self.stored_sequences().last(users.numpy(), self.max_length)
        return self.item_item.mix(states[users] @ items.T, torch.from_numpy(windows))

    def score_sequences(self, windows: torch.Tensor) -> torch.Tensor:
        scores = super().score_sequences(windows)
        return scores if self.item_item is None else self.item_item.mix(scores, torch.as_tensor(windows).long())

    def item_table(self) -> torch.Tensor:
        if self.trained_items.numel() != self.n_items:
            raise FusionrecError("fusionrec-seq has no item sources yet: call prepare(inputs) or load a state dict")
        cf = self.item_emb.weight if self.item_emb is not None else None
        entities = self.item_entity if self.entity_emb is not None else None
        return self._fuse(cf, self.trained_items, self.item_text, self.text_mask, entities)

    def _fuse(self, cf: torch.Tensor | None, cf_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
              entities: torch.Tensor | None) -> torch.Tensor:
        """(N, d) fused vectors from each present source: id vectors (N, d) or None, text (N, text_dim), the linked
        entity (N,) (-1: none)."""
        vectors, mask = self._source_vectors(cf, cf_mask, text, text_mask, entities)
        fused = self.fusion(vectors, mask).vectors
        return fused * mask.any(1, keepdim=True)  # an item with no source scores 0

    def _source_vectors(self, cf: torch.Tensor | None, cf_mask: torch.Tensor, text: torch.Tensor,
                        text_mask: torch.Tensor, entities: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, S, d) each source's vector and (N, S) bool whether the item has it, in :attr:`sources` order."""
        vectors, masks = [], []
        if self.item_emb is not None:
            vectors.append(cf)
            masks.append(cf_mask)
        if self.adapter is not None:
            features = (text - self.text_mean) @ self.text_basis if self.params.text_components else text
            vectors.append(self.adapter(features))
            masks.append(text_mask)
        if self.entity_emb is not None:
            linked = entities >= 0
            vectors.append(self.entity_emb(entities.clamp_min(0)) * linked.unsqueeze(-1))
            masks.append(linked)
        return torch.stack(vectors, 1), torch.stack(masks, 1)

    # -- SourceReporter -------------------------------------------------------------------------------------------
    def source_breakdown(self, item: int, user_vector: torch.Tensor) -> dict:
        """What each source adds to ``user_vector . v_item`` (``user_vector``: :meth:`state_after` a history),
        on the item's fused vector before any ``cosine`` normalisation."""
        one = slice(item, item + 1)
        cf = self.item_emb.weight[one] if self.item_emb is not None else None
        entities = self.item_entity[one] if self.entity_emb is not None else None
        vectors, mask = self._source_vectors(cf, self.trained_items[one], self.item_text[one], self.text_mask[one],
                                             entities)
        full, shares = source_shares(self.fusion, vectors[0], mask[0], user_vector)
        return {"full": full, "sources": [{"source": name, **dataclasses.asdict(share)}
                                          for name, share in zip(self.sources, shares)]}

    # -- Transferable ---------------------------------------------------------------------------------------------
    def transferable_state(self) -> dict[str, torch.Tensor]:
        """The text adapter and the encoder read no item id, so they carry over to any catalogue whose text the
        same language model encoded (the PCA of ``text_components`` belongs to one catalogue: it stays behind); the
        fusion too when text is the only source. The id and entity tables never do."""
        keep = ("encoder",) + (("adapter",) if not self.params.text_components else ()) \
            + (("fusion",) if self.sources == ["text"] else ())
        return {name: value for name, value in self.named_parameters() if name.split(".")[0] in keep} \
            if self.adapter is not None else {}
