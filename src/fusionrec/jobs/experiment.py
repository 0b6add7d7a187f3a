"""One experiment end to end: load data, split, train, evaluate, write ``results.json`` and the model artifact.

This is the layer the CLI calls; it wires the lower layers together and holds no modelling logic itself.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from fusionrec.util import atomic_io
from fusionrec.artifacts.knowledge import ArtifactKnowledge, item_display_names
from fusionrec.artifacts import save_artifact
from fusionrec.config import RunConfig, TextConfig
from fusionrec.data.dataset import Dataset
from fusionrec.data.interactions import Interactions
from fusionrec.data.loading import load_dataset
from fusionrec.data.splits import Split, check_test_history, make_split, thin_interactions
from fusionrec.data.user_sequences import UserSequences
from fusionrec.evaluation.evaluator import Evaluator, sample_negatives
from fusionrec.evaluation.metrics import mae, rmse
from fusionrec.errors import ConfigError, DataError, FusionrecError
from fusionrec.models.base import HistoryReader, Model, ModelInputs
from fusionrec.models.capabilities import RatingPredictor, SequenceModel, Transferable, ValidationTuned
from fusionrec.models.registry import get_model_class
from fusionrec.util.provenance import machine, package_versions, peak_rss_mb
from fusionrec.training.checkpoint import Checkpoint, run_fingerprint
from fusionrec.training.distributed import ranks
from fusionrec.training.inputs import build_inputs
from fusionrec.training.seeding import seed_everything
from fusionrec.training.run_record import EpochObserver, higher_is_better, metric_of
from fusionrec.training.trainer import Trainer
from fusionrec.typed_config import build


@dataclass(eq=False)
class Prepared:
    """Data loaded and split once, shared by every model of a comparison."""

    dataset: Dataset
    split: Split
    data_sha256: str
    folded: dict | None = None  # what fold_events appended from an event store (None: nothing)


def prepare_data(cfg: RunConfig, log=None, events_db: str | Path | None = None) -> Prepared:
    """Loads and splits the dataset; with ``events_db`` (an event store written by ``fusionrec serve --db``) its
    interactions are appended before the split (see :mod:`fusionrec.data.event_log`)."""
    log = log or _stderr
    t0 = time.perf_counter()
    check_test_history(cfg.split.method, cfg.split.test_history)  # before a long load
    dataset = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    folded = None
    if events_db is not None:
        from fusionrec.data.event_log import fold_events, read_event_table

        dataset, report = fold_events(dataset, read_event_table(events_db), cfg.dataset.duplicates,
                                      need_timestamps=cfg.split.method in ("temporal", "leave_one_out"))
        folded = report.to_dict()
        log(f"events: {report.db}: {report.rows} row(s), folded in {report.folded}, new users {report.new_users}, "
            f"skipped {report.skipped_unknown_items} with an item outside the catalogue, dropped "
            f"{report.dropped_duplicates} duplicate(s)")
    seed = cfg.split.seed if cfg.split.seed is not None else cfg.seed
    data_sha256 = dataset.content_hash()  # of the data as read (and folded), before any thinning
    dataset = thin_interactions(dataset, cfg.split.keep_share, seed)
    split = make_split(dataset, cfg.split.method, ratios=tuple(cfg.split.ratios), seed=seed,
                       cold_share=cfg.split.cold_share, test_history=cfg.split.test_history)
    stats = dataset.stats()
    log(f"data: {stats['name']}: {stats['users']} users, {stats['items']} items, {stats['interactions']} interactions"
        f" | split {cfg.split.method}: train {len(split.train)}, valid {len(split.valid)}, test {len(split.test)}"
        f" ({time.perf_counter() - t0:.1f}s)")
    return Prepared(dataset, split, data_sha256, folded)


def model_params(cfg: RunConfig):
    """(model class, its validated hyper-parameters); ConfigError for an unknown model name (listing the known ones)
    or bad hyper-parameters."""
    try:
        cls = get_model_class(cfg.model.name)
    except KeyError as exc:
        raise ConfigError(exc.args[0], key="model.name") from None
    return cls, build(cls.Params, cfg.model.params, key="model.params")


def model_inputs(cfg: RunConfig, prepared: Prepared, needed: set[str], log=None) -> ModelInputs:
    """The training matrix plus whatever optional inputs the model's hyper-parameters ask for: item text
    embeddings (encoded once, then read from the cache) and the item knowledge graph."""
    log = log or _stderr
    dataset = prepared.dataset
    text = mask = kg = None
    if "kg" not in needed and dataset.kg is not None and len(dataset.kg.triples) and cfg.knowledge.use_kg_file:
        log(f"note: the dataset has a knowledge graph ({len(dataset.kg.triples)} triples) that {cfg.model.name} does "
            "not use with these settings (fusionrec: model.params.use_kg; ease: kg_weight; or the cke, kgat, kg-knn "
            "models)")
    if "text" in needed:
        from fusionrec.knowledge.encode_step import encode_items

        emb = encode_items(dataset, cfg.text or TextConfig(), data_dir=cfg.data_dir, progress=cfg.training.progress)
        text, mask = emb.vectors, emb.mask
        log(f"text: {emb.encoder_id}, {int(mask.sum())} items with text, {emb.n_encoded} encoded now "
            f"({emb.seconds:.1f}s)")
    if "kg" in needed:
        from fusionrec.knowledge.kg.merge import build_item_graph

        kg = build_item_graph(dataset, cfg.knowledge)
        if kg is None:
            raise ConfigError(f"model {cfg.model.name!r} needs a knowledge graph, but the dataset has none and "
                              "knowledge.attributes is empty", key="knowledge")
        log(f"kg: {kg.n_entities} entities, {kg.n_relations} relations, {len(kg.triples)} triples, "
            f"{kg.n_linked_items} of {dataset.n_items} items linked")
    social = None
    if "social" in needed:
        if dataset.social is None:
            raise DataError(f"model {cfg.model.name!r} needs the users' social graph, but dataset "
                            f"{dataset.name!r} has none (RecBole's NAME.net: source_id, target_id)", field="social")
        social = dataset.social.adjacency()
        log(f"social: {dataset.social.n_edges} edges, {dataset.social.users_with_friends()} of {dataset.n_users} "
            "users with friends")
    ratings = None
    if "ratings" in needed or cfg.training.loss == "mse":
        if prepared.split.train.ratings is None:
            raise DataError(f"model {cfg.model.name!r} with loss {cfg.training.loss!r} needs explicit ratings, but "
                            f"dataset {dataset.name!r} has none (a rating field in NAME.inter)", field="rating")
        ratings = prepared.split.train.to_csr("rating")
    user_features = None
    if "user_features" in needed:
        if dataset.user_info is None:
            raise DataError(f"model {cfg.model.name!r} needs the users' own fields, but dataset {dataset.name!r} has "
                            "none (RecBole's NAME.user: user_id and fields such as age, gender)", field="user_features")
        user_features, names = dataset.user_info.feature_matrix()
        log(f"user features: {len(names)} from {', '.join(dataset.user_info.fields)}, "
            f"{int((user_features.getnnz(axis=1) > 0).sum())} of {dataset.n_users} users with any")
    return build_inputs(dataset.n_users, dataset.n_items, prepared.split.train, item_text=text, kg=kg,
                        item_text_mask=mask, social=social, user_features=user_features, ratings=ratings,
                        sequences="sequences" in needed, log=log,
                        progress=cfg.training.progress)


def run_experiment(cfg: RunConfig, out_dir: str | Path, prepared: Prepared | None = None, log=None,
                   events_db: str | Path | None = None, resume: bool = False,
                   observers: tuple[EpochObserver, ...] = ()) -> dict:
    """Trains ``cfg.model`` and writes ``out_dir/results.json`` and ``out_dir/model/``; returns the results dict.
    ``events_db``: fold that event store's interactions into the data first (ignored when ``prepared`` is given).
    Training writes ``out_dir/checkpoint/`` after each epoch (removed once the run finishes, kept when it was
    interrupted); ``resume``: carry on from it (refused when the config or the data differ). ``observers``: see
    each finished epoch (:class:`~fusionrec.training.Trainer`), e.g. a tracker or a search's pruner."""
    log = log or _stderr
    out_dir = Path(out_dir)
    cls, params = model_params(cfg)  # an unknown model or bad hyper-parameters fail before any data are read
    prepared = prepared or prepare_data(cfg, log, events_db=events_db)
    checkpoint = Checkpoint(out_dir / "checkpoint", run_fingerprint(cfg.to_dict(), prepared.data_sha256))
    resumed = checkpoint.load() if resume else None  # before the text encoding and the model: fail fast
    if resumed is not None:
        log(f"resume: from epoch {resumed.epoch} in {checkpoint.path}")
    dataset, split = prepared.dataset, prepared.split
    inputs = model_inputs(cfg, prepared, cls.required_inputs(params), log)
    seed_everything(cfg.seed)
    model = cls.from_inputs(inputs, params)
    transferred = start_from(model, cfg.model.init_from, log) if cfg.model.init_from else None
    train_csr = split.train.to_csr()
    known_before_test = (train_csr + split.valid.to_csr()).tocsr()
    seen_valid, seen_test = (train_csr, known_before_test) if cfg.evaluation.exclude_seen else (None, None)
    evaluator = Evaluator(ks=tuple(cfg.evaluation.ks), metrics=tuple(cfg.evaluation.metrics),
                          batch_users=cfg.evaluation.batch_users)
    item_pop = np.asarray(train_csr.sum(axis=0)).ravel()

    sampled = cfg.evaluation.mode == "sampled"
    if sampled:  # negatives drawn once per part and saved, so every model is ranked against the same candidates
        negatives = {part: sample_negatives(getattr(split, part), exclude, cfg.evaluation.sampled_negatives,
                                            seed=cfg.seed)
                     for part, exclude in (("valid", train_csr), ("test", known_before_test)) if len(getattr(split, part))}
        out_dir.mkdir(parents=True, exist_ok=True)
        for part, neg in negatives.items():
            np.save(out_dir / f"negatives-{part}.npy", neg)

    # On a cold split the validation also reports the held-out items' (or users') own metrics under
    # "cold_items/<metric>" ("cold_users/<metric>") and the others' under "warm_items/<metric>" ("warm_users/..."),
    # so early stopping and selection can use them.
    valid_items = {"cold_items": split.cold_items, "warm_items": ~split.cold_items} \
        if split.cold_items is not None else None
    valid_users = {"cold_users": split.cold_users, "warm_users": ~split.cold_users} \
        if split.cold_users is not None else None

    rates = isinstance(model, RatingPredictor) and model.predicts_ratings() and inputs.ratings is not None

    def validate(m: Model) -> dict:
        return {**ranking_valid(m), **(rating_metrics(m, split.valid) if rates else {})}

    def ranking_valid(m: Model) -> dict:
        if sampled:
            return evaluator.evaluate_sampled(m.score, split.valid, negatives["valid"])
        if valid_items is None and valid_users is None:
            return _flat(evaluator.evaluate(m.score_all, split.valid, seen_valid))
        result = evaluator.evaluate(m.score_all, split.valid, seen_valid, segments=valid_items,
                                    user_segments=valid_users)
        metrics, segs = _split_segments(result)
        return {**metrics, **{f"{seg}/{k}": v for seg, values in segs.items() for k, v in values.items()}}

    group = ranks()
    log(f"train: {cfg.model.name} on {dataset.name}"
        + (f" (data-parallel: {group.world} ranks, {dist.get_backend()}, each a 1/{group.world} share of every "
           f"batch of {cfg.training.batch_size})" if group.active else ""))
    trainer = Trainer(cfg.training, seed=cfg.seed, observers=observers)
    result = trainer.fit(model, inputs, validate if len(split.valid) else None,
                         checkpoint=checkpoint if group.leader else None, resume=resumed)
    model.eval()
    if not group.leader:  # the weights are rank 0's too: rank 0 alone evaluates and writes
        return {"rank": group.rank, "world_size": group.world, "best_epoch": result.best_epoch,
                "interrupted": result.stopped_by == "interrupted"}
    chosen = choose_on_validation(model, validate, cfg.training.valid_metric, log) \
        if isinstance(model, ValidationTuned) and len(split.valid) else None
    valid = validate(model) if len(split.valid) else {}
    history_read = use_test_history(model, split, log)  # after validation: valid is always scored from train
    segments = {}
    if split.cold_items is not None:
        segments["cold_items"] = split.cold_items
        segments["warm_items"] = ~split.cold_items
    if sampled:
        test_full = evaluator.evaluate_sampled(model.score, split.test, negatives["test"])
    else:
        test_full = evaluator.evaluate(model.score_all, split.test, seen_test, item_pop=item_pop,
                                       segments=segments or None)
    test, test_segments = _split_segments(test_full)
    if rates:
        test.update(rating_metrics(model, split.test))
    epoch_s = list(result.epoch_seconds)
    results = {
        "model": cfg.model.name,
        "dataset": dataset.name,
        "evaluation": {"mode": cfg.evaluation.mode, "excluded": "train for valid; train + valid for test"
                       if cfg.evaluation.exclude_seen or sampled else "nothing (every item ranked)",
                       "test_history": split.test_history, "test_history_read_by_model": history_read},
        "split": {"method": split.method, "ratios": list(cfg.split.ratios),
                  "sizes": {"train": len(split.train), "valid": len(split.valid), "test": len(split.test)}},
        "metrics": {"valid": valid, "test": test},
        "segments": test_segments,
        "config": cfg.to_dict(),
        "seed": cfg.seed,
        "data_sha256": prepared.data_sha256,
        "folded_events": prepared.folded,
        "dataset_stats": dataset.stats(),
        "versions": package_versions(),
        "machine": machine(),
        "timings": {"fit_s": round(result.fit_seconds, 3),
                    "epoch_s_median": round(statistics.median(epoch_s), 4) if epoch_s else None,
                    "epochs": result.epochs_run},
        "best_epoch": result.best_epoch,
        "stopped_by": result.stopped_by,
        "interrupted": result.stopped_by == "interrupted",  # SIGINT / SIGTERM: the best weights so far
        "resumed_from_epoch": resumed.epoch if resumed is not None else None,
        "init_from": transferred,
        "distributed": {"world_size": group.world, "backend": dist.get_backend()} if group.active else None,
        "chosen_on_validation": chosen,
        # the loss and batch size training actually used, and why when not the configured ones (None: untrained)
        "training_loss": {"loss": result.loss, "reason": result.loss_reason, "batch_size": result.batch_size,
                          "batch_size_reason": result.batch_size_reason},
        "peak_rss_mb": peak_rss_mb(),
        "history": result.to_dict()["history"],
    }
    all_known = dataset.interactions.to_csr()
    save_artifact(out_dir / "model", model, dataset.users, dataset.items, all_known, run_config=cfg.to_dict(),
                  extra={"data_sha256": prepared.data_sha256, "dataset": dataset.name,
                         "scoring_history": "train_valid" if history_read else "train",
                         **({"folded_events": prepared.folded} if prepared.folded else {})},
                  knowledge=artifact_knowledge(cfg, dataset, inputs.kg, log))
    atomic_io.write_json(out_dir / "results.json", results)
    if result.stopped_by == "interrupted":
        more = f"; to carry on: fusionrec train ... --out {out_dir} --resume" if checkpoint.exists() else ""
        log(f"interrupted after {result.epochs_run} epoch(s): results.json and model/ hold the best weights so far "
            f"(epoch {result.best_epoch}){more}")
    else:
        checkpoint.remove()
    log("test: " + ", ".join(f"{k} {v:.4f}" for k, v in test.items() if k.split("@")[0] in ("ndcg", "recall")))
    return results


def artifact_knowledge(cfg: RunConfig, dataset: Dataset, kg=None, log=None) -> ArtifactKnowledge:
    """What the artifact keeps for explanations and KG edits while serving: the graph the model was given (``kg``),
    else the one ``cfg.knowledge`` builds from the dataset (saved for every model: it is cheap), and item display
    names from a title/name text field. A graph that cannot be built is skipped with a note in the log."""
    log = log or _stderr
    if kg is None:
        from fusionrec.knowledge.kg.merge import build_item_graph

        try:
            kg = build_item_graph(dataset, cfg.knowledge)
        except FusionrecError as exc:
            log(f"note: no knowledge graph saved with the model ({exc})")
    names = item_display_names(dataset.item_info)
    if names is not None and len(names) != dataset.n_items:
        names = (names + [""] * dataset.n_items)[:dataset.n_items]
    return ArtifactKnowledge(kg, names)


def with_model(cfg: RunConfig, name: str, model_cfg: RunConfig | None = None) -> RunConfig:
    """``cfg`` with its model swapped: the model and training sections come from ``model_cfg`` (a model's own
    shipped config) when given, else the model's defaults and ``cfg``'s training section."""
    if model_cfg is not None:
        return replace(cfg, model=model_cfg.model, training=model_cfg.training)
    return replace(cfg, model=replace(cfg.model, name=name, params={} if cfg.model.name != name else cfg.model.params))


def rating_metrics(model: RatingPredictor, part: Interactions, chunk: int = 65536) -> dict[str, float]:
    """RMSE and MAE of the model's predicted ratings over the rated rows of ``part`` (empty when it has none)."""
    if part.ratings is None or not len(part):
        return {}
    rated = np.isfinite(part.ratings)
    if not rated.any():
        return {}
    users, items, true = part.users[rated], part.items[rated], part.ratings[rated]
    with torch.no_grad():
        pred = torch.cat([model.predict_ratings(torch.from_numpy(users[lo:lo + chunk]),
                                                torch.from_numpy(items[lo:lo + chunk]))
                          for lo in range(0, len(users), chunk)]).double().numpy()
    return {"rmse": rmse(pred, true), "mae": mae(pred, true)}


def choose_on_validation(model: ValidationTuned, validate, metric: str, log=None) -> dict | None:
    """Scores every setting of the model's validation grid on ``validate`` and keeps the one the model's own rule
    selects (:meth:`ValidationTuned.select`) or else the best by ``metric`` (the earliest among equals: the grid
    starts with the setting the model trained with); returns the choice and every setting's scores for
    results.json, or None when there is nothing to choose."""
    log = log or _stderr
    grid = model.validation_grid()
    if not grid:
        return None
    tried = []
    for setting in grid:
        model.choose(setting)
        with torch.no_grad():
            metrics = validate(model)
        tried.append({"setting": setting, **{name: float(metric_of(metrics, name))
                                             for name in (metric, *model.validation_metrics())}})
    sign = 1.0 if higher_is_better(metric) else -1.0
    best = model.select(grid, tried)
    if best is None:
        best = max(range(len(tried)), key=lambda k: (sign * tried[k][metric], -k))
    model.choose(grid[best])
    log(f"chosen on validation: {grid[best]} ({metric} {tried[best][metric]:.4f}; "
        f"{grid[0]}: {tried[0][metric]:.4f})")
    return {"metric": metric, "chosen": grid[best], "tried": tried}


def start_from(model: Model, folder: str, log=None) -> dict:
    """Copies the catalogue-free parameters of the model saved in ``folder`` into ``model``
    (:class:`Transferable`); returns what was copied, for results.json. Raises ConfigError (key
    ``model.init_from``) for a model without the capability or parameters that do not fit."""
    from fusionrec.artifacts import load_artifact

    log = log or _stderr
    if not isinstance(model, Transferable):
        raise ConfigError(f"{model.name} has no catalogue-free parameters to start from", key="model.init_from")
    source = load_artifact(folder).model
    if not isinstance(source, Transferable):
        raise ConfigError(f"{folder} holds a {source.name} model, which has no catalogue-free parameters",
                          key="model.init_from")
    state = source.transferable_state()
    try:
        copied = model.load_transferable(state)
    except ValueError as exc:
        raise ConfigError(f"{folder}: {exc}", key="model.init_from") from None
    log(f"init from {folder}: {len(copied)} parameter tensors ({source.name}, "
        f"{sum(int(state[n].numel()) for n in copied)} values)")
    return {"folder": str(folder), "model": source.name, "parameters": copied}


def use_test_history(model: Model, split: Split, log=None) -> bool:
    """With ``split.test_history: train_valid``, hands a :class:`HistoryReader` model the train + valid histories
    (a :class:`SequenceModel` the ordered train + valid sequences) to score the test (and to keep in its artifact); returns whether the model reads them. Other models keep what
    they fitted on train."""
    log = log or _stderr
    if split.test_history != "train_valid":
        return False
    if isinstance(model, SequenceModel):
        model.use_sequences(UserSequences.from_interactions(Interactions.concat([split.train, split.valid])))
    elif isinstance(model, HistoryReader):
        model.use_history(split.history("test"))
    else:
        log(f"test history: {model.name} scores from its trained parameters")
        return False
    model.eval()
    log(f"test history: {model.name} scores the test from train + valid ({len(split.valid)} valid interactions)")
    return True


def _flat(result) -> dict:
    metrics, _ = _split_segments(result)
    return metrics


def _split_segments(result: dict) -> tuple[dict, dict]:
    """The evaluator returns plain metrics, or ``{"overall": ..., <segment>: ...}`` when given segments."""
    if "overall" in result:
        return dict(result["overall"]), {k: v for k, v in result.items() if k != "overall"}
    return dict(result), {}


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
