"""Runs that keep their work: SIGINT / SIGTERM stop training after the current step with the best weights, the run
still writes results.json (interrupted) and a usable model; checkpoints after each epoch survive kill -9 and let
``train --resume`` carry on to the same result as an uninterrupted run; the progress bar's total follows early
stopping."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fusionrec.cli import main
from fusionrec.config import TrainingConfig
from fusionrec.data import Interactions
from fusionrec.data.synthetic import make_synthetic
from fusionrec.models import get_model_class
from fusionrec.serving.recommender import Recommender
from fusionrec.training import Trainer, build_inputs, seed_everything
from fusionrec.training import trainer as trainer_module
from fusionrec.training.checkpoint import Checkpoint, CheckpointError, TrainState, capture_rng, run_fingerprint
from fusionrec.training.interrupt import StopRequest, stop_on_signals
from fusionrec.training.progress import expected_last_epoch

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]
N_USERS, N_ITEMS = 20, 16
CFG = TrainingConfig(epochs=6, batch_size=16, lr=0.05, patience=0, progress=False)


def write_synthetic_atomic(root: Path, n_users: int = 60, n_items: int = 40, seed: int = 0) -> Path:
    """``root/synth.inter`` from :func:`make_synthetic` (raw ids ``u<j>`` / ``i<j>``, RecBole atomic format)."""
    inter = make_synthetic(n_users=n_users, n_items=n_items, n_clusters=2, interactions_per_user=10,
                           seed=seed).dataset.interactions
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += [f"u{u}\ti{i}\t{r:g}\t{t:.0f}" for u, i, r, t in zip(inter.users, inter.items, inter.ratings,
                                                                    inter.timestamps)]
    (root / "synth.inter").write_text("\n".join(lines) + "\n")
    return root


def write_config(path: Path, data: Path, training: str) -> Path:
    path.write_text(textwrap.dedent(f"""
        seed: 5
        dataset: {{name: synth, path: {data}}}
        model: {{name: bpr, params: {{embedding_size: 8}}}}
        training: {{{training}}}
        evaluation: {{ks: [5, 10]}}
        """))
    return path


@pytest.fixture(scope="module")
def inputs():
    """Two groups: users 0-9 like items 0-7, users 10-19 like items 8-15 (6 of the 8 each)."""
    rng = np.random.default_rng(3)
    users, items = [], []
    for u in range(N_USERS):
        users += [u] * 6
        items += rng.choice(np.arange(8) + 8 * (u // 10), 6, replace=False).tolist()
    return build_inputs(N_USERS, N_ITEMS, Interactions(np.array(users), np.array(items), N_USERS, N_ITEMS))


def bpr():
    seed_everything(0)
    return get_model_class("bpr")(N_USERS, N_ITEMS)


class Scripted:
    """Validation with scripted scores; raises ``stop`` at its ``stop_at``-th call and keeps each call's weights."""

    def __init__(self, scores, stop: StopRequest | None = None, stop_at: int | None = None):
        self.scores, self.stop, self.stop_at = list(scores), stop, stop_at
        self.calls, self.snapshots = 0, []

    def __call__(self, model):
        self.snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        score = self.scores[self.calls]
        self.calls += 1
        if self.calls == self.stop_at:
            self.stop.request("test")
        return {"ndcg@10": score}


class Recorder:
    """A checkpoint sink that keeps the epochs it was given and forwards to a real checkpoint."""

    def __init__(self, checkpoint: Checkpoint):
        self.checkpoint, self.epochs = checkpoint, []

    def save(self, state: TrainState) -> None:
        self.epochs.append(state.epoch)
        self.checkpoint.save(state)


def checkpoint_in(folder: Path) -> Checkpoint:
    return Checkpoint(folder, run_fingerprint({"training": {"lr": 0.05}}, "data"))


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the trainer ------------------------------------------------------------------------------------------------------
def test_interrupt_at_epoch_k_then_resume_continues_at_k_plus_1_and_ends_like_an_uninterrupted_run(inputs, tmp_path):
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # always improving: the final weights are the last epoch's
    full = bpr()
    uninterrupted = Trainer(CFG, seed=0).fit(full, inputs, Scripted(scores))

    trainer = Trainer(CFG, seed=0)
    sink = Recorder(checkpoint_in(tmp_path / "ckpt"))
    first = trainer.fit(bpr(), inputs, Scripted(scores, trainer.stop, stop_at=3), checkpoint=sink)
    assert first.stopped_by == "interrupted" and first.epochs_run == 3 and sink.epochs == [1, 2, 3]
    assert (first.best_epoch, first.best_score) == (3, 0.3)

    validate = Scripted(scores[3:])
    resumed_model = bpr()
    sink = Recorder(checkpoint_in(tmp_path / "ckpt"))
    resumed = Trainer(CFG, seed=0).fit(resumed_model, inputs, validate, checkpoint=sink,
                                       resume=checkpoint_in(tmp_path / "ckpt").load())
    assert sink.epochs == [4, 5, 6] and validate.calls == 3  # epochs 1-3 were not trained again
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4, 5, 6]
    assert resumed.stopped_by == "max_epochs" and (resumed.best_epoch, resumed.best_score) == (6, 0.6)
    # the same seeded shuffles, negatives and Adam moments: the weights are those of the run that never stopped
    assert same_weights(resumed_model.state_dict(), full.state_dict())
    assert [h.losses for h in resumed.history] == [h.losses for h in uninterrupted.history]


def test_resume_keeps_the_best_score_weights_and_patience_count(inputs, tmp_path):
    cfg = dataclasses.replace(CFG, epochs=20, patience=3)
    scores = [0.1, 0.9, 0.3, 0.2, 0.2, 0.2]  # best at epoch 2, then bad evaluations at 3, 4, 5: stops at 5
    trainer = Trainer(cfg, seed=0)
    first_validate = Scripted(scores, trainer.stop, stop_at=3)
    first = trainer.fit(bpr(), inputs, first_validate, checkpoint=checkpoint_in(tmp_path))
    assert first.stopped_by == "interrupted" and first.best_epoch == 2

    model, validate = bpr(), Scripted(scores[3:])
    resumed = Trainer(cfg, seed=0).fit(model, inputs, validate, resume=checkpoint_in(tmp_path).load())
    assert resumed.stopped_by == "early_stopping"
    assert (resumed.best_epoch, resumed.best_score, resumed.epochs_run, validate.calls) == (2, 0.9, 5, 2)
    assert same_weights(model.state_dict(), first_validate.snapshots[1])  # epoch 2's weights, from the checkpoint


def test_interrupt_inside_an_epoch_stops_after_that_step_with_the_best_weights(inputs, tmp_path, monkeypatch):
    cfg = dataclasses.replace(CFG, epochs=10, batch_size=8)
    trainer = Trainer(cfg, seed=0)
    validate = Scripted([0.5, 0.4, 0.3])
    steps = []
    real_step = Trainer._step

    def counting_step(self, *args, **kwargs):
        steps.append(1)
        if len(steps) == 40:  # inside epoch 3 (15 steps of 8 pairs an epoch)
            self.stop.request("test")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_step", counting_step)
    sink = Recorder(checkpoint_in(tmp_path))
    model = bpr()
    result = trainer.fit(model, inputs, validate, checkpoint=sink)
    assert len(steps) == 40  # the step in flight finished; no further step ran
    assert result.stopped_by == "interrupted" and result.epochs_run == 3
    assert validate.calls == 2 and sink.epochs == [1, 2]  # the half epoch is neither validated nor checkpointed
    assert result.best_epoch == 1 and same_weights(model.state_dict(), validate.snapshots[0])
    assert not model.training


def test_a_second_fit_on_the_same_trainer_is_not_stopped_by_the_first_ones_flag(inputs):
    trainer = Trainer(CFG, seed=0)
    trainer.fit(bpr(), inputs, Scripted([0.1] * 6, trainer.stop, stop_at=1))
    assert trainer.fit(bpr(), inputs, Scripted([0.1] * 6)).stopped_by == "max_epochs"


def test_progress_total_follows_early_stopping(inputs, monkeypatch):
    totals = []
    monkeypatch.setattr(trainer_module, "follow", lambda bar, total: totals.append(total))
    cfg = dataclasses.replace(CFG, epochs=30, patience=2)
    Trainer(cfg, seed=0).fit(bpr(), inputs, Scripted([0.1, 0.5, 0.3, 0.2]))
    assert totals == [3, 4, 4, 4]  # best epoch + patience, moved on by the improvement at epoch 2
    assert expected_last_epoch(30, 2, 3, best_epoch=6, validated=True) == 12  # patience counts evaluations
    assert expected_last_epoch(10, 5, 1, best_epoch=8, validated=True) == 10  # never past max epochs
    assert expected_last_epoch(30, 0, 1, best_epoch=2, validated=True) == 30  # patience 0: no early stop
    assert expected_last_epoch(30, 5, 1, best_epoch=0, validated=False) == 30


# -- signals ----------------------------------------------------------------------------------------------------------
def test_first_sigint_raises_the_flag_second_aborts_and_handlers_come_back():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    stop = StopRequest()
    with pytest.raises(KeyboardInterrupt):
        with stop_on_signals(stop, log=lambda msg: None):
            assert signal.getsignal(signal.SIGINT) is not before[0]
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)  # let the handler run
            assert stop.reason == "SIGINT"
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the KeyboardInterrupt arrives here
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_sigterm_raises_the_flag_and_the_handler_is_put_back():
    before = signal.getsignal(signal.SIGTERM)
    stop = StopRequest()
    with stop_on_signals(stop, log=lambda msg: None):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)
    assert stop.reason == "SIGTERM" and signal.getsignal(signal.SIGTERM) is before


def test_outside_the_main_thread_no_handler_is_installed():
    before, seen, errors = signal.getsignal(signal.SIGINT), [], []

    def work():
        try:
            with stop_on_signals(StopRequest()):
                seen.append(signal.getsignal(signal.SIGINT))
        except Exception as exc:  # signal.signal outside the main thread raises ValueError
            errors.append(exc)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert errors == [] and seen == [before]


# -- checkpoints ------------------------------------------------------------------------------------------------------
def tiny_state(epoch: int) -> TrainState:
    weights = {"w": torch.full((4,), float(epoch)), "const": torch.arange(3.0)}
    return TrainState(epoch, weights, {"w": torch.zeros(4), "const": torch.arange(3.0)},
                      {"state": {}, "param_groups": []}, {"best_score": 0.5, "best_epoch": 1, "bad_evals": 0},
                      [{"epoch": epoch, "losses": {"loss": 1.0}, "train_s": 0.1, "valid": None}],
                      capture_rng(torch.Generator().manual_seed(epoch)), 1.5, None)


def test_checkpoint_loads_with_weights_only_and_refuses_another_config(tmp_path):
    folder = tmp_path / "checkpoint"
    fingerprint = run_fingerprint({"training": {"lr": 0.05, "progress": True}, "data_dir": "/a"}, "abc")
    Checkpoint(folder, fingerprint).save(tiny_state(2))
    raw = torch.load(folder / "state.pt", weights_only=True)  # tensors and plain containers only
    assert "const" not in raw["best"]  # equal to the model's tensor: stored once
    state = Checkpoint(folder, fingerprint).load()
    assert state.epoch == 2 and torch.equal(state.model["w"], torch.full((4,), 2.0))
    assert same_weights(state.best, {"w": torch.zeros(4), "const": torch.arange(3.0)})
    # progress and the cache folder do not change results: a resume may change them
    quiet = run_fingerprint({"training": {"lr": 0.05, "progress": False}, "data_dir": "/b"}, "abc")
    assert Checkpoint(folder, quiet).load().epoch == 2
    with pytest.raises(CheckpointError, match=r"config\.training\.lr: 0\.05 in the checkpoint, 0\.01 now"):
        Checkpoint(folder, run_fingerprint({"training": {"lr": 0.01}}, "abc")).load()
    with pytest.raises(CheckpointError, match="data_sha256"):
        Checkpoint(folder, run_fingerprint({"training": {"lr": 0.05}}, "other")).load()
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Checkpoint(tmp_path / "none", fingerprint).load()
    (folder / "state.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        Checkpoint(folder, fingerprint).load()


def test_kill_9_in_the_middle_of_a_write_leaves_the_previous_checkpoint(tmp_path):
    folder = tmp_path / "checkpoint"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_interrupt_resume import checkpoint_in, tiny_state
        from fusionrec.training import checkpoint as ck
        c = checkpoint_in({str(folder)!r})
        c.save(tiny_state(1))

        def dying_save(obj, fh, *args, **kwargs):  # half the bytes on disk, then a kill -9
            fh.write(b"PK" + bytes(1000))
            fh.flush()
            os.fsync(fh.fileno())
            os.kill(os.getpid(), signal.SIGKILL)

        ck.torch.save = dying_save
        c.save(tiny_state(2))
        """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert len(list(folder.glob(".state.pt.*.tmp"))) == 1  # the torn write is there, under its temporary name
    state = checkpoint_in(folder).load()
    assert state.epoch == 1 and torch.equal(state.model["w"], torch.full((4,), 1.0))
    checkpoint_in(folder).save(tiny_state(3))  # the next write clears what the killed one left
    assert list(folder.glob(".state.pt.*.tmp")) == [] and checkpoint_in(folder).load().epoch == 3


# -- the command line -------------------------------------------------------------------------------------------------
def test_sigint_to_fusionrec_train_writes_interrupted_results_and_a_usable_model(tmp_path):
    data = write_synthetic_atomic(tmp_path)
    # never stops by itself (patience 0, many epochs); the time budget only bounds a broken test
    config = write_config(tmp_path / "bpr.yaml", data, "epochs: 100000, batch_size: 64, lr: 0.05, patience: 0, "
                                                       "time_budget_s: 120, progress: false")
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "fusionrec.cli", "train", "--config", str(config), "--out",
                             str(out)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 100
        while not (out / "checkpoint" / "state.pt").exists():  # training is under way: an epoch has finished
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=100)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "SIGINT: stopping after this step" in stderr and "Traceback" not in stderr
    results = json.loads((out / "results.json").read_text())
    assert results["interrupted"] is True and results["stopped_by"] == "interrupted"
    assert results["timings"]["epochs"] >= 1 and results["metrics"]["test"]["ndcg@10"] >= 0
    assert json.loads(stdout)["interrupted"] is True
    rec = Recommender.load(out / "model")
    items = rec.recommend("u0", k=5)
    assert len(items) == 5 and all(item.startswith("i") for item, _ in items)
    assert (out / "checkpoint" / "state.pt").exists()  # kept, for --resume


def test_train_resume_carries_on_to_the_uninterrupted_result(tmp_path, monkeypatch, capsys):
    data = write_synthetic_atomic(tmp_path)
    config = write_config(tmp_path / "bpr.yaml", data, "epochs: 8, batch_size: 64, lr: 0.05, patience: 0, "
                                                       "progress: false")
    plain = tmp_path / "plain"
    assert main(["train", "--config", str(config), "--out", str(plain)]) == 0
    assert not (plain / "checkpoint").exists()  # removed once the run finished

    import fusionrec.jobs.experiment as experiment

    class SigintAfterEpoch3(Checkpoint):  # a real Ctrl-C, sent right after epoch 3's checkpoint
        def save(self, state):
            super().save(state)
            if state.epoch == 3:
                os.kill(os.getpid(), signal.SIGINT)

    out = tmp_path / "run"
    monkeypatch.setattr(experiment, "Checkpoint", SigintAfterEpoch3)
    assert main(["train", "--config", str(config), "--out", str(out)]) == 130
    first = json.loads((out / "results.json").read_text())
    assert first["interrupted"] and first["timings"]["epochs"] == 3
    monkeypatch.setattr(experiment, "Checkpoint", Checkpoint)

    capsys.readouterr()
    assert main(["train", "--config", str(config), "--out", str(out), "--resume", "--set",
                 "training.lr=0.01"]) == 2
    assert "training.lr: 0.05 in the checkpoint, 0.01 now" in capsys.readouterr().err
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "empty"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err

    assert main(["train", "--config", str(config), "--out", str(out), "--resume", "--quiet"]) == 0
    resumed = json.loads((out / "results.json").read_text())
    expected = json.loads((plain / "results.json").read_text())
    assert resumed["interrupted"] is False and resumed["resumed_from_epoch"] == 3
    assert [h["epoch"] for h in resumed["history"]] == list(range(1, 9))
    assert [h["losses"] for h in resumed["history"]] == [h["losses"] for h in expected["history"]]
    assert resumed["metrics"] == expected["metrics"] and resumed["best_epoch"] == expected["best_epoch"]
    assert not (out / "checkpoint").exists()
