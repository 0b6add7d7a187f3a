"""Encoding speed of the 1,682 ml-100k item texts with the bundled all-MiniLM-L6-v2 on this machine's CPU, through
each backend in one run: torch fp32 (today's path), ONNX Runtime fp32 and ONNX Runtime with int8 weights.

For every backend it encodes every item into a fresh cache folder (items/s; model loading, and for the ONNX
backends the one-time export, timed apart), then reruns with a new encoder and cache object: that rerun must read
everything from disk and encode nothing. Then it compares every backend's vectors with torch fp32's, item by item
(mean and min cosine; target for onnx-int8: items/s at least 3x torch's, mean cosine >= .99).

    .venv/bin/python bench/encode_speed.py [--backends torch,onnx,onnx-int8] [--batch-size 64] [--limit N]
                                           [--data-dir DIR] [--onnx-dir DIR] [--keep-cache]

Run it alone on the machine, without OMP_NUM_THREADS / FUSIONREC_THREADS set (both paths then use every core).
``--limit N`` encodes only the first N distinct texts (a smoke run). ``--onnx-dir`` reuses exported models kept
there (default: a fresh folder, so the export time is part of the output). Prints the command, machine and
versions, then a markdown table.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fusionrec.config import DatasetConfig, TextConfig
from fusionrec.data.loading import load_dataset
from fusionrec.knowledge.text import EmbeddingCache, item_texts, make_encoder
from fusionrec.util.provenance import machine, package_versions

TEMPLATE = "{movie_title} ({release_year}). Genres: {class}."
BACKENDS = ("torch", "onnx", "onnx-int8")


def run_backend(backend: str, texts: list[str], args, cache_root: Path, onnx_dir: Path) -> dict:
    """Encodes ``texts`` with one backend into a fresh cache, then reruns from the cache."""
    cfg = TextConfig(template=TEMPLATE, batch_size=args.batch_size, cache_dir=str(cache_root / backend),
                     backend=backend, onnx_dir=str(onnx_dir))
    encoder = make_encoder(cfg)
    start = time.perf_counter()
    dim = encoder.dim  # loads the model (ONNX: exports it first when it is not in onnx_dir)
    load_s = time.perf_counter() - start
    cache = EmbeddingCache(cfg.cache_dir, encoder.encoder_id)
    start = time.perf_counter()
    vectors = cache.get_or_encode(texts, encoder, progress=False)
    encode_s = time.perf_counter() - start
    encoded = cache.last_encoded

    rerun_encoder = make_encoder(cfg)  # a new, unloaded encoder: a cached run must never load the model
    start = time.perf_counter()
    rerun_cache = EmbeddingCache(cfg.cache_dir, rerun_encoder.encoder_id)
    again = rerun_cache.get_or_encode(texts, rerun_encoder, progress=False)
    rerun_s = time.perf_counter() - start
    ok = rerun_cache.last_encoded == 0 and np.array_equal(vectors, again)
    return {"backend": backend, "encoder_id": encoder.encoder_id, "dim": dim, "load_s": load_s, "encoded": encoded,
            "encode_s": encode_s, "per_s": encoded / encode_s, "rerun_s": rerun_s, "rerun_ok": ok,
            "vectors": vectors}


def _optional_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("transformers", "onnxruntime", "onnx", "tokenizers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated, from " + ", ".join(BACKENDS))
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, default=None, help="encode only the first N distinct texts (smoke run)")
    p.add_argument("--data-dir", default=None, help="where ml-100k is (fetched when missing)")
    p.add_argument("--onnx-dir", default=None, help="reuse exported ONNX models kept here (default: a fresh folder)")
    p.add_argument("--keep-cache", action="store_true", help="leave the fresh cache folders in place")
    args = p.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := sorted(set(backends) - set(BACKENDS)):
        p.error(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")

    dataset = load_dataset(DatasetConfig(name="ml-100k"), data_dir=args.data_dir)
    all_texts, mask = item_texts(dataset, TEMPLATE)
    texts = list(dict.fromkeys(all_texts[i] for i in np.flatnonzero(mask)))  # distinct, in item order
    if args.limit is not None:
        texts = texts[:args.limit]

    scratch = Path(tempfile.mkdtemp(prefix="fusionrec-encode-bench-"))
    onnx_dir = Path(args.onnx_dir).expanduser() if args.onnx_dir else scratch / "onnx"
    try:
        rows = [run_backend(b, texts, args, scratch / "cache", onnx_dir) for b in backends]
    finally:
        if not args.keep_cache:
            shutil.rmtree(scratch, ignore_errors=True)
    failed = [r["backend"] for r in rows if not r["rerun_ok"]]

    m, v = machine(), package_versions()
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['platform']}; torch threads {torch.get_num_threads()}")
    print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + "".join(
        f", {name} {ver}" for name, ver in _optional_versions().items()))
    print(f"texts: {len(texts)} distinct ml-100k item texts, template {TEMPLATE!r}, batch size {args.batch_size}")
    if args.keep_cache:
        print(f"caches and exports: {scratch}")
    print()
    ref = next((r for r in rows if r["backend"] == "torch"), None)
    print("| backend | encoder id | load (+export) s | encode s | items/s | x torch | cosine to torch fp32: mean | "
          "min | cached rerun s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        speed = f"{r['per_s'] / ref['per_s']:.2f}" if ref else "-"
        if ref is not None:
            a = r["vectors"] / np.linalg.norm(r["vectors"], axis=1, keepdims=True)
            b = ref["vectors"] / np.linalg.norm(ref["vectors"], axis=1, keepdims=True)
            cos = (a * b).sum(axis=1)
            mean_cos, min_cos = f"{cos.mean():.4f}", f"{cos.min():.4f}"
        else:
            mean_cos = min_cos = "-"
        print(f"| {r['backend']} | `{r['encoder_id']}` | {r['load_s']:.2f} | {r['encode_s']:.2f} | "
              f"{r['per_s']:.1f} | {speed} | {mean_cos} | {min_cos} | {r['rerun_s']:.3f} |")
    if failed:
        print(f"FAILED: the cached rerun of {', '.join(failed)} encoded texts or returned different vectors",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
