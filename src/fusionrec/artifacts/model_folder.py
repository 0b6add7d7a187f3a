"""Model artifacts: a directory that holds everything needed to score, and nothing pickled.

Layout::

    model/
      config.json           format version, model name, constructor arguments, the run's config
      weights.safetensors   the state dict (parameters and buffers such as graphs or similarities)
      users.json items.json raw ids in index order
      seen.npz              the user x item matrix of known interactions (CSR arrays; excluded when recommending)
      versions.json         package versions that wrote it
      kg/, item_names.json  optional: the run's knowledge graph and item display names (see artifact_knowledge)

Loading needs only this directory: no dataset, no data loaders.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from safetensors.torch import load_file, save_file

from fusionrec.util import atomic_io
from fusionrec.artifacts.knowledge import ArtifactKnowledge, load_knowledge, save_knowledge
from fusionrec.data.ids import IdMap
from fusionrec.errors import ArtifactError, FusionrecError, reading_artifact_file
from fusionrec.models.base import Model
from fusionrec.models.registry import get_model_class
from fusionrec.util.provenance import package_versions
from fusionrec.typed_config import build

FORMAT = "fusionrec-model"
FORMAT_VERSION = 1


@dataclass(eq=False)
class ModelArtifact:
    model: Model
    users: IdMap
    items: IdMap
    seen: sp.csr_matrix
    meta: dict = field(default_factory=dict)
    knowledge: ArtifactKnowledge = field(default_factory=ArtifactKnowledge)  # KG + item names, when saved


def save_artifact(path: str | Path, model: Model, users: IdMap, items: IdMap, seen: sp.csr_matrix,
                  run_config: dict | None = None, extra: dict | None = None,
                  knowledge: ArtifactKnowledge | None = None) -> Path:
    """Writes the artifact directory atomically (a failed save leaves any previous artifact untouched).
    ``knowledge``: the run's knowledge graph and item names, kept for explanations and KG edits while serving."""
    path = Path(path)
    seen = sp.csr_matrix(seen, dtype=np.float32)
    if seen.shape != (model.n_users, model.n_items):
        raise ValueError(f"seen matrix shape {seen.shape} does not match the model ({model.n_users}, {model.n_items})")
    with atomic_io.directory(path) as tmp:
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.name,
                "init_args": model.init_args(), "run_config": run_config or {}, **(extra or {})}
        atomic_io.write_json(tmp / "config.json", meta)
        state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / "weights.safetensors"))
        atomic_io.write_json(tmp / "users.json", users.to_list())
        atomic_io.write_json(tmp / "items.json", items.to_list())
        np.savez(tmp / "seen.npz", indptr=seen.indptr, indices=seen.indices, shape=np.array(seen.shape))
        atomic_io.write_json(tmp / "versions.json", package_versions())
        if knowledge is not None:
            save_knowledge(tmp, knowledge, model.n_items)
    return path


def _json_file(file: Path, what: str, expect: type):
    with reading_artifact_file(file, what):
        value = json.loads(file.read_text(encoding="utf-8"))
        if not isinstance(value, expect):
            raise ValueError(f"expected a JSON {expect.__name__}, found a {type(value).__name__}")
        return value


def _id_list(file: Path, kind: str, expected: int) -> IdMap:
    raws = _json_file(file, f"{kind} ids", list)
    with reading_artifact_file(file, f"{kind} ids"):
        if not all(isinstance(r, str) for r in raws):
            raise ValueError("every id must be a string")
        ids = IdMap.from_list(kind, raws)
    if len(ids) != expected:
        raise ArtifactError(f"{file}: {len(ids)} {kind} ids, the model (config.json) has {expected}")
    return ids


def load_artifact(path: str | Path) -> ModelArtifact:
    """Loads a model folder written by :func:`save_artifact`. Any file that is missing, corrupt or inconsistent with
    the others raises :class:`ArtifactError` (one line naming the file); nothing is unpickled."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FusionrecError(f"{path} is not a fusionrec model directory (no config.json); "
                             "pass the 'model' folder that 'fusionrec train --out DIR' wrote (DIR/model)")
    meta = _json_file(config_file, "model config", dict)
    if meta.get("format") != FORMAT or not isinstance(meta.get("format_version", 0), int) \
            or meta.get("format_version", 0) > FORMAT_VERSION:
        raise ArtifactError(f"{config_file}: unsupported artifact format {meta.get('format')!r} "
                            f"version {meta.get('format_version')!r}")
    with reading_artifact_file(config_file, "model config"):
        cls = get_model_class(str(meta["model"]))
        args = dict(meta["init_args"])
    args["params"] = build(cls.Params, args.get("params", {}), key="params", file=str(config_file))
    with reading_artifact_file(config_file, "model arguments (init_args)"):
        model = cls(**args)
    weights = path / "weights.safetensors"
    with reading_artifact_file(weights, "weights"):
        state = load_file(str(weights))
        model.load_state_dict(state, assign=True)
    model.eval()
    users = _id_list(path / "users.json", "user", model.n_users)
    items = _id_list(path / "items.json", "item", model.n_items)
    seen_file = path / "seen.npz"
    with reading_artifact_file(seen_file, "seen interactions"), np.load(seen_file, allow_pickle=False) as z:
        shape = tuple(int(s) for s in z["shape"])
        seen = sp.csr_matrix((np.ones(len(z["indices"]), dtype=np.float32), z["indices"], z["indptr"]), shape=shape)
        seen.check_format(full_check=True)
    if seen.shape != (model.n_users, model.n_items):
        raise ArtifactError(f"{seen_file}: a {seen.shape[0]} x {seen.shape[1]} matrix, the model has "
                            f"{model.n_users} users x {model.n_items} items")
    return ModelArtifact(model, users, items, seen, meta, load_knowledge(path, len(items)))
