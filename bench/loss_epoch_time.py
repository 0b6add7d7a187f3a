"""Seconds per LightGCN training epoch under the full softmax and the sampled softmax, on synthetic data of a chosen
size, one torch thread.

Each loss trains in its own process (so each peak RSS is its own) for ``--epochs`` epochs without validation, on
the same generated interactions: users in clusters, items in clusters with a popularity skew inside each (90 % of a
user's interactions in their own cluster). The model is the shipped ml-100k LightGCN (d 64, 2 layers, cosine,
temperature 0.2, lr 0.005, batch 2048); the sampled softmax uses ``--in-batch`` in-batch and ``--neg-samples``
uniform candidates per step. ``full_softmax_max_items`` is off, so the full softmax really scores every item.

    OMP_NUM_THREADS=1 .venv/bin/python bench/loss_epoch_time.py --users 20000 --items 20000 --interactions 1000000 \\
        --epochs 3 --out bench/out/loss-epoch-time-20k.json
    .venv/bin/python bench/loss_epoch_time.py --users 60 --items 300 --interactions 3000 --epochs 1   # smoke run

Prints the command, machine and versions, then a markdown table (median epoch seconds, first epoch, steps, peak
RSS); ``--out`` also writes it all as JSON.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

LOSSES = ("full_softmax", "sampled_softmax")


def synthetic_interactions(n_users: int, n_items: int, n_interactions: int, n_clusters: int = 20,
                           own_share: float = 0.9, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered implicit feedback: users, items int64 (n,), distinct pairs, n at most ``n_interactions`` (fewer
    when a user's cluster is too small for their share).

    Item j has popularity weight 1 / (rank_j + 1)^0.8 within its cluster (ranks shuffled); a user's draws come from
    their own cluster with probability ``own_share``, else from the whole catalogue, both by that weight."""
    rng = np.random.default_rng(seed)
    item_cluster = rng.permutation(np.arange(n_items) % n_clusters)
    user_cluster = rng.integers(n_clusters, size=n_users)
    weight = 1.0 / (rng.permutation(n_items) % max(n_items // n_clusters, 1) + 1.0) ** 0.8
    per_user = max(1, round(1.5 * n_interactions / n_users))  # drawn with room for the duplicates dropped below
    users = np.repeat(np.arange(n_users, dtype=np.int64), per_user)
    items = np.empty(len(users), dtype=np.int64)
    own = rng.random(len(users)) < own_share
    pools = [np.flatnonzero(~own)] + [np.flatnonzero(own & (user_cluster[users] == c)) for c in range(n_clusters)]
    candidates = [np.arange(n_items)] + [np.flatnonzero(item_cluster == c) for c in range(n_clusters)]
    for rows, cand in zip(pools, candidates):
        cdf = np.cumsum(weight[cand])
        items[rows] = cand[np.searchsorted(cdf, rng.random(len(rows)) * cdf[-1], side="right").clip(max=len(cand) - 1)]
    keys = np.unique(users * n_items + items)
    if len(keys) > n_interactions:
        keys = np.sort(rng.choice(keys, n_interactions, replace=False))
    return keys // n_items, keys % n_items


def worker(args: argparse.Namespace) -> dict:
    """Trains one loss for ``args.epochs`` epochs in this process; returns its timings."""
    import torch

    from fusionrec.config import TrainingConfig
    from fusionrec.data import Interactions
    from fusionrec.models import get_model_class
    from fusionrec.util.provenance import peak_rss_mb
    from fusionrec.training import Trainer, build_inputs
    from fusionrec.typed_config import build

    torch.set_num_threads(args.threads)
    users, items = synthetic_interactions(args.users, args.items, args.interactions, seed=args.seed)
    inputs = build_inputs(args.users, args.items, Interactions(users, items, args.users, args.items))
    cls = get_model_class("lightgcn")
    model = cls.from_inputs(inputs, build(cls.Params, {"embedding_size": 64, "n_layers": 2, "reg_weight": 1e-5,
                                                        "similarity": "cosine"}))
    cfg = TrainingConfig(epochs=args.epochs, batch_size=args.batch_size, lr=0.005, loss=args.worker,
                         temperature=0.2, in_batch_negatives=args.in_batch, neg_samples=args.neg_samples,
                         full_softmax_max_items=None, max_steps_per_epoch=args.max_steps_per_epoch, patience=0,
                         progress=False)
    result = Trainer(cfg, seed=args.seed).fit(model, inputs)
    return {"loss": result.loss, "batch_size": result.batch_size, "train_pairs": int(len(users)),
            "steps_per_epoch": -(-len(users) // result.batch_size), "epoch_s": result.epoch_seconds,
            "epoch_s_median": statistics.median(result.epoch_seconds), "final_loss": result.history[-1].losses,
            "peak_rss_mb": peak_rss_mb()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=20000)
    p.add_argument("--items", type=int, default=20000)
    p.add_argument("--interactions", type=int, default=1_000_000, help="target; duplicates are dropped")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=2048)
    p.add_argument("--in-batch", type=int, default=2048, help="sampled_softmax: training.in_batch_negatives")
    p.add_argument("--neg-samples", type=int, default=2048, help="sampled_softmax: uniform candidates per step")
    p.add_argument("--max-steps-per-epoch", type=int, default=None)
    p.add_argument("--losses", default=",".join(LOSSES))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON file for the results")
    p.add_argument("--worker", choices=LOSSES, default=None, help=argparse.SUPPRESS)  # one loss, in a subprocess
    args = p.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(args)))
        return 0

    from fusionrec.util import atomic_io
    from fusionrec.util.provenance import machine, package_versions

    print("command:", " ".join([sys.executable, *sys.argv]))
    print("machine:", json.dumps(machine()))
    print("versions:", json.dumps(package_versions()))
    rows = {}
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
    for loss in args.losses.split(","):
        proc = subprocess.run([sys.executable, __file__, *forwarded, "--worker", loss], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        rows[loss] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\n{args.users} users, {args.items} items, {next(iter(rows.values()))['train_pairs']} training pairs, "
          f"{args.threads} thread(s)\n")
    print("| loss | epoch s (median) | first epoch s | steps/epoch | batch | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for loss, r in rows.items():
        print(f"| {loss} | {r['epoch_s_median']:.2f} | {r['epoch_s'][0]:.2f} | {r['steps_per_epoch']} | "
              f"{r['batch_size']} | {r['peak_rss_mb']:.0f} |")
    if args.out:
        atomic_io.write_json(args.out, {"args": {k: v for k, v in vars(args).items() if k != "worker"},
                                        "command": " ".join([sys.executable, *sys.argv]), "machine": machine(),
                                        "versions": package_versions(), "results": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
