"""What a cold path's new-item exposure costs the warm items, split by split, against content-knn.

For FusionRec runs with ``cold_path: neighbours`` trained by ``bench/seeds.py --vary-split`` on ``cold_items`` splits,
each model is reloaded and its test lists scored twice: as saved (the cold scale chosen on validation, or the
configured one) and with every cold item scored 0 (scale 0: the warm model's lists, the same trained weights). Beside
them, content-knn's cold-item Recall@20 on the same split from its own results.json:

    .venv/bin/python bench/cold_warm_price.py --runs bench/out/cold-choice-ml100k --model fusionrec-cold-neighbours \\
        --knn-runs bench/out/cold-choice-ml100k --knn-model content-knn-cold --out bench/out/cold-choice-ml100k.json

Per split: the chosen scale, cold Recall@20 of both models and their ratio, warm NDCG@10 as saved and at scale 0
and their ratio, and every scale of the validation grid on test (the price curve: reported, never used to choose). The summary gives the mean and sd over splits and whether each of the knowledge issue's cold
conditions holds (mean ratio >= 1.5, no split below content-knn, warm NDCG@10 within 2 %).
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

from fusionrec.artifacts import load_artifact  # noqa: E402
from fusionrec.config import config_from_dict  # noqa: E402
from fusionrec.evaluation.evaluator import Evaluator  # noqa: E402
from fusionrec.jobs.experiment import prepare_data, use_test_history  # noqa: E402
from fusionrec.util import atomic_io  # noqa: E402
from fusionrec.util.provenance import machine, package_versions  # noqa: E402


def test_lists(model, prepared, evaluator: Evaluator) -> dict:
    """cold_items/recall@20 and warm_items/ndcg@10 of ``model`` on the split's test targets, as the run scored them."""
    split = prepared.split
    segments = {"cold_items": split.cold_items, "warm_items": ~split.cold_items}
    result = evaluator.evaluate(model.score_all, split.test, split.exclude("test"), segments=segments)
    return {"cold recall@20": result["cold_items"]["recall@20"], "warm ndcg@10": result["warm_items"]["ndcg@10"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", required=True, help="the --out folder of bench/seeds.py --vary-split (FusionRec)")
    p.add_argument("--model", required=True, help="the FusionRec model's name in --runs")
    p.add_argument("--knn-runs", required=True, help="the --out folder holding content-knn's runs")
    p.add_argument("--knn-model", default="content-knn")
    p.add_argument("--seeds", default="2020,2021,2022,2023,2024")
    p.add_argument("--out", help="JSON report")
    args = p.parse_args(argv)
    evaluator = Evaluator(ks=(10, 20), metrics=("recall", "ndcg"))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        run = Path(args.runs) / args.model / f"seed-{seed}"
        results = json.loads((run / "results.json").read_text())
        knn = json.loads((Path(args.knn_runs) / args.knn_model / f"seed-{seed}" / "results.json").read_text())
        cfg = config_from_dict(results["config"])
        prepared = prepare_data(cfg, log=lambda m: None)
        model = load_artifact(run / "model").model.eval()
        use_test_history(model, prepared.split, lambda m: None)
        grid = model.validation_grid()
        if not grid or "cold_scale" not in grid[0]:
            raise SystemExit(f"{run}: not a FusionRec with cold_path neighbours and cold_warm_tolerance")
        chosen = model.chosen()["cold_scale"]
        with torch.no_grad():
            saved = test_lists(model, prepared, evaluator)
            frontier = {}  # every scale of the grid on test: reported beside the choice, never used to make it
            for setting in grid:
                model.choose(setting)
                frontier[setting["cold_scale"]] = test_lists(model, prepared, evaluator)
            model.choose({"cold_scale": 0.0})
            silent = test_lists(model, prepared, evaluator)
        knn_cold = knn["segments"]["cold_items"]["recall@20"]
        row = {"seed": seed, "chosen scale": chosen, "fusionrec cold R@20": saved["cold recall@20"],
               "content-knn cold R@20": knn_cold, "cold ratio": saved["cold recall@20"] / knn_cold,
               "warm N@10": saved["warm ndcg@10"], "warm N@10 at scale 0": silent["warm ndcg@10"],
               "warm ratio": saved["warm ndcg@10"] / silent["warm ndcg@10"],
               "test frontier": {scale: {"cold ratio": v["cold recall@20"] / knn_cold,
                                         "warm ratio": v["warm ndcg@10"] / silent["warm ndcg@10"]}
                                 for scale, v in sorted(frontier.items())},
               "recorded on validation": results.get("chosen_on_validation")}
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                          if k not in ("recorded on validation", "test frontier")}), flush=True)
    keys = ["chosen scale", "fusionrec cold R@20", "content-knn cold R@20", "cold ratio", "warm N@10",
            "warm N@10 at scale 0", "warm ratio"]
    summary = {k: {"mean": statistics.fmean(r[k] for r in rows),
                   "sd": statistics.stdev(r[k] for r in rows) if len(rows) > 1 else 0.0} for k in keys}
    mean_ratio = summary["fusionrec cold R@20"]["mean"] / summary["content-knn cold R@20"]["mean"]
    verdict = {"cold R@20 mean ratio": mean_ratio, "mean ratio >= 1.5": mean_ratio >= 1.5,
               "no split below content-knn": all(r["cold ratio"] >= 1.0 for r in rows),
               "warm N@10 within 2 % on every split": all(r["warm ratio"] >= 0.98 for r in rows),
               "warm N@10 within 2 % on the mean": summary["warm N@10"]["mean"]
               >= 0.98 * summary["warm N@10 at scale 0"]["mean"]}
    scales = sorted(rows[0]["test frontier"])
    frontier = {f"{scale:g}": {key: statistics.fmean(r["test frontier"][scale][key] for r in rows)
                               for key in ("cold ratio", "warm ratio")} for scale in scales}
    verdict["test frontier (mean over splits)"] = frontier
    print(json.dumps({"summary": summary, "verdict": verdict}, indent=2))
    if args.out:
        atomic_io.write_json(args.out, {"command": " ".join([sys.executable, *sys.argv]), "rows": rows,
                                        "summary": summary, "verdict": verdict, "machine": machine(),
                                        "versions": package_versions()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
