"""``fusionrec compare``: several models trained and tested on one split, side by side."""

from __future__ import annotations

from pathlib import Path

from fusionrec.util import atomic_io
from fusionrec.config import RunConfig, load_config
from fusionrec.evaluation.report import bar_chart, comparison_rows, markdown_table
from fusionrec.jobs.experiment import prepare_data, run_experiment, with_model

CHART_METRICS = ["ndcg@10", "recall@10", "ndcg@20", "recall@20"]
RATING_METRICS = ["rmse", "mae"]  # in the table when any model predicts ratings (lower is better)


def run_comparison(cfg: RunConfig, models: list[str], out_dir: str | Path, config_dir: str | Path | None = None,
                   overrides: list[str] | None = None, log=None) -> list[dict]:
    """Trains every model on the same split. A model's own config ``<config_dir>/<model>.yaml`` (its tuned
    hyper-parameters and training settings) is used when it exists."""
    out_dir = Path(out_dir)
    prepared = prepare_data(cfg, log)
    results = []
    for name in models:
        own = Path(config_dir) / f"{name}.yaml" if config_dir else None
        model_cfg = load_config(own, overrides) if own is not None and own.is_file() else None
        run_cfg = with_model(cfg, name, model_cfg)
        results.append(run_experiment(run_cfg, out_dir / name, prepared=prepared, log=log))
    metrics = [m for m in CHART_METRICS if m in results[0]["metrics"]["test"]]
    rating = [m for m in RATING_METRICS if any(m in r["metrics"]["test"] for r in results)]
    rows = comparison_rows(results, metrics + rating)
    title = f"{results[0]['dataset']}, split {results[0]['split']['method']}, test"
    atomic_io.write_text(out_dir / "comparison.md", f"# Comparison: {title}\n\n" + markdown_table(rows))
    atomic_io.write_json(out_dir / "comparison.json", {
        "dataset": results[0]["dataset"], "data_sha256": results[0]["data_sha256"], "rows": rows,
        "runs": {r["model"]: str(out_dir / r["model"] / "results.json") for r in results}})
    bar_chart(rows, metrics, out_dir / "comparison.png", title)
    return results
