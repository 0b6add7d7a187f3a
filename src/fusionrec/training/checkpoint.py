"""Checkpoints a run can resume from: everything the trainer needs to carry on after its last finished epoch.

:class:`TrainState` is what the trainer hands over after each epoch (model and best weights, optimiser, early
stopping, history, every random generator); :class:`Checkpoint` keeps the latest one in a folder as one file,
``state.pt``, written to a temporary name, flushed to disk and renamed into place, so a process killed at any moment
(kill -9 included) leaves the previous checkpoint whole. The file holds only tensors and plain containers and loads
with ``torch.load(weights_only=True)``. A fingerprint (the run's config and data hash) is stored with it: resuming
under a different config or different data is refused with the keys that differ.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from fusionrec.errors import FusionrecError
from fusionrec.training.early_stopping import EarlyStopping

FORMAT = 1
STATE_FILE = "state.pt"


class CheckpointError(FusionrecError):
    """No checkpoint to resume from, or one written under another config or other data."""


@dataclass
class TrainState:
    """The trainer after epoch ``epoch``: ``model`` its state dict; ``best`` the best validated weights so far (None:
    none yet; keys whose tensors equal ``model``'s are left out of the file and filled back in on load);
    ``optimizer`` the optimiser's state dict; ``early_stopping`` :meth:`EarlyStopping.state_dict`; ``history`` the
    epochs' logs as dicts; ``rng`` :func:`capture_rng`; ``elapsed_s`` the fit's time so far (the time budget keeps
    counting across a resume); ``stopped_by`` set when training ended at this epoch (a resume then trains no more)."""

    epoch: int
    model: dict[str, torch.Tensor]
    best: dict[str, torch.Tensor] | None
    optimizer: dict
    early_stopping: dict
    history: list[dict] = field(default_factory=list)
    rng: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    stopped_by: str | None = None


class CheckpointSink(Protocol):
    """What the trainer calls after each finished epoch (at most once per epoch)."""

    def save(self, state: TrainState) -> None: ...


class Checkpoint:
    """The latest :class:`TrainState` of one run in ``folder`` (``OUT/checkpoint``), tagged with ``fingerprint``:
    ``{"config": <the run config as a dict>, "data_sha256": ...}`` (any JSON-able mapping)."""

    def __init__(self, folder: str | Path, fingerprint: dict):
        self.folder = Path(folder)
        self.fingerprint = json.loads(json.dumps(fingerprint, sort_keys=True))  # plain JSON types, a fixed order
        self.path = self.folder / STATE_FILE

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, state: TrainState) -> None:
        """Writes ``state`` in place of the previous checkpoint, atomically."""
        best = None
        if state.best is not None:  # constant buffers and unchanged tensors are stored once
            best = {k: v for k, v in state.best.items() if k not in state.model or not _same(v, state.model[k])}
        payload = {"format": FORMAT, "fingerprint": json.dumps(self.fingerprint, sort_keys=True),
                   "epoch": int(state.epoch), "model": state.model, "has_best": state.best is not None,
                   "best": best or {}, "optimizer": state.optimizer, "early_stopping": dict(state.early_stopping),
                   "history": json.dumps(state.history), "rng": state.rng, "elapsed_s": float(state.elapsed_s),
                   "stopped_by": state.stopped_by or ""}
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(f".{STATE_FILE}.*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                torch.save(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.folder)

    def load(self) -> TrainState:
        """The saved state; :class:`CheckpointError` when there is none, it cannot be read, or its fingerprint is not
        this run's."""
        if not self.exists():
            raise CheckpointError(f"nothing to resume: {self.path} does not exist (a run with an output folder writes "
                                  "it after each epoch and removes it when the run finishes)")
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # a torn or foreign file: say which
            raise CheckpointError(f"cannot read the checkpoint {self.path}: {exc}") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT:
            raise CheckpointError(f"{self.path} is not a fusionrec checkpoint of format {FORMAT}")
        saved = json.loads(payload["fingerprint"])
        if saved != self.fingerprint:
            raise CheckpointError(f"{self.path} was written by a different run and cannot be resumed here: "
                                  f"{_differences(saved, self.fingerprint)}; use the same config and data, or "
                                  "another --out folder")
        model = payload["model"]
        best = None
        if payload["has_best"]:
            best = {k: model[k] for k in model}
            best.update(payload["best"])
        return TrainState(epoch=int(payload["epoch"]), model=model, best=best, optimizer=payload["optimizer"],
                          early_stopping=payload["early_stopping"], history=json.loads(payload["history"]),
                          rng=payload["rng"], elapsed_s=float(payload["elapsed_s"]),
                          stopped_by=payload["stopped_by"] or None)

    def remove(self) -> None:
        """Deletes the checkpoint (and the folder when nothing else is in it)."""
        self.path.unlink(missing_ok=True)
        for stale in self.folder.glob(f".{STATE_FILE}.*.tmp"):
            stale.unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass


def capture_rng(generator: torch.Generator) -> dict:
    """The state of the trainer's ``generator`` and of Python's, numpy's and torch's global generators."""
    version, mt, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"trainer": generator.get_state(), "torch": torch.get_rng_state(),
            "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
            "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64),
                       "gauss": gauss}}


def restore_rng(generator: torch.Generator, rng: dict) -> None:
    """Puts back what :func:`capture_rng` returned."""
    generator.set_state(rng["trainer"])
    torch.set_rng_state(rng["torch"])
    n = rng["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = rng["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss"]))


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and not a.is_sparse and bool(torch.equal(a, b))


def _differences(saved: dict, now: dict, limit: int = 6) -> str:
    """'config.training.lr: 0.05 in the checkpoint, 0.01 now; ...' for the first ``limit`` differing leaves."""
    a, b = _flatten(saved), _flatten(now)
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k, _MISSING) != b.get(k, _MISSING))
    parts = [f"{k}: {_show(a.get(k, _MISSING))} in the checkpoint, {_show(b.get(k, _MISSING))} now"
             for k in keys[:limit]]
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(parts) + more


_MISSING = object()


def _show(value) -> str:
    return "(absent)" if value is _MISSING else json.dumps(value)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _fsync_dir(folder: Path) -> None:
    """Makes the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def training_state(epoch: int, model: torch.nn.Module, best: dict[str, torch.Tensor] | None,
                   optimizer: torch.optim.Optimizer, stopper: EarlyStopping, history: list, generator: torch.Generator,
                   elapsed_s: float, stopped_by: str | None) -> TrainState:
    """The trainer's state after ``epoch`` (``history``: its :class:`EpochLog` dataclasses). Tensors are the live
    ones, not copies: save the state before the next step changes them."""
    return TrainState(epoch, model.state_dict(), best, optimizer.state_dict(), stopper.state_dict(),
                      [asdict(h) for h in history], capture_rng(generator), float(elapsed_s), stopped_by)


def resume_training(state: TrainState, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    stopper: EarlyStopping, generator: torch.Generator) -> dict[str, torch.Tensor] | None:
    """Puts ``state`` back into a freshly prepared ``model``, its new ``optimizer``, ``stopper`` and the trainer's
    ``generator`` (and the global generators); returns the best weights so far (None: none yet)."""
    model.load_state_dict(state.model)
    optimizer.load_state_dict(state.optimizer)
    stopper.load_state_dict(state.early_stopping)
    restore_rng(generator, state.rng)
    return state.best


# config keys that change how a run reports, not what it computes: a resume may change them
NOT_FINGERPRINTED = (("training", "progress"), ("data_dir",))


def run_fingerprint(config: dict, data_sha256: str) -> dict:
    """What a resumed run must share with the checkpoint: the run config (``RunConfig.to_dict()``, less
    :data:`NOT_FINGERPRINTED`) and the data's hash."""
    config = json.loads(json.dumps(config))
    for path in NOT_FINGERPRINTED:
        node = config
        for key in path[:-1]:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return {"config": config, "data_sha256": data_sha256}
