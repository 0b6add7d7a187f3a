"""A dataset's knowledge graph that the chosen model does not read is named in the run's log, never dropped silently
(the shipped FusionRec config has use_kg: false)."""

from fusionrec.config import load_config
from fusionrec.data.splits import make_split
from fusionrec.data.synthetic import make_synthetic
from fusionrec.jobs.experiment import Prepared, model_inputs


def _prepared() -> Prepared:
    dataset = make_synthetic(n_users=40, n_items=30, seed=3).dataset
    return Prepared(dataset, make_split(dataset, "random", seed=3), "hash")


def _log_of(model: str, params: dict) -> list[str]:
    cfg = load_config(None, [f"model.name={model}", f"model.params={params}"])
    lines: list[str] = []
    model_inputs(cfg, _prepared(), set(), log=lines.append)
    return lines


def test_unused_graph_is_noted():
    lines = _log_of("bpr", {})
    assert any("knowledge graph" in line and "bpr does not use" in line for line in lines), lines


def test_no_note_without_a_graph_file():
    cfg = load_config(None, ["model.name=bpr", "knowledge.use_kg_file=false"])
    lines: list[str] = []
    model_inputs(cfg, _prepared(), set(), log=lines.append)
    assert not any("knowledge graph" in line for line in lines)
