"""Knowledge-graph building blocks: the attribute pseudo-KG and graph merging, TransE/TransR losses with negative
sampling, and KGAT's collaborative graph with attentive propagation. See docs/knowledge_graph.md.

Imports the data layer and torch only (never models, training, evaluation or serving)."""

from fusionrec.knowledge.kg.attention import (BiInteraction, KGATAttention, attention_logits, edge_attention,
                                              relation_groups, segment_softmax)
from fusionrec.knowledge.kg.collaborative import CKG, INTERACT, collaborative_graph
from fusionrec.knowledge.kg.embedding import (TransE, TransR, soft_margin_ranking_loss, transe_interaction,
                                              transr_interaction)
from fusionrec.knowledge.kg.keys import TripleIndex, triple_keys, unique_triples
from fusionrec.knowledge.kg.merge import build_item_graph, merge_graphs
from fusionrec.knowledge.kg.pseudo_kg import attribute_triples
from fusionrec.knowledge.kg.sampling import corrupt_tails, negative_batches, triple_batches

__all__ = [
    "CKG", "INTERACT", "BiInteraction", "KGATAttention", "TransE", "TransR", "TripleIndex", "attention_logits",
    "attribute_triples", "build_item_graph", "collaborative_graph", "corrupt_tails", "edge_attention", "merge_graphs",
    "negative_batches", "relation_groups", "segment_softmax", "soft_margin_ranking_loss", "transe_interaction",
    "transr_interaction", "triple_batches", "triple_keys", "unique_triples",
]
