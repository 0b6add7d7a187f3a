"""Encoding speed of the 1,682 ml-100k item texts with the bundled all-MiniLM-L6-v2 on this machine's CPU.

Encodes every item into a fresh cache folder (items/s, model loading timed apart), then reruns with a new encoder
and cache object: that rerun must read everything from disk and encode nothing (target: well under 1 s).

    .venv/bin/python bench/encode_speed.py [--batch-size 64] [--data-dir DIR] [--keep-cache]

Prints the command, machine and versions, then a markdown table row.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time

import torch

from fusionrec.config import DatasetConfig, TextConfig
from fusionrec.data.loading import load_dataset
from fusionrec.knowledge.encode_step import encode_items
from fusionrec.knowledge.text import make_encoder
from fusionrec.provenance import machine, package_versions

TEMPLATE = "{movie_title} ({release_year}). Genres: {class}."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data-dir", default=None, help="where ml-100k is (fetched when missing)")
    p.add_argument("--keep-cache", action="store_true", help="leave the fresh cache folder in place")
    args = p.parse_args(argv)

    dataset = load_dataset(DatasetConfig(name="ml-100k"), data_dir=args.data_dir)
    cache_dir = tempfile.mkdtemp(prefix="fusionrec-encode-bench-")
    cfg = TextConfig(template=TEMPLATE, batch_size=args.batch_size, cache_dir=cache_dir)
    try:
        encoder = make_encoder(cfg)
        start = time.perf_counter()
        dim = encoder.dim  # loads the model
        load_s = time.perf_counter() - start
        first = encode_items(dataset, cfg, encoder=encoder, progress=True)

        rerun_encoder = make_encoder(cfg)  # a new, unloaded encoder: a cached run must never load the model
        start = time.perf_counter()
        second = encode_items(dataset, cfg, encoder=rerun_encoder, progress=False)
        rerun_total_s = time.perf_counter() - start
    finally:
        if not args.keep_cache:
            shutil.rmtree(cache_dir, ignore_errors=True)
    if second.n_encoded != 0 or not torch.equal(first.vectors, second.vectors):
        print("FAILED: the cached rerun encoded texts or returned different vectors", file=sys.stderr)
        return 1

    m, v = machine(), package_versions()
    per_s = first.n_encoded / first.seconds
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; torch threads {torch.get_num_threads()}")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    print(f"encoder: {first.encoder_id} ({dim}-d), batch size {args.batch_size}, template {TEMPLATE!r}")
    if args.keep_cache:
        print(f"cache: {first.cache_dir}")
    print()
    print("| items | encoded | model load s | encode s | items/s | cached rerun: encoded | cached rerun s | "
          "rerun incl. texts s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {dataset.n_items} | {first.n_encoded} | {load_s:.2f} | {first.seconds:.2f} | {per_s:.1f} | "
          f"{second.n_encoded} | {second.seconds:.3f} | {rerun_total_s:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
