"""The ``fusionrec`` command line. Every subcommand imports what it needs when it runs, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

EPILOG = """examples:
  fusionrec data fetch ml-100k
  fusionrec data info ml-100k
  fusionrec train --config configs/ml-100k/bpr.yaml --out runs/bpr
  fusionrec train --config configs/ml-100k/bpr.yaml --set training.lr=0.005 --set seed=7 --out runs/bpr-lr
  fusionrec train --config configs/ml-100k/bpr.yaml --out runs/bpr --resume   # after Ctrl-C
  fusionrec train --config configs/ml-100k/bpr.yaml --resume-from-store runs/bpr/events.sqlite --out runs/bpr2
  fusionrec compare --config configs/ml-100k/bpr.yaml --models pop,itemknn,bpr,lightgcn --out runs/compare
  fusionrec tune --config configs/ml-100k/bpr.yaml --space configs/ml-100k/spaces/bpr.yaml --trials 20 --out runs/tune
  fusionrec train --config runs/tune/best.yaml --out runs/bpr-tuned --track tensorboard
  fusionrec encode --config configs/ml-100k/fusionrec.yaml
  fusionrec recommend --model runs/bpr/model --user 196 -k 10
  fusionrec serve --model runs/bpr/model --db runs/bpr/events.sqlite --api-key SECRET
"""


def main(argv: list[str] | None = None) -> int:
    quiet_threads()
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    from fusionrec.errors import FusionrecError

    try:
        return args.handler(args) or 0
    except FusionrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def quiet_threads() -> None:
    """The process's thread policy (:mod:`fusionrec.util.threads`): idle OpenMP threads sleep instead of spinning, and
    small machines train on one torch thread unless FUSIONREC_THREADS or OMP_NUM_THREADS says otherwise. Must run
    before torch loads."""
    from fusionrec.util.threads import configure_threads

    configure_threads()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fusionrec", description="Recommendation from behaviour, item text and "
                                "knowledge graphs: train, evaluate, compare and recommend.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    from fusionrec import __version__

    p.add_argument("--version", action="version", version=f"fusionrec {__version__}")
    sub = p.add_subparsers(title="commands", metavar="COMMAND")

    data = sub.add_parser("data", help="fetch datasets and show their statistics")
    dsub = data.add_subparsers(title="data commands", metavar="ACTION")
    fetch = dsub.add_parser("fetch", help="download a known dataset into the data directory and print its path")
    fetch.add_argument("name", help="dataset name (known: ml-100k)")
    fetch.add_argument("--data-dir", help="cache directory (default: $FUSIONREC_DATA_DIR or ~/.cache/fusionrec)")
    fetch.set_defaults(handler=_data_fetch)
    info = dsub.add_parser("info", help="statistics of a dataset: a known name, a folder of RecBole atomic files, "
                                        "or a .inter file")
    info.add_argument("name_or_path")
    info.add_argument("--data-dir", help="cache directory for known datasets")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.add_argument("--field", action="append", default=[], metavar="NAME=KIND",
                      help="declare an item field's kind (text, categorical, numeric, ignore) as dataset.fields does, "
                           "e.g. --field tags=categorical (repeatable)")
    info.set_defaults(handler=_data_info)
    synth = dsub.add_parser("synth", help="write a synthetic dataset with planted structure (item clusters, users "
                                          "preferring clusters, a long popularity tail) as RecBole atomic files")
    synth.add_argument("--out", required=True, help="folder to write NAME.inter, NAME.item (NAME.kg, NAME.link) into")
    synth.add_argument("--users", type=int, required=True, help="number of users")
    synth.add_argument("--items", type=int, required=True, help="number of items")
    synth.add_argument("--interactions", type=int, required=True, help="number of distinct (user, item) pairs")
    synth.add_argument("--text", action="store_true", help="give items a title of real topic words (movie_title)")
    synth.add_argument("--kg", action="store_true", help="write a knowledge graph tied to the clusters (.kg, .link)")
    synth.add_argument("--clusters", type=int, help="hidden item clusters (default: items / 250, in 8..200)")
    synth.add_argument("--noise", type=float, default=0.15,
                       help="share of interactions drawn from the whole catalogue (default 0.15)")
    synth.add_argument("--social", type=float, default=0.0, metavar="FRIENDS",
                       help="write a social graph (.net) with about this many friends per user (default 0: none)")
    synth.add_argument("--homophily", type=float, default=0.8,
                       help="share of friendships inside a user's main cluster, the planted social signal (0: a "
                            "control graph of random friends; default 0.8)")
    synth.add_argument("--seed", type=int, default=0, help="random seed: the same arguments give the same files")
    synth.add_argument("--name", default="synth", help="dataset name, the files' stem (default synth)")
    synth.set_defaults(handler=_data_synth)

    train = sub.add_parser("train", help="train one model, evaluate it, write DIR/results.json and DIR/model/")
    _run_args(train)
    train.add_argument("--resume-from-store", metavar="DB",
                       help="fold the interactions recorded by 'fusionrec serve --db DB' into the data before the "
                            "split: new users are added, events for items outside the catalogue are skipped (and "
                            "counted), repeats follow dataset.duplicates; results.json records the db, the count "
                            "and a sha256 of the events")
    train.add_argument("--resume", action="store_true",
                       help="carry on from DIR/checkpoint (written after each epoch, kept when a run is interrupted "
                            "by Ctrl-C / SIGTERM); refused when the config or the data differ from the checkpoint's")
    train.add_argument("--track", choices=["tensorboard", "mlflow"],
                       help="also send the config, per-epoch loss terms, validation metrics, learning rate and "
                            "timings: tensorboard writes DIR/tensorboard (pip install 'fusionrec[track]'), mlflow "
                            "logs a run with DIR as its artifacts (pip install 'fusionrec[mlflow]')")
    train.add_argument("--track-uri", metavar="URI",
                       help="mlflow: the tracking server or store (e.g. http://host:5000, sqlite:///mlflow.db); "
                            "default: MLFLOW_TRACKING_URI, else ./mlruns")
    train.set_defaults(handler=_train)

    tune = sub.add_parser("tune", help="hyper-parameter search on Optuna (TPE, successive halving), selected on "
                          "validation; resumable (DIR/study.db); writes DIR/best.yaml, DIR/trials.csv and .png")
    _run_args(tune)
    tune.add_argument("--space", required=True, metavar="SPACE.yaml",
                      help="config keys and their ranges, e.g. 'training.lr: {float: [0.001, 0.01], log: true}' "
                           "(docs/config.md, 'Searching hyper-parameters')")
    tune.add_argument("--trials", type=int, required=True, help="trials in all (earlier ones in DIR count)")
    tune.add_argument("--time-budget", type=float, metavar="SECONDS",
                      help="start no trial after this many seconds; the running one trains at most until then")
    tune.add_argument("--pruner", choices=("halving", "median", "none"), default="halving",
                      help="stop trials early: successive halving (default), below the median, or none (every "
                           "trial trains to its own early stopping)")
    tune.add_argument("--no-prune", action="store_const", const="none", dest="pruner", help="= --pruner none")
    tune.set_defaults(handler=_tune)

    pretrain = sub.add_parser("pretrain", help="train the text-side sequential model (fusionrec-seq, text only) on "
                              "one or more source datasets in turn and save it for model.init_from")
    pretrain.add_argument("--config", required=True, action="append", metavar="FILE",
                          help="a run config per source dataset, trained in the order given (repeatable); its "
                               "fusionrec-seq hyper-parameters are kept, made text only")
    pretrain.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                          help="override a config key in every config (repeatable)")
    pretrain.add_argument("--out", required=True, help="output folder: OUT/model is what model.init_from names")
    pretrain.add_argument("--quiet", action="store_true", help="no progress bars")
    pretrain.set_defaults(handler=_pretrain)

    compare = sub.add_parser("compare", help="train several models on the same split and compare them")
    _run_args(compare)
    compare.add_argument("--models", required=True,
                         help="comma-separated model names, e.g. pop,itemknn,bpr,lightgcn; a model's own config "
                              "<config folder>/<model>.yaml supplies its tuned settings when it exists")
    compare.set_defaults(handler=_compare)

    ablate = sub.add_parser("ablate", help="FusionRec ablation: each source, each fusion strategy and the KG-loss "
                                           "weight, on one split; writes ablation.md/json/png")
    _run_args(ablate)
    ablate.add_argument("--variants", help="comma-separated groups (sources, knowledge, fusion, alpha) and / or "
                                           "variants (cf, cf+text, cf+kg, cf+text+kg, text, +item-item, cf+item-item, "
                                           "+user, +social, no-item-item, concat, gate, attention, alpha=0, "
                                           "alpha=0.01, alpha=0.1, alpha=1); default: all")
    ablate.add_argument("--seeds", type=_seed_list, metavar="S1,S2,...",
                        help="train every row once per seed and report mean +- sd (default: the config's seed)")
    ablate.add_argument("--dry-run", action="store_true", help="print the plan and stop (reads no data)")
    ablate.add_argument("--no-estimate", action="store_true",
                        help="do not time one epoch of the dearest variant before starting")
    ablate.set_defaults(handler=_ablate)

    encode = sub.add_parser("encode", help="encode the item texts with the configured language model (cached; a "
                                           "second run encodes nothing)")
    encode.add_argument("--config", required=True, help="YAML run config with a 'text' section (see docs/text.md)")
    encode.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    encode.add_argument("--quiet", action="store_true", help="no progress bar")
    encode.set_defaults(handler=_encode)

    rec = sub.add_parser("recommend", help="top-k items for a user from a trained model")
    rec.add_argument("--model", required=True, help="the model folder written by train (DIR/model)")
    rec.add_argument("--user", required=True, action="append", help="raw user id (repeat for several users)")
    rec.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    rec.add_argument("--include-seen", action="store_true", help="do not drop items the user already interacted with")
    rec.add_argument("--json", action="store_true", help="print JSON")
    rec.add_argument("--explain", action="store_true",
                     help="explain each item: source contributions, the history items behind it, knowledge-graph paths")
    rec.set_defaults(handler=_recommend)

    serve = sub.add_parser("serve", help="HTTP service over a trained model (OpenAPI docs at /docs)")
    serve.add_argument("--model", required=True, help="the model folder written by train (DIR/model)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--db", help="SQLite file of interactions added while serving (replayed at startup); "
                                    "without it they are lost on restart")
    serve.add_argument("--api-key", help="key required by write endpoints (default: $FUSIONREC_API_KEY)")
    serve.add_argument("--keyed-reads", action="store_true", help="reads need the API key too")
    serve.add_argument("--access-log", action="store_true",
                       help="log one line per request (off by default: it costs throughput; errors are logged anyway)")
    serve.add_argument("--index", default="auto", choices=["auto", "exact", "faiss-flat", "faiss-ivf", "faiss-hnsw"],
                       help="top-K index over item vectors for dot-product models (bpr, lightgcn, fusionrec, cke, "
                            "kgat): auto = exact up to 100000 items, FAISS HNSW above; faiss-* need faiss-cpu "
                            "(default auto)")
    serve.add_argument("--hnsw-m", type=int, help="links per node of a FAISS HNSW index (default 32)")
    serve.add_argument("--hnsw-ef-search", type=int,
                       help="candidates per search of a FAISS HNSW index: recall and search time grow with it "
                            "(default 128)")
    serve.add_argument("--embeddings-url", help="OpenAI-compatible embeddings server (e.g. http://127.0.0.1:8080/v1) "
                       "that encodes new items' text, for a model trained on such a server's vectors; the model "
                       "folder's own URL is never used")
    serve.add_argument("--embeddings-key-env", metavar="VAR",
                       help="environment variable whose value is sent to --embeddings-url as the Bearer token")
    serve.set_defaults(handler=_serve)

    models = sub.add_parser("models", help="list the available models and their hyper-parameters")
    models.set_defaults(handler=_models)
    return p


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="YAML run config (see configs/ and docs/config.md)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set training.lr=0.01 (repeatable)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _load(args, check_model: bool = False):
    """The run config of ``--config`` and ``--set``; ``check_model``: also the model's name and hyper-parameters
    (an error naming the file or the override, before any data are read)."""
    from fusionrec.config import blame_overrides, load_config

    overrides = list(args.set) + (["training.progress=false"] if args.quiet else [])
    cfg = load_config(args.config, overrides)
    if check_model:
        from fusionrec.jobs.experiment import model_params

        with blame_overrides(args.config, overrides):
            model_params(cfg)
    return cfg


def _data_fetch(args) -> int:
    from fusionrec.data.fetch import fetch_dataset

    print(fetch_dataset(args.name, data_dir=args.data_dir))
    return 0


def _data_info(args) -> int:
    from fusionrec.data.loading import resolve_dataset

    from fusionrec.config import DatasetConfig
    from fusionrec.errors import ConfigError
    from fusionrec.typed_config import build

    kinds = {}
    for item in args.field:
        name, sep, kind = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--field {item!r} must look like NAME=KIND", key="dataset.fields")
        kinds[name.strip()] = kind.strip()
    kinds = build(DatasetConfig, {"fields": kinds}, key="dataset").fields  # checks each kind
    ds = resolve_dataset(args.name_or_path, data_dir=args.data_dir, fields=kinds)
    stats = ds.stats()
    stats["sha256"] = ds.content_hash()
    if args.json:
        print(json.dumps(stats, indent=2))
        return 0
    width = max(len(k) for k in stats)
    for key, value in stats.items():
        if isinstance(value, int):
            value = f"{value:,}"
        elif isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        elif isinstance(value, dict):
            value = ", ".join(f"{k}: {f'{v:,}' if isinstance(v, int) else v}" for k, v in value.items()) or "-"
        print(f"{key:<{width}}  {value}")
    for note in ds.notes:
        print(f"note: {note}")
    return 0


def _data_synth(args) -> int:
    from fusionrec.data.synth_atomic import write_synthetic

    summary = write_synthetic(args.out, args.name, args.users, args.items, args.interactions, text=args.text,
                              kg=args.kg, seed=args.seed, n_clusters=args.clusters, noise=args.noise,
                              social=args.social, homophily=args.homophily)
    print(f"wrote {', '.join(summary.files)} to {summary.directory}: {summary.users:,} users, {summary.items:,} "
          f"items, {summary.interactions:,} interactions, {summary.clusters} clusters, {summary.triples:,} triples"
          + (f", {summary.social_edges:,} social edges" if summary.social_edges else ""))
    print(f"train on it: --set dataset.name={summary.name} --set dataset.path={summary.directory}")
    return 0


def _train(args) -> int:
    from fusionrec.training.distributed import start_from_env, stop

    cfg = _load(args, check_model=True)
    group = start_from_env()  # under torchrun: join the process group (gloo on CPUs, nccl on GPUs)
    try:
        return _train_run(args, cfg, group)
    finally:
        stop()


def _train_run(args, cfg, group) -> int:
    from fusionrec.jobs.experiment import run_experiment

    tracker = None
    if args.track and group.leader:
        from fusionrec.jobs.tracking import make_tracker

        tracker = make_tracker(args.track, args.out, args.track_uri, experiment=cfg.dataset.name)
        tracker.start(cfg.to_dict())
    if not group.leader:  # rank 0 speaks for the run
        cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, progress=False))
    results = {"failed": True}
    try:
        results = run_experiment(cfg, args.out, events_db=args.resume_from_store, resume=args.resume,
                                 observers=(tracker.epoch,) if tracker else (),
                                 log=None if group.leader else (lambda message: None))
    finally:
        if tracker is not None:
            tracker.finish(results)
    if not group.leader:
        return 130 if results["interrupted"] else 0
    print(json.dumps({"out": str(Path(args.out).resolve()), "test": results["metrics"]["test"],
                      **({"interrupted": True} if results["interrupted"] else {})}, indent=2))
    return 130 if results["interrupted"] else 0  # stopped early: scripts that chain runs should not go on


def _tune(args) -> int:
    from fusionrec.jobs.tune import run_tune

    summary = run_tune(args.config, args.space, args.trials, args.out, overrides=list(args.set),
                       time_budget_s=args.time_budget, pruner=args.pruner,
                       log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps({"out": str(Path(args.out).resolve()), "best": summary["best"], "counts": summary["counts"]},
                     indent=2))
    return 0 if summary["best"] is not None else 1


def _pretrain(args) -> int:
    from fusionrec.config import load_config
    from fusionrec.jobs.experiment import model_params
    from fusionrec.jobs.pretrain import run_pretraining, text_only

    overrides = list(args.set) + (["training.progress=false"] if args.quiet else [])
    configs = [load_config(path, overrides) for path in args.config]
    for cfg in configs:  # every stage's hyper-parameters checked before any data are read
        model_params(text_only(cfg, None))
    summary = run_pretraining(configs, args.out, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps({"model": summary["model"], "stages": [{k: s[k] for k in ("dataset", "test")}
                                                            for s in summary["stages"]]}, indent=2))
    return 0


def _compare(args) -> int:
    from fusionrec.jobs.compare import run_comparison

    cfg = _load(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    run_comparison(cfg, models, args.out, config_dir=Path(args.config).parent,
                   overrides=list(args.set) + (["training.progress=false"] if args.quiet else []))
    print((Path(args.out) / "comparison.md").read_text())
    return 0


def _seed_list(text: str) -> list[int]:
    seeds = [s.strip() for s in text.split(",") if s.strip()]
    if not seeds or not all(s.lstrip("-").isdigit() for s in seeds):
        raise argparse.ArgumentTypeError(f"must be whole numbers separated by commas, got {text!r}")
    return [int(s) for s in seeds]


def _ablate(args) -> int:
    from fusionrec.jobs.ablation import run_ablation

    run_ablation(_load(args), args.out, variants=args.variants, dry_run=args.dry_run,
                 echo=lambda text: print(text, flush=True), estimate=not args.no_estimate, seeds=args.seeds)
    if not args.dry_run:
        print((Path(args.out) / "ablation.md").read_text())
    return 0


def _encode(args) -> int:
    from fusionrec.config import load_config
    from fusionrec.knowledge.encode_step import run_encode

    run_encode(load_config(args.config, args.set), progress=not args.quiet)
    return 0


def _recommend(args) -> int:
    from fusionrec.serving.recommender import Recommender

    rec = Recommender.load(args.model)
    lists = rec.recommend(args.user, k=args.k, exclude_seen=not args.include_seen)
    if args.json:
        print(json.dumps({u: [{"item_id": i, "score": s, **({"explanation": rec.explain(u, i)} if args.explain else {})}
                              for i, s in items] for u, items in zip(args.user, lists)}, indent=2))
        return 0
    if args.explain:
        from fusionrec.serving.explain import format_explanation
    for user, items in zip(args.user, lists):
        print(f"user {user} ({rec.model_name}):")
        for rank, (item, score) in enumerate(items, 1):
            if not args.explain:
                print(f"  {rank:>3}. {item:<20} {score:.4f}")
            else:
                why = rec.explain(user, item)
                print(f"  {rank:>3}. {item:<20} {score:.4f}  {why['name'] or ''}".rstrip())
                print("\n".join(format_explanation(why)))
    return 0


def _serve(args) -> int:
    import uvicorn

    from fusionrec.serving.app import create_app, load_recommender
    from fusionrec.serving.settings import ServeSettings

    if args.index.startswith("faiss-"):  # a missing FAISS is a message here, not a failed server startup
        from fusionrec.serving.topk_index import require_faiss

        require_faiss(args.index)
    settings = ServeSettings(host=args.host, port=args.port, db=Path(args.db) if args.db else None,
                             api_key=args.api_key or os.environ.get("FUSIONREC_API_KEY") or None,
                             keyed_reads=args.keyed_reads, index=args.index, hnsw_m=args.hnsw_m,
                             hnsw_ef_search=args.hnsw_ef_search, freeze_gc=True,
                             embeddings_url=args.embeddings_url, embeddings_key_env=args.embeddings_key_env)
    recommender = load_recommender(args.model, settings)  # errors are one line here, not a failed server startup
    # one worker: the model, its fold-in state and the event store live in this process. uvicorn picks uvloop and
    # httptools when installed (the 'serve' extra pulls them in), which cut the HTTP overhead per request by about a third.
    uvicorn.run(create_app(args.model, settings, recommender), host=args.host, port=args.port, log_level="info",
                workers=1, access_log=args.access_log)
    return 0


def _models(args) -> int:
    import dataclasses

    from fusionrec.models.registry import get_model_class, model_names

    for name in model_names():
        cls = get_model_class(name)
        params = ", ".join(f"{f.name}={f.default!r}" for f in dataclasses.fields(cls.Params))
        print(f"{name:<12} {params or '(no hyper-parameters)'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
