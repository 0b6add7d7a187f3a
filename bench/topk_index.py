"""Top-K index speed and recall on a synthetic catalogue: build time, per-query latency (batches of users, k=10,
each user with seen items to exclude) and recall@k against the exact index.

    python bench/topk_index.py --items 200000 --dim 64 --users 256 --seen 50
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import scipy.sparse as sp

from fusionrec.serving.topk_index import make_index


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=200_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--users", type=int, default=256)
    p.add_argument("--seen", type=int, default=50, help="seen items per user (excluded)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--kinds", default="exact,faiss-flat,faiss-ivf,faiss-hnsw")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    items = rng.standard_normal((args.items, args.dim)).astype(np.float32)
    queries = rng.standard_normal((args.users, args.dim)).astype(np.float32)
    rows = np.repeat(np.arange(args.users), args.seen)
    seen = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, rng.integers(0, args.items, len(rows)))),
                         shape=(args.users, args.items))
    truth = None
    for kind in args.kinds.split(","):
        t0 = time.perf_counter()
        index = make_index(kind, items)
        build = time.perf_counter() - t0
        index.search(queries[:8], args.k, seen[:8])  # warm-up
        t0 = time.perf_counter()
        _, got = index.search(queries, args.k, seen)
        per_user_ms = 1000 * (time.perf_counter() - t0) / args.users
        if truth is None:
            truth = got
        recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(got, truth)])
        print(json.dumps({"index": kind, "items": args.items, "dim": args.dim, "build_s": round(build, 2),
                          "ms_per_user": round(per_user_ms, 3), "recall_vs_first": round(float(recall), 4)}))


if __name__ == "__main__":
    main()
