"""Seconds per training epoch of FusionRec, CKE and KGAT with and without the knowledge graph, side by side in one
run on one torch thread, and the ratio (issue 11, item 2: the KG source may cost at most 1.5x the same model's epoch
without it).

"Without the KG" is the same model and config on inputs without a graph: FusionRec with ``use_kg: false``; CKE and
KGAT (which need a graph object) on an empty one (one placeholder entity and relation, no triples, no item links),
so CKE is its id + text parts with no TransR loss, and KGAT propagates over the user-item graph alone with no
TransR pass. Each model runs ``--epochs`` epochs (no validation, no early stopping); the figure is the median epoch
after the first when there are two or more (the first pays for one-off set-up), else the only one.

    .venv/bin/python bench/kg_epoch_cost.py --epochs 5 --out bench/out/kg_epoch_cost.json
    .venv/bin/python bench/kg_epoch_cost.py --epochs 1 --no-text --models fusionrec    # smoke run
    .venv/bin/python bench/kg_epoch_cost.py --synthetic --epochs 3                     # planted data, no download

``--config-dir``: where ``<model>.yaml`` are read (default configs/ml-100k; FusionRec's ``use_kg`` is forced true on
the KG side). ``--set KEY=VALUE`` applies to every model (e.g. ``training.loss=bpr`` to see the KG share when the
recommendation step is cheap). ``--no-text``: ``use_text: false`` for FusionRec and CKE (skips encoding item text).
``--synthetic``: :func:`fusionrec.data.synthetic.make_synthetic` data at ``--synthetic-users`` x
``--synthetic-items`` with a bag-of-words stand-in for text embeddings, instead of the configs' dataset.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("FUSIONREC_THREADS", "1")
from fusionrec.util.threads import configure_threads  # noqa: E402

configure_threads()

import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fusionrec.util import atomic_io  # noqa: E402
from fusionrec.config import load_config  # noqa: E402
from fusionrec.data.ids import IdMap  # noqa: E402
from fusionrec.data.knowledge_graph import KnowledgeGraph  # noqa: E402
from fusionrec.jobs.experiment import model_inputs, model_params, prepare_data  # noqa: E402
from fusionrec.models.base import ModelInputs  # noqa: E402
from fusionrec.training import Trainer, seed_everything  # noqa: E402


def empty_kg(n_items: int) -> KnowledgeGraph:
    """A graph with one placeholder entity and relation, no triples and no item links."""
    return KnowledgeGraph(torch.zeros(0, 3, dtype=torch.long), IdMap.from_list("entity", ["none"]),
                          IdMap.from_list("relation", ["none"]), torch.full((n_items,), -1, dtype=torch.long))


def epoch_seconds(cfg, cls, params, inputs: ModelInputs) -> tuple[float, list[float]]:
    seed_everything(cfg.seed)
    model = cls.from_inputs(inputs, params)
    training = dataclasses.replace(cfg.training, progress=False, patience=0)
    result = Trainer(training, cfg.seed).fit(model, inputs)
    secs = list(result.epoch_seconds)
    return (statistics.median(secs[1:]) if len(secs) > 1 else secs[0]), secs


def synthetic_inputs(n_users: int, n_items: int, seed: int) -> ModelInputs:
    from fusionrec.config import KnowledgeConfig
    from fusionrec.data.synthetic import make_synthetic
    from fusionrec.knowledge.kg import build_item_graph
    from fusionrec.training import build_inputs

    syn = make_synthetic(n_users=n_users, n_items=n_items, n_clusters=20, interactions_per_user=40, seed=seed)
    ds = syn.dataset
    docs = [f"{t} {d}".lower().split() for t, d in zip(ds.item_info.text["title"], ds.item_info.text["description"])]
    vocab = {w: i for i, w in enumerate(sorted({w for doc in docs for w in doc}))}
    bow = np.zeros((ds.n_items, len(vocab)), dtype=np.float32)
    for row, doc in enumerate(docs):
        for w in doc:
            bow[row, vocab[w]] += 1.0
    bow /= np.linalg.norm(bow, axis=1, keepdims=True).clip(min=1e-12)
    return build_inputs(ds.n_users, ds.n_items, ds.interactions, item_text=bow, kg=build_item_graph(ds, KnowledgeConfig()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config-dir", default="configs/ml-100k")
    p.add_argument("--models", default="fusionrec,cke,kgat")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--no-text", action="store_true")
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--synthetic-users", type=int, default=2000)
    p.add_argument("--synthetic-items", type=int, default=5000)
    p.add_argument("--out", default=None, help="JSON file for the figures")
    args = p.parse_args(argv)
    if args.epochs < 1:
        p.error("--epochs must be >= 1")
    rows, prepared, synthetic = [], None, None
    for name in args.models.split(","):
        sets = [*args.set, f"training.epochs={args.epochs}", "training.progress=false"]
        if args.no_text and name in ("fusionrec", "cke"):
            sets.append("model.params.use_text=false")
        cfg = load_config(os.path.join(args.config_dir, f"{name}.yaml"), sets)
        cls, params = model_params(cfg)
        if args.synthetic:
            synthetic = synthetic or synthetic_inputs(args.synthetic_users, args.synthetic_items, cfg.seed)
            full = synthetic
        else:
            prepared = prepared or prepare_data(cfg)
            need = cls.required_inputs(dataclasses.replace(params, use_kg=True) if name == "fusionrec" else params)
            full = model_inputs(cfg, prepared, need | {"kg"})
        if name == "fusionrec":
            with_kg, without = dataclasses.replace(params, use_kg=True), dataclasses.replace(params, use_kg=False)
            sides = [("kg", with_kg, full), ("no_kg", without, dataclasses.replace(full, kg=None))]
        else:
            sides = [("kg", params, full), ("no_kg", params, dataclasses.replace(full, kg=empty_kg(full.n_items)))]
        row = {"model": name, "dataset": "synthetic" if args.synthetic else cfg.dataset.name,
               "loss": cfg.training.loss, "kg_mode": cfg.training.kg_mode, "kg_batch_size": cfg.training.kg_batch_size}
        for side, side_params, inputs in sides:
            if not args.synthetic and "text" not in cls.required_inputs(side_params):
                inputs = dataclasses.replace(inputs, item_text=None, item_text_mask=None)
            median, secs = epoch_seconds(cfg, cls, side_params, inputs)
            row[f"{side}_epoch_s"], row[f"{side}_epochs"] = median, secs
            print(f"{name:10s} {side:6s} {median:8.3f} s/epoch  ({', '.join(f'{s:.2f}' for s in secs)})",
                  file=sys.stderr, flush=True)
        row["ratio"] = row["kg_epoch_s"] / row["no_kg_epoch_s"]
        rows.append(row)
    print(f"\n{'model':10s} {'with KG':>10s} {'without':>10s} {'ratio':>7s}   (s/epoch, one torch thread, "
          f"{args.epochs} epoch(s), torch {torch.__version__}, load {os.getloadavg()[0]:.2f})")
    for row in rows:
        print(f"{row['model']:10s} {row['kg_epoch_s']:10.3f} {row['no_kg_epoch_s']:10.3f} {row['ratio']:7.2f}")
    if args.out:
        report = {"rows": rows, "command": " ".join(sys.argv), "threads": torch.get_num_threads(),
                  "date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average": os.getloadavg()}
        atomic_io.write_text(args.out, json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
