"""Recall@k of the FAISS HNSW index against exact ranking, per efSearch, for a model folder served from vectors.

Builds the index ``fusionrec serve --index faiss-hnsw`` builds (the same ``make_index`` call and defaults), draws
--users training users, ranks each user's top-k exactly (every item, seen items excluded) and by HNSW at each
efSearch (seen items excluded the way the service does it: over-fetch, filter, re-query), and reports the mean overlap
of the two top-k lists and the search time per user, one query at a time and in batches of 16 (the micro-batches a
loaded server forms).

    .venv/bin/python bench/hnsw_recall.py --model bench/out/synth-1m/model --ef 16,32,64,128,256,512 \\
        --out bench/out/hnsw-recall-1m.json
"""

from __future__ import annotations

import argparse
import sys
import time

from fusionrec.util.threads import configure_threads

configure_threads()

import numpy as np  # noqa: E402

from fusionrec.util import atomic_io  # noqa: E402
from fusionrec.artifacts import load_artifact  # noqa: E402
from fusionrec.util.provenance import machine, package_versions  # noqa: E402
from fusionrec.serving.topk_index import ExactIndex, make_index  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder served from vectors (e.g. BPR)")
    p.add_argument("--ef", default="16,32,64,128,256", help="comma-separated efSearch values")
    p.add_argument("--hnsw-m", type=int, help="links per node (default: the served default)")
    p.add_argument("--ef-construction", type=int, help="efConstruction (default: the served default)")
    p.add_argument("--users", type=int, default=500, help="users drawn for the measurement (default 500)")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", help="JSON report")
    args = p.parse_args(argv)

    artifact = load_artifact(args.model)
    vectors = artifact.model.serving_vectors()
    if vectors is None:
        raise SystemExit(f"{args.model}: the model is not served from vectors")
    users_v, items_v = (np.ascontiguousarray(v.float().numpy()) for v in vectors)
    seen = artifact.seen
    t0 = time.perf_counter()
    options = {k: v for k, v in (("hnsw_m", args.hnsw_m), ("ef_construction", args.ef_construction)) if v}
    index = make_index("faiss-hnsw", items_v, **options)
    build_s = time.perf_counter() - t0
    print(f"HNSW M {index.index.hnsw.nb_neighbors(1)}, efConstruction {index.index.hnsw.efConstruction}: "
          f"built in {build_s:.1f}s", file=sys.stderr)
    exact = ExactIndex(items_v)
    rng = np.random.default_rng(args.seed)
    users = rng.choice(len(users_v), min(args.users, len(users_v)), replace=False)
    _, truth = exact.search(users_v[users], args.k, seen[users])
    rows = []
    for ef in [int(e) for e in args.ef.split(",")]:
        index.index.hnsw.efSearch = ef
        t0 = time.perf_counter()
        got = np.concatenate([index.search(users_v[[u]], args.k, seen[[u]])[1] for u in users])
        single_ms = (time.perf_counter() - t0) / len(users) * 1e3
        t0 = time.perf_counter()
        for start in range(0, len(users), 16):
            batch = users[start:start + 16]
            index.search(users_v[batch], args.k, seen[batch])
        batch_ms = (time.perf_counter() - t0) / len(users) * 1e3
        recall = float(np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
                                for a, b in zip(got, truth)]))
        rows.append({"ef_search": ef, f"recall@{args.k}": round(recall, 4), "ms_per_user_single": round(single_ms, 3),
                     "ms_per_user_batch16": round(batch_ms, 3)})
        print(f"efSearch {ef:>4}: recall@{args.k} {recall:.4f}  ms/user one at a time {single_ms:.3f}, "
              f"in batches of 16 {batch_ms:.3f}", file=sys.stderr)
    report = {"command": " ".join([sys.executable, *sys.argv]), "model": args.model, "items": len(items_v),
              "users_measured": len(users), "k": args.k, "hnsw_m": index.index.hnsw.nb_neighbors(1),
              "ef_construction": index.index.hnsw.efConstruction, "build_s": round(build_s, 1), "seed": args.seed,
              "machine": machine(), "versions": package_versions(), "results": rows}
    if args.out:
        atomic_io.write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
