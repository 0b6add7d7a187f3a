"""The ablation grid: every source combination, every fusion strategy and the alpha sweep, each a config change."""

from pathlib import Path

import pytest

from fusionrec.jobs.ablation_plan import ablation_variants
from fusionrec.config import load_config

CONFIG = Path(__file__).parents[1] / "configs" / "ml-100k" / "fusionrec.yaml"


def test_variants_cover_sources_fusions_and_alphas():
    cfg = load_config(CONFIG)
    variants = ablation_variants(cfg)
    labels = [(g, label) for g, label, _ in variants]
    assert [lab for g, lab in labels if g == "sources"] == ["cf", "cf+text", "cf+kg", "cf+text+kg", "text"]
    fusions = {v.model.params.get("fusion", "attention") for g, _, v in variants if v.model.params["use_text"]
               and v.model.params["use_kg"]}
    assert fusions == {"concat", "gate", "attention"}
    alphas = {v.training.kg_alpha for _, _, v in variants if v.model.params["use_kg"] and v.model.params["use_text"]}
    assert alphas == {0.0, 0.01, 0.1, 1.0}
    by_label = {label: v for _, label, v in variants}
    assert by_label["cf"].model.params["use_text"] is False and by_label["cf"].model.params["use_kg"] is False
    assert by_label["cf+kg"].model.params["use_kg"] is True and by_label["cf+kg"].model.params["use_text"] is False
    distinct = {(tuple(sorted(v.model.params.items())), v.training.kg_alpha) for _, _, v in variants}
    # the shipped config has the item-item source: +item-item is the base (cf+text), cf+item-item is cf, and two
    # rows repeat the full model (gate, alpha=0.1 = cf+text+kg): each trained once
    assert len(variants) == 5 + 5 + 3 + 4 and len(distinct) == 13
    assert by_label["text"].model.params["use_id"] is False and by_label["text"].model.params["use_text"] is True


def test_ablation_needs_a_fusionrec_config():
    cfg = load_config(Path(__file__).parents[1] / "configs" / "ml-100k" / "bpr.yaml")
    with pytest.raises(ValueError, match="fusionrec config"):
        ablation_variants(cfg)


# ------------------------------------------------------------------------ the plan, --variants, --dry-run, estimate
from fusionrec.jobs.ablation import run_ablation  # noqa: E402
from fusionrec.jobs.ablation_plan import epoch_bounds, plan_ablation  # noqa: E402
from fusionrec.cli import main  # noqa: E402
from fusionrec.errors import ConfigError  # noqa: E402


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path, capsys):
    out = tmp_path / "ablate"
    assert main(["ablate", "--config", str(CONFIG), "--out", str(out), "--dry-run", "--variants", "sources"]) == 0
    text = capsys.readouterr().out
    assert "ablation plan: 5 row(s), 5 training(s)" in text
    assert "| 1 | sources | cf | use_text true -> false, item_item_text_weight 20 -> 0 | yes |" in text
    assert "each training: 11 to 300 epochs" in text
    assert not out.exists()


def test_the_full_plan_marks_repeated_settings():
    plan = plan_ablation(load_config(CONFIG))
    assert len(plan) == 17 and sum(p.same_as is None for p in plan) == 13
    by_label = {p.label: p for p in plan}
    assert by_label["+item-item"].same_as == by_label["cf+text"].index  # the shipped config has the source
    assert by_label["cf+item-item"].same_as == by_label["cf"].index  # no text anywhere, the Gram's included
    # the shipped config fuses with a gate and alpha .1: both rows are the cf+text+kg run
    assert by_label["gate"].same_as == by_label["cf+text+kg"].index
    assert by_label["alpha=0.1"].same_as == by_label["cf+text+kg"].index
    assert by_label["cf+text"].changes == "(the base config)"
    assert by_label["alpha=1"].changes == "use_kg false -> true, training.kg_alpha 0.1 -> 1"


def test_variants_pick_groups_and_single_rows_in_grid_order():
    cfg = load_config(CONFIG)
    assert [p.label for p in plan_ablation(cfg, "alpha, cf")] == ["cf", "alpha=0", "alpha=0.01", "alpha=0.1",
                                                                   "alpha=1"]
    assert [p.label for p in plan_ablation(cfg, "alpha=.1")] == ["alpha=0.1"]
    single = plan_ablation(cfg, "alpha=0.1")
    assert single[0].same_as is None  # the run it would share is not planned: it trains itself
    pair = plan_ablation(cfg, "gate,alpha=0.1")
    assert pair[0].same_as is None and pair[1].same_as == pair[0].index


def test_unknown_variant_is_a_clear_error(tmp_path, capsys):
    cfg = load_config(CONFIG)
    with pytest.raises(ConfigError, match=r"unknown variant 'textonly'.*cf\+text") as err:
        plan_ablation(cfg, "cf,textonly")
    assert err.value.key == "--variants"
    with pytest.raises(ConfigError, match="names no variant"):
        plan_ablation(cfg, " , ")
    assert main(["ablate", "--config", str(CONFIG), "--out", str(tmp_path), "--variants", "kg", "--dry-run"]) == 2
    assert "--variants" in capsys.readouterr().err


def test_epoch_bounds_follow_patience_and_eval_every():
    cfg = load_config(CONFIG)
    assert epoch_bounds(cfg) == (11, 300)
    assert epoch_bounds(load_config(CONFIG, ["training.eval_every=5"])) == (55, 300)
    assert epoch_bounds(load_config(CONFIG, ["training.patience=0"])) == (300, 300)
    assert epoch_bounds(load_config(CONFIG, ["training.epochs=3"])) == (3, 3)


def test_a_small_run_prints_plan_then_estimate_then_progress(tmp_path, one_thread):
    import json

    from fusionrec.data.synth_atomic import write_synthetic

    write_synthetic(tmp_path / "data", "syn", n_users=120, n_items=80, n_interactions=2400, kg=True, seed=1)
    cfg = load_config(None, ["dataset.name=syn", f"dataset.path={tmp_path / 'data'}", "model.name=fusionrec",
                             "model.params={embedding_size: 8, use_text: false, use_kg: false}",
                             "training.epochs=2", "training.progress=false", "evaluation.ks=[10]"])
    said: list[str] = []
    rows = run_ablation(cfg, tmp_path / "out", log=lambda _: None, variants="cf,cf+kg", echo=said.append)
    assert [r["variant"] for r in rows] == ["cf", "cf+kg"]
    assert said[0].startswith("ablation plan: 2 row(s), 2 training(s)")
    assert said[1].startswith("estimate: one epoch of cf+kg took")  # the dearer of the two is timed
    assert said[2].startswith("done 1/2: cf in") and "the 1 left: about" in said[2]
    assert said[3].startswith("done 2/2: cf+kg in")
    saved = json.loads((tmp_path / "out" / "ablation.json").read_text())
    assert [p["changes"] for p in saved["plan"]] == ["(the base config)", "use_kg false -> true"]
    assert (tmp_path / "out" / "sources-cf" / "results.json").is_file()
    assert (tmp_path / "out" / "sources-cf_kg" / "results.json").is_file()


def test_the_knowledge_group_adds_one_source_each_and_a_cf_only_control():
    plan = {p.label: p for p in plan_ablation(load_config(CONFIG, ["model.params.item_item=false"]), "knowledge")}
    assert list(plan) == ["+item-item", "cf+item-item", "+user", "+social", "no-item-item"]
    assert plan["+item-item"].changes == "item_item false -> true"
    assert plan["no-item-item"].changes == "(the base config)"
    assert plan["+user"].changes == "use_user_features (default) -> true"
    shipped = {p.label: p for p in plan_ablation(load_config(CONFIG), "knowledge,cf")}
    assert shipped["no-item-item"].changes == "item_item true -> false"
    assert shipped["cf"].config.model.params["item_item_text_weight"] == 0  # a row without text reads none anywhere
    assert shipped["cf"].changes == "use_text true -> false, item_item_text_weight 20 -> 0"
    control = plan["cf+item-item"].config.model.params
    assert control["item_item"] and not control["use_text"] and not control["use_kg"]
    assert control["item_item_text_weight"] == 0  # no text in the Gram either: a CF-only control
    assert plan["cf+item-item"].folder == "knowledge-cf_item-item"
    assert plan["+item-item"].folder == "knowledge-item-item"
    assert {p.folder for p in plan_ablation(load_config(CONFIG))} >= {"alpha-alpha-0.1", "fusion-gate", "sources-text"}


def test_rows_the_dataset_cannot_feed_are_skipped_and_seeds_give_a_spread(tmp_path, one_thread):
    """The synthetic set has neither a social graph nor user fields: those rows are skipped with the reason, the
    others train once per seed, and the table gives mean and sd."""
    import json

    from fusionrec.data.synth_atomic import write_synthetic

    write_synthetic(tmp_path / "data", "syn", n_users=120, n_items=80, n_interactions=2400, seed=1)
    cfg = load_config(None, ["dataset.name=syn", f"dataset.path={tmp_path / 'data'}", "model.name=fusionrec",
                             "model.params={embedding_size: 8, use_text: false, use_kg: false}",
                             "training.epochs=2", "training.progress=false", "evaluation.ks=[10]"])
    said: list[str] = []
    rows = run_ablation(cfg, tmp_path / "out", log=lambda _: None, variants="cf,+user,+social,cf+item-item",
                        echo=said.append, seeds=[1, 2], estimate=False)
    by = {r["variant"]: r for r in rows}
    assert "NAME.user" in by["+user"]["skipped"] and "NAME.net" in by["+social"]["skipped"]
    assert by["cf"]["skipped"] is None and by["cf"]["ndcg@10 sd"] is not None
    assert by["cf"]["chosen on validation"] is None  # nothing to choose without the item-item source
    assert said[0].startswith("ablation plan: 4 row(s), 8 training(s)")
    shares = by["cf+item-item"]["chosen on validation"]  # the share each seed's run chose, e.g. "... 0.3/0.4"
    assert shares.startswith("item_item_share ") and len(shares.split()[1].split("/")) == 2
    assert any(line.startswith("skipped: +user:") for line in said)
    runs = [json.loads((tmp_path / "out" / "sources-cf" / f"seed-{s}" / "results.json").read_text())
            for s in (1, 2)]
    assert [r["seed"] for r in runs] == [1, 2]
    mean = sum(r["metrics"]["test"]["ndcg@10"] for r in runs) / 2
    assert abs(by["cf"]["ndcg@10"] - mean) < 1e-12
    table = (tmp_path / "out" / "ablation.md").read_text()
    assert "mean ± sd over seeds 1, 2" in table and "skipped: " in table and " ± " in table


def test_the_row_best_on_validation_becomes_best_yaml_and_a_rerun_keeps_finished_trainings(tmp_path, one_thread):
    import json

    import yaml

    from fusionrec.data.synth_atomic import write_synthetic

    write_synthetic(tmp_path / "data", "syn", n_users=120, n_items=80, n_interactions=2400, kg=True, seed=1)
    cfg = load_config(None, ["dataset.name=syn", f"dataset.path={tmp_path / 'data'}", "model.name=fusionrec",
                             "model.params={embedding_size: 8, use_text: false, use_kg: false}",
                             "training.epochs=2", "training.progress=false", "evaluation.ks=[10]"])
    rows = run_ablation(cfg, tmp_path / "out", log=lambda _: None, variants="cf,cf+kg", echo=lambda _: None,
                        estimate=False)
    best = max(rows, key=lambda r: r["valid ndcg@10"])
    saved = json.loads((tmp_path / "out" / "ablation.json").read_text())["chosen_on_validation"]
    assert saved["variant"] == best["variant"] and saved["value"] == best["valid ndcg@10"]
    chosen = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert chosen["model"]["params"]["use_kg"] is (best["variant"] == "cf+kg")
    assert load_config(tmp_path / "out" / "best.yaml").model.name == "fusionrec"  # ready for fusionrec train
    said: list[str] = []
    again = run_ablation(cfg, tmp_path / "out", log=lambda _: None, variants="cf,cf+kg", echo=said.append)
    assert not any(line.startswith("estimate:") for line in said)  # nothing left to train: nothing timed
    assert [r["ndcg@10"] for r in again] == [r["ndcg@10"] for r in rows]
    assert sum("kept from an earlier run" in line for line in said) == 2
    changed = load_config(None, ["dataset.name=syn", f"dataset.path={tmp_path / 'data'}",
                                 "model.name=fusionrec", "model.params={embedding_size: 8, use_text: false, "
                                 "use_kg: false}", "training.epochs=3", "training.progress=false",
                                 "evaluation.ks=[10]"])
    said.clear()
    run_ablation(changed, tmp_path / "out", log=lambda _: None, variants="cf", echo=said.append, estimate=False)
    assert not any("kept" in line for line in said)  # another config: trained again
