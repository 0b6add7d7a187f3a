"""``make demo``: fetch MovieLens-100k, train and compare models under RecBole's protocol, show recommendations.

Popularity, EASE (closed form, with the item text in its Gram matrix), LightGCN and FusionRec (collaborative signal
fused with the MiniLM embedding of each item's text; the text is encoded once and cached) are trained on the same
split; the comparison and three users' FusionRec
recommendations are printed.

Run as ``python -m fusionrec.jobs.demo --out runs/demo``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_MODELS = ["pop", "ease", "lightgcn", "fusionrec"]


def _configs_dir() -> Path:
    here = Path(__file__).resolve().parents[3] / "configs" / "ml-100k"  # src/fusionrec/jobs/demo.py -> the checkout
    if not here.is_dir():
        raise SystemExit(f"configs not found at {here}: run the demo from a checkout of the fusionrec repository")
    return here


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fusionrec.jobs.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--models", default=",".join(DEMO_MODELS))
    args = p.parse_args(argv)

    from fusionrec.util.threads import configure_threads

    configure_threads()  # before torch loads, as the fusionrec command does
    from fusionrec.jobs.compare import run_comparison
    from fusionrec.config import load_config
    from fusionrec.data.fetch import fetch_dataset
    from fusionrec.serving.recommender import Recommender

    print(f"dataset: {fetch_dataset('ml-100k')}", flush=True)
    configs = _configs_dir()
    models = args.models.split(",")
    cfg = load_config(configs / f"{models[-1]}.yaml")
    run_comparison(cfg, models, args.out, config_dir=configs)
    print()
    print((Path(args.out) / "comparison.md").read_text())
    rec = Recommender.load(Path(args.out) / models[-1] / "model")
    titles = _titles()
    users = rec.users.raws(range(3))
    print(f"Example recommendations ({models[-1]}, seen items excluded):")
    for user, items in zip(users, rec.recommend(users, k=5)):
        print(f"  user {user}:")
        for item, score in items:
            print(f"    {item:>5}  {titles.get(item, ''):<45} {score:.3f}")
    print(f"\nresults, models and the chart are in {Path(args.out).resolve()}")
    return 0


def _titles() -> dict[str, str]:
    from fusionrec.data.fetch import fetch_dataset

    item_file = Path(fetch_dataset("ml-100k", progress=False)) / "ml-100k.item"
    out = {}
    with open(item_file, encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3:
                out[parts[0]] = f"{parts[1]} ({parts[2]})"
    return out


if __name__ == "__main__":
    sys.exit(main())
