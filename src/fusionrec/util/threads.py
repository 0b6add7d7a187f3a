"""How many CPU threads torch uses, decided once per process before torch loads.

Measured on the 2-core machine of docs/benchmarks.md: with two intra-op threads, a BPR epoch on MovieLens-100k took
0.26 s and a LightGCN epoch 0.57 s (idle threads sleeping between torch's many small operations:
``OMP_WAIT_POLICY=PASSIVE``), against 0.063 s and 0.32 s with one thread. Spinning threads are as fast as one thread
on an idle machine but slow every epoch tenfold as soon as another busy process shares the cores. So on small
machines (``SMALL_MACHINE_CORES`` cores or fewer) fusionrec runs torch on one thread, except inside
:func:`all_cores` (the language-model encoder, whose large matrix products do use every core).

Choose yourself with ``FUSIONREC_THREADS=N`` (or ``OMP_NUM_THREADS=N``); either turns the automatic choice off.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

SMALL_MACHINE_CORES = 4
_AUTO_FLAG = "FUSIONREC_THREADS_AUTO"


def configure_threads() -> None:
    """Sets the thread environment for this process; does nothing once torch is imported (too late to apply)."""
    if "torch" in sys.modules:
        return
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads sleep rather than spin
    chosen = os.environ.get("FUSIONREC_THREADS")
    if chosen is None and "OMP_NUM_THREADS" not in os.environ and (os.cpu_count() or 1) <= SMALL_MACHINE_CORES:
        chosen = "1"
        os.environ[_AUTO_FLAG] = "1"
    if chosen is not None:
        if not chosen.isdigit() or int(chosen) < 1:
            raise SystemExit(f"FUSIONREC_THREADS must be a whole number >= 1, got {chosen!r}")
        os.environ["OMP_NUM_THREADS"] = chosen
        os.environ["MKL_NUM_THREADS"] = chosen


def heavy_work_threads() -> int | None:
    """Threads for large dense work (a transformer encoder, a FAISS index build): every core when the count was
    chosen automatically, None (leave it as it is) when the user chose it."""
    return (os.cpu_count() or 1) if os.environ.get(_AUTO_FLAG) == "1" else None


@contextmanager
def heavy_work(get_threads, set_threads):
    """A thread pool (read by ``get_threads()``, set by ``set_threads(n)``: torch's, FAISS's OpenMP) raised to
    :func:`heavy_work_threads` for the block, then set back; left alone when the user chose the count."""
    n = heavy_work_threads()
    if n is None:
        yield
        return
    before = get_threads()
    set_threads(n)
    try:
        yield
    finally:
        set_threads(before)


@contextmanager
def all_cores():
    """torch on :func:`heavy_work_threads` threads for the block, the chosen count again after."""
    import torch

    with heavy_work(torch.get_num_threads, torch.set_num_threads):
        yield


def torch_threads() -> int | None:
    """torch's intra-op thread count, for provenance (None when torch is not loaded)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None
