"""fusionrec's sasrec next to RecBole 1.2.1's SASRec on amazon-scientific: training s/epoch, NDCG and Recall @10/@50.

One run of each, one after the other, on the leave-one-out split as given.

    .venv/bin/python bench/compare_recbole_sasrec.py [--epochs 200] [--threads 1] [--out bench/out/compare-recbole]

Both sides read the same three files of ``../shared/datasets/amazon-scientific`` (UniSRec's split, RecBole's sequential
atomic format: ``user_id:token item_id_list:token_seq item_id:token``), full ranking of every item, the test target
scored from train + valid (the history in ``Scientific.test.inter``), early stopping on valid NDCG@10:

* RecBole: ``bench/recbole/run_model.py SASRec`` (RecBole's own pipeline step by step, timing ``_train_epoch`` alone)
  under the interpreter of a separate RecBole venv (``--recbole-python``; default ``$RECBOLE_PYTHON``, else
  /work/recbole-venv, else bench/.recbole/venv from ``bench/recbole/setup.sh``; ray is not needed for this path), on a
  copy of the three ``.inter`` files in a temporary ``data_path/Scientific/`` and a config written next to it
  (``benchmark_filename: [train, valid, test]``, ``alias_of_item_id: [item_id_list]``, ``MAX_ITEM_LIST_LENGTH: 50``,
  SASRec's defaults: hidden 64, 2 layers, 2 heads, inner 256, CE loss). The peer-compat shim for torch >= 2.6 (RecBole
  reloads its best checkpoint, which pickles its Config, with a plain ``torch.load``) is run_model.py's
  ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, set in that child process only.
* fusionrec: ``.venv/bin/fusionrec train --config configs/amazon-scientific/sasrec.yaml`` with the same epochs, patience
  and seed, every item ranked as RecBole ranks them (``evaluation.exclude_seen=false``), and (unless
  ``--fusionrec-own-config``) the same batch size, learning rate and dropout.

Each side gets ``--threads`` OMP/MKL/torch threads and the same ``OMP_WAIT_POLICY``. Seconds per epoch = median over
epochs of training time alone (validation excluded): RecBole's ``epoch N training [time: X s`` log lines (cross-checked
against run_model.py's hook), fusionrec's ``timings.epoch_s_median``. Writes ``OUT/summary.md`` and
``OUT/summary.json`` (table, commands, versions, threads, machine, data counts as each side loaded them), and each
side's log and result under ``OUT/recbole/`` and ``OUT/fusionrec/``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# The process plumbing of the ml-100k harness (a child with a hard timeout and its own peak RSS, the shared thread
# environment, the machine and version probes): one implementation for both comparisons.
from compare_recbole import child_env, load_json, log_tail, machine_info, package_versions, run_child

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "fusionrec-bench-compare-sasrec/1"
SPLITS = ("train", "valid", "test")
METRICS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")
# RecBole writes "epoch 3 training [time: 1.23s, train loss: ...]" through colorlog; the colours are stripped first.
EPOCH_LINE = re.compile(r"epoch (\d+) training \[time: ([0-9.]+)s")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def default_recbole_python() -> str:
    if os.environ.get("RECBOLE_PYTHON"):
        return os.environ["RECBOLE_PYTHON"]
    for candidate in (Path("/work/recbole-venv/bin/python"), ROOT / "bench" / ".recbole" / "venv" / "bin" / "python"):
        if candidate.exists():
            return str(candidate)
    return str(ROOT / "bench" / ".recbole" / "venv" / "bin" / "python")


# -------------------------------------------------------------------------------------------------------- the data

def file_counts(data: Path, name: str) -> dict:
    """Users, items and rows of the three files as they are on disk (what both sides should load)."""
    users, items, rows = set(), set(), {}
    for split in SPLITS:
        n = 0
        with open(data / f"{name}.{split}.inter") as fh:
            next(fh)  # header
            for line in fh:
                user, history, target = line.rstrip("\n").split("\t")
                users.add(user)
                items.add(target)
                items.update(history.split())
                n += 1
        rows[split] = n
    return {"users": len(users), "items": len(items), **rows}


def recbole_yaml(args: argparse.Namespace, data_path: Path) -> dict:
    """RecBole's config for UniSRec's benchmark files (as UniSRec's own props load them) and SASRec's defaults."""
    return {
        # environment
        "use_gpu": False, "device": "cpu", "seed": args.seed, "reproducibility": True, "worker": 0,
        "show_progress": False, "log_wandb": False,
        # data: the three files as given, no filtering, no augmentation (benchmark files skip it)
        "data_path": str(data_path),
        "benchmark_filename": list(SPLITS),
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "alias_of_item_id": ["item_id_list"],  # the histories share item_id's vocabulary
        "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
        "LIST_SUFFIX": "_list", "ITEM_LIST_LENGTH_FIELD": "item_length", "MAX_ITEM_LIST_LENGTH": 50,
        "val_interval": None, "user_inter_num_interval": None, "item_inter_num_interval": None,
        # training
        "epochs": args.epochs, "train_batch_size": args.batch_size, "learner": "adam",
        "learning_rate": args.lr, "stopping_step": args.patience, "eval_step": 1,
        "train_neg_sample_args": None,  # CE over the catalogue: no sampled negatives
        # evaluation: full ranking; with benchmark_filename the split entry is not used, order TO is required
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["Recall", "NDCG"], "topk": [10, 50], "valid_metric": "NDCG@10", "valid_metric_bigger": True,
        "eval_batch_size": 4096,
        # SASRec as recbole/properties/model/SASRec.yaml ships it, dropout from --dropout
        "n_layers": 2, "n_heads": 2, "hidden_size": 64, "inner_size": 256,
        "hidden_dropout_prob": args.dropout, "attn_dropout_prob": args.dropout, "hidden_act": "gelu",
        "layer_norm_eps": 1e-12, "initializer_range": 0.02, "loss_type": "CE",
    }


# ----------------------------------------------------------------------------------------------------------- sides

def parse_epoch_lines(log_path: Path) -> list[float]:
    """Training seconds per epoch from RecBole's log (validation is its own 'evaluating' line, not counted)."""
    seen: dict[int, float] = {}
    try:
        text = ANSI.sub("", log_path.read_text(errors="replace"))
    except OSError:
        return []
    for match in EPOCH_LINE.finditer(text):
        seen[int(match.group(1))] = float(match.group(2))
    return [seen[k] for k in sorted(seen)]


def run_recbole(args: argparse.Namespace, out: Path, expected: dict) -> dict:
    json_path, log_path = out / "recbole" / "sasrec.json", out / "recbole" / "sasrec.log"
    rec = {"side": "recbole", "model": "SASRec", "result": str(json_path.relative_to(out)),
           "log": str(log_path.relative_to(out))}
    result = load_json(json_path) if args.reuse else None
    if result is None or result.get("status") != "ok":
        python = Path(args.recbole_python)
        if not python.exists():
            return {**rec, "status": "unavailable",
                    "message": f"no RecBole interpreter at {python}: see --recbole-python"}
        json_path.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory(prefix="recbole-sasrec-") as tmp:
            tmp = Path(tmp)
            dataset_dir = tmp / "data" / args.dataset_name  # RecBole reads data_path/<dataset>/<dataset>.<split>.inter
            dataset_dir.mkdir(parents=True)
            for split in SPLITS:
                shutil.copy2(args.data / f"{args.dataset_name}.{split}.inter", dataset_dir)
            protocol = tmp / "sasrec.yaml"
            protocol.write_text(json.dumps(recbole_yaml(args, tmp / "data"), indent=1) + "\n")  # JSON is YAML
            shutil.copy2(protocol, out / "recbole" / "sasrec.config.yaml")  # kept for the record
            cmd = [str(python), str(ROOT / "bench" / "recbole" / "run_model.py"), "SASRec",
                   "--dataset", args.dataset_name, "--protocol", str(protocol), "--workdir", str(tmp / "work"),
                   "--threads", str(args.threads), "--out", str(json_path)]
            rec["load_avg_before"] = round(os.getloadavg()[0], 2)
            child = run_child(cmd, log_path, child_env(args.threads, args.omp_wait_policy), args.timeout_s)
        rec.update(command=shlex.join(cmd), wall_s=round(child.wall_s, 1), child_peak_rss_mb=child.peak_rss_mb)
        if child.error or child.timed_out:
            return {**rec, "status": "error", "message": child.error or f"killed after {args.timeout_s:g} s"}
        result = load_json(json_path)
        if result is None or result.get("status") != "ok":
            why = (result or {}).get("error") or log_tail(log_path)
            return {**rec, "status": "error", "message": f"exit {child.returncode}: {why}"}
    else:
        rec["reused"] = True
    timings = result.get("timings", {})
    hooked = timings.get("epoch_train_s") or []
    logged = parse_epoch_lines(log_path)
    # The log rounds to 0.01 s; the hook in run_model.py sees the very same start and end times.
    agree = len(logged) == len(hooked) and all(abs(a - b) <= 0.006 for a, b in zip(logged, hooked))
    epoch_s = logged or hooked
    best = result.get("best_epoch")
    data = result.get("data", {})
    return {
        **rec, "status": "ok",
        "valid": pick(result.get("metrics", {}).get("valid")),
        "test": pick(result.get("metrics", {}).get("test")),
        "epochs": result.get("epochs"),
        "best_epoch": None if best is None else best + 1,  # RecBole counts epochs from 0; the table from 1
        "stopped_by": result.get("stopped_by"),
        "epoch_train_s": epoch_s,
        "epoch_s_median": round(statistics.median(epoch_s), 4) if epoch_s else None,
        "epoch_s_source": "log lines" if logged else "run_model.py hook",
        "log_matches_hook": agree,
        "fit_s": timings.get("fit_s"), "test_s": timings.get("test_s"), "data_s": timings.get("data_s"),
        "parameters": result.get("parameters"),
        "peak_rss_mb": result.get("peak_rss_mb"),
        "torch_threads": result.get("torch_threads"),
        "versions": result.get("versions"),
        "data": data,
        "data_check": data_check(data, expected),
    }


RUN_KEYS = ("command", "wall_s", "child_peak_rss_mb", "load_avg_before")


def remember_run(out: Path, rec: dict, settings: dict) -> None:
    """Keeps how a side's result was made (``OUT/<side>/sasrec.run.json``) so that ``--reuse`` can show it again,
    and says when a reused result was made with other settings than this run's."""
    if rec.get("status") != "ok":
        return
    path = out / rec["side"] / "sasrec.run.json"
    if not rec.get("reused"):
        path.write_text(json.dumps({**{k: rec.get(k) for k in RUN_KEYS}, "settings": settings}, indent=2) + "\n")
        return
    before = load_json(path) or {}
    made_with = before.get("settings")
    if isinstance(made_with, dict):
        changed = {k: made_with.get(k) for k in settings if made_with.get(k) != settings[k]}
        if changed:
            rec["reused_settings_differ"] = changed
    if not before.get("command"):  # older output: the log's first line is "$ <command>"
        try:
            first = (out / rec["log"]).read_text(errors="replace").split("\n", 1)[0]
        except OSError:
            first = ""
        before["command"] = first[2:] if first.startswith("$ ") else None
    for key in RUN_KEYS:
        if rec.get(key) is None:
            rec[key] = before.get(key)


def data_check(data: dict, expected: dict) -> str:
    keys = [k for k in ("users", "items", "train", "valid", "test") if k in data]
    bad = [f"{k} {data[k]} != {expected[k]}" for k in keys if data[k] != expected[k]]
    if not keys:
        return "not reported"
    return "matches the files" if not bad else "DIFFERS: " + ", ".join(bad)


def run_fusionrec(args: argparse.Namespace, out: Path, expected: dict) -> dict:
    run_dir, log_path = out / "fusionrec" / "sasrec", out / "fusionrec" / "sasrec.log"
    json_path = run_dir / "results.json"
    rec = {"side": "fusionrec", "model": "sasrec", "result": str(json_path.relative_to(out)),
           "log": str(log_path.relative_to(out))}
    result = load_json(json_path) if args.reuse else None
    if result is None or "metrics" not in result:
        exe = Path(args.fusionrec_bin)
        if not exe.exists():
            return {**rec, "status": "unavailable", "message": f"fusionrec CLI not found at {exe}"}
        json_path.unlink(missing_ok=True)
        cmd = [str(exe), "train", "--config", shown(args.config), "--out", str(run_dir),
               *[a for kv in fusionrec_overrides(args) for a in ("--set", kv)]]
        env = child_env(args.threads, args.omp_wait_policy)
        env["FUSIONREC_THREADS"] = str(args.threads)  # fusionrec's own knob; OMP_NUM_THREADS says the same
        rec["load_avg_before"] = round(os.getloadavg()[0], 2)
        child = run_child(cmd, log_path, env, args.timeout_s)
        rec.update(command=shlex.join(cmd), wall_s=round(child.wall_s, 1), child_peak_rss_mb=child.peak_rss_mb)
        if child.error or child.timed_out:
            return {**rec, "status": "error", "message": child.error or f"killed after {args.timeout_s:g} s"}
        result = load_json(json_path)
        if child.returncode != 0 or result is None:
            return {**rec, "status": "error", "message": f"exit {child.returncode}: {log_tail(log_path)}"}
    else:
        rec["reused"] = True
    timings = result.get("timings") or {}
    stats = result.get("dataset_stats") or {}
    given = stats.get("presplit") or {}
    # fusionrec counts interactions: its train = each user's first item + the 34,101 training targets
    loaded = {"users": stats.get("users"), "items": stats.get("items"), "valid": given.get("valid"),
              "test": given.get("test")}
    if isinstance(given.get("train"), int) and isinstance(stats.get("users"), int):
        loaded["train"] = given["train"] - stats["users"]
    loaded = {k: v for k, v in loaded.items() if isinstance(v, int)}
    return {
        **rec, "status": "ok",
        "valid": pick(result["metrics"].get("valid")),
        "test": pick(result["metrics"].get("test")),
        "epochs": timings.get("epochs"),
        "best_epoch": result.get("best_epoch"),
        "stopped_by": result.get("stopped_by"),
        "epoch_s_median": timings.get("epoch_s_median"),
        "epoch_s_source": "results.json timings.epoch_s_median",
        "epoch_train_s": [round(h["train_s"], 4) for h in result.get("history") or []
                          if isinstance(h, dict) and isinstance(h.get("train_s"), (int, float))],
        "fit_s": timings.get("fit_s"),
        "peak_rss_mb": result.get("peak_rss_mb"),
        "torch_threads": (result.get("machine") or {}).get("torch_threads"),
        "versions": result.get("versions"),
        "data": loaded,
        "data_check": data_check(loaded, expected),
        "hyperparameters": {"training": {k: (result.get("config") or {}).get("training", {}).get(k)
                                         for k in ("epochs", "batch_size", "lr", "loss", "patience")},
                            "model": (result.get("config") or {}).get("model", {}).get("params")},
    }


def fusionrec_overrides(args: argparse.Namespace) -> list[str]:
    # RecBole's sequential evaluation ranks every item, the user's own history included: the same protocol here
    sets = [f"dataset.path={args.data}", f"seed={args.seed}", f"training.epochs={args.epochs}",
            f"training.patience={args.patience}", "training.progress=false", "evaluation.exclude_seen=false"]
    if not args.fusionrec_own_config:
        sets += [f"training.batch_size={args.batch_size}", f"training.lr={args.lr:g}",
                 f"model.params.dropout={args.dropout:g}"]
    return sets + list(args.fusionrec_set)


def shown(path: Path) -> str:
    """A path as the command shows it: relative to the project root (the children's working directory) when inside."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def pick(metrics: dict | None) -> dict[str, float]:
    if not isinstance(metrics, dict):
        return {}
    return {str(k).lower(): float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


# ------------------------------------------------------------------------------------------------------- the table

def fmt(value, spec: str = ".4f") -> str:
    if value is None:
        return "-"
    return format(value, spec) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def ratio(a, b):
    return a / b if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def markdown(report: dict) -> str:
    m, rb, fr = report["machine"], report["recbole"], report["fusionrec"]
    rb_version = (rb.get("versions") or {}).get("recbole") or report["versions"]["recbole_env"].get("recbole", "?")
    lines = [
        f"# fusionrec sasrec vs RecBole {rb_version} SASRec on amazon-scientific (leave-one-out as given)",
        "",
        f"- date: {report['date']}",
        f"- command: `{report['command']}`",
        f"- machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']} GB RAM; threads per side: {report['threads']} "
        f"(OMP_WAIT_POLICY={report['omp_wait_policy'] or 'unset'}); load average at start {m['load_avg_start']}",
        "- versions: " + "; ".join(f"{side}: " + (", ".join(f"{k} {v}" for k, v in vs.items()) or "not found")
                                      for side, vs in report["versions"].items()),
        f"- settings: up to {report['settings']['epochs']} epochs, patience {report['settings']['patience']} on valid "
        f"NDCG@10, seed {report['settings']['seed']}; RecBole batch {report['settings']['batch_size']}, lr "
        f"{report['settings']['lr']:g}, dropout {report['settings']['dropout']:g} (hidden and attention); fusionrec: "
        + ("its config as shipped" if report["settings"]["fusionrec_own_config"] else "the same batch, lr, dropout"),
        f"- data (files): {report['data_files']['users']:,} users, {report['data_files']['items']:,} items, rows "
        f"train {report['data_files']['train']:,} / valid {report['data_files']['valid']:,} / test "
        f"{report['data_files']['test']:,}",
        "",
        "| side | model | epochs | best epoch | train s/epoch (median) | valid NDCG@10 | test NDCG@10 | test Recall@10 "
        "| test NDCG@50 | test Recall@50 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rec in ((f"RecBole {rb_version}", rb), ("fusionrec", fr)):
        if rec.get("status") != "ok":
            lines.append(f"| {name} | {rec.get('model')} | {rec.get('status', '?').upper()} | | | | | | | |")
            continue
        t = rec["test"]
        lines.append(f"| {name} | {rec['model']} | {fmt(rec['epochs'], 'd')} | {fmt(rec['best_epoch'], 'd')} "
                     f"| {fmt(rec['epoch_s_median'], '.3f')} | {fmt(rec['valid'].get('ndcg@10'))} "
                     f"| {fmt(t.get('ndcg@10'))} | {fmt(t.get('recall@10'))} | {fmt(t.get('ndcg@50'))} "
                     f"| {fmt(t.get('recall@50'))} |")
    r = report["ratios"]
    lines.append(f"| fusionrec / RecBole | | | | {fmt(r['epoch_s'], '.2f')} | {fmt(r['valid_ndcg@10'], '.2f')} "
                 + " ".join(f"| {fmt(r[k], '.2f')}" for k in ("ndcg@10", "recall@10", "ndcg@50", "recall@50")) + " |")
    lines += ["", "Best epoch counted from 1 on both sides. s/epoch = training alone (validation excluded); a ratio "
              "below 1 in that column means fusionrec is faster per epoch.", ""]
    for name, rec in (("RecBole", rb), ("fusionrec", fr)):
        if rec.get("status") != "ok":
            lines.append(f"- {name}: {rec.get('status', '?').upper()}: {rec.get('message', '')}")
            continue
        bits = [f"stopped by {rec.get('stopped_by') or '?'}", f"torch threads {rec.get('torch_threads')}",
                f"peak RSS {fmt(rec.get('peak_rss_mb'), '.0f')} MB", f"wall {fmt(rec.get('wall_s'), '.0f')} s"]
        if rec.get("load_avg_before") is not None:
            bits.append(f"load average {rec['load_avg_before']} at its start")
        if rec.get("reused"):
            bits.append("result reused" + (f" (MADE WITH {json.dumps(rec['reused_settings_differ'])})"
                                           if rec.get("reused_settings_differ") else ""))
        bits.append(f"data as loaded: {rec['data_check']} ({fmt_counts(rec.get('data'))})")
        if name == "RecBole":
            bits.append(f"s/epoch from {rec['epoch_s_source']}" + ("" if rec.get("log_matches_hook") else
                                                                   " (log and hook DISAGREE)"))
            bits.append("its config: recbole/sasrec.config.yaml (data_path: a temporary copy of the three files)")
        bits.append("train s per epoch: " + (", ".join(f"{s:.2f}" for s in rec.get("epoch_train_s") or []) or "-"))
        if name == "fusionrec":
            bits.append(f"hyper-parameters: {json.dumps(rec.get('hyperparameters'), separators=(',', ':'))}")
        lines.append(f"- {name}: " + "; ".join(bits))
        if rec.get("command"):
            lines.append(f"  - `{rec['command']}`")
    lines += ["", "Protocol differences that remain: RecBole trains on each training prefix (34,101 rows, one target "
              "each); fusionrec's sasrec on each user's sequence with a target at every position (the same 34,101 "
              "targets per epoch, fewer encoder passes). Both rank every item, the user's own history included "
              "(RecBole's sequential full ranking; fusionrec with evaluation.exclude_seen false): history items "
              "then take top slots (50 test and 54 valid targets of this split repeat one)."]
    return "\n".join(lines) + "\n"


def fmt_counts(data: dict | None) -> str:
    if not data:
        return "-"
    return ", ".join(f"{k} {v:,}" for k, v in data.items() if isinstance(v, int))


# ------------------------------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "compare-recbole",
                   help="output folder (default: bench/out/compare-recbole)")
    p.add_argument("--data", type=Path, default=Path("../shared/datasets/amazon-scientific"),
                   help="folder of NAME.{train,valid,test}.inter, relative to the project root "
                        "(default: %(default)s)")
    p.add_argument("--dataset-name", default="Scientific", help="file prefix in --data (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=200, help="upper bound on epochs, both sides (default: %(default)s)")
    p.add_argument("--patience", type=int, default=10,
                   help="epochs without a better valid NDCG@10 before stopping, both sides (RecBole's stopping_step; "
                        "default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=2048,
                   help="training batch (RecBole: prefixes, fusionrec: target positions; default: %(default)s, "
                        "RecBole's)")
    p.add_argument("--lr", type=float, default=0.001, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--dropout", type=float, default=0.5,
                   help="RecBole's hidden_dropout_prob and attn_dropout_prob, fusionrec's model.params.dropout "
                        "(default: %(default)s, RecBole's)")
    p.add_argument("--seed", type=int, default=2020, help="seed of both sides (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="OMP/MKL/torch threads, the same for both sides (default: %(default)s)")
    p.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE", ""],
                   help="OMP_WAIT_POLICY for both sides ('' leaves it unset; default: %(default)s)")
    p.add_argument("--fusionrec-own-config", action="store_true",
                   help="fusionrec keeps its config's batch size, lr and dropout (only epochs, patience, seed and the "
                        "data path are set)")
    p.add_argument("--fusionrec-set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra `--set` for fusionrec train (repeatable), applied last")
    p.add_argument("--sides", default="recbole,fusionrec", help="which sides to run (default: both)")
    p.add_argument("--reuse", action="store_true", help="keep a side's result already in --out instead of re-running")
    p.add_argument("--timeout-s", type=float, default=12 * 3600,
                   help="hard kill per side (default: %(default)g s; a RecBole epoch here takes ~2 min on one thread)")
    p.add_argument("--recbole-python", default=default_recbole_python(),
                   help="interpreter of the RecBole 1.2.1 venv (default: %(default)s)")
    p.add_argument("--fusionrec-bin", default=str(ROOT / ".venv" / "bin" / "fusionrec"))
    p.add_argument("--config", type=Path, default=ROOT / "configs" / "amazon-scientific" / "sasrec.yaml",
                   help="fusionrec config (default: configs/amazon-scientific/sasrec.yaml)")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or args.threads < 1 or args.lr <= 0 or not 0 <= args.dropout < 1:
        p.error("--epochs, --batch-size, --threads must be >= 1, --lr > 0, 0 <= --dropout < 1")
    args.sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not args.sides or any(s not in ("recbole", "fusionrec") for s in args.sides):
        p.error("--sides takes recbole,fusionrec")
    data = args.data if args.data.is_absolute() else ROOT / args.data
    missing = [s for s in SPLITS if not (data / f"{args.dataset_name}.{s}.inter").exists()]
    if missing:
        p.error(f"{data} has no {args.dataset_name}.{{{','.join(missing)}}}.inter")
    args.data = data.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    for side in ("recbole", "fusionrec"):
        (out / side).mkdir(parents=True, exist_ok=True)
    expected = file_counts(args.data, args.dataset_name)
    report = {
        "schema": SCHEMA,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": machine_info(),
        "versions": {
            "recbole_env": package_versions(Path(args.recbole_python), ["recbole", "torch", "numpy", "pandas"]),
            "fusionrec_env": package_versions(Path(args.fusionrec_bin).parent / "python",
                                              ["fusionrec", "torch", "numpy"]),
        },
        "threads": args.threads,
        "omp_wait_policy": args.omp_wait_policy or None,
        "settings": {k: getattr(args, k) for k in ("epochs", "patience", "batch_size", "lr", "dropout", "seed",
                                                   "fusionrec_own_config")},
        "data": str(args.data),
        "data_files": expected,
        "recbole": {"status": "skipped", "model": "SASRec", "message": "side not requested (--sides)"},
        "fusionrec": {"status": "skipped", "model": "sasrec", "message": "side not requested (--sides)"},
    }
    if "recbole" in args.sides:
        print(f"[{time.strftime('%H:%M:%S')}] RecBole SASRec ...", flush=True)
        report["recbole"] = run_recbole(args, out, expected)
        print(f"    {report['recbole']['status']} {report['recbole'].get('message', '')}", flush=True)
    if "fusionrec" in args.sides:
        print(f"[{time.strftime('%H:%M:%S')}] fusionrec sasrec ...", flush=True)
        report["fusionrec"] = run_fusionrec(args, out, expected)
        print(f"    {report['fusionrec']['status']} {report['fusionrec'].get('message', '')}", flush=True)
    for side in ("recbole", "fusionrec"):
        remember_run(out, report[side], report["settings"] | {"threads": args.threads, "data": str(args.data)})
    rb, fr = report["recbole"], report["fusionrec"]
    both = rb.get("status") == "ok" and fr.get("status") == "ok"
    report["ratios"] = {"epoch_s": ratio(fr.get("epoch_s_median"), rb.get("epoch_s_median")) if both else None,
                        "valid_ndcg@10": ratio(fr.get("valid", {}).get("ndcg@10"), rb.get("valid", {}).get("ndcg@10"))
                        if both else None,
                        **{k: ratio(fr["test"].get(k), rb["test"].get(k)) if both else None for k in METRICS}}
    report["machine"]["load_avg_end"] = round(os.getloadavg()[0], 2)
    text = markdown(report)
    (out / "summary.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "summary.md").write_text(text)
    print()
    print(text)
    print(f"wrote {out / 'summary.md'} and {out / 'summary.json'}")
    return 1 if any(report[s]["status"] not in ("ok", "skipped") for s in ("recbole", "fusionrec")) else 0


if __name__ == "__main__":
    sys.exit(main())
