"""The single trainer: mini-batch gradient descent on any trainable model, with early stopping on a validation
callback, a time budget, and per-term loss logging.

The trainer never imports the evaluator: the caller passes ``validate(model) -> {"ndcg@10": ..., ...}``.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable

import numpy as np
import torch

from fusionrec.config import TrainingConfig
from fusionrec.errors import ConfigError, DataError, FusionrecError
from fusionrec.models.base import Model, ModelInputs
from fusionrec.models.capabilities import RatingPredictor, SequenceModel
from fusionrec.training.batch_sources import PairBatches, WindowBatches, n_pairs
from fusionrec.training.checkpoint import CheckpointSink, TrainState, resume_training, training_state
from fusionrec.training.distributed import Ranks, any_rank, average_gradients, ranks, share_weights
from fusionrec.training.early_stopping import EarlyStopping
from fusionrec.training.interrupt import StopRequest, stop_on_signals
from fusionrec.training.run_record import (RATING_LOSS, EpochLog, EpochObserver, StopTraining, TrainResult,
                                           higher_is_better, metric_of)
from fusionrec.training.progress import epoch_bar, expected_last_epoch, follow
from fusionrec.training.losses import CATALOGUE_LOSSES, SHARED_CANDIDATE_LOSSES, rec_loss
from fusionrec.training.sampled_softmax import accidental_hits, sampled_softmax_loss
from fusionrec.training.sampling import CandidateSampler, NegativeSampler, TripleBatches
from fusionrec.training.seeding import seed_everything

Validate = Callable[[Model], dict[str, float]]
log = logging.getLogger("fusionrec.training")


class NonFiniteLossError(FusionrecError, FloatingPointError):
    """A loss term became NaN or infinite; names the term, the epoch and the batch."""


class Trainer:
    """Trains a model on ``inputs.train`` under one :class:`TrainingConfig` and one seed."""

    def __init__(self, config: TrainingConfig, seed: int, clock: Callable[[], float] = time.perf_counter,
                 stop: StopRequest | None = None, observers: tuple[EpochObserver, ...] = ()):
        """``clock``: seconds for the time budget and the timings (tests pass a fake one). ``stop``: raised by
        SIGINT / SIGTERM during :meth:`fit` (or by the caller): training stops after the current step, the best
        weights come back and ``stopped_by`` is 'interrupted'. ``observers``: called with each finished epoch's
        :class:`EpochLog` (losses, validation, learning rate, time), e.g. experiment tracking or a search's pruner;
        one that raises :class:`StopTraining` ends training there."""
        self.config, self.seed, self.clock = config, int(seed), clock
        self.observers = tuple(observers)
        self.ranks = Ranks()  # this process's rank among data-parallel trainers, set by fit
        self.stop = stop if stop is not None else StopRequest()
        self._run_cfg = config  # what this fit trains with: the config, its loss and batch size as _plan settles them
        self._reasons: tuple[str | None, str | None] = (None, None)  # why _plan changed the loss, the batch size

    def fit(self, model: Model, inputs: ModelInputs, validate: Validate | None = None,
            checkpoint: CheckpointSink | None = None, resume: TrainState | None = None) -> TrainResult:
        """Prepares ``model`` on ``inputs`` and, when trainable, trains it; the best validated weights are restored.
        ``checkpoint``: given the state after each finished epoch; ``resume``: a state saved so, to carry on from
        (same model, inputs and config). While training, SIGINT / SIGTERM raise :attr:`stop` (main thread only)."""
        self.stop.clear()
        self.ranks = ranks()
        started = self.clock()
        generator = seed_everything(self.seed)
        model.prepare(inputs)
        if not model.trainable:
            prepare_s = self.clock() - started
            metrics = self._validate(model, validate) if validate is not None else None
            model.eval()
            # nothing is selected for an untrained model: a metric it cannot report (a popularity list's rmse) is None
            watched = metrics is not None and self.config.valid_metric.lower() in {k.lower() for k in metrics}
            score = self._metric(metrics) if watched else None
            return TrainResult(0, score, 0, "not_trainable", [EpochLog(0, {}, prepare_s, metrics)], [],
                               self.clock() - started)
        with stop_on_signals(self.stop):
            return self._train(model, inputs, validate, generator, started, checkpoint, resume)

    # -- the loop -------------------------------------------------------------------------------------------------
    def _train(self, model: Model, inputs: ModelInputs, validate: Validate | None, generator: torch.Generator,
               started: float, checkpoint: CheckpointSink | None = None,
               resume: TrainState | None = None) -> TrainResult:
        cfg = self.config
        if cfg.loss in CATALOGUE_LOSSES + SHARED_CANDIDATE_LOSSES \
                and type(model).forward_catalogue is Model.forward_catalogue:
            raise ConfigError(f"{model.name} cannot be trained with the {cfg.loss} loss (it does not score the whole "
                              "catalogue in training); use bpr, bce or softmax", key="training.loss")
        train = inputs.train.tocsr()
        if train.nnz == 0:
            raise DataError("there are no training interactions to learn from", field="train")
        if cfg.loss == RATING_LOSS:
            if not (isinstance(model, RatingPredictor) and model.predicts_ratings()) \
                    or isinstance(model, SequenceModel):
                raise ConfigError(f"{model.name} does not predict ratings under these hyper-parameters: the mse "
                                  "loss trains biased-mf, or fusionrec with rating_head: true", key="training.loss")
            if inputs.ratings is None:
                raise DataError("the mse loss needs explicit ratings (a rating field in NAME.inter)", field="rating")
        sequential = isinstance(model, SequenceModel)
        if sequential and inputs.sequences is None:
            raise DataError(f"{model.name} reads each user's ordered history, but the inputs carry no sequences",
                            field="sequences")
        cfg = self._plan(model.n_items, n_pairs(inputs.sequences) if sequential else train.nnz)
        # neg_pool "trained": an item without training interactions (a cold item, unknown at training time) is never
        # drawn as a negative, so training cannot learn that exactly those items are never liked.
        pool = np.flatnonzero(np.bincount(train.indices, minlength=train.shape[1])) if cfg.neg_pool == "trained" \
            else None
        # catalogue losses score every item: nothing to sample; the sampled softmax draws one candidate set per step
        sampler = candidates = None
        if cfg.loss in SHARED_CANDIDATE_LOSSES:
            candidates = CandidateSampler(train, cfg.in_batch_negatives, cfg.neg_samples, cfg.neg_distribution,
                                          generator, pool=pool)
        elif cfg.loss not in CATALOGUE_LOSSES + (RATING_LOSS,):
            sampler = NegativeSampler(train, generator, pool=pool)
        source = WindowBatches(inputs.sequences, model.max_length, cfg.batch_size, sampler, cfg.neg_samples,
                               ranks=self.ranks, shared_seed=self.seed) \
            if sequential else PairBatches(train, cfg.batch_size, sampler, cfg.neg_samples, inputs.ratings,
                                           ranks=self.ranks, shared_seed=self.seed)
        # the full softmax's candidates outside the pool get a score of -inf: no probability, no gradient
        outside_pool = None
        if pool is not None and cfg.loss in CATALOGUE_LOSSES:
            outside_pool = torch.ones(train.shape[1], dtype=torch.bool)
            outside_pool[torch.from_numpy(pool)] = False
        kg_batches = self._kg_batches(model, inputs, generator)
        if self.ranks.active:
            share_weights(model)
        optimizer = self._optimizer(model)
        stopper = EarlyStopping(cfg.patience)
        best_state = None
        history: list[EpochLog] = []
        stopped_by = "max_epochs"
        first = 1
        if resume is not None:  # carry on after the checkpoint's epoch; one that ended training trains no more
            best_state = resume_training(resume, model, optimizer, stopper, generator)
            history, started = [EpochLog(**h) for h in resume.history], started - resume.elapsed_s
            first = resume.epoch + 1 if resume.stopped_by is None else cfg.epochs + 1
            stopped_by = resume.stopped_by or stopped_by
        model.train()
        bar = epoch_bar(model.name, first, cfg.epochs, self._horizon(cfg, stopper, validate), cfg.progress)
        for epoch in bar:
            if self._over_budget(started):
                stopped_by = self._halt_reason()
                break
            t0 = self.clock()
            joint = kg_batches if cfg.kg_mode == "joint" else None
            losses, out_of_time = self._epoch(model, optimizer, source, candidates, generator, epoch, started,
                                              joint, outside_pool)
            if kg_batches is not None and cfg.kg_mode == "alternating" and not out_of_time:
                kg_losses, out_of_time = self._kg_epoch(model, optimizer, kg_batches, epoch, started)
                losses.update(kg_losses)
            complete = not out_of_time  # stopped inside the epoch: nothing to checkpoint
            model.epoch_end(epoch)
            log = EpochLog(epoch, losses, self.clock() - t0, lr=float(optimizer.param_groups[0]["lr"]))
            history.append(log)
            out_of_time = out_of_time or self._over_budget(started)  # then validate these weights before stopping
            if out_of_time:
                stopped_by = self._halt_reason()
            last = out_of_time or epoch == cfg.epochs
            postfix = {"loss": f"{losses['loss']:.4f}"}
            if validate is not None and stopped_by != "interrupted" and (epoch % cfg.eval_every == 0 or last):
                log.valid = self._validate(model, validate)
                score = self._metric(log.valid)
                postfix[cfg.valid_metric] = f"{score:.4f}"
                if stopper.update(score if higher_is_better(cfg.valid_metric) else -score, epoch):
                    best_state = copy.deepcopy(model.state_dict())
                if stopper.should_stop:
                    stopped_by = "early_stopping"
            for observe in self.observers:
                try:
                    observe(log)
                except StopTraining as stop:
                    stopped_by = stop.reason
            bar.set_postfix(postfix, refresh=False)
            follow(bar, self._horizon(cfg, stopper, validate))
            if checkpoint is not None and complete and stopped_by != "interrupted":
                ended = None if stopped_by == "max_epochs" and epoch < cfg.epochs else stopped_by
                checkpoint.save(training_state(epoch, model, best_state, optimizer, stopper, history, generator,
                                               self.clock() - started, ended))
            if stopped_by != "max_epochs":
                break
        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        validated = best_state is not None
        return TrainResult(
            best_epoch=stopper.best_epoch if validated else len(history),
            best_score=(stopper.best_score if higher_is_better(cfg.valid_metric) else -stopper.best_score)
            if validated else None,
            epochs_run=len(history), stopped_by=stopped_by, history=history,
            epoch_seconds=[h.train_s for h in history], fit_seconds=self.clock() - started, **self._plan_record())

    def _epoch(self, model: Model, optimizer: torch.optim.Optimizer, source: PairBatches | WindowBatches,
               candidates: CandidateSampler | None, generator: torch.Generator, epoch: int, started: float,
               kg_batches: TripleBatches | None = None,
               outside_pool: torch.Tensor | None = None) -> tuple[dict[str, float], bool]:
        """One pass over the shuffled training pairs of ``source``; returns the mean of each loss and whether time ran
        out. Batches without negatives are scored through ``model.forward_catalogue``: on every item (a catalogue
        loss) or, with ``candidates`` (the sampled softmax), on each batch's shared candidate set
        (``Batch.candidates``). With ``kg_batches`` (joint KG training) each step also adds ``kg_alpha`` x the
        model's KG terms on the next batch of triples."""
        cfg = self._run_cfg
        catalogue = cfg.loss in CATALOGUE_LOSSES  # every item is a negative
        shared = candidates is not None  # one sampled candidate set per batch
        rating = cfg.loss == RATING_LOSS  # predicted ratings of the batch's pairs, no negatives
        n_scores = model.n_items if catalogue else 0 if rating else cfg.neg_samples
        logged: dict[str, tuple[list[torch.Tensor], list[int]]] = {}  # per-batch values and sizes, reduced at the end
        out_of_time = False
        for batch_no, batch in enumerate(source.epoch(generator), 1):
            log_count = None
            if shared:
                drawn, log_count = candidates.draw(batch.pos)  # (C,), (C,)
                batch = dataclasses.replace(batch, candidates=drawn)
                n_scores = len(drawn)
            size = len(batch.users)
            out = model.forward_ratings(batch) if rating \
                else model.forward_catalogue(batch) if catalogue or shared else model(batch)
            if out.pos.shape != (size,) or out.neg.shape != (size, n_scores):
                raise FusionrecError(f"{model.name}.forward returned scores of shapes {tuple(out.pos.shape)} and "
                                     f"{tuple(out.neg.shape)}; expected ({size},) and ({size}, {n_scores})")
            if rating:
                rec = (out.pos - batch.ratings).square().mean()
            elif shared:  # accidental hits: a candidate that is the row's own positive is left out of its softmax
                hits = accidental_hits(batch.candidates, batch.pos)
                rec = sampled_softmax_loss(out.pos, out.neg, log_count, hits, cfg.temperature)
            else:
                neg = out.neg if outside_pool is None else out.neg.masked_fill(outside_pool, float("-inf"))
                rec = rec_loss(cfg.loss, out.pos, neg, cfg.temperature)
            terms = {"rec": rec, **out.terms}
            weights = {name: cfg.term_weights.get(name, 1.0) for name in out.terms}
            if kg_batches is not None:
                kg_terms = model.kg_terms(*kg_batches.next())
                if not kg_terms:
                    kg_batches = None  # no KG loss under this model's hyper-parameters: stop sampling triples
                self._add_kg_terms(terms, weights, kg_terms)
            loss = self._step(optimizer, terms, weights, epoch, batch_no)
            for name, value in (("loss", loss), *terms.items()):
                values, sizes = logged.setdefault(name, ([], []))
                values.append(value.detach())
                sizes.append(size)
            if self._over_budget(started):
                out_of_time = True
                break
        return _means(logged), out_of_time

    def _kg_epoch(self, model: Model, optimizer: torch.optim.Optimizer, kg_batches: TripleBatches, epoch: int,
                  started: float) -> tuple[dict[str, float], bool]:
        """Alternating KG training: one pass over all triples, each step on ``kg_alpha`` x the model's KG terms; with
        ``kg_steps_per_epoch``, that many batches of a shuffled stream that carries on across epochs (every triple is
        still visited, once per ceil(n_triples / kg_batch_size / kg_steps_per_epoch) epochs)."""
        logged: dict[str, tuple[list[torch.Tensor], list[int]]] = {}
        cap = self.config.kg_steps_per_epoch
        batches = kg_batches.one_pass() if cap is None else (kg_batches.next() for _ in range(cap))
        for batch_no, batch in enumerate(batches, 1):
            terms: dict[str, torch.Tensor] = {}
            weights: dict[str, float] = {}
            self._add_kg_terms(terms, weights, model.kg_terms(*batch))
            if not terms:
                break  # this model has no KG loss under its current hyper-parameters
            loss = self._step(optimizer, terms, weights, epoch, batch_no, what="KG batch")
            for name, value in (("kg_loss", loss), *terms.items()):
                values, sizes = logged.setdefault(name, ([], []))
                values.append(value.detach())
                sizes.append(len(batch[0]))
            if self._over_budget(started):
                return _means(logged), True
        return _means(logged), False

    def _add_kg_terms(self, terms: dict[str, torch.Tensor], weights: dict[str, float],
                      kg_terms: dict[str, torch.Tensor]) -> None:
        for name, term in kg_terms.items():
            if name in terms:
                raise FusionrecError(f"the KG loss term {name!r} has the name of a recommendation loss term")
            terms[name] = term
            weights[name] = self.config.kg_alpha * self.config.term_weights.get(name, 1.0)

    def _step(self, optimizer: torch.optim.Optimizer, terms: dict[str, torch.Tensor], weights: dict[str, float],
              epoch: int, batch_no: int, what: str = "batch") -> torch.Tensor:
        """One optimiser step on sum(weights.get(name, 1) * term); raises before the step if the loss is not finite."""
        loss = None
        for name, term in terms.items():
            weight = weights.get(name, 1.0)
            weighted = term if weight == 1.0 else term * weight
            loss = weighted if loss is None else loss + weighted
        if not math.isfinite(loss.item()):
            raise self._non_finite(terms, loss, epoch, f"{what} {batch_no}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.ranks.active:
            average_gradients([p for group in optimizer.param_groups for p in group["params"]], self.ranks.world)
        optimizer.step()
        return loss

    def _kg_batches(self, model: Model, inputs: ModelInputs, generator: torch.Generator) -> TripleBatches | None:
        kg = inputs.kg
        if not model.uses_kg_loss or kg is None or len(kg.triples) == 0:
            return None
        return TripleBatches(kg.triples, kg.n_entities, self.config.kg_batch_size, self.config.kg_neg_samples,
                             generator)

    # -- helpers --------------------------------------------------------------------------------------------------
    def _plan(self, n_items: int, n_train: int) -> TrainingConfig:
        """The config this fit trains with (kept as ``self._run_cfg``, reported in the :class:`TrainResult`): the
        full softmax becomes the sampled one above ``full_softmax_max_items`` items, and with ``max_steps_per_epoch``
        the batch grows to ceil(n_train / max_steps_per_epoch) when that exceeds ``batch_size``. Each change is
        logged (warning level, so it shows without any logging set up)."""
        cfg = self.config
        loss_reason = batch_reason = None
        cap = cfg.full_softmax_max_items
        if cfg.loss == "full_softmax" and cap is not None and n_items > cap:
            loss_reason = (f"full_softmax over {n_items} items exceeds training.full_softmax_max_items ({cap}); "
                           f"trained with sampled_softmax instead: up to {cfg.in_batch_negatives} in-batch and "
                           f"{cfg.neg_samples} {cfg.neg_distribution} candidates per step")
            cfg = dataclasses.replace(cfg, loss="sampled_softmax")
        steps = cfg.max_steps_per_epoch
        if steps is not None and math.ceil(n_train / steps) > cfg.batch_size:
            size = math.ceil(n_train / steps)
            batch_reason = (f"batch size {cfg.batch_size} -> {size}: training.max_steps_per_epoch {steps} over "
                            f"{n_train} training pairs")
            cfg = dataclasses.replace(cfg, batch_size=size)
        for reason in (loss_reason, batch_reason):
            if reason is not None:
                log.warning("training: %s", reason)
        self._run_cfg, self._reasons = cfg, (loss_reason, batch_reason)
        return cfg

    def _plan_record(self) -> dict:
        """The :class:`TrainResult` fields of the plan: loss and batch size used, and why (None: as configured)."""
        loss_reason, batch_reason = self._reasons
        return {"loss": self._run_cfg.loss, "loss_reason": loss_reason, "batch_size": self._run_cfg.batch_size,
                "batch_size_reason": batch_reason}

    def _optimizer(self, model: Model) -> torch.optim.Optimizer:
        cfg = self.config
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise FusionrecError(f"{model.name} is marked trainable but has no parameters that require gradients")
        if cfg.optimizer == "adam":
            # the fused kernel is ~2.5x faster per step on CPU; it needs every parameter to be a float on one device
            fused = all(p.is_floating_point() and p.device == params[0].device for p in params)
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused or None)
        return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    def _halt_reason(self) -> str:
        return "interrupted" if self.stop.requested else "time_budget"

    @staticmethod
    def _horizon(cfg: TrainingConfig, stopper: EarlyStopping, validate: Validate | None) -> int:
        """The epoch early stopping ends at if the score does not improve again (the progress bar's total)."""
        return expected_last_epoch(cfg.epochs, cfg.patience, cfg.eval_every, stopper.best_epoch, validate is not None)

    def _over_budget(self, started: float) -> bool:
        """True once the time budget is spent, or a stop was requested (:attr:`stop`); with several ranks, once any
        rank says so (all of them stop at the same step)."""
        budget = self.config.time_budget_s
        over = self.stop.requested or (budget is not None and self.clock() - started >= budget)
        if self.ranks.active:
            over = any_rank(over)
            if over and not self.stop.requested and budget is None:
                self.stop.request("another rank")  # a signal reached another rank first
        return over

    @staticmethod
    def _validate(model: Model, validate: Validate) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                metrics = validate(model)
        finally:
            model.train(was_training)
        return {str(k): float(v) for k, v in metrics.items()}

    def _metric(self, metrics: dict[str, float]) -> float:
        return metric_of(metrics, self.config.valid_metric)

    @staticmethod
    def _non_finite(terms: dict[str, torch.Tensor], loss: torch.Tensor, epoch: int, where: str) -> NonFiniteLossError:
        bad = [name for name, value in terms.items() if not bool(torch.isfinite(value).all())]
        name = bad[0] if bad else "loss"
        value = float((terms[name] if bad else loss).detach().sum())
        return NonFiniteLossError(f"loss term '{name}' is {value} at epoch {epoch}, {where}; lower the "
                                  "learning rate, check the term's weight, or check the inputs for NaN")


def _means(logged: dict[str, tuple[list[torch.Tensor], list[int]]]) -> dict[str, float]:
    """Mean of each logged loss over training examples (batches weighted by their size)."""
    return {name: float(torch.stack(values).double() @ torch.tensor(sizes, dtype=torch.float64)) / sum(sizes)
            for name, (values, sizes) in logged.items()}
