"""social-lightgcn against lightgcn on synthetic data with a planted social signal and on its control.

    .venv/bin/python bench/social_synth.py --out bench/out/social-synth [--users 3000 --items 1500
        --interactions 30000 --friends 8 --seeds 2020,2021,2022]

Writes two datasets with ``fusionrec data synth`` (same users, items and interactions; ``--social FRIENDS`` with
``--homophily 0.8``, the planted signal, and ``--homophily 0``, the control whose friends say nothing about taste),
then trains ``configs/ml-100k/lightgcn.yaml`` as shipped on each, as ``lightgcn`` and as ``social-lightgcn``
(``social_weight`` at its default 0.5; nothing tuned for either model), one run per seed on the same split, and
prints test NDCG@10 / Recall@10 as mean +- sample sd with the valid NDCG@10, plus seeds.json-style output.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from fusionrec.util.threads import configure_threads

configure_threads()

from fusionrec.config import load_config  # noqa: E402
from fusionrec.data.synth_atomic import write_synthetic  # noqa: E402
from fusionrec.jobs.experiment import run_experiment  # noqa: E402
from fusionrec.util.provenance import machine, package_versions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--items", type=int, default=1500)
    p.add_argument("--interactions", type=int, default=30000)
    p.add_argument("--friends", type=float, default=8.0)
    p.add_argument("--seeds", default="2020,2021,2022")
    args = p.parse_args(argv)
    out = Path(args.out)
    rows = []
    for graph, homophily in (("planted", 0.8), ("control", 0.0)):
        data = out / "data" / graph
        write_synthetic(data, "s", args.users, args.items, args.interactions, social=args.friends,
                        homophily=homophily, seed=0)
        for model in ("lightgcn", "social-lightgcn"):
            runs = []
            for seed in [int(s) for s in args.seeds.split(",")]:
                cfg = load_config(ROOT / "configs" / "ml-100k" / "lightgcn.yaml", [
                    "dataset.name=s", f"dataset.path={data}", f"model.name={model}", f"seed={seed}",
                    "split.seed=2020", "training.progress=false"])
                res = run_experiment(cfg, out / "runs" / f"{graph}-{model}-{seed}", log=lambda *_: None)
                runs.append({"seed": seed, "valid": res["metrics"]["valid"]["ndcg@10"],
                             "ndcg@10": res["metrics"]["test"]["ndcg@10"],
                             "recall@10": res["metrics"]["test"]["recall@10"]})
                print(f"{graph} {model} seed {seed}: {runs[-1]}", file=sys.stderr, flush=True)
            rows.append({"graph": graph, "model": model, "runs": runs})
    print(f"command: bench/social_synth.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"machine: {machine()}; torch {package_versions().get('torch')}")
    print("\n| friends | model | valid N@10 | test N@10 | test R@10 |\n|---|---|---:|---:|---:|")
    for row in rows:
        cells = [f"{statistics.mean(r[k] for r in row['runs']):.4f} +- "
                 f"{statistics.stdev([r[k] for r in row['runs']]) if len(row['runs']) > 1 else 0:.4f}"
                 for k in ("valid", "ndcg@10", "recall@10")]
        print(f"| {row['graph']} | {row['model']} | " + " | ".join(cells) + " |")
    (out / "social_synth.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
