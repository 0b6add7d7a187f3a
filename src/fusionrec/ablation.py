"""``fusionrec ablate``: what each knowledge source, fusion strategy and KG-loss weight adds, on one split.

Variants (each a config change of the FusionRec run given):

* sources: ``cf`` (id only), ``cf+text``, ``cf+kg``, ``cf+text+kg``;
* fusion: ``concat``, ``gate``, ``attention`` (all sources);
* KG-loss weight ``alpha`` in (0, 0.01, 0.1, 1) (all sources).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fusionrec import atomic_io
from fusionrec.config import RunConfig
from fusionrec.evaluation.report import bar_chart, markdown_table
from fusionrec.experiment import prepare_data, run_experiment

ALPHAS = (0.0, 0.01, 0.1, 1.0)
FUSIONS = ("concat", "gate", "attention")
SOURCES = {"cf": (False, False), "cf+text": (True, False), "cf+kg": (False, True), "cf+text+kg": (True, True)}


def ablation_variants(cfg: RunConfig) -> list[tuple[str, str, RunConfig]]:
    """(group, label, config) for every row of the ablation table (the same settings may appear in several groups;
    :func:`run_ablation` trains them once)."""
    if cfg.model.name != "fusionrec":
        raise ValueError(f"ablate needs a fusionrec config, got model {cfg.model.name!r}")
    out = []

    def add(group: str, label: str, params: dict, alpha: float) -> None:
        model = replace(cfg.model, params={**cfg.model.params, **params})
        out.append((group, label, replace(cfg, model=model, training=replace(cfg.training, kg_alpha=alpha))))

    for label, (text, kg) in SOURCES.items():
        add("sources", label, {"use_text": text, "use_kg": kg}, cfg.training.kg_alpha)
    for fusion in FUSIONS:
        add("fusion", fusion, {"use_text": True, "use_kg": True, "fusion": fusion}, cfg.training.kg_alpha)
    for alpha in ALPHAS:
        add("alpha", f"alpha={alpha:g}", {"use_text": True, "use_kg": True}, alpha)
    return out


def run_ablation(cfg: RunConfig, out_dir: str | Path, log=None) -> list[dict]:
    out_dir = Path(out_dir)
    prepared = prepare_data(cfg, log)
    rows, trained = [], {}
    for i, (group, label, variant) in enumerate(ablation_variants(cfg)):
        key = (tuple(sorted(variant.model.params.items())), variant.training.kg_alpha)
        if key not in trained:
            trained[key] = run_experiment(variant, out_dir / f"{i:02d}-{group}-{label.replace('=', '-').replace('+', '_')}",
                                          prepared=prepared, log=log)
        r = trained[key]
        test = r["metrics"]["test"]
        rows.append({"group": group, "variant": label, "model": label, "ndcg@10": test.get("ndcg@10"),
                     "recall@10": test.get("recall@10"), "ndcg@20": test.get("ndcg@20"),
                     "recall@20": test.get("recall@20"), "valid ndcg@10": r["metrics"]["valid"].get("ndcg@10"),
                     "epochs": r["timings"]["epochs"], "s/epoch": r["timings"]["epoch_s_median"]})
    table = markdown_table([{k: v for k, v in row.items() if k != "model"} for row in rows])
    atomic_io.write_text(out_dir / "ablation.md", f"# FusionRec ablation on {prepared.dataset.name}\n\n{table}")
    atomic_io.write_json(out_dir / "ablation.json", {"data_sha256": prepared.data_sha256, "rows": rows})
    bar_chart(rows, ["ndcg@10", "recall@10"], out_dir / "ablation.png", f"FusionRec ablation, {prepared.dataset.name}")
    return rows
