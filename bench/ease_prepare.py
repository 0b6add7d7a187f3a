"""Time and peak memory of EASE's prepare (the dense Gram matrix and its inverse) for a catalogue size.

    .venv/bin/python bench/ease_prepare.py --items 4000 --users 3000 --out bench/out/ease-prepare-4000.json

The training matrix is random (``--density`` of the cells set, seeded), which does not change the cost: the
Gram matrix is dense whatever the data. Peak memory is what tracemalloc sees numpy and torch-from-numpy allocate
(LAPACK's small workspace is not counted), divided by n_items² in the report, the figure docs/models.md quotes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc

from fusionrec.util.threads import configure_threads

configure_threads()

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from fusionrec.util import atomic_io  # noqa: E402
from fusionrec.models.base import ModelInputs  # noqa: E402
from fusionrec.models.ease import EASE, EASEParams  # noqa: E402
from fusionrec.util.provenance import machine, package_versions  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=4000)
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--density", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="JSON report")
    args = p.parse_args(argv)
    train = sp.random(args.users, args.items, density=args.density, format="csr", random_state=args.seed,
                      dtype=np.float32)
    train.data[:] = 1.0
    model = EASE(args.users, args.items, EASEParams(max_memory_gb=1e6))  # the bench measures, it does not refuse
    tracemalloc.start()
    t0 = time.perf_counter()
    model.prepare(ModelInputs(args.users, args.items, train))
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    report = {"command": " ".join([sys.executable, *sys.argv]), "items": args.items, "users": args.users,
              "density": args.density, "seed": args.seed, "prepare_s": round(seconds, 2),
              "peak_bytes": peak, "peak_bytes_per_item_squared": round(peak / args.items ** 2, 2),
              "machine": machine(), "versions": package_versions()}
    print(json.dumps({k: report[k] for k in ("items", "prepare_s", "peak_bytes_per_item_squared")}))
    if args.out:
        atomic_io.write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
