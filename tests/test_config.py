"""The typed config rejects what a user gets wrong, naming the key, and accepts what the shipped configs say."""

import re
from pathlib import Path

import pytest

from fusionrec.config import RunConfig, load_config
from fusionrec.errors import ConfigError

ALL_YAML = sorted((Path(__file__).parents[1] / "configs").rglob("*.yaml"))
CONFIGS = [p for p in ALL_YAML if p.parent.name != "spaces"]  # spaces/<model>.yaml: fusionrec tune's ranges
SPACES = [p for p in ALL_YAML if p.parent.name == "spaces"]


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_are_recbole_protocol():
    cfg = load_config(None)
    assert isinstance(cfg, RunConfig)
    assert cfg.split.method == "random" and cfg.split.ratios == [0.8, 0.1, 0.1]
    assert cfg.training.valid_metric == "ndcg@10" and cfg.evaluation.mode == "full"


def test_unknown_key_is_named_with_its_path(tmp_path):
    with pytest.raises(ConfigError, match=r"'training\.learning_rate': unknown key.*lr"):
        load_config(write(tmp_path, "training:\n  learning_rate: 0.1\n"))


def test_wrong_type_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"'training\.epochs': expected int, got 'ten'"):
        load_config(write(tmp_path, "training:\n  epochs: ten\n"))


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(ConfigError, match=r"'training\.batch_size'"):
        load_config(write(tmp_path, "training:\n  batch_size: true\n"))


def test_literal_choices_are_listed(tmp_path):
    with pytest.raises(ConfigError, match=r"'split\.method': expected one of 'random'"):
        load_config(write(tmp_path, "split:\n  method: shuffled\n"))


def test_nested_list_item_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"'evaluation\.ks\[1\]'"):
        load_config(write(tmp_path, "evaluation:\n  ks: [10, x]\n"))


def test_error_names_the_file(tmp_path):
    path = write(tmp_path, "seed: [1]\n")
    with pytest.raises(ConfigError, match=str(path)):
        load_config(path)


def test_invalid_yaml_is_reported(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "training: [\n"))


def test_overrides_parse_yaml_scalars_and_nest():
    cfg = load_config(None, ["training.lr=0.01", "model.params.embedding_size=128", "seed=7"])
    assert cfg.training.lr == 0.01 and cfg.seed == 7
    assert cfg.model.params == {"embedding_size": 128}


def test_override_of_unknown_key_fails():
    with pytest.raises(ConfigError, match="'training.nope'"):
        load_config(None, ["training.nope=1"])


def test_int_is_accepted_for_float():
    assert load_config(None, ["training.lr=1"]).training.lr == 1.0


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_configs_load(path):
    cfg = load_config(path)
    from fusionrec.models.registry import get_model_class
    from fusionrec.typed_config import build

    cls = get_model_class(cfg.model.name)
    build(cls.Params, cfg.model.params, key="model.params")


def test_config_round_trips_through_dict():
    cfg = load_config(None, ["training.lr=0.01"])
    from fusionrec.config import config_from_dict

    assert config_from_dict(cfg.to_dict()) == cfg


def test_exponent_without_dot_is_a_float():
    """YAML 1.1 reads `1e-6` as a string; a float key must still take it (and a word must still fail)."""
    assert load_config(None, ["training.weight_decay=1e-6"]).training.weight_decay == 1e-6
    with pytest.raises(ConfigError, match="'training.lr': expected float"):
        load_config(None, ["training.lr=fast"])


@pytest.mark.parametrize("ratios, rule", [
    ("[0.8, 0.5, 0.1]", "sum to 1"),  # the typo that trained on a 58k / 35k / 7k split
    ("[8, 1, 1]", "sum to 1"),
    ("[0.9, 0.1]", "three shares"),
    ("[1.1, -0.2, 0.1]", ">= 0"),
    ("[0.0, 0.5, 0.5]", "train > 0"),
    ("[.nan, 0.5, 0.5]", "finite"),
])
def test_split_ratios_that_do_not_sum_to_one_fail_at_load_naming_file_and_key(tmp_path, ratios, rule):
    path = write(tmp_path, f"split:\n  ratios: {ratios}\n")
    # a non-finite share is refused by the float check itself, naming the element ('split.ratios[0]')
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: 'split\.ratios(\[\d\])?': .*{re.escape(rule)}"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"^--set split\.ratios=.*'split\.ratios"):
        load_config(None, [f"split.ratios={ratios}"])


def test_split_ratios_within_rounding_of_one_load():
    assert load_config(None, ["split.ratios=[0.7, 0.2, 0.1]"]).split.ratios == [0.7, 0.2, 0.1]  # 0.9999999999999999


# -- ranges live in the config layer: checked when a config is read, naming the file or the --set override ---------
@pytest.mark.parametrize("yaml_text, key, rule", [
    ("training:\n  lr: -0.01\n", "training.lr", "-0.01 is out of range: must be > 0"),
    ("training:\n  lr: .nan\n", "training.lr", "expected a finite number"),
    ("training:\n  lr: .inf\n", "training.lr", "expected a finite number"),
    ("training:\n  batch_size: 0\n", "training.batch_size", "0 is out of range: must be >= 1"),
    ("training:\n  max_steps_per_epoch: 0\n", "training.max_steps_per_epoch", "must be >= 1"),
    ("split:\n  cold_share: 1.0\n", "split.cold_share", "must be in (0, 1)"),
    ("evaluation:\n  ks: [10, 0]\n", "evaluation.ks[1]", "0 is out of range: must be >= 1"),
    ("text:\n  batch_size: -1\n", "text.batch_size", "must be >= 1"),
])
def test_an_out_of_range_value_fails_at_load_naming_file_key_value_and_rule(tmp_path, yaml_text, key, rule):
    path = write(tmp_path, yaml_text)
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: '{re.escape(key)}': .*{re.escape(rule)}"):
        load_config(path)


def test_a_bad_override_is_blamed_on_the_override_not_the_file(tmp_path):
    path = write(tmp_path, "training:\n  lr: 0.01\n")
    with pytest.raises(ConfigError, match=r"^--set training\.lr=abc: 'training\.lr': expected float, got 'abc'"):
        load_config(path, ["training.lr=abc"])
    with pytest.raises(ConfigError, match=r"^--set training=3: 'training': expected a mapping"):
        load_config(path, ["training=3"])
    bad_file = write(tmp_path, "training:\n  lr: 0\n")  # the file's own mistake still names the file
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(bad_file))}: 'training\.lr'"):
        load_config(bad_file, ["training.epochs=3"])


def test_a_config_made_in_python_is_held_to_the_same_ranges():
    from fusionrec.config import TrainingConfig
    from fusionrec.models.fusionrec import FusionRecParams

    with pytest.raises(ConfigError, match="'training.lr': 0 is out of range"):
        TrainingConfig(lr=0)
    with pytest.raises(ConfigError, match="'model.params.source_dropout': 1.0 is out of range: must be in \\[0, 1\\)"):
        FusionRecParams(source_dropout=1.0)
    with pytest.raises(ConfigError, match="'model.params.cold_path': cold_path neighbours .* set use_text true"):
        FusionRecParams(cold_path="neighbours", use_text=False)
    assert TrainingConfig(lr=0.5).lr == 0.5


def test_every_model_hyper_parameter_with_a_rule_is_checked_when_built():
    """Each model's Params: a value outside its range (or choices) fails in the config layer, naming the key."""
    import dataclasses
    import typing

    from fusionrec.models.registry import get_model_class, model_names
    from fusionrec.typed_config import Range, build

    checked = 0
    for name in model_names():
        params = get_model_class(name).Params
        for f in dataclasses.fields(params):
            tp = typing.get_type_hints(params, include_extras=True)[f.name]
            rules = [m for m in getattr(tp, "__metadata__", ()) if isinstance(m, Range)]
            if rules:
                rule = rules[0]
                bad = rule.low - 1 if rule.low is not None else rule.high + 1
                with pytest.raises(ConfigError, match=rf"'model\.params\.{f.name}': .* out of range"):
                    build(params, {f.name: bad}, key="model.params")
                checked += 1
    assert checked >= 20


def test_choices_are_checked_for_configs_made_in_python_too():
    from fusionrec.config import SplitConfig
    from fusionrec.models.lightgcn import LightGCNParams

    with pytest.raises(ConfigError, match="'split.method': expected one of 'random', .* got 'randm'"):
        SplitConfig(method="randm")
    with pytest.raises(ConfigError, match="'model.params.similarity': expected one of 'dot', 'cosine', got 'cos'"):
        LightGCNParams(similarity="cos")
    assert LightGCNParams(similarity="cosine").similarity == "cosine"


def test_a_split_without_a_test_part_fails_at_load_unless_the_split_is_given(tmp_path):
    path = write(tmp_path, "split:\n  method: random\n  ratios: [0.9, 0.1, 0.0]\n")
    with pytest.raises(ConfigError, match=r"'split\.ratios': the test share must be above 0 for split.method 'random'"):
        load_config(path)
    assert load_config(None, ["split.method=given", "split.ratios=[0.9, 0.1, 0.0]"]).split.method == "given"


@pytest.mark.parametrize("path", SPACES, ids=lambda p: f"{p.parents[1].name}/spaces/{p.name}")
def test_shipped_search_spaces_fit_their_configs(path):
    """configs/<dataset>/spaces/<model>.yaml: every range's ends make a valid config of ../<model>.yaml."""
    from fusionrec.jobs.tune_space import check_space, read_space

    check_space(read_space(path), path.parents[1] / path.name, [], str(path))
