"""Several models, each trained with several seeds: mean and spread of the test metrics.

    python bench/seeds.py --configs configs/ml-100k --models lightgcn,fusionrec --seeds 2020,2021,2022 \
        --out bench/out/seeds

By default the split stays fixed (``split.seed`` = 2020, RecBole's) so that only initialisation, negative sampling
and batch order vary. ``--vary-split`` draws a new split per seed as well (``split.seed`` = the seed): the honest
spread on a split whose test segment is small, such as the cold items of a ``cold_items`` split
(``--metrics cold_items/recall@20,...`` reads a segment's test metric). Prints a markdown table (mean +- sample
standard deviation, min-max) and writes seeds.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from fusionrec.util.threads import configure_threads

configure_threads()  # before torch loads: the same thread policy as the fusionrec command

from fusionrec.config import load_config  # noqa: E402
from fusionrec.jobs.experiment import prepare_data, run_experiment  # noqa: E402
from fusionrec.util.provenance import machine, package_versions  # noqa: E402

METRICS = ("ndcg@10", "recall@10", "ndcg@20", "recall@20")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", required=True, help="folder of <model>.yaml")
    p.add_argument("--models", required=True)
    p.add_argument("--seeds", default="2020,2021,2022")
    p.add_argument("--split-seed", type=int, default=2020)
    p.add_argument("--vary-split", action="store_true", help="split.seed = the seed of each run (a new split each)")
    p.add_argument("--metrics", default=",".join(METRICS),
                   help="test metrics to report; SEGMENT/METRIC reads a segment (e.g. cold_items/recall@20)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--model-set", action="append", default=[], metavar="MODEL:KEY=VALUE",
                   help="an override for one of --models only (e.g. a parameter the others lack)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    out = Path(args.out)
    models = args.models.split(",")
    own = {model: [] for model in models}
    for item in args.model_set:
        model, sep, override = item.partition(":")
        if not sep or model not in own:
            p.error(f"--model-set {item!r}: want MODEL:KEY=VALUE with MODEL one of --models ({', '.join(models)})")
        own[model].append(override)
    summary, prepared = {}, {}
    for model in models:
        runs = []
        for seed in seeds:
            split_seed = seed if args.vary_split else args.split_seed
            cfg = load_config(Path(args.configs) / f"{model}.yaml", args.set + own[model]
                              + [f"seed={seed}", f"split.seed={split_seed}", "training.progress=false"])
            key = (split_seed, cfg.split.method, cfg.split.cold_share, tuple(cfg.split.ratios))
            if key not in prepared:
                prepared[key] = prepare_data(cfg)
            r = run_experiment(cfg, out / model / f"seed-{seed}", prepared=prepared[key], log=lambda m: None)
            runs.append({"seed": seed, "split_seed": split_seed, **{m: _test_metric(r, m) for m in metrics},
                         f"valid_{cfg.training.valid_metric}": r["metrics"]["valid"].get(cfg.training.valid_metric), "epochs": r["timings"]["epochs"],
                         "s_per_epoch": r["timings"]["epoch_s_median"]})
            print(json.dumps({"model": model, **runs[-1]}), flush=True)
        summary[model] = {"runs": runs, **{m: _stats([x[m] for x in runs]) for m in metrics}}
    lines = ["| model | " + " | ".join(f"{m} mean ± sd (min-max)" for m in metrics) + " | s/epoch |",
             "|---|" + "---|" * (len(metrics) + 1)]
    for model, s in summary.items():
        cells = [f"{s[m]['mean']:.4f} ± {s[m]['sd']:.4f} ({s[m]['min']:.4f}-{s[m]['max']:.4f})" for m in metrics]
        spe = statistics.median(r["s_per_epoch"] for r in s["runs"] if r["s_per_epoch"] is not None) \
            if any(r["s_per_epoch"] for r in s["runs"]) else None
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {spe if spe is None else round(spe, 3)} |")
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps({"command": " ".join(sys.argv), "seeds": seeds,
                                                "split_seed": "per seed" if args.vary_split else args.split_seed,
                                                "machine": machine(), "versions": package_versions(),
                                                "summary": summary}, indent=2))
    (out / "seeds.md").write_text(table + "\n")
    return 0


def _test_metric(results: dict, name: str) -> float:
    """``ndcg@10`` from the overall test metrics, ``cold_items/recall@20`` from a segment's."""
    segment, _, metric = name.rpartition("/")
    table = results["segments"].get(segment) if segment else results["metrics"]["test"]
    if table is None or metric not in table:
        raise SystemExit(f"--metrics: no test metric {name!r} (segments: {sorted(results['segments'])})")
    return table[metric]


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


if __name__ == "__main__":
    sys.exit(main())
