"""The ablation grid: every source combination, every fusion strategy and the alpha sweep, each a config change."""

from pathlib import Path

import pytest

from fusionrec.ablation import ablation_variants
from fusionrec.config import load_config

CONFIG = Path(__file__).parents[1] / "configs" / "ml-100k" / "fusionrec.yaml"


def test_variants_cover_sources_fusions_and_alphas():
    cfg = load_config(CONFIG)
    variants = ablation_variants(cfg)
    labels = [(g, label) for g, label, _ in variants]
    assert [lab for g, lab in labels if g == "sources"] == ["cf", "cf+text", "cf+kg", "cf+text+kg"]
    fusions = {v.model.params.get("fusion", "attention") for g, _, v in variants if v.model.params["use_text"]
               and v.model.params["use_kg"]}
    assert fusions == {"concat", "gate", "attention"}
    alphas = {v.training.kg_alpha for _, _, v in variants if v.model.params["use_kg"] and v.model.params["use_text"]}
    assert alphas == {0.0, 0.01, 0.1, 1.0}
    by_label = {label: v for _, label, v in variants}
    assert by_label["cf"].model.params["use_text"] is False and by_label["cf"].model.params["use_kg"] is False
    assert by_label["cf+kg"].model.params["use_kg"] is True and by_label["cf+kg"].model.params["use_text"] is False
    distinct = {(tuple(sorted(v.model.params.items())), v.training.kg_alpha) for _, _, v in variants}
    assert len(variants) == 4 + 3 + 4 and len(distinct) == 9  # two rows repeat the full model: trained once


def test_ablation_needs_a_fusionrec_config():
    cfg = load_config(Path(__file__).parents[1] / "configs" / "ml-100k" / "bpr.yaml")
    with pytest.raises(ValueError, match="fusionrec config"):
        ablation_variants(cfg)
