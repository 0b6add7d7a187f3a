"""The knowledge part of a model artifact: the run's knowledge graph and item display names, stored unpickled.

Layout inside the artifact directory (all optional: an artifact without them still loads)::

    kg/triples.npz       triples: int64 (n, 3) (head, relation, tail) indices into the two maps below
    kg/entities.json     raw entity ids in index order
    kg/relations.json    raw relation ids in index order
    kg/links.npz         item_entity: int64 (n_items,), the entity linked to each item or -1
    item_names.json      display name of each item in index order ("" where unknown)

The graph is the one the run used (its entity indices are the model's, for models with a KG source), without the
``~inverse`` relations: they repeat every triple backwards, which explanations and the serving graph do not need.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fusionrec.util import atomic_io
from fusionrec.data.ids import IdMap
from fusionrec.data.knowledge_graph import INVERSE_SUFFIX, KnowledgeGraph
from fusionrec.data.side_info import ItemSideInfo
from fusionrec.errors import ArtifactError, reading_artifact_file

KG_DIR = "kg"
NAMES_FILE = "item_names.json"
# Text fields tried, in this order, for an item's display name.
NAME_FIELDS = ("title", "movie_title", "name", "item_name", "product_name")


@dataclass(frozen=True, eq=False)
class ArtifactKnowledge:
    """``graph``: the knowledge graph or None; ``item_names``: one display name per item ("" = none) or None."""

    graph: KnowledgeGraph | None = None
    item_names: list[str] | None = None


def without_inverse_relations(kg: KnowledgeGraph) -> KnowledgeGraph:
    """The graph with the relations ``r~inverse`` (and their triples) dropped; entity indices are unchanged."""
    inverse = np.array([r.endswith(INVERSE_SUFFIX) for r in kg.relations.to_list()], dtype=bool)
    if not inverse.any():
        return kg
    keep_rel = np.flatnonzero(~inverse)
    new_index = np.full(len(inverse), -1, dtype=np.int64)
    new_index[keep_rel] = np.arange(len(keep_rel))
    t = kg.triples.numpy()
    t = t[~inverse[t[:, 1]]].copy()
    t[:, 1] = new_index[t[:, 1]]
    relations = IdMap.from_list("relation", [kg.relations.raw(r) for r in keep_rel])
    return KnowledgeGraph(torch.from_numpy(t), kg.entities, relations, kg.item_entity)


def item_display_names(info: ItemSideInfo | None) -> list[str] | None:
    """Each item's name from the first text field among :data:`NAME_FIELDS` (then any field whose name holds
    'title' or 'name'); None when there is no such field."""
    if info is None:
        return None
    candidates = [f for f in NAME_FIELDS if f in info.text]
    candidates += [f for f in info.text if f not in candidates and ("title" in f.lower() or "name" in f.lower())]
    return list(info.text[candidates[0]]) if candidates else None


def save_knowledge(directory: Path, knowledge: ArtifactKnowledge, n_items: int) -> None:
    """Writes the files of the module docstring into ``directory`` (the artifact's temporary folder)."""
    if knowledge.graph is not None:
        kg = without_inverse_relations(knowledge.graph)
        if kg.n_items != n_items:
            raise ValueError(f"the knowledge graph links {kg.n_items} items, the model has {n_items}")
        (directory / KG_DIR).mkdir()
        np.savez(directory / KG_DIR / "triples.npz", triples=kg.triples.numpy().astype(np.int64))
        np.savez(directory / KG_DIR / "links.npz", item_entity=kg.item_entity.numpy().astype(np.int64))
        atomic_io.write_json(directory / KG_DIR / "entities.json", kg.entities.to_list())
        atomic_io.write_json(directory / KG_DIR / "relations.json", kg.relations.to_list())
    if knowledge.item_names is not None:
        if len(knowledge.item_names) != n_items:
            raise ValueError(f"{len(knowledge.item_names)} item names for {n_items} items")
        atomic_io.write_json(directory / NAMES_FILE, [str(n) for n in knowledge.item_names])


def load_knowledge(directory: Path, n_items: int) -> ArtifactKnowledge:
    """Reads what :func:`save_knowledge` wrote; missing files give None fields (older artifacts). A corrupt file
    raises :class:`~fusionrec.errors.ArtifactError` naming it."""
    graph = names = None
    kg_dir = directory / KG_DIR
    if (kg_dir / "triples.npz").is_file():
        with reading_artifact_file(kg_dir / "triples.npz", "knowledge-graph triples"), \
                np.load(kg_dir / "triples.npz", allow_pickle=False) as z:
            triples = torch.from_numpy(np.asarray(z["triples"], dtype=np.int64).reshape(-1, 3))
        with reading_artifact_file(kg_dir / "links.npz", "item-entity links"), \
                np.load(kg_dir / "links.npz", allow_pickle=False) as z:
            item_entity = torch.from_numpy(np.asarray(z["item_entity"], dtype=np.int64))
        ids = {}
        for kind, file in (("entity", "entities.json"), ("relation", "relations.json")):
            with reading_artifact_file(kg_dir / file, f"{kind} ids"):
                raws = json.loads((kg_dir / file).read_text(encoding="utf-8"))
                if not isinstance(raws, list) or not all(isinstance(r, str) for r in raws):
                    raise ValueError("expected a JSON list of string ids")
                ids[kind] = IdMap.from_list(kind, raws)
        with reading_artifact_file(kg_dir / "triples.npz", "knowledge-graph triples (against entities.json, "
                                                           "relations.json and links.npz)"):
            graph = KnowledgeGraph(triples, ids["entity"], ids["relation"], item_entity)
        if graph.n_items != n_items:
            raise ArtifactError(f"{kg_dir / 'links.npz'}: links {graph.n_items} items, the model has {n_items}")
    if (directory / NAMES_FILE).is_file():
        with reading_artifact_file(directory / NAMES_FILE, "item names"):
            raw = json.loads((directory / NAMES_FILE).read_text(encoding="utf-8"))
            if not isinstance(raw, list):
                raise ValueError("expected a JSON list of names")
            names = [str(n) for n in raw]
        if len(names) != n_items:
            raise ArtifactError(f"{directory / NAMES_FILE}: {len(names)} names for {n_items} items")
    return ArtifactKnowledge(graph, names)
