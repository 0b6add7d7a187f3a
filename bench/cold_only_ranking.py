"""Cold items ranked among themselves: how good is a model's ordering of the held-out items, apart from how many of
them it lets into a list that also holds the warm items?

On a ``cold_items`` split, ``segments.cold_items`` of results.json ranks every item, warm and cold together, so a
model gains cold Recall@20 both by ordering the cold items well and by scoring them high against warm items
(exposure). This script reloads models that ``bench/seeds.py --vary-split`` trained and re-ranks each user's test
candidates with every warm item removed, so only the ordering counts:

    .venv/bin/python bench/cold_only_ranking.py --runs bench/out/cold-splits \\
        --models fusionrec-cold,content-knn-cold --seeds 2020,2021,2022,2023,2024 --out bench/out/cold-only.json

``--runs``: the ``--out`` folder of that seeds.py run (``<runs>/<model>/seed-<seed>/model`` and ``results.json``); each
run's split is rebuilt from the config saved in its results.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from fusionrec.util.threads import configure_threads

configure_threads()

import torch  # noqa: E402

from fusionrec.util import atomic_io  # noqa: E402
from fusionrec.artifacts import load_artifact  # noqa: E402
from fusionrec.config import config_from_dict  # noqa: E402
from fusionrec.evaluation.evaluator import Evaluator  # noqa: E402
from fusionrec.jobs.experiment import prepare_data  # noqa: E402
from fusionrec.util.provenance import machine, package_versions  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, help="the --out folder of bench/seeds.py --vary-split on a cold split")
    p.add_argument("--models", required=True)
    p.add_argument("--seeds", default="2020,2021,2022,2023,2024")
    p.add_argument("--out", help="JSON report")
    args = p.parse_args(argv)
    evaluator = Evaluator(ks=(10, 20), metrics=("recall", "ndcg"))
    models = args.models.split(",")
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        row, prepared = {"seed": seed}, None
        for name in models:
            run = Path(args.runs) / name / f"seed-{seed}"
            cfg = config_from_dict(json.loads((run / "results.json").read_text())["config"])
            prepared = prepared or prepare_data(cfg, log=lambda m: None)
            split = prepared.split
            if split.cold_items is None:
                raise SystemExit(f"{run}: not a cold_items split")
            warm = torch.from_numpy(~split.cold_items)
            model = load_artifact(run / "model").model

            def cold_only(users: torch.Tensor, model=model) -> torch.Tensor:
                with torch.no_grad():
                    scores = model.score_all(users).clone()
                scores[:, warm] = float("-inf")  # warm items are never candidates
                return scores

            result = evaluator.evaluate(cold_only, split.test, split.exclude("test"),
                                        segments={"cold_items": split.cold_items})["cold_items"]
            row[name] = {k: round(v, 4) for k, v in result.items()}
        rows.append(row)
        print(json.dumps(row), flush=True)
    summary = {name: {m: {"mean": statistics.fmean(r[name][m] for r in rows),
                          "sd": statistics.stdev(r[name][m] for r in rows) if len(rows) > 1 else 0.0}
                      for m in ("recall@20", "ndcg@10")} for name in models}
    for name, s in summary.items():
        print(f"{name}: cold-only Recall@20 {s['recall@20']['mean']:.4f} ± {s['recall@20']['sd']:.4f}, "
              f"NDCG@10 {s['ndcg@10']['mean']:.4f} ± {s['ndcg@10']['sd']:.4f}")
    if args.out:
        atomic_io.write_json(args.out, {"command": " ".join([sys.executable, *sys.argv]), "rows": rows,
                                        "summary": summary, "machine": machine(), "versions": package_versions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
