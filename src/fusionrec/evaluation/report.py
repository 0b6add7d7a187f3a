"""Reports over several runs: a markdown table, a JSON summary and a bar chart."""

from __future__ import annotations

from pathlib import Path

from fusionrec.util import atomic_io


def comparison_rows(results: list[dict], metrics: list[str]) -> list[dict]:
    rows = []
    for r in results:
        test = r["metrics"]["test"]
        row = {"model": r["model"], **{m: test.get(m) for m in metrics}}
        row["epochs"] = r["timings"]["epochs"]
        row["s/epoch"] = r["timings"]["epoch_s_median"]
        row["fit_s"] = r["timings"]["fit_s"]
        rows.append(row)
    return rows


def markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(no runs)\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def bar_chart(rows: list[dict], metrics: list[str], path: str | Path, title: str) -> Path:
    """Grouped bars: one group per metric, one bar per model. Needs the ``plot`` extra (matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the bar chart needs matplotlib: pip install 'fusionrec[plot]'") from exc
    import io

    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(metrics) * max(1, len(rows)) / 2, 4))
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        xs = [j + i * width for j in range(len(metrics))]
        ax.bar(xs, [row.get(m) or 0.0 for m in metrics], width, label=row["model"])
    ax.set_xticks([j + width * (len(rows) - 1) / 2 for j in range(len(metrics))], metrics)
    ax.set_ylabel("test score")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_io.write_bytes(path, buf.getvalue())
    return Path(path)
