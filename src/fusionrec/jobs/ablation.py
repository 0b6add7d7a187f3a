"""``fusionrec ablate``: what each knowledge source, fusion strategy and KG-loss weight adds, on one split.

The rows and their groups are :mod:`fusionrec.jobs.ablation_plan`'s. Before training, the plan (each row and what
it changes against the base config; rows with the same settings train once) and an estimate are printed: the
epochs each training may take (from ``training.epochs``, ``patience`` and ``eval_every``) times one epoch of the
dearest planned variant, timed just before; after each training the estimate of the rest follows the measured runs.
A row whose source the dataset lacks (a KG, the users' fields, a social graph) is skipped with the reason in its
table cell, so one command serves any dataset. ``--seeds`` trains every row once per seed; the table then gives the
mean and the standard deviation of each metric. ``best.yaml`` is the config of the row best on validation (mean over
the seeds): the sources a dataset keeps, chosen by its data. Run again with the same ``--out`` (after a kill, or with
more rows), a training whose results.json is already there for the same config and seed is kept, not redone.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from fusionrec.config import RunConfig
from fusionrec.errors import FusionrecError
from fusionrec.jobs.ablation_plan import PlannedVariant, duration, format_estimate, format_plan, plan_ablation
from fusionrec.util import atomic_io


def table_metrics(cfg: RunConfig) -> list[str]:
    """The test columns: NDCG and Recall at the config's first two cut-offs (e.g. @10 and @20)."""
    return [f"{metric}@{k}" for k in cfg.evaluation.ks[:2] for metric in ("ndcg", "recall")]


def _cost_rank(p: PlannedVariant) -> tuple:
    params = p.config.model.params
    return (bool(params.get("use_text")) + bool(params.get("use_kg")) + bool(params.get("item_item")),
            params.get("fusion") == "attention")


def missing_source(variant: RunConfig, prepared) -> str | None:
    """Why the dataset cannot feed ``variant`` (the error its inputs raise: no KG, no NAME.user, no NAME.net), or
    None when it can."""
    from fusionrec.jobs.experiment import model_inputs, model_params

    cls, params = model_params(variant)
    try:
        model_inputs(variant, prepared, cls.required_inputs(params), log=lambda _: None)
    except FusionrecError as err:
        return str(err)
    return None


def time_one_epoch(variant: RunConfig, prepared) -> float:
    """Seconds of one training epoch of ``variant`` on ``prepared`` data (no validation, nothing written)."""
    from fusionrec.jobs.experiment import model_inputs, model_params
    from fusionrec.training.seeding import seed_everything
    from fusionrec.training.trainer import Trainer

    cls, params = model_params(variant)
    inputs = model_inputs(variant, prepared, cls.required_inputs(params), log=lambda _: None)
    seed_everything(variant.seed)
    model = cls.from_inputs(inputs, params)
    training = replace(variant.training, epochs=1, progress=False, time_budget_s=None)
    result = Trainer(training, seed=variant.seed).fit(model, inputs, None)
    return float(result.epoch_seconds[0]) if result.epoch_seconds else float(result.fit_seconds)


def run_ablation(cfg: RunConfig, out_dir: str | Path, log=None, variants: str | None = None, dry_run: bool = False,
                 echo: Callable[[str], None] = print, estimate: bool = True,
                 seeds: list[int] | None = None) -> list[dict]:
    """Prints the plan (``echo``); with ``dry_run`` stops there (no data read) and returns []. Otherwise skips the
    rows the dataset cannot feed, times one epoch of the dearest planned variant (``estimate``), prints the estimate,
    trains each distinct setting once per seed (``seeds``; default: the config's seed; kept from an earlier run in
    ``out_dir`` when there) and writes ``ablation.md``, ``ablation.json``, ``ablation.png`` and ``best.yaml`` under
    ``out_dir``; returns the table rows."""
    seeds = list(seeds) if seeds else [cfg.seed]
    plan = plan_ablation(cfg, variants)
    echo(format_plan(cfg, plan, len(seeds)))
    if dry_run:
        return []
    from fusionrec.evaluation.report import bar_chart
    from fusionrec.jobs.experiment import prepare_data

    out_dir = Path(out_dir)
    prepared = prepare_data(cfg, log)
    skipped = {p.index: why for p in plan if p.same_as is None and (why := missing_source(p.config, prepared))}
    for p in plan:
        if p.index in skipped:
            echo(f"skipped: {p.label}: {skipped[p.index]}")
    training = [p for p in plan if p.same_as is None and p.index not in skipped]
    earlier = {(p.index, s): finished_run(_folder(out_dir, p, s, len(seeds)), replace(p.config, seed=s))
               for p in training for s in seeds}  # read once: what a rerun keeps
    pending = [p for p in training if any(earlier[p.index, s] is None for s in seeds)]
    if estimate and pending:
        dearest = max(pending, key=_cost_rank)
        echo(format_estimate(cfg, pending, time_one_epoch(dearest.config, prepared), dearest.label, len(seeds)))
    results = _train(training, seeds, earlier, prepared, out_dir, log, echo)
    metrics, valid_key = table_metrics(cfg), f"valid {cfg.training.valid_metric}"
    rows = [_row(p, results.get(p.index if p.same_as is None else p.same_as),
                 skipped.get(p.index if p.same_as is None else p.same_as), metrics, cfg.training.valid_metric)
            for p in plan]
    choice = write_choice(out_dir, plan, rows, cfg.training.valid_metric)
    name = prepared.dataset.name
    seeds_note = f" (mean ± sd over seeds {', '.join(map(str, seeds))})" if len(seeds) > 1 else ""
    atomic_io.write_text(out_dir / "ablation.md", f"# FusionRec ablation on {name}{seeds_note}\n\n"
                                                  f"{_markdown(rows, len(seeds) > 1, metrics, valid_key)}"
                                                  f"{_choice_line(choice)}")
    atomic_io.write_json(out_dir / "ablation.json", {"data_sha256": prepared.data_sha256, "seeds": seeds,
                                                     "rows": rows, "chosen_on_validation": choice,
                                                     "plan": [{"group": p.group, "variant": p.label,
                                                               "changes": p.changes} for p in plan]})
    trained = [{**r, "model": r["variant"]} for r in rows if r["skipped"] is None]
    if trained:
        bar_chart(trained, metrics[:2], out_dir / "ablation.png", f"FusionRec ablation, {name}")
    return rows


def _train(training: list[PlannedVariant], seeds: list[int], earlier: dict, prepared, out_dir: Path, log,
           echo) -> dict:
    """Each planned setting once per seed (folder ``group-variant``, or ``.../seed-S`` with several seeds), unless
    ``earlier`` holds its results from a former run, with the progress line and the estimate of what is left after
    each training."""
    from fusionrec.jobs.experiment import run_experiment

    results: dict[int, list[dict]] = {}
    spent: list[float] = []
    total, done = len(training) * len(seeds), 0
    for p in training:
        for seed in seeds:
            folder = _folder(out_dir, p, seed, len(seeds))
            config = replace(p.config, seed=seed)
            done += 1
            if (kept := earlier[p.index, seed]) is not None:
                results.setdefault(p.index, []).append(kept)
                echo(f"done {done}/{total}: {p.label}{f' seed {seed}' if len(seeds) > 1 else ''}: kept from an "
                     f"earlier run ({folder / 'results.json'})")
                continue
            t0 = time.perf_counter()
            results.setdefault(p.index, []).append(run_experiment(config, folder, prepared=prepared, log=log))
            spent.append(time.perf_counter() - t0)
            left = total - done
            eta = f"; the {left} left: about {duration(left * sum(spent) / len(spent))} at the mean so far" \
                if left else ""
            which = f" seed {seed}" if len(seeds) > 1 else ""
            echo(f"done {done}/{total}: {p.label}{which} in {duration(spent[-1])} "
                 f"({results[p.index][-1]['timings']['epochs']} epochs){eta}")
    return results


def _folder(out_dir: Path, p: PlannedVariant, seed: int, n_seeds: int) -> Path:
    return out_dir / p.folder / (f"seed-{seed}" if n_seeds > 1 else "")


def finished_run(folder: Path, config: RunConfig) -> dict | None:
    """The results.json an earlier ablation left in ``folder`` for exactly ``config`` (same settings and seed, not
    interrupted), or None: a rerun after a kill trains only what is missing."""
    path = folder / "results.json"
    if not path.is_file():
        return None
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = earlier.get("config") == json.loads(json.dumps(config.to_dict()))
    return earlier if same and not earlier.get("interrupted") else None


def _row(p: PlannedVariant, runs: list[dict] | None, skipped: str | None, metrics: list[str],
         valid_metric: str) -> dict:
    """One table row: each metric's mean over the seeds (and its sd under ``<metric> sd``), what each run chose on
    validation (e.g. the item-item share, one value a seed), epochs and seconds per epoch."""
    row: dict = {"group": p.group, "variant": p.label, "skipped": skipped}
    if not runs:
        return row
    for metric in metrics:
        _mean_sd(row, metric, [r["metrics"]["test"].get(metric) for r in runs])
    _mean_sd(row, f"valid {valid_metric}", [r["metrics"]["valid"].get(valid_metric) for r in runs])
    chosen = [(r.get("chosen_on_validation") or {}).get("chosen") or {} for r in runs]
    keys = sorted({k for c in chosen for k in c})
    row["chosen on validation"] = ", ".join(f"{k} {'/'.join(f'{c[k]:g}' if k in c else '-' for c in chosen)}"
                                            for k in keys) or None
    row["epochs"] = "/".join(str(r["timings"]["epochs"]) for r in runs)
    row["s/epoch"] = statistics.median(r["timings"]["epoch_s_median"] for r in runs)
    return row


def write_choice(out_dir: Path, plan: list[PlannedVariant], rows: list[dict], valid_metric: str) -> dict | None:
    """Writes ``best.yaml``: the config of the row with the best mean validation metric (the sources a dataset's
    validation keeps, the others switched off by the data); returns the choice for ablation.json (None: no row
    trained)."""
    import yaml

    from fusionrec.training.run_record import higher_is_better

    key = f"valid {valid_metric}"
    sign = 1.0 if higher_is_better(valid_metric) else -1.0
    candidates = [(p, r) for p, r in zip(plan, rows) if r["skipped"] is None and r.get(key) is not None]
    if not candidates:
        return None
    best, row = max(candidates, key=lambda pr: sign * pr[1][key])  # the earliest among equals
    header = (f"# fusionrec ablate: variant {best.label} ({best.group}), mean {key} {row[key]:.4f}, the best of "
              f"{len(candidates)} rows on validation only\n# what it changes against the base config: "
              f"{best.changes}\n")
    atomic_io.write_text(out_dir / "best.yaml", header + yaml.safe_dump(best.config.to_dict(), sort_keys=False))
    return {"variant": best.label, "group": best.group, "metric": key, "value": row[key],
            "tried": {r["variant"]: r[key] for _, r in candidates}}


def _choice_line(choice: dict | None) -> str:
    if choice is None:
        return ""
    return (f"\nBest on validation: **{choice['variant']}** ({choice['metric']} {choice['value']:.4f}); its config "
            "is best.yaml.\n")


def _mean_sd(row: dict, key: str, values: list) -> None:
    values = [v for v in values if v is not None]
    row[key] = statistics.fmean(values) if values else None
    row[f"{key} sd"] = statistics.stdev(values) if len(values) > 1 else None


def _markdown(rows: list[dict], with_sd: bool, metrics: list[str], valid_key: str) -> str:
    """The table: metric columns as ``.3384 ± .0012`` with several seeds; a skipped row says why."""
    from fusionrec.evaluation.report import markdown_table

    def cell(row: dict, key: str):
        if row["skipped"] is not None or row.get(key) is None:
            return None
        sd = row.get(f"{key} sd")
        return f"{row[key]:.4f} ± {sd:.4f}" if with_sd and sd is not None else row[key]

    keys = [*metrics, valid_key]
    table = [{"group": r["group"], "variant": r["variant"], **{k: cell(r, k) for k in keys},
              "chosen on validation": r.get("chosen on validation"), "epochs": r.get("epochs"),
              "s/epoch": r.get("s/epoch"),
              "note": f"skipped: {r['skipped']}" if r["skipped"] else None} for r in rows]
    return markdown_table(table)
