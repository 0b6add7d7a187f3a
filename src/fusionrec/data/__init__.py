"""Data layer: ids, interactions, item side information, knowledge graph, readers, splits, fetchers.

Imports nothing from the layers above it (knowledge, models, training, evaluation, serving)."""

from fusionrec.data.dataset import Dataset
from fusionrec.data.ids import IdMap
from fusionrec.data.interactions import Interactions
from fusionrec.data.knowledge_graph import KnowledgeGraph
from fusionrec.data.side_info import ItemSideInfo

__all__ = ["Dataset", "IdMap", "Interactions", "ItemSideInfo", "KnowledgeGraph"]
