"""What every run records beside its results: package versions and the machine."""

from __future__ import annotations

import os
import platform
import resource
import sys
from importlib import metadata

_PACKAGES = ("fusionrec", "torch", "numpy", "scipy", "pyyaml", "safetensors", "sentence-transformers", "faiss-cpu",
             "fastapi")


def package_versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def machine() -> dict[str, object]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from fusionrec.util.threads import torch_threads

    out = {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch_threads(),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    try:  # other jobs on the cores change every timing: the 1/5/15-minute load averages when this was called
        out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return out


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)
