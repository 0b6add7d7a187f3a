"""Hyper-parameter sweep for one model config: every combination of the given values, selected on VALIDATION.

    python bench/sweep.py --config configs/ml-100k/bpr.yaml --grid training.lr=0.001,0.002,0.005 \
        --grid model.params.embedding_size=64 --out bench/out/sweep-bpr

Prints one row per combination (valid and test NDCG@10 / Recall@10, epochs, s/epoch) and marks the combination with
the best valid metric: that one, not the best test score, is what a shipped config may take. Writes sweep.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from fusionrec.util.threads import configure_threads

configure_threads()  # before torch loads: the same thread policy as the fusionrec command

from fusionrec.config import load_config  # noqa: E402
from fusionrec.jobs.experiment import prepare_data, run_experiment  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="values to try (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed overrides")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    keys, values = [], []
    for g in args.grid:
        k, vs = g.split("=", 1)
        keys.append(k)
        values.append(vs.split(","))
    base = load_config(args.config, args.set + ["training.progress=false"])
    prepared = prepare_data(base)
    rows = []
    for combo in itertools.product(*values):
        overrides = args.set + ["training.progress=false"] + [f"{k}={v}" for k, v in zip(keys, combo)]
        cfg = load_config(args.config, overrides)
        tag = "_".join(f"{k.split('.')[-1]}-{v}" for k, v in zip(keys, combo)) or "default"
        r = run_experiment(cfg, Path(args.out) / tag, prepared=prepared, log=lambda m: None)
        metric = cfg.training.valid_metric
        rows.append({"combo": dict(zip(keys, combo)), "valid": r["metrics"]["valid"].get(metric),
                     "test_ndcg@10": r["metrics"]["test"]["ndcg@10"], "test_recall@10": r["metrics"]["test"]["recall@10"],
                     "epochs": r["timings"]["epochs"], "s_per_epoch": r["timings"]["epoch_s_median"]})
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: r["valid"] if r["valid"] is not None else -1)
    print(f"best on valid {base.training.valid_metric}: {best['combo']} -> test ndcg@10 {best['test_ndcg@10']:.4f}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "sweep.json").write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows,
                                                           "best": best}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
