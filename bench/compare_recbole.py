"""fusionrec next to RecBole 1.2.1 on ml-100k, one protocol, one run: quality, seconds per epoch, peak memory.

    .venv/bin/python bench/compare_recbole.py --models pop,itemknn,bpr,lightgcn [--budget-s 480] [--out bench/out/DIR]

For each model, one after the other (never in parallel: the machine has 2 cores), it runs

* RecBole: ``bench/.recbole/venv/bin/python bench/recbole/run_model.py <RecBoleName>`` (venv from
  ``bench/recbole/setup.sh``; protocol in ``bench/recbole/protocol.yaml``), result ``OUT/recbole/<model>.json``;
* fusionrec: ``.venv/bin/fusionrec train --config configs/ml-100k/<model>.yaml --out OUT/fusionrec/<model>
  --set training.time_budget_s=<cap> --set training.progress=false``, result ``OUT/fusionrec/<model>/results.json``;

both with OMP/MKL threads set to ``--threads``, each child's peak RSS taken from ``wait4``. It then prints and writes
``OUT/summary.md`` and ``OUT/summary.json``: per model the test NDCG@10 and Recall@10, median training seconds per
epoch, epochs, peak RSS of each side and the ratios fusionrec/RecBole (quality, speed-up = RecBole s/epoch / fusionrec
s/epoch, memory), with the machine, date, versions and the exact command. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECBOLE_NAMES = {"pop": "Pop", "itemknn": "ItemKNN", "bpr": "BPR", "lightgcn": "LightGCN", "cke": "CKE",
                 "kgat": "KGAT"}
SIDES = ("recbole", "fusionrec")
SCHEMA = "fusionrec-bench-compare/1"


@dataclass
class ChildRun:
    """How one subprocess ended: exit code (None when it could not start), wall seconds, peak RSS in MiB."""

    returncode: int | None
    wall_s: float
    peak_rss_mb: float | None
    timed_out: bool = False
    error: str | None = None


def run_child(cmd: list[str], log_path: Path, env: dict[str, str], timeout_s: float, cwd: Path = ROOT) -> ChildRun:
    """Runs ``cmd`` with stdout+stderr to ``log_path``; kills its process group after ``timeout_s``.

    The peak RSS is the child's own ``ru_maxrss`` as returned by ``os.wait4`` (so it is per child, unlike
    ``RUSAGE_CHILDREN``, which keeps the maximum over every child this process ever had).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        try:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    cwd=cwd, start_new_session=True)
        except OSError as exc:
            return ChildRun(None, 0.0, None, error=f"cannot start {cmd[0]}: {exc.strerror}")
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

        timer = threading.Timer(timeout_s, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            kill()
            proc.wait()
            raise
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait for it again
    return ChildRun(proc.returncode, time.perf_counter() - start, round(usage.ru_maxrss / 1024, 1),
                    timed_out=killed.is_set())


def child_env(threads: int, wait_policy: str) -> dict[str, str]:
    """The environment of both sides' runs: same thread counts, same OpenMP wait policy.

    ``OMP_WAIT_POLICY=PASSIVE`` matters on a shared CPU: torch's OpenMP threads otherwise spin while they wait, and
    with another busy process on the 2 cores a BPR epoch measured 2.6-11 s instead of 0.5 s.
    """
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[key] = str(threads)
    if wait_policy:
        env["OMP_WAIT_POLICY"] = wait_policy
    else:
        env.pop("OMP_WAIT_POLICY", None)
    env.pop("TRAIN_BUDGET_S", None)  # the cap is passed explicitly
    return env


def load_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])[-600:]


# ----------------------------------------------------------------------------------------------- one side, one model

def run_recbole(model: str, out: Path, args: argparse.Namespace) -> dict:
    """RecBole side: returns a record with status, the result JSON's fields we compare, and where the files are."""
    name = RECBOLE_NAMES[model]
    json_path = out / "recbole" / f"{model}.json"
    log_path = out / "recbole" / f"{model}.log"
    rec = {"side": "recbole", "model": name, "result": str(json_path.relative_to(out)), "log": str(log_path.relative_to(out))}
    previous = load_json(json_path) if args.reuse else None
    if previous is not None and previous.get("status") == "ok":
        return {**rec, **summarise_recbole(previous), "reused": True}
    python = Path(args.recbole_python)
    if not python.exists():
        return {**rec, "status": "unavailable",
                "message": f"no RecBole venv at {python}: run `bash bench/recbole/setup.sh` first"}
    json_path.unlink(missing_ok=True)
    cmd = [str(python), str(ROOT / "bench" / "recbole" / "run_model.py"), name, "--out", str(json_path),
           "--budget-s", f"{args.budget_s:g}", "--threads", str(args.threads)]
    rec["load_avg_before"] = round(os.getloadavg()[0], 2)
    child = run_child(cmd, log_path, child_env(args.threads, args.omp_wait_policy), args.timeout_s)
    rec.update(command=shlex.join(cmd), wall_s=round(child.wall_s, 1), child_peak_rss_mb=child.peak_rss_mb)
    result = load_json(json_path)
    if child.error:
        return {**rec, "status": "error", "message": child.error}
    if child.timed_out:
        return {**rec, "status": "error", "message": f"killed after the {args.timeout_s:g} s timeout"}
    if result is None or result.get("status") != "ok":
        why = (result or {}).get("error") or log_tail(log_path)
        return {**rec, "status": "error", "message": f"exit {child.returncode}: {why}"}
    summary = summarise_recbole(result)
    if summary.get("peak_rss_mb") is None:
        summary["peak_rss_mb"] = child.peak_rss_mb
    return {**rec, **summary}


def summarise_recbole(result: dict) -> dict:
    timings = result.get("timings", {})
    return {
        "status": "ok",
        "test": metric_subset(result.get("metrics", {}).get("test")),
        "valid": metric_subset(result.get("metrics", {}).get("valid")),
        "epoch_s": timings.get("epoch_s_median"),
        "fit_s": timings.get("fit_s"),
        "epochs": result.get("epochs"),
        "best_epoch": result.get("best_epoch"),
        "stopped_by": result.get("stopped_by"),
        "peak_rss_mb": result.get("peak_rss_mb"),
    }


def run_fusionrec(model: str, out: Path, args: argparse.Namespace) -> dict:
    run_dir = out / "fusionrec" / model
    log_path = out / "fusionrec" / f"{model}.log"
    json_path = run_dir / "results.json"
    rec = {"side": "fusionrec", "model": model, "result": str(json_path.relative_to(out)),
           "log": str(log_path.relative_to(out))}
    previous = load_json(json_path) if args.reuse else None
    if previous is not None and "metrics" in previous:
        return {**rec, **summarise_fusionrec(previous), "reused": True}
    exe = Path(args.fusionrec_bin)
    if not exe.exists():
        return {**rec, "status": "unavailable",
                "message": f"fusionrec CLI not found at {exe} (is the package installed in .venv with its "
                           f"`fusionrec` entry point?)"}
    config = Path(args.configs) / f"{model}.yaml"
    if not config.exists():
        return {**rec, "status": "unavailable", "message": f"no fusionrec config {config}"}
    json_path.unlink(missing_ok=True)
    shown = config.resolve().relative_to(ROOT) if config.resolve().is_relative_to(ROOT) else config  # cwd is ROOT
    cmd = [str(exe), "train", "--config", str(shown), "--out", str(run_dir),
           "--set", f"training.time_budget_s={args.budget_s:g}", "--set", "training.progress=false"]
    rec["load_avg_before"] = round(os.getloadavg()[0], 2)
    child = run_child(cmd, log_path, child_env(args.threads, args.omp_wait_policy), args.timeout_s)
    rec.update(command=shlex.join(cmd), wall_s=round(child.wall_s, 1), child_peak_rss_mb=child.peak_rss_mb)
    if child.error:
        return {**rec, "status": "error", "message": child.error}
    if child.timed_out:
        return {**rec, "status": "error", "message": f"killed after the {args.timeout_s:g} s timeout"}
    result = load_json(json_path)
    if child.returncode != 0 or result is None:
        why = "no results.json" if result is None else "non-zero exit"
        return {**rec, "status": "error", "message": f"exit {child.returncode}, {why}: {log_tail(log_path)}"}
    summary = summarise_fusionrec(result)
    if summary.get("peak_rss_mb") is None:
        summary["peak_rss_mb"] = child.peak_rss_mb
        summary["peak_rss_source"] = "wait4 (results.json has no peak_rss_mb)"
    return {**rec, **summary}


def summarise_fusionrec(result: dict) -> dict:
    timings = result.get("timings") or {}
    metrics = result.get("metrics") or {}
    return {
        "status": "ok",
        "test": metric_subset(metrics.get("test")),
        "valid": metric_subset(metrics.get("valid")),
        "epoch_s": timings.get("epoch_s_median"),
        "fit_s": timings.get("fit_s"),
        "epochs": timings.get("epochs"),
        "best_epoch": result.get("best_epoch", timings.get("best_epoch")),
        "stopped_by": result.get("stopped_by", timings.get("stopped_by")),
        "peak_rss_mb": result.get("peak_rss_mb"),
    }


def metric_subset(metrics: dict | None) -> dict[str, float]:
    """Lower-cased ``name@k`` -> value, for every numeric entry (RecBole and fusionrec both use ``ndcg@10``)."""
    if not isinstance(metrics, dict):
        return {}
    return {str(k).lower(): float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


# ------------------------------------------------------------------------------------------------------ the table

def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def compare_row(model: str, rb: dict, fr: dict) -> dict:
    """The ratios fusionrec/RecBole for one model (None where a side has no value)."""
    def get(rec: dict, key: str) -> float | None:
        return rec.get("test", {}).get(key) if rec.get("status") == "ok" else None

    def field(rec: dict, key: str):
        return rec.get(key) if rec.get("status") == "ok" else None

    # A model without epochs (fusionrec: epochs 0, no epoch_s; RecBole: one "single_pass" epoch) is compared on its
    # one fit: RecBole's pass against fusionrec's fit_s.
    basis = "epoch"
    fr_seconds = field(fr, "epoch_s")
    if fr_seconds is None and field(fr, "fit_s") is not None and not field(fr, "epochs"):
        basis, fr_seconds = "fit", field(fr, "fit_s")
    return {
        "model": model,
        "ndcg_ratio": ratio(get(fr, "ndcg@10"), get(rb, "ndcg@10")),
        "recall_ratio": ratio(get(fr, "recall@10"), get(rb, "recall@10")),
        "speedup": ratio(field(rb, "epoch_s"), fr_seconds),
        "speedup_basis": basis,
        "memory_ratio": ratio(field(fr, "peak_rss_mb"), field(rb, "peak_rss_mb")),
    }


def fmt(value, spec: str = ".4f") -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(int(value) if spec == "d" else value, spec)
    return str(value)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# fusionrec vs RecBole {report['versions'].get('recbole', {}).get('recbole', '?')} on ml-100k",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM, {m['os']}; threads per run: "
        f"{report['threads']} (OMP_WAIT_POLICY={report['omp_wait_policy'] or 'unset'}); "
        f"load average at start: {m['load_avg_start']}",
        "- versions: " + "; ".join(f"{side}: " + (", ".join(f"{k} {v}" for k, v in vs.items()) or "not found")
                                      for side, vs in report["versions"].items()),
        f"- cap: {report['budget_s']:g} s of train+validation per model and side; s/epoch = median training seconds "
        f"per epoch (validation excluded); peak RSS = the whole process",
        "",
        "| model | NDCG@10 RB | NDCG@10 FR | NDCG FR/RB | Recall@10 RB | Recall@10 FR | Recall FR/RB "
        "| s/epoch RB | s/epoch FR | speed-up | epochs RB | epochs FR | peak RSS MB RB | peak RSS MB FR | memory FR/RB |",
        "|---" * 15 + "|",
    ]
    notes = []
    for row in report["rows"]:
        rb, fr = row["recbole"], row["fusionrec"]
        ok_rb, ok_fr = rb.get("status") == "ok", fr.get("status") == "ok"
        r = row["ratios"]

        def val(rec: dict, ok: bool, key: str, spec: str = ".4f") -> str:
            return fmt(rec.get("test", {}).get(key), spec) if ok else "-"

        def fld(rec: dict, ok: bool, key: str, spec: str) -> str:
            return fmt(rec.get(key), spec) if ok else "-"

        if r.get("speedup_basis") == "fit":
            fr_seconds = f"{fmt(fr.get('fit_s'), '.3f')} (fit)"
        else:
            fr_seconds = fld(fr, ok_fr, "epoch_s", ".3f")
        lines.append(
            f"| {row['model']} | {val(rb, ok_rb, 'ndcg@10')} | {val(fr, ok_fr, 'ndcg@10')} | {fmt(r['ndcg_ratio'], '.3f')} "
            f"| {val(rb, ok_rb, 'recall@10')} | {val(fr, ok_fr, 'recall@10')} | {fmt(r['recall_ratio'], '.3f')} "
            f"| {fld(rb, ok_rb, 'epoch_s', '.3f')} | {fr_seconds} | {fmt(r['speedup'], '.2f')} "
            f"| {fld(rb, ok_rb, 'epochs', 'd')} | {fld(fr, ok_fr, 'epochs', 'd')} "
            f"| {fld(rb, ok_rb, 'peak_rss_mb', '.0f')} | {fld(fr, ok_fr, 'peak_rss_mb', '.0f')} "
            f"| {fmt(r['memory_ratio'], '.2f')} |")
        for side, rec in (("RecBole", rb), ("fusionrec", fr)):
            if rec.get("status") == "ok":
                extra = f"stopped by {rec.get('stopped_by') or '?'}, best epoch {fmt(rec.get('best_epoch'), 'd')}"
                if rec.get("load_avg_before") is not None:
                    extra += f", load average {rec['load_avg_before']} at its start"
                if rec.get("reused"):
                    extra += ", result reused from an earlier run"
                notes.append(f"- {row['model']} {side}: {extra}")
            else:
                notes.append(f"- {row['model']} {side}: {rec.get('status', '?').upper()}: {rec.get('message', '')}")
    lines += ["", "RB = RecBole, FR = fusionrec; ratios are FR/RB except speed-up = RB s/epoch / FR s/epoch. "
              "'(fit)': a model fusionrec fits without epochs; its fit seconds stand against RecBole's single pass.", ""]
    lines += notes
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------- environment

def machine_info() -> dict:
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram_gb = round(int(line.split()[1]) / 1024**2, 1)
                break
    except (OSError, ValueError):
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu_model": cpu_model, "ram_gb": ram_gb,
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "load_avg_start": round(os.getloadavg()[0], 2)}


def package_versions(python: Path, names: list[str]) -> dict[str, str]:
    """Installed versions in another interpreter's environment (metadata only: nothing is imported)."""
    if not python.exists():
        return {}
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for n in sys.argv[1:]:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: pass\n"
            "print(json.dumps(out))")
    try:
        done = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, timeout=60)
        return json.loads(done.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


# ---------------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", default="pop,itemknn,bpr,lightgcn",
                   help=f"comma-separated, from {','.join(RECBOLE_NAMES)} (default: %(default)s)")
    p.add_argument("--budget-s", type=float, default=480.0, help="wall-clock cap on train+valid, each run")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: bench/out/<UTC time>)")
    p.add_argument("--sides", default="recbole,fusionrec", help="which sides to run (default: both)")
    p.add_argument("--threads", type=int, default=1,
                   help="OMP/MKL/torch threads per run, the same for both sides (default: 1, each side's fastest on 2 cores)")
    p.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE", ""],
                   help="OMP_WAIT_POLICY for both sides ('' leaves it unset; default: %(default)s, see README)")
    p.add_argument("--timeout-s", type=float, default=None,
                   help="hard kill per run (default: 2 x budget + 600 s, for data loading and the test pass)")
    p.add_argument("--reuse", action="store_true", help="keep results already in --out instead of re-running them")
    p.add_argument("--recbole-python", default=str(ROOT / "bench" / ".recbole" / "venv" / "bin" / "python"))
    p.add_argument("--fusionrec-bin", default=str(ROOT / ".venv" / "bin" / "fusionrec"))
    p.add_argument("--configs", default=str(ROOT / "configs" / "ml-100k"), help="folder of <model>.yaml")
    args = p.parse_args(argv)
    models = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in RECBOLE_NAMES]
    if not models or unknown:
        p.error(f"unknown model(s) {unknown}; known: {', '.join(RECBOLE_NAMES)}")
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or any(s not in SIDES for s in sides):
        p.error(f"--sides takes {','.join(SIDES)}")
    if args.budget_s <= 0 or args.threads < 1:
        p.error("--budget-s must be > 0 and --threads >= 1")
    args.models, args.sides = models, sides
    if args.timeout_s is None:
        args.timeout_s = 2 * args.budget_s + 600
    if args.out is None:
        args.out = ROOT / "bench" / "out" / dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    fr_python = Path(args.fusionrec_bin).parent / "python"
    report = {
        "schema": SCHEMA,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "cwd": os.getcwd(),
        "machine": machine_info(),
        "versions": {
            "recbole": package_versions(Path(args.recbole_python), ["recbole", "torch", "numpy", "scipy", "dgl"]),
            "fusionrec": package_versions(fr_python, ["fusionrec", "torch", "numpy", "scipy"]),
        },
        "threads": args.threads,
        "omp_wait_policy": args.omp_wait_policy or None,
        "budget_s": args.budget_s,
        "rows": [],
    }
    skipped = {"status": "skipped", "message": "side not requested (--sides)"}
    for model in args.models:
        row = {"model": model, "recbole": dict(skipped), "fusionrec": dict(skipped)}
        if "recbole" in args.sides:
            print(f"[{time.strftime('%H:%M:%S')}] RecBole {RECBOLE_NAMES[model]} ...", flush=True)
            row["recbole"] = run_recbole(model, out, args)
            print(f"    {row['recbole']['status']} {row['recbole'].get('message', '')}", flush=True)
        if "fusionrec" in args.sides:
            print(f"[{time.strftime('%H:%M:%S')}] fusionrec {model} ...", flush=True)
            row["fusionrec"] = run_fusionrec(model, out, args)
            print(f"    {row['fusionrec']['status']} {row['fusionrec'].get('message', '')}", flush=True)
        row["ratios"] = compare_row(model, row["recbole"], row["fusionrec"])
        report["rows"].append(row)
        # written after every model, so an interrupted run still leaves the finished rows
        (out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "summary.md").write_text(markdown(report))
    report["machine"]["load_avg_end"] = round(os.getloadavg()[0], 2)
    report["self_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    (out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    (out / "summary.md").write_text(text)
    print()
    print(text)
    print(f"wrote {out / 'summary.md'} and {out / 'summary.json'}")
    failed = [f"{r['model']}/{side}" for r in report["rows"] for side in args.sides if r[side]["status"] == "error"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
