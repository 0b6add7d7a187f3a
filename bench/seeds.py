"""Several models, each trained with several seeds on ONE split (RecBole's, seed 2020): mean and spread of the test
metrics.

    python bench/seeds.py --configs configs/ml-100k --models lightgcn,fusionrec --seeds 2020,2021,2022 \
        --out bench/out/seeds

The split stays fixed (``split.seed`` = 2020) so that only initialisation, negative sampling and batch order vary.
Prints a markdown table (mean +- sample standard deviation, min-max) and writes seeds.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from fusionrec.threads import configure_threads

configure_threads()  # before torch loads: the same thread policy as the fusionrec command

from fusionrec.config import load_config  # noqa: E402
from fusionrec.experiment import prepare_data, run_experiment  # noqa: E402

METRICS = ("ndcg@10", "recall@10", "ndcg@20", "recall@20")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", required=True, help="folder of <model>.yaml")
    p.add_argument("--models", required=True)
    p.add_argument("--seeds", default="2020,2021,2022")
    p.add_argument("--split-seed", type=int, default=2020)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    summary, prepared = {}, None
    for model in args.models.split(","):
        runs = []
        for seed in seeds:
            cfg = load_config(Path(args.configs) / f"{model}.yaml",
                              args.set + [f"seed={seed}", f"split.seed={args.split_seed}", "training.progress=false"])
            prepared = prepared or prepare_data(cfg)
            r = run_experiment(cfg, out / model / f"seed-{seed}", prepared=prepared, log=lambda m: None)
            runs.append({"seed": seed, **{m: r["metrics"]["test"][m] for m in METRICS},
                         "valid_ndcg@10": r["metrics"]["valid"].get("ndcg@10"), "epochs": r["timings"]["epochs"],
                         "s_per_epoch": r["timings"]["epoch_s_median"]})
            print(json.dumps({"model": model, **runs[-1]}), flush=True)
        summary[model] = {"runs": runs, **{m: _stats([x[m] for x in runs]) for m in METRICS}}
    lines = ["| model | " + " | ".join(f"{m} mean ± sd (min-max)" for m in METRICS) + " | s/epoch |",
             "|---|" + "---|" * (len(METRICS) + 1)]
    for model, s in summary.items():
        cells = [f"{s[m]['mean']:.4f} ± {s[m]['sd']:.4f} ({s[m]['min']:.4f}-{s[m]['max']:.4f})" for m in METRICS]
        spe = statistics.median(r["s_per_epoch"] for r in s["runs"] if r["s_per_epoch"] is not None) \
            if any(r["s_per_epoch"] for r in s["runs"]) else None
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {spe if spe is None else round(spe, 3)} |")
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps({"command": " ".join(sys.argv), "seeds": seeds,
                                                "split_seed": args.split_seed, "summary": summary}, indent=2))
    (out / "seeds.md").write_text(table + "\n")
    return 0


def _stats(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


if __name__ == "__main__":
    sys.exit(main())
