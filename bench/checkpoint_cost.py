"""Cost of the per-epoch checkpoint: seconds to write OUT/checkpoint/state.pt for a BPR-sized model against the
epoch time, at a chosen catalogue size. Run alone (it times things):

    OMP_NUM_THREADS=1 .venv/bin/python bench/checkpoint_cost.py --users 20000 --items 100000 --dim 64
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from fusionrec.training.checkpoint import Checkpoint, TrainState, capture_rng


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20000)
    ap.add_argument("--items", type=int, default=100000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    user, item = torch.nn.Embedding(args.users, args.dim), torch.nn.Embedding(args.items, args.dim)
    params = list(user.parameters()) + list(item.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    sum(p.sum() for p in params).backward()
    opt.step()
    model = {"user.weight": user.weight.detach(), "item.weight": item.weight.detach()}
    best = {k: v.clone() + 1 for k, v in model.items()}  # a best state that differs: the worst case
    state = TrainState(1, model, best, opt.state_dict(), {"best_score": 0.1, "best_epoch": 1, "bad_evals": 0}, [],
                       capture_rng(torch.Generator()), 0.0, None)
    with tempfile.TemporaryDirectory() as tmp:
        ck = Checkpoint(tmp, {"config": {}, "data_sha256": ""})
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ck.save(state)
            print(f"write {time.perf_counter() - t0:.3f} s, {ck.path.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
