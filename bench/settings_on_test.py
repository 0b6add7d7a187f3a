"""Test metrics of a saved model at every setting of its validation grid (the ValidationTuned capability), beside
the validation scores the run chose by, for reporting only: the choice itself was made on validation.

    .venv/bin/python bench/settings_on_test.py --config configs/amazon-scientific/fusionrec-seq.yaml \
        --runs bench/out/sequential/seeds-fseq/fusionrec-seq/seed-*

Each run folder holds results.json (its config, and ``chosen_on_validation``) and model/ (which already reads the
test history, train + valid under ``split.test_history: train_valid``). A run made with ``evaluation.exclude_seen:
false`` is scored as it was, every item ranked. Prints one row per run and setting.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fusionrec.util.threads import configure_threads

configure_threads()

import torch  # noqa: E402

from fusionrec.artifacts import load_artifact  # noqa: E402
from fusionrec.config import load_config  # noqa: E402
from fusionrec.evaluation.evaluator import Evaluator  # noqa: E402
from fusionrec.jobs.experiment import prepare_data  # noqa: E402
from fusionrec.models.capabilities import ValidationTuned  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="the run config (for the data and split)")
    p.add_argument("--runs", nargs="+", required=True, help="run folders (DIR of fusionrec train --out DIR)")
    p.add_argument("--metric", default="ndcg@10")
    args = p.parse_args(argv)
    prepared = prepare_data(load_config(args.config), lambda _: None)
    split = prepared.split
    k = int(args.metric.split("@")[1])
    evaluator = Evaluator(ks=(k,), metrics=(args.metric.split("@")[0],))
    print(f"| run | setting | valid {args.metric} | test {args.metric} | chosen |")
    print("|---|---|---:|---:|---|")
    for run in args.runs:
        results = json.loads((Path(run) / "results.json").read_text())
        model = load_artifact(Path(run) / "model").model
        if not isinstance(model, ValidationTuned):
            raise SystemExit(f"{run}: {model.name} has no settings chosen on validation")
        choice = results["chosen_on_validation"]
        seen = split.exclude("test") if results["config"]["evaluation"].get("exclude_seen", True) else None
        for tried in choice["tried"]:
            model.choose(tried["setting"])
            with torch.no_grad():
                test = evaluator.evaluate(model.score_all, split.test, seen)[args.metric]
            chosen = "yes" if tried["setting"] == choice["chosen"] else ""
            print(f"| {Path(run).name} | {tried['setting']} | {tried[choice['metric']]:.4f} | {float(test):.4f} | "
                  f"{chosen} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
