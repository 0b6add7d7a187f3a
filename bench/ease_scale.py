"""sparse-ease at catalogue scale (fit seconds, peak RSS) beside full EASE's estimate and refusal; or, with --ml100k,
EASE vs sparse-ease valid/test NDCG@10 on MovieLens-100k.

    .venv/bin/python bench/ease_scale.py --items 100000 --out bench/out/ease-scale-100k.json      # the lead, alone
    .venv/bin/python bench/ease_scale.py --items 3000 --interactions 30000                       # smoke run
    .venv/bin/python bench/ease_scale.py --ml100k --k 50,100,200 --out bench/out/ease-vs-sparse-ml100k

The synthetic matrix has planted clusters (``--cluster-items`` items each): every user draws ``--per-user``
distinct items, a share ``--noise`` of them uniformly from the catalogue and the rest from one cluster, with a
Zipf-like popularity inside the cluster, so that neighbourhoods exist. Peak RSS is the process's ru_maxrss.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
import time
from pathlib import Path

from fusionrec.util.threads import configure_threads

configure_threads()

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from fusionrec.util import atomic_io  # noqa: E402
from fusionrec.errors import ConfigError  # noqa: E402
from fusionrec.models.base import ModelInputs  # noqa: E402
from fusionrec.models.ease import EASE, ease_cost  # noqa: E402
from fusionrec.models.sparse_ease import SparseEASE, SparseEASEParams  # noqa: E402
from fusionrec.util.provenance import machine, package_versions  # noqa: E402


def planted_matrix(n_items: int, n_interactions: int, per_user: int, cluster_items: int, noise: float,
                   seed: int) -> sp.csr_matrix:
    """Binary (n_users, n_items) CSR, n_users = n_interactions // per_user, built in O(interactions)."""
    rng = np.random.default_rng(seed)
    n_users = max(1, n_interactions // per_user)
    n_clusters = max(1, n_items // cluster_items)
    item_order = rng.permutation(n_items)  # cluster c holds item_order[c * cluster_items:(c + 1) * cluster_items]
    weights = 1.0 / np.arange(1, cluster_items + 1) ** 0.8
    weights /= weights.sum()
    user_cluster = rng.integers(n_clusters, size=n_users)
    users = np.repeat(np.arange(n_users), per_user)
    in_cluster = rng.random(len(users)) >= noise
    rank = rng.choice(cluster_items, size=len(users), p=weights)
    pos = np.minimum(user_cluster[users] * cluster_items + rank, n_items - 1)
    items = np.where(in_cluster, item_order[pos], rng.integers(n_items, size=len(users)))
    x = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def scale(args) -> dict:
    x = planted_matrix(args.items, args.interactions, args.per_user, args.cluster_items, args.noise, args.seed)
    need, seconds = ease_cost(args.items)
    try:
        EASE(x.shape[0], args.items)
        ease = {"refused": False, "estimate_bytes": need, "estimate_s": seconds}
    except ConfigError as exc:
        ease = {"refused": True, "message": str(exc), "estimate_bytes": need, "estimate_s": seconds}
    print(f"ease at {args.items} items: {'refused: ' + ease['message'] if ease['refused'] else 'accepted'}",
          file=sys.stderr)
    rows = []
    for k in args.k:
        model = SparseEASE(x.shape[0], args.items, SparseEASEParams(l2=args.l2, k=k))
        lines: list[str] = []
        t0 = time.perf_counter()
        model.prepare(ModelInputs(x.shape[0], args.items, x, log=lambda m: (lines.append(m), print(m, file=sys.stderr)),
                                  progress=True))
        fit_s = time.perf_counter() - t0
        rows.append({"k": k, "fit_s": round(fit_s, 2), "estimate_line": lines[0], "weights_nnz": model.w_values.numel(),
                     "peak_rss_mb_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        print(json.dumps({key: rows[-1][key] for key in ("k", "fit_s", "peak_rss_mb_so_far")}))
    return {"items": args.items, "users": x.shape[0], "interactions": int(x.nnz), "ease": ease, "sparse_ease": rows}


def ml100k(args) -> dict:
    from fusionrec.config import load_config
    from fusionrec.jobs.experiment import run_experiment

    out = Path(args.out or "bench/out/ease-vs-sparse-ml100k")
    runs = [("ease", [])] + [(f"sparse-ease-k{k}", ["model.name=sparse-ease", f"model.params.k={k}",
                                                    "model.params.text_weight=0.0"]) for k in args.k]
    rows = []
    for name, overrides in runs:
        extra = ["model.params.text_weight=0.0"] if name == "ease" else []
        cfg = load_config(args.config, [*overrides, *extra, f"model.params.l2={args.l2}"])
        if name != "ease":  # sparse-ease has no KG term: drop ease's kg_weight (must be 0 for a like-for-like run)
            params = dict(cfg.model.params)
            if params.pop("kg_weight", 0.0):
                raise SystemExit(f"{args.config}: kg_weight > 0 has no sparse-ease counterpart; compare with 0")
            cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, params=params))
        res = run_experiment(cfg, out / name)
        rows.append({"run": name, "valid_ndcg@10": res["metrics"]["valid"].get("ndcg@10"),
                     "test_ndcg@10": res["metrics"]["test"].get("ndcg@10"), "fit_s": res["timings"]["fit_s"]})
        print(json.dumps(rows[-1]))
    return {"config": args.config, "l2": args.l2, "runs": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--interactions", type=int, default=1_000_000)
    p.add_argument("--per-user", type=int, default=20)
    p.add_argument("--cluster-items", type=int, default=200)
    p.add_argument("--noise", type=float, default=0.1)
    p.add_argument("--l2", type=float, default=400.0)
    p.add_argument("--k", type=lambda s: [int(v) for v in s.split(",")], default=[200])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ml100k", action="store_true", help="EASE vs sparse-ease on configs/ml-100k/ease.yaml")
    p.add_argument("--config", default="configs/ml-100k/ease.yaml")
    p.add_argument("--out", help="JSON report (scale mode) or run folder (--ml100k)")
    args = p.parse_args(argv)
    report = ml100k(args) if args.ml100k else scale(args)
    report.update({"command": " ".join([sys.executable, *sys.argv]), "machine": machine(),
                   "versions": package_versions(),
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
    if args.out:
        path = Path(args.out) / "report.json" if args.ml100k else Path(args.out)
        atomic_io.write_json(path, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
