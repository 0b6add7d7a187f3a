"""Why an item is recommended to a user: per-source contributions, the history items behind it, knowledge-graph paths.

An explanation (a plain dict, the body of ``POST /explain``) has three parts:

``sources``
    FusionRec: for each source (``cf`` collaborative, ``text``, ``kg`` knowledge graph) whether the item has it, the
    fusion's weight for it (attention or gate; None for concat) and a score decomposition on the item's own fused
    vector (layer 0, before the user-item graph smooths it): ``alone`` = u . fuse(this source only) and ``drop`` =
    u . fuse(all) - u . fuse(all but this source), i.e. how much the user's score of the item's vector falls without
    the source (``full`` = u . fuse(all)). ``u`` is the user's trained vector; for a user the model never saw it is the
    mean of their history items' final vectors, weighted by the interaction weights. Other models have one source
    (``pop``, ``bpr``, ``lightgcn``, ``itemknn``: all collaborative; ``content-knn``: all text; ``kg-knn``: all
    knowledge graph) or mix theirs inside one vector (``cke``, ``kgat``: no split, said in a note) or one item-item
    matrix (``ease`` with text or KG side information, ``sparse-ease`` with text).
``history``
    The user's history items (training items plus added interactions) that contribute most: ``weight`` x
    ``similarity`` to the target. The similarity is the cosine of the model's item vectors for dot-product models
    (``Model.serving_vectors``), else the model's item-item similarity used for fold-in (``score_histories``).
``paths``
    Up to ``n_paths`` shortest knowledge-graph paths (at most 3 hops, edges either way) from the entity of a history
    item to the target's entity, history items tried in the order above. Each node names its entity and, when an
    item is linked to it, the item id and display name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.errors import UnknownIdError
from fusionrec.knowledge.kg.paths import KGPath
from fusionrec.models.capabilities import SequenceModel, SourceReporter

if TYPE_CHECKING:
    from fusionrec.serving.recommender import Recommender

MAX_HOPS = 3
MAX_DEGREE = None  # no fan-out cap by default: a full 3-hop search of ml-100k's graph takes milliseconds


def explain(rec: "Recommender", user_id: str, item_id: str, n_history: int = 5, n_paths: int = 3) -> dict:
    """The explanation of ``item_id`` for ``user_id`` (see the module docstring). Unknown ids raise
    :class:`UnknownIdError`; a user needs training interactions or added ones."""
    item = rec.items.index(item_id)
    user = rec.users.get(user_id)
    if isinstance(rec.model, SequenceModel):
        return _explain_sequence(rec, user_id, user, item_id, item, n_history, n_paths)
    items, weights = _history(rec, user_id, user)
    if user < 0 and not len(items):
        raise UnknownIdError("user", user_id)
    (ranked,) = rec.recommend_detailed([user_id], k=1, exclude_seen=False, candidates=[item_id])
    score = ranked.items[0][1] if ranked.items else None
    with torch.no_grad():
        sim = _similarity(rec, items, item)
    contrib = weights * sim
    order = np.argsort(-contrib, kind="stable")
    order = order[items[order] != item]  # an item the user already has does not explain itself
    history = [{"item_id": rec.items.raw(items[i]), "name": _name(rec, int(items[i])),
                "weight": float(weights[i]), "similarity": float(sim[i]), "contribution": float(contrib[i])}
               for i in order[:max(n_history, 0)]]
    sources, source_note = _sources(rec, user, items, weights, item)
    paths, path_note = _paths(rec, items[order], item, n_paths)
    notes = [n for n in (source_note, path_note) if n]
    return {"user_id": user_id, "item_id": item_id, "name": _name(rec, item), "score": score,
            "score_source": ranked.source, "model": rec.model_name, "sources": sources, "history": history,
            "paths": paths, "notes": notes}


def _explain_sequence(rec: "Recommender", user_id: str, user: int, item_id: str, item: int, n_history: int,
                      n_paths: int) -> dict:
    """A sequence model reads the user's ordered history: ``history`` lists the items its newest position attends
    to most (``attention`` = ``contribution``, the last block's, mean over heads; ``steps_back`` 1 is the newest
    item) with the cosine ``similarity`` of their item vectors to the target; ``sources`` decompose ``state . v_item`` (the state after
    the history) for a model that keeps its sources apart."""
    model = rec.model
    sequence = rec.ordered_history(user_id)
    if user < 0 and not len(sequence):
        raise UnknownIdError("user", user_id)
    (ranked,) = rec.recommend_detailed([user_id], k=1, exclude_seen=False, candidates=[item_id])
    score = ranked.items[0][1] if ranked.items else None
    history: list[dict] = []
    sources: list[dict] = []
    notes: list[str] = []
    if len(sequence):
        seq = torch.from_numpy(sequence)
        attention = model.history_attention(seq).double().numpy()
        vectors = torch.nn.functional.normalize(model.item_table().float(), dim=1)
        target = vectors[item] if item < model.n_items else None
        order = np.argsort(-attention, kind="stable")
        for i in order[:max(n_history, 0)]:
            if attention[i] <= 0:
                break
            history.append({"item_id": rec.items.raw(int(sequence[i])), "name": _name(rec, int(sequence[i])),
                            "weight": 1.0, "contribution": float(attention[i]), "attention": float(attention[i]),
                            "steps_back": int(len(sequence) - i),
                            "similarity": 0.0 if target is None else float(vectors[int(sequence[i])] @ target)})
        if isinstance(model, SourceReporter) and item < model.n_items:
            out = model.source_breakdown(item, model.state_after(seq))
            sources = out["sources"]
            notes.append("score decomposition on the item's fused vector: 'alone' = state . fuse(this source "
                         "only), 'drop' = state . fuse(all) - state . fuse(all but this source), the state read "
                         f"after the user's ordered history; full = {out['full']:.4f}")
    paths, path_note = _paths(rec, sequence[np.argsort(-attention, kind="stable")] if len(sequence) else sequence,
                              item, n_paths)
    notes += [n for n in (path_note,) if n]
    return {"user_id": user_id, "item_id": item_id, "name": _name(rec, item), "score": score,
            "score_source": ranked.source, "model": rec.model_name, "sources": sources, "history": history,
            "paths": paths, "notes": notes}


# -- parts ------------------------------------------------------------------------------------------------------
def _history(rec: "Recommender", user_id: str, user: int) -> tuple[np.ndarray, np.ndarray]:
    """(item indices, weights) of the user's training items (weight 1) plus added interactions."""
    weights: dict[int, float] = {}
    if user >= 0:
        row = rec.artifact.seen[user]
        for i in row.indices:
            weights[int(i)] = 1.0
    for i, w in rec.added_interactions(user_id).items():
        weights[int(i)] = weights.get(int(i), 0.0) + float(w)
    items = np.fromiter(weights.keys(), dtype=np.int64, count=len(weights))
    return items, np.fromiter(weights.values(), dtype=np.float64, count=len(weights))


def _vectors(rec: "Recommender") -> tuple[torch.Tensor, torch.Tensor] | None:
    """(user vectors (n_users, d), item vectors (n_items, d)) of a model served from vectors, or None: the ones the
    Recommender ranks with (its index also holds the items added while serving)."""
    vectors = rec.served_vectors()
    if vectors is None:
        return None
    return torch.from_numpy(vectors[0]), torch.from_numpy(vectors[1])


def _similarity(rec: "Recommender", history: np.ndarray, item: int, chunk: int = 256) -> np.ndarray:
    """(len(history),) similarity of each history item to ``item`` (see the module docstring)."""
    if not len(history):
        return np.zeros(0)
    vectors = _vectors(rec)
    if vectors is not None:
        v = torch.nn.functional.normalize(vectors[1].float(), dim=1)
        return (v[torch.from_numpy(history)] @ v[item]).double().numpy()
    model = rec.model
    out = []
    n_items = model.n_items
    for start in range(0, len(history), chunk):
        part = history[start:start + chunk]
        one_hot = sp.csr_matrix((np.ones(len(part), dtype=np.float32), (np.arange(len(part)), part)),
                                shape=(len(part), n_items))
        out.append(model.score_histories(one_hot)[:, item].double().numpy())
    return np.concatenate(out)


def _sources(rec: "Recommender", user: int, history: np.ndarray, weights: np.ndarray,
             item: int) -> tuple[list[dict], str | None]:
    model = rec.model
    if isinstance(model, SourceReporter):
        vectors = _vectors(rec)
        if vectors is None:  # a model with sources but no dot-product vectors: nothing to decompose against
            return [], f"{model.name} gives no user vector to decompose the score with"
        if item >= model.n_items:
            return [], "an item added while serving: placed by its content vector alone, no per-source split"
        users, items = vectors
        if user >= 0:
            u = users[user]
        else:
            w = torch.from_numpy(weights).float()
            u = (w.unsqueeze(1) * items[torch.from_numpy(history)]).sum(0) / w.sum()
        out = model.source_breakdown(item, u)
        note = ("score decomposition on the item's own fused vector: 'alone' = user . fuse(this source only), "
                f"'drop' = user . fuse(all) - user . fuse(all but this source); full = {out['full']:.4f}")
        if user < 0:
            note += " (the user vector is the mean of the history items' vectors)"
        return out["sources"], note
    if model.mixed_sources_in:
        return [], f"{model.name} mixes its sources inside {model.mixed_sources_in}: no per-source split"
    source = model.score_source
    label = {"cf": "collaborative", "text": "text", "kg": "knowledge graph"}[source]
    return ([{"source": source, "present": True, "weight": 1.0, "alone": None, "drop": None}],
            f"{model.name} scores from one source: all of the score is {label}")


def _paths(rec: "Recommender", history: np.ndarray, item: int, n_paths: int) -> tuple[list[dict], str | None]:
    graph = rec.kg
    if graph.empty and not graph.from_artifact:
        return [], "the model artifact holds no knowledge graph"
    if graph.entity_of_item(item) < 0:
        return [], f"item {rec.items.raw(item)!r} has no link to the knowledge graph"
    found = graph.paths(history, item, max_paths=n_paths, max_hops=MAX_HOPS, max_degree=MAX_DEGREE)
    if not found:
        return [], f"no path of at most {MAX_HOPS} hops from the user's history to this item"
    return [_render(rec, p) for p in found], None


def _render(rec: "Recommender", path: KGPath) -> dict:
    graph = rec.kg
    nodes = []
    for e in path.entities:
        node = {"entity": graph.entities.raw(e)}
        item = graph.item_of_entity(e)
        if item >= 0:
            node["item_id"] = rec.items.raw(item)
            node["name"] = _name(rec, item)
        nodes.append(node)
    steps = [{"relation": graph.relations.raw(r), "direction": "forward" if f else "backward"}
             for r, f in zip(path.relations, path.forward)]
    text = _label(nodes[0])
    for step, node in zip(steps, nodes[1:]):
        arrow = f" -{step['relation']}-> " if step["direction"] == "forward" else f" <-{step['relation']}- "
        text += arrow + _label(node)
    return {"hops": path.hops, "nodes": nodes, "relations": steps, "text": text}


def _label(node: dict) -> str:
    if "item_id" in node:
        return f"{node['name']} [{node['item_id']}]" if node.get("name") else f"[{node['item_id']}]"
    return node["entity"]


def _name(rec: "Recommender", item: int) -> str | None:
    names = rec.artifact.knowledge.item_names
    if names is None or item >= len(names):
        return None
    return names[item] or None


def format_explanation(e: dict, indent: str = "       ") -> list[str]:
    """A few terminal lines for one explanation (``fusionrec recommend --explain``)."""
    lines = []
    src = e["sources"]
    if src:
        parts = []
        for s in src:
            if not s["present"]:
                parts.append(f"{s['source']} -")
                continue
            bits = [f"w {s['weight']:.2f}"] if s["weight"] is not None else []
            if s["drop"] is not None:
                bits.append(f"drop {s['drop']:+.3f}")
            parts.append(f"{s['source']} " + " ".join(bits) if bits else s["source"])
        lines.append(indent + "sources: " + ", ".join(parts))
    if e["history"]:
        lines.append(indent + "because of: " + ", ".join(
            f"{h['name'] + ' ' if h['name'] else ''}[{h['item_id']}] {h['contribution']:.2f}" for h in e["history"]))
    for p in e["paths"]:
        lines.append(indent + "kg: " + p["text"])
    for n in e["notes"]:
        if not n.startswith("score decomposition"):
            lines.append(indent + "note: " + n)
    return lines
