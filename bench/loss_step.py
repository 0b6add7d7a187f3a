"""Seconds of one sampled-softmax step (forward + backward) at the batch sizes the shipped configs reach, one torch
thread: the loss alone, apart from the model, so the epoch-scaling figures can be split into loss and the rest.

The shipped configs keep an epoch at ``max_steps_per_epoch: 40`` steps, so the batch grows with the data: 2,048
rows on ml-100k, ~20,500 at 1M interactions, always against 2,048 in-batch + 1,024 sampled candidates. Each form
(``dense``: a (B, C) score tensor; ``factors``: :class:`ScoreFactors`, what the vector models hand over) is timed
on random vectors, median of ``--repeats`` steps, finding the step's accidental hits included (as the trainer does). ``--chunk-elements`` times the loss at other chunk sizes (scores
per chunk, ``fusionrec.training.sampled_softmax.CHUNK_ELEMENTS``; the shipped one by default).

    OMP_NUM_THREADS=1 .venv/bin/python bench/loss_step.py --rows 2048,20505 --out bench/out/loss-step.json
    OMP_NUM_THREADS=1 .venv/bin/python bench/loss_step.py --rows 2048,20505 \\
        --chunk-elements 65536,262144,1048576,4194304
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from fusionrec.models.base import ScoreFactors  # noqa: E402
from fusionrec.util.provenance import machine, package_versions  # noqa: E402
import fusionrec.training.sampled_softmax as chunked  # noqa: E402
from fusionrec.training.sampled_softmax import accidental_hits, sampled_softmax_loss  # noqa: E402


def step_seconds(rows: int, candidates: int, dim: int, form: str, repeats: int) -> float:
    g = torch.Generator().manual_seed(0)
    users, items = torch.randn(rows, dim, generator=g) * 0.1, torch.randn(candidates, dim, generator=g) * 0.1
    pos, log_count = torch.randn(rows, generator=g), torch.rand(candidates, generator=g)
    # item ids as the trainer draws them: positives from a 20,000-item catalogue, candidates some of the batch's
    # positives (the in-batch part, two thirds) and uniform draws; the accidental hits are found inside the step
    pos_items = torch.randint(0, 20_000, (rows,), generator=g)
    in_batch = min(rows, candidates * 2 // 3)
    cand_items = torch.cat([pos_items[torch.randperm(rows, generator=g)[:in_batch]],
                            torch.randint(0, 20_000, (candidates - in_batch,), generator=g)])
    times = []
    for _ in range(repeats):
        u, v, p = (t.clone().requires_grad_() for t in (users, items, pos))
        start = time.perf_counter()
        scores = ScoreFactors(u, v) if form == "factors" else u @ v.T
        hits = accidental_hits(cand_items, pos_items)
        sampled_softmax_loss(p, scores, log_count, hits, 0.2).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="2048,20505", help="batch sizes, comma-separated")
    p.add_argument("--candidates", type=int, default=3072)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--chunk-elements", default=str(chunked.CHUNK_ELEMENTS), help="chunk sizes, comma-separated")
    p.add_argument("--out", default=None, help="JSON file for the figures")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sizes = [int(r) for r in args.rows.split(",")]
    rows = []
    for chunk in [int(c) for c in args.chunk_elements.split(",")]:
        chunked.CHUNK_ELEMENTS = chunk
        rows += [{"rows": b, "form": form, "chunk_elements": chunk,
                  "step_s": step_seconds(b, args.candidates, args.dim, form, args.repeats)}
                 for b in sizes for form in ("dense", "factors")]
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    m = machine()
    print(f"machine: {m['cpu']}, {m['cores']} cores, load {m.get('load_avg')}; candidates {args.candidates}, d {args.dim}")
    print("| chunk elements | rows | form | s/step (median) | x the smallest |\n|---:|---:|---|---:|---:|")
    for r in rows:
        base = next(x["step_s"] for x in rows if (x["form"], x["chunk_elements"]) == (r["form"], r["chunk_elements"]))
        print(f"| {r['chunk_elements']} | {r['rows']} | {r['form']} | {r['step_s']:.4f} | {r['step_s'] / base:.1f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"rows": rows, "args": vars(args), "machine": m, "versions": package_versions(),
                       "command": " ".join(sys.argv)}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
