"""Rating prediction on MovieLens-100k side by side with a peer: fusionrec's biased-mf and FusionRec's rating head
against Surprise's SVD, on one split (RecBole's random 8:1:1 of the 1-5 ratings), RMSE / MAE on test, three seeds.

    .venv/bin/python bench/rating_peer.py --out bench/out/rating-peer [--trials 20] [--peer-python PY]

1. The split of configs/ml-100k/biased-mf.yaml is written as train/valid/test TSVs (raw ids) for the peer.
2. Peer: bench/surprise_svd.py under ``--peer-python`` (a venv with scikit-surprise): ``--trials`` random settings
   selected on valid RMSE, the best refitted per seed.
3. fusionrec: ``fusionrec tune`` of biased-mf with configs/ml-100k/spaces/biased-mf.yaml and the same number of
   trials (selection on valid rmse), then the best config trained per seed.
4. FusionRec's rating head (configs/ml-100k/fusionrec.yaml as tuned for ranking, ``rating_head: true``): the mse loss
   alone, and multi-task (its ranking loss + the rating term, early stopping on valid NDCG@10): test RMSE and NDCG@10.

Writes OUT/summary.md and OUT/summary.json (commands, versions, machine, every figure).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fusionrec.util.threads import configure_threads

configure_threads()

from fusionrec.config import load_config  # noqa: E402
from fusionrec.jobs.experiment import prepare_data, run_experiment  # noqa: E402
from fusionrec.jobs.tune import run_tune  # noqa: E402
from fusionrec.util.provenance import machine, package_versions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MF = ROOT / "configs" / "ml-100k" / "biased-mf.yaml"
SPACE = ROOT / "configs" / "ml-100k" / "spaces" / "biased-mf.yaml"
FUSIONREC = ROOT / "configs" / "ml-100k" / "fusionrec.yaml"


def write_split(prepared, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    users, items = prepared.dataset.users.to_list(), prepared.dataset.items.to_list()
    for part in ("train", "valid", "test"):
        inter = getattr(prepared.split, part)
        with open(folder / f"{part}.tsv", "w") as f:
            for u, i, r in zip(inter.users.tolist(), inter.items.tolist(), inter.ratings.tolist()):
                f.write(f"{users[u]}\t{items[i]}\t{r:g}\n")


def spread(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "runs": values}


def seeds_of(config, overrides: list[str], seeds: list[int], out: Path, prepared, log) -> dict:
    runs = []
    for seed in seeds:
        cfg = load_config(config, [*overrides, f"seed={seed}", "training.progress=false"])
        runs.append(run_experiment(cfg, out / f"seed-{seed}", prepared=prepared, log=log))
    test = [r["metrics"]["test"] for r in runs]
    return {"rmse": spread([t["rmse"] for t in test]), "mae": spread([t["mae"] for t in test]),
            "ndcg@10": spread([t["ndcg@10"] for t in test]),
            "s_per_epoch": statistics.median(r["timings"]["epoch_s_median"] for r in runs)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "rating-peer")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seeds", default="2020,2021,2022")
    p.add_argument("--peer-python", default="/work/surprise-venv/bin/python")
    p.add_argument("--skip", default="", help="comma list of parts to skip: peer,mf,head")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    quiet = lambda message: None  # noqa: E731
    summary = {"command": " ".join(sys.argv), "versions": package_versions(), "machine": machine(),
               "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    prepared = prepare_data(load_config(MF), log)
    write_split(prepared, out / "split")
    if "peer" not in skip:
        t0 = time.perf_counter()
        cmd = [args.peer_python, str(ROOT / "bench" / "surprise_svd.py"), "--data", str(out / "split"),
               "--trials", str(args.trials), "--seeds", args.seeds, "--out", str(out / "surprise.json")]
        subprocess.run(cmd, check=True)
        summary["peer"] = {**json.loads((out / "surprise.json").read_text()), "command": " ".join(cmd),
                           "wall_s": time.perf_counter() - t0}
        summary["peer"].pop("trials")
    if "mf" not in skip:
        t0 = time.perf_counter()
        tuned = run_tune(MF, SPACE, args.trials, out / "tune-mf", log=log)
        summary["biased_mf"] = {"tune": {"best": tuned["best"], "counts": tuned["counts"],
                                         "wall_s": time.perf_counter() - t0},
                                **seeds_of(out / "tune-mf" / "best.yaml", [], seeds, out / "biased-mf", prepared,
                                           quiet)}
    if "head" not in skip:
        # as measured: before the shipped config took the item-item source on
        head = ["model.params.rating_head=true", "model.params.item_item=false"]
        summary["fusionrec_rating_only"] = seeds_of(
            FUSIONREC, [*head, "training.loss=mse", "training.valid_metric=rmse"], seeds, out / "fusionrec-mse",
            prepared, quiet)
        summary["fusionrec_multitask"] = seeds_of(FUSIONREC, head, seeds, out / "fusionrec-multitask", prepared,
                                                  quiet)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    lines = ["| model | test RMSE | test MAE | test NDCG@10 |", "|---|---:|---:|---:|"]
    if "peer" in summary:
        peer = summary["peer"]
        lines.append(f"| Surprise SVD (tuned, {args.trials} trials) | {peer['test_rmse_mean']:.4f} +- "
                     f"{peer['test_rmse_sd']:.4f} | {peer['test_mae_mean']:.4f} | - |")
    for key, label in (("biased_mf", f"fusionrec biased-mf (tuned, {args.trials} trials)"),
                       ("fusionrec_rating_only", "FusionRec rating head, mse only"),
                       ("fusionrec_multitask", "FusionRec ranking + rating (multi-task)")):
        if summary.get(key):
            s = summary[key]
            lines.append(f"| {label} | {s['rmse']['mean']:.4f} +- {s['rmse']['sd']:.4f} | {s['mae']['mean']:.4f} | "
                         f"{s['ndcg@10']['mean']:.4f} +- {s['ndcg@10']['sd']:.4f} |")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
