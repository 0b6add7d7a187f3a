"""The rating-prediction peer: Surprise's SVD (biased MF trained by SGD) on fusionrec's own split, run under the
interpreter of a separate venv that has scikit-surprise (never a fusionrec dependency).

    /work/surprise-venv/bin/python bench/surprise_svd.py --data DIR --trials 20 --seeds 2020,2021,2022 --out OUT.json

``DIR`` holds ``train.tsv``, ``valid.tsv``, ``test.tsv`` (user, item, rating; written by bench/rating_peer.py).
``--trials`` settings are drawn at random (seeded) from the space below and each is fitted on train and scored on
valid RMSE; the best is refitted with each seed and scored on test (RMSE, MAE). The same trial count as fusionrec's
``tune`` run: the same tuning effort.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time


SPACE = {  # Surprise's own defaults: n_factors 100, n_epochs 20, lr_all .005, reg_all .02
    "n_factors": [16, 32, 50, 100, 150, 200],
    "n_epochs": [20, 30, 50, 80],
    "lr_all": (0.001, 0.02),  # log-uniform
    "reg_all": (0.005, 0.2),  # log-uniform
}


def draw(rng: random.Random) -> dict:
    def log_uniform(lo, hi):
        return math.exp(rng.uniform(math.log(lo), math.log(hi)))

    return {"n_factors": rng.choice(SPACE["n_factors"]), "n_epochs": rng.choice(SPACE["n_epochs"]),
            "lr_all": log_uniform(*SPACE["lr_all"]), "reg_all": log_uniform(*SPACE["reg_all"])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--seeds", default="2020,2021,2022")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    import numpy as np
    from surprise import SVD, Dataset, Reader, __version__, accuracy

    def read(name):
        rows = []
        with open(f"{args.data}/{name}.tsv") as f:
            for line in f:
                u, i, r = line.rstrip("\n").split("\t")
                rows.append((u, i, float(r)))
        return rows

    train_rows, valid_rows, test_rows = read("train"), read("valid"), read("test")
    low = min(r for *_, r in train_rows)
    high = max(r for *_, r in train_rows)
    reader = Reader(line_format="user item rating", sep="\t", rating_scale=(low, high))
    trainset = Dataset.load_from_file(f"{args.data}/train.tsv", reader).build_full_trainset()

    def fit(setting, seed):
        algo = SVD(random_state=seed, **setting)
        algo.fit(trainset)
        return algo

    rng = random.Random(0)
    trials, t0 = [], time.perf_counter()
    for k in range(args.trials):
        setting = draw(rng)
        algo = fit(setting, int(args.seeds.split(",")[0]))
        rmse = accuracy.rmse(algo.test(valid_rows), verbose=False)
        trials.append({"trial": k, **setting, "valid_rmse": rmse})
    search_s = time.perf_counter() - t0
    best = min(trials, key=lambda t: t["valid_rmse"])
    setting = {k: best[k] for k in ("n_factors", "n_epochs", "lr_all", "reg_all")}
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        t1 = time.perf_counter()
        algo = fit(setting, seed)
        fit_s = time.perf_counter() - t1
        pred = algo.test(test_rows)
        runs.append({"seed": seed, "test_rmse": accuracy.rmse(pred, verbose=False),
                     "test_mae": accuracy.mae(pred, verbose=False),
                     "valid_rmse": accuracy.rmse(algo.test(valid_rows), verbose=False), "fit_s": fit_s})
    out = {"peer": f"scikit-surprise {__version__} SVD", "space": {k: list(v) if isinstance(v, tuple) else v
                                                                  for k, v in SPACE.items()},
           "trials": trials, "search_s": search_s, "best": setting, "runs": runs,
           "test_rmse_mean": float(np.mean([r["test_rmse"] for r in runs])),
           "test_rmse_sd": float(np.std([r["test_rmse"] for r in runs], ddof=1)) if len(runs) > 1 else 0.0,
           "test_mae_mean": float(np.mean([r["test_mae"] for r in runs])),
           "rows": {"train": len(train_rows), "valid": len(valid_rows), "test": len(test_rows)}}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(json.dumps({k: out[k] for k in ("peer", "best", "test_rmse_mean", "test_rmse_sd", "test_mae_mean")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
