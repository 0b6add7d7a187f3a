"""FusionRec's hyper-parameters (:mod:`fusionrec.models.fusionrec`), with their ranges and cross-field rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from fusionrec.errors import ConfigError
from fusionrec.models.base import HyperParameters
from fusionrec.models.similarity import Similarity
from fusionrec.typed_config import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range


@dataclass(frozen=True)
class FusionRecParams(HyperParameters):
    embedding_size: PositiveInt = 64  # d, width of every source and of the fused vector; 16..256
    n_layers: NonNegativeInt = 2  # LightGCN propagation steps over the user-item graph; 0..4
    use_id: bool = True  # the item id vector as a source; false: an item is its text / KG alone (AlphaRec-style)
    use_text: bool = True  # the text source (needs item text embeddings)
    use_kg: bool = True  # the knowledge-graph source and the KG loss (needs a knowledge graph)
    fusion: Literal["concat", "gate", "attention"] = "attention"  # concat | gate | attention
    kg_loss: Literal["transe", "transr"] = "transe"  # transe | transr
    kg_margin: NonNegativeFloat = 1.0  # margin of the KG ranking loss; >= 0
    kg_neighbours: bool = True  # KG source = mean of the entity and its one-hop neighbours (else the entity alone)
    text_hidden: NonNegativeInt = 0  # 0: linear text projection; > 0: an MLP with this hidden width
    text_components: NonNegativeInt = 0  # > 0: the text source reads this many principal components of the items' text
    #                           embeddings (fit in prepare, frozen) instead of every dimension: a cheaper step; 0: all
    source_dropout: Annotated[float, Range(0, 1, high_open=True)] = 0.2  # share of batch items scored by content
    reg_weight: NonNegativeFloat = 1e-5  # L2 on the batch's layer-0 vectors ('reg' term); 0..1e-2
    content_align: Annotated[float, Range(0, 10)] = 0.0  # weight of 'align' (warm items' content -> full scores)
    similarity: Similarity = "dot"  # dot | cosine (final user and item vectors L2-normalised before the product)
    cold_path: Literal["content", "neighbours"] = "content"  # how an item without interactions is scored
    cold_neighbours: PositiveInt = 10  # neighbours: warm items (most similar text) a cold item borrows from; >= 1
    cold_temperature: PositiveFloat = 0.05  # neighbours: softmax temperature over their text cosines; > 0
    cold_scale: PositiveFloat = 1.0  # neighbours: borrowed norm relative to the neighbours' weighted mean norm; > 0
    # neighbours: choose cold_scale on validation instead: the most cold-item Recall@20 whose warm-item NDCG@10 stays
    # within this share (e.g. 0.02) of the warm lists' (cold items scored 0); None: keep cold_scale; 0..1
    cold_warm_tolerance: Annotated[float | None, Range(0, 1)] = None
    use_social: bool = False  # user vectors also smoothed over the friends' (needs the social graph, NAME.net)
    social_weight: Annotated[float, Range(0, 1)] = 0.5  # a user's share of friends' vectors per layer; 0..1
    rating_head: bool = False  # also predict explicit ratings: mu + b_u + b_i + s * score (needs ratings)
    use_user_features: bool = False  # a user's layer-0 vector adds the mean of their features' (needs NAME.user)
    item_item: bool = False  # also an item-item regression source (collective EASE), its share chosen on validation
    item_item_l2: PositiveFloat = 400.0  # the regression's l2; 10..1000
    item_item_text_weight: NonNegativeFloat = 0.0  # text similarity in its Gram matrix (needs a text: section)
    item_item_max_memory_gb: PositiveFloat = 8.0  # refuse a catalogue whose dense item-item fit needs more

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.use_id and not (self.use_text or self.use_kg):
            raise ConfigError("an item needs a source: with use_id false, set use_text or use_kg true",
                              key=self.key_of("use_id"))
        if self.cold_path == "neighbours" and not self.use_text:
            raise ConfigError("cold_path neighbours finds a cold item's neighbours by text: set use_text true",
                              key=self.key_of("cold_path"))
        if self.cold_warm_tolerance is not None and (self.cold_path != "neighbours" or self.item_item):
            raise ConfigError("chooses the cold items' scale on validation: needs cold_path neighbours and no "
                              "item_item source (whose share is chosen there instead)",
                              key=self.key_of("cold_warm_tolerance"))
