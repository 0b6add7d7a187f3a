"""What `fusionrec tune` leaves behind: the trials table, its plot, the best config as YAML and a summary."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import yaml

from fusionrec.config import RunConfig, load_config
from fusionrec.jobs.tune_space import Dimension, override
from fusionrec.util.atomic_io import write_bytes, write_json, write_text
from fusionrec.util.provenance import machine, package_versions

QUIET = "training.progress=false"


def trial_rows(study, dimensions: list[Dimension]) -> list[dict]:
    """One row a trial: number, state, valid value (for a pruned trial, its last reported one), epochs, why it
    stopped, seconds, the recorded test value, and each searched key's value."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        value = t.value if t.value is not None else (t.intermediate_values[max(t.intermediate_values)]
                                                     if t.intermediate_values else None)
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({"trial": t.number, "state": t.state.name.lower(), "valid": value,
                     "epochs": t.user_attrs.get("epochs"), "stopped_by": t.user_attrs.get("stopped_by"),
                     "seconds": round(seconds, 1) if seconds is not None else None,
                     "test (recorded, not used)": t.user_attrs.get("test"),
                     **{dim.key: t.params.get(dim.key) for dim in dimensions}})
    return rows


def write_reports(study, out: Path, dimensions: list[Dimension], metric: str, base: RunConfig, config,
                  space_file, overrides: list[str], wall_s: float, data_sha256: str, trials: int,
                  pruner: str) -> dict:
    rows = trial_rows(study, dimensions)
    if rows:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        write_text(out / "trials.csv", buffer.getvalue())
        _plot(rows, metric, out / "trials.png", study.direction.name == "MAXIMIZE")
    complete = [t for t in study.get_trials(deepcopy=False) if t.value is not None and t.state.name == "COMPLETE"]
    sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0
    best = max(complete, key=lambda t: (sign * t.value, -t.number)) if complete else None
    user_sets = [o for o in overrides if o != QUIET]
    if best is not None:
        chosen = [*user_sets, *(override(k, v) for k, v in best.params.items())]
        cfg = load_config(config, chosen)
        header = (f"# fusionrec tune: trial {best.number} of {len(rows)}, valid {metric} {best.value:.4f} (selected "
                  f"on validation only)\n# base: {config}{' with ' + ' '.join(user_sets) if user_sets else ''}\n"
                  f"# searched ({space_file}): {', '.join(d.key for d in dimensions)}\n# command: "
                  f"{' '.join(sys.argv) if sys.argv and sys.argv[0].endswith('fusionrec') else 'fusionrec tune'}\n")
        write_text(out / "best.yaml", header + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    counts = {state: sum(1 for r in rows if r["state"] == state) for state in ("complete", "pruned", "fail")}
    summary = {
        "metric": metric,
        "best": None if best is None else {"trial": best.number, "value": best.value, "params": best.params,
                                           "test (recorded, not used)": best.user_attrs.get("test")},
        "trials_asked": trials, "pruner": pruner, "counts": counts, "wall_s_this_call": round(wall_s, 1),
        "space": {d.key: {k: v for k, v in vars(d).items() if k != "key" and v not in (None, (), False)}
                  for d in dimensions},
        "base_config": str(config), "overrides": user_sets, "seed": base.seed, "data_sha256": data_sha256,
        "versions": package_versions(), "machine": machine(),
    }
    write_json(out / "tune.json", summary)
    return summary


def _plot(rows: list[dict], metric: str, path: Path, higher: bool = True) -> None:
    """Each trial's validation value (complete: dots, pruned: crosses at the last reported value) and the best
    complete value so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for state, marker in (("complete", "o"), ("pruned", "x")):
        points = [(r["trial"], r["valid"]) for r in rows if r["state"] == state and r["valid"] is not None]
        if points:
            ax.scatter(*zip(*points), marker=marker, label=state)
    best, line = None, []
    better = max if higher else min
    for r in rows:
        if r["state"] == "complete" and r["valid"] is not None:
            best = r["valid"] if best is None else better(best, r["valid"])
        if best is not None:
            line.append((r["trial"], best))
    if line:
        ax.step(*zip(*line), where="post", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"valid {metric}")
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    write_bytes(path, buffer.getvalue())
