"""The knowledge part of a model artifact: the graph and item names survive a save/load round trip, unpickled, and
older artifacts without them still load."""

import json

import numpy as np
import torch

from fusionrec.artifacts.knowledge import ArtifactKnowledge, item_display_names, without_inverse_relations
from fusionrec.artifacts import load_artifact, save_artifact
from fusionrec.config import RunConfig
from fusionrec.data.synthetic import make_synthetic
from fusionrec.jobs.experiment import artifact_knowledge
from fusionrec.models.bpr import BPR, BPRParams


def synthetic():
    return make_synthetic(n_users=12, n_items=10, n_clusters=2, interactions_per_user=4, seed=1).dataset


def save(path, dataset, knowledge):
    model = BPR(dataset.n_users, dataset.n_items, BPRParams(embedding_size=4))
    return save_artifact(path, model, dataset.users, dataset.items, dataset.interactions.to_csr(),
                         knowledge=knowledge)


def test_graph_and_names_round_trip_without_pickles_or_inverse_relations(tmp_path):
    ds = synthetic()
    kg = ds.kg.with_inverse_relations()
    names = [f"Film {i}" for i in range(ds.n_items)]
    path = save(tmp_path / "model", ds, ArtifactKnowledge(kg, names))
    for f in ("kg/triples.npz", "kg/links.npz"):
        with np.load(path / f, allow_pickle=False) as z:  # plain int arrays
            assert all(z[k].dtype == np.int64 for k in z.files)
    assert json.loads((path / "kg/relations.json").read_text()) == ["in_genre", "directed_by", "has_tag"]
    loaded = load_artifact(path).knowledge
    assert loaded.item_names == names
    g = loaded.graph
    assert g.entities == ds.kg.entities and g.relations == ds.kg.relations
    assert torch.equal(g.triples, ds.kg.triples) and torch.equal(g.item_entity, ds.kg.item_entity)


def test_an_artifact_without_knowledge_files_still_loads(tmp_path):
    ds = synthetic()
    art = load_artifact(save(tmp_path / "model", ds, None))
    assert art.knowledge.graph is None and art.knowledge.item_names is None


def test_without_inverse_relations_keeps_entity_indices():
    kg = synthetic().kg
    back = without_inverse_relations(kg.with_inverse_relations())
    assert back.relations == kg.relations and torch.equal(back.triples, kg.triples)
    assert without_inverse_relations(kg) is kg


def test_the_run_saves_the_datasets_graph_and_titles_for_every_model():
    ds = synthetic()
    k = artifact_knowledge(RunConfig(), ds, kg=None, log=lambda m: None)
    assert k.graph is not None and k.graph.n_items == ds.n_items
    assert torch.equal(without_inverse_relations(k.graph).triples, ds.kg.triples)  # the file drops the inverses
    assert k.item_names == ds.item_info.text["title"]
    assert item_display_names(None) is None
