"""Per-epoch time and peak memory of the shipped LightGCN and FusionRec configs as the catalogue grows.

    .venv/bin/python bench/epoch_scaling.py --out bench/out/epoch-scaling

Runs ``fusionrec train`` (one torch thread, one process per run, so each peak RSS is its own) with
configs/ml-100k/{lightgcn,fusionrec}.yaml on ml-100k and on synthetic datasets from ``fusionrec data synth`` (default
20,000 items / 1M interactions and 100,000 items / 1M interactions, 50,000 users, text and KG; generated once under
``--out``/data and reused), each for ``--epochs`` epochs with ``training.eval_every`` above the epochs (the trainer then
validates once, after the last epoch; that time is not in s/epoch). Reports the median s/epoch, the ratios 20k /
ml-100k and 100k / 20k, and peak RSS, as ``--out``/epoch_scaling.md and .json.

FusionRec's text on the synthetic data: encoding 100,000 titles with MiniLM would take longer than the training
measured, so the bench fills a private embedding cache (``--out``/embeddings, never the default one) with planted
384-d vectors under MiniLM's encoder id: each title word gets a seeded random vector, a title is the normalised sum of
its words' (so titles of one cluster share direction). The epoch cost is the same as with MiniLM's vectors (same
dimension); the accuracy is not comparable. The output says so. ml-100k's text is encoded by MiniLM itself (cached).
Smoke run: ``--sizes 300:3000 --users 200 --epochs 1 --models lightgcn``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEXT_NOTE = ("FusionRec text on synthetic data: planted 384-d vectors pre-filled into a private cache under MiniLM's "
             "encoder id (no MiniLM encoding; same epoch cost, accuracy not comparable)")


class PlantedWordEncoder:
    """Stands in for MiniLM under its encoder id: a text's vector is the L2-normalised sum of seeded random word
    vectors. ``encode(texts)``: (n, dim) float32."""

    def __init__(self, encoder_id: str, dim: int = 384):
        self.encoder_id, self.dim = encoder_id, dim

    def encode(self, texts: list[str]) -> np.ndarray:
        words = {w for t in texts for w in t.lower().split()}
        table = {w: np.random.default_rng(int(hashlib.sha256(w.encode()).hexdigest()[:12], 16))
                 .standard_normal(self.dim).astype(np.float32) for w in words}
        out = np.stack([np.sum([table[w] for w in t.lower().split()] or [np.zeros(self.dim, np.float32)], axis=0)
                        for t in texts])
        return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def prefill_text_cache(config: Path, overrides: list[str], cache_dir: Path) -> int:
    """Writes planted vectors for every item text the run will ask for into ``cache_dir``; returns how many."""
    from fusionrec.config import load_config
    from fusionrec.data.loading import load_dataset
    from fusionrec.knowledge.text.cache import EmbeddingCache
    from fusionrec.knowledge.text.encoders import make_encoder
    from fusionrec.knowledge.text.item_text import item_texts

    cfg = load_config(config, overrides)
    texts, mask = item_texts(load_dataset(cfg.dataset), cfg.text.template)
    encoder = PlantedWordEncoder(make_encoder(cfg.text).encoder_id)
    present = [texts[i] for i in np.flatnonzero(mask)]
    EmbeddingCache(cache_dir, encoder.encoder_id).get_or_encode(present, encoder, progress=False,
                                                                chunk_size=max(1, len(present)))
    return len(present)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench/out/epoch-scaling")
    p.add_argument("--sizes", default="20000:1000000,100000:1000000", help="ITEMS:INTERACTIONS,... (synthetic)")
    p.add_argument("--users", type=int, default=50_000, help="users of each synthetic dataset")
    p.add_argument("--models", default="lightgcn,fusionrec")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--no-ml100k", action="store_true", help="skip ml-100k (e.g. offline smoke runs)")
    p.add_argument("--timeout-s", type=int, default=3600, help="hard limit per run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra override for every run")
    args = p.parse_args(argv)
    out = Path(args.out).resolve()
    env = {**os.environ, "FUSIONREC_THREADS": "1", "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    python = sys.executable
    datasets = [] if args.no_ml100k else [("ml-100k", [])]
    for spec in args.sizes.split(","):
        items, inter = (int(x) for x in spec.split(":"))
        name = f"synth-{items}-{inter}"
        folder = out / "data" / name
        if not (folder / f"{name}.synth.json").is_file():
            subprocess.run([python, "-m", "fusionrec.cli", "data", "synth", "--out", str(folder), "--users",
                            str(args.users), "--items", str(items), "--interactions", str(inter), "--text", "--kg",
                            "--seed", "0", "--name", name], check=True, env=env)
        datasets.append((name, [f"dataset.name={name}", f"dataset.path={folder}",
                                f"text.cache_dir={out / 'embeddings'}"]))
    common = [f"training.epochs={args.epochs}", f"training.eval_every={args.epochs + 100}",
              "training.progress=false", *args.set]
    rows = []
    for dataset, data_set in datasets:
        for model in args.models.split(","):
            config = ROOT / "configs" / "ml-100k" / f"{model}.yaml"
            overrides = data_set + common
            if model == "fusionrec" and dataset != "ml-100k":
                prefill_text_cache(config, overrides, out / "embeddings")
            run_dir = out / "runs" / f"{dataset}-{model}"
            cmd = [python, "-m", "fusionrec.cli", "train", "--config", str(config), "--out", str(run_dir)]
            for o in overrides:
                cmd += ["--set", o]
            print("running:", " ".join(cmd), flush=True)
            done = subprocess.run(cmd, env=env, timeout=args.timeout_s, capture_output=True, text=True)
            (out / "runs").mkdir(parents=True, exist_ok=True)
            (out / "runs" / f"{dataset}-{model}.log").write_text(done.stdout + done.stderr)
            if done.returncode:
                rows.append({"dataset": dataset, "model": model, "error": done.stderr.strip().splitlines()[-1:]})
                continue
            r = json.loads((run_dir / "results.json").read_text())
            epochs = [h["train_s"] for h in r["history"] if "train_s" in h]
            rows.append({"dataset": dataset, "model": model, "items": r["dataset_stats"]["items"],
                         "interactions": r["dataset_stats"]["interactions"],
                         "s/epoch (median)": round(statistics.median(epochs), 3) if epochs
                         else r["timings"]["epoch_s_median"], "epochs": r["timings"]["epochs"],
                         "peak RSS MB": r["peak_rss_mb"],
                         "loss": r["config"]["training"]["loss"]})
    ratios = {}
    names = [d for d, _ in datasets]
    for model in args.models.split(","):
        s = {row["dataset"]: row.get("s/epoch (median)") for row in rows if row["model"] == model}
        for a, b in zip(names, names[1:]):
            if s.get(a) and s.get(b):
                ratios[f"{model}: {b} / {a}"] = round(s[b] / s[a], 2)
    from fusionrec.evaluation.report import markdown_table
    from fusionrec.util.provenance import machine, package_versions

    md = (f"# Epoch scaling, one torch thread\n\n{markdown_table(rows)}\n"
          + "\n".join(f"- {k}: {v}x" for k, v in ratios.items())
          + f"\n\n{TEXT_NOTE}.\nValidation runs once, after the last epoch (eval_every > epochs); not in s/epoch.\n"
          + f"Command: {' '.join(sys.argv)}\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / "epoch_scaling.md").write_text(md)
    (out / "epoch_scaling.json").write_text(json.dumps({"rows": rows, "ratios": ratios, "note": TEXT_NOTE,
                                                        "machine": machine(), "versions": package_versions(),
                                                        "command": sys.argv}, indent=2, default=str))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
