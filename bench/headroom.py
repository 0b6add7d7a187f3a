"""How much accuracy a dataset leaves above its collaborative signal: EASE alone, EASE with user attributes, EASE
blended with a time-aware popularity, and EASE blended with trained models' scores, every setting chosen on
validation NDCG@10 and the test reported beside it.

Issue 3 asks FusionRec for 5 % over the best of its own baselines on ml-100k; this script asks whether the signals
that a model could add (who the user is, when they were active, another model's view of the same interactions) hold
that much at all, on a strong closed-form base:

    .venv/bin/python bench/headroom.py --config configs/ml-100k/ease.yaml \\
        --models runs/lightgcn/model,runs/fusionrec/model --out bench/out/headroom.json

``--config``: the dataset and split (and EASE's ``l2``; text and KG weights are ignored: plain EASE is the base).
``--models``: artifacts trained on that same split (``fusionrec train --config ... --out DIR`` writes ``DIR/model``);
each is blended with the base, then all of them together. User attributes are the categorical columns of the
dataset's RecBole ``.user`` file (an ``age`` column is bucketed by decade); the time-aware popularity of item i for
user u is sum over training events (v, i, t) of mean over u's training times s of exp(-(t - s)^2 / 2h^2), days.
A blend is sum_s w_s z(score s) with shares w_s >= 0 summing to 1 on a grid of step ``--blend-step``, z
standardising each user's scores over the items they may be shown. Every score matrix is dense (n_users, n_items),
and EASE needs an n_items x n_items inverse: meant for datasets of ml-100k or ml-1m size.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

from fusionrec.util.threads import configure_threads

configure_threads()

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

from fusionrec.util import atomic_io  # noqa: E402
from fusionrec.artifacts import load_artifact  # noqa: E402
from fusionrec.config import load_config  # noqa: E402
from fusionrec.data.atomic import read_atomic_table  # noqa: E402
from fusionrec.data.fetch import resolve_data_dir  # noqa: E402
from fusionrec.evaluation.evaluator import Evaluator  # noqa: E402
from fusionrec.jobs.experiment import prepare_data  # noqa: E402
from fusionrec.models.ease_shared import closed_form_weights  # noqa: E402
from fusionrec.util.provenance import machine, package_versions  # noqa: E402

DAY = 86400.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/ml-100k/ease.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. seed=2021 for another split (as bench/seeds.py --vary-split)")
    p.add_argument("--models", default="", help="comma-separated artifact folders trained on the same split")
    p.add_argument("--user-weights", default="0.3,1,3", help="weights of the user-attribute columns to try")
    p.add_argument("--bandwidths", default="2,7,20", help="time kernel widths to try, in days")
    p.add_argument("--blend-weights", default="0.05,0.1,0.2,0.4", help="shares of the time-aware popularity to try")
    p.add_argument("--blend-step", type=float, default=0.1, help="grid step of the shares in a blend of models")
    p.add_argument("--out", help="JSON report")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    cfg = load_config(args.config, args.set)
    prepared = prepare_data(cfg)
    split = prepared.split
    train = split.train.to_csr().astype(np.float64)
    evaluator = Evaluator(ks=(10, 20), metrics=("ndcg", "recall"))
    exclude = {"valid": split.exclude("valid"), "test": split.exclude("test")}
    l2 = float(cfg.model.params.get("l2", 400.0)) if cfg.model.name == "ease" else 400.0

    def ndcg(scores: np.ndarray, part: str) -> float:
        s = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))
        return round(evaluator.evaluate(lambda u: s[u], getattr(split, part), exclude[part])["ndcg@10"], 4)

    def metrics(scores: np.ndarray) -> dict:
        return {part: ndcg(scores, part) for part in ("valid", "test")}

    def best_on_valid(candidates) -> tuple[dict, dict]:
        """(metrics, setting) of the candidate (setting, scores) with the best valid NDCG@10; only it is tested."""
        valid, setting, scores = max(((ndcg(sc, "valid"), st, sc) for st, sc in candidates), key=lambda c: c[0])
        return {"valid": valid, "test": ndcg(scores, "test")}, setting

    rows = []

    def report(name: str, result: dict, setting: dict | None = None) -> None:
        rows.append({"name": name, "setting": setting or {}, "valid_ndcg@10": result["valid"],
                     "test_ndcg@10": result["test"]})
        print(f"{name:<40} valid {result['valid']:.4f}  test {result['test']:.4f}  {setting or ''}", flush=True)

    base = ease_scores(train, l2, train)
    report(f"base: plain EASE (l2 {l2:g})", metrics(base))

    attributes = user_attributes(prepared, cfg)
    if attributes is not None:
        report("base + user attributes", *best_on_valid(
            ({"weight": w, "columns": int(attributes.shape[1])},
             ease_scores(sp.hstack([train, w * attributes]).tocsr(), l2, train))
            for w in (float(x) for x in args.user_weights.split(","))))

    z_base = standardise(base, exclude["valid"])
    if split.train.timestamps is not None:
        z_time = {h: standardise(np.log1p(time_popularity(split.train, h)), exclude["valid"])
                  for h in (float(x) for x in args.bandwidths.split(","))}  # once per width, not per weight
        report("base + time-aware popularity", *best_on_valid(
            ({"bandwidth_days": h, "weight": w}, (1 - w) * z_base + w * z_time[h])
            for h, w in itertools.product(z_time, (float(x) for x in args.blend_weights.split(",")))))

    models = [m for m in args.models.split(",") if m]
    z_models = {}
    for path in models:
        model = load_artifact(path).model.eval()
        name = model.name if model.name not in z_models else path
        with torch.no_grad():
            scores = model.score_all(torch.arange(model.n_users)).double().numpy()
        report(f"{name} alone", metrics(scores), {"artifact": path})
        z_models[name] = standardise(scores, exclude["valid"])
        report(f"base + {name}", *best_on_valid(blends({"base": z_base, name: z_models[name]}, args.blend_step)))
    if len(z_models) > 1:
        report("base + every model", *best_on_valid(blends({"base": z_base, **z_models}, args.blend_step)))

    if args.out:
        atomic_io.write_json(args.out, {
            "command": " ".join([sys.executable, *sys.argv]), "config": args.config, "overrides": args.set,
            "seed": cfg.seed, "rows": rows,
            "data_sha256": prepared.data_sha256, "seconds": round(time.perf_counter() - t0, 1), "machine": machine(),
            "versions": package_versions()})
    return 0


def blends(scores: dict[str, np.ndarray], step: float):
    """Every ({name: share}, blended scores) with shares >= 0, summing to 1, multiples of ``step``, over the
    standardised ``scores``; the first name takes what the others leave."""
    n = round(1 / step)
    for counts in itertools.product(range(n + 1), repeat=len(scores) - 1):
        if sum(counts) > n:
            continue
        shares = [(n - sum(counts)) / n, *(c / n for c in counts)]
        yield ({name: round(w, 3) for name, w in zip(scores, shares)},
               sum(w * z for w, z in zip(shares, scores.values()) if w))


def ease_scores(x: sp.csr_matrix, l2: float, train: sp.csr_matrix) -> np.ndarray:
    """EASE fitted on the columns of ``x`` (items first, then any extra columns); (n_users, n_items) scores."""
    weights = closed_form_weights(np.asarray((x.T @ x).todense()), l2)
    return np.asarray(x @ weights[:, : train.shape[1]])


def standardise(scores: np.ndarray, exclude: sp.csr_matrix) -> np.ndarray:
    """Each user's scores minus their mean over the items they may be shown, over the standard deviation there."""
    allowed = np.ones(scores.shape, dtype=bool)
    allowed[exclude.nonzero()] = False
    n = allowed.sum(1, keepdims=True)
    mean = np.where(allowed, scores, 0.0).sum(1, keepdims=True) / n
    sd = np.sqrt(np.where(allowed, (scores - mean) ** 2, 0.0).sum(1, keepdims=True) / n)
    return (scores - mean) / np.maximum(sd, 1e-12)


def time_popularity(train, bandwidth_days: float) -> np.ndarray:
    """(n_users, n_items) time-aware popularity (see the module docstring) on a one-day grid."""
    day = np.floor((train.timestamps - train.timestamps.min()) / DAY).astype(np.int64)
    n_days = int(day.max()) + 1
    item_days = sp.csr_matrix((np.ones(len(train)), (train.items, day)), shape=(train.n_items, n_days))
    user_days = sp.csr_matrix((np.ones(len(train)), (train.users, day)), shape=(train.n_users, n_days)).toarray()
    user_days /= np.maximum(user_days.sum(1, keepdims=True), 1.0)
    d = np.arange(n_days)
    kernel = np.exp(-0.5 * ((d[:, None] - d[None, :]) / bandwidth_days) ** 2)
    return user_days @ kernel @ item_days.T.toarray()


def user_attributes(prepared, cfg) -> sp.csr_matrix | None:
    """One-hot (n_users, n_values) of the ``.user`` file's columns other than the id (age by decade, a zip code by
    its first digit), or None where the dataset has no user file."""
    folder = Path(cfg.dataset.path) if cfg.dataset.path else resolve_data_dir(cfg.data_dir) / cfg.dataset.name
    path = folder / f"{cfg.dataset.name}.user"
    if not path.exists():
        return None
    table = read_atomic_table(path)
    names = table.fields
    rows, cols, vocab = [], [], {}
    for cells in zip(*(table.columns[n] for n in names)):
        user = prepared.dataset.users.get(cells[0])
        if user < 0:
            continue
        for name, value in zip(names[1:], cells[1:]):
            if name == "age" and value.isdigit():
                value = str(min(int(value) // 10, 6))
            elif name.startswith("zip"):
                value = value[:1]
            rows.append(user)
            cols.append(vocab.setdefault((name, value), len(vocab)))
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(prepared.dataset.n_users, len(vocab)))


if __name__ == "__main__":
    sys.exit(main())
