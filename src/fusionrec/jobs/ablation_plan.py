"""The plan of ``fusionrec ablate``: its rows (each a config change of the FusionRec run given), in four groups:

* ``sources``: ``cf`` (id only), ``cf+text``, ``cf+kg``, ``cf+text+kg``, and ``text`` (no id vector: text as the
  items' base representation);
* ``knowledge``: the base config plus one more source each: ``+item-item`` (EASE's item-item weights mixed in by a
  share chosen on validation), ``+user`` (the users' own fields), ``+social`` (the users' social graph), and
  ``cf+item-item``, the CF-only control of ``+item-item`` (no text or KG anywhere, not in the item-item Gram either),
  and ``no-item-item``, the base config without the item-item source (for a base that has it);
* ``fusion``: ``concat``, ``gate``, ``attention`` (all sources);
* ``alpha``: KG-loss weight ``alpha=0``, ``alpha=0.01``, ``alpha=0.1``, ``alpha=1`` (all sources).

``--variants`` picks groups and / or single variants by these names; rows with the same settings train once. The
plan reads no data: a row whose source the dataset lacks (no KG, no NAME.user, no NAME.net) is found out and skipped
by the run (:mod:`fusionrec.jobs.ablation`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from fusionrec.config import RunConfig
from fusionrec.errors import ConfigError

ALPHAS = (0.0, 0.01, 0.1, 1.0)
FUSIONS = ("concat", "gate", "attention")
SOURCES = {"cf": {"use_text": False, "use_kg": False}, "cf+text": {"use_text": True, "use_kg": False},
           "cf+kg": {"use_text": False, "use_kg": True}, "cf+text+kg": {"use_text": True, "use_kg": True},
           "text": {"use_id": False, "use_text": True, "use_kg": False}}  # text as the items' base, no id vector
KNOWLEDGE = {"+item-item": {"item_item": True}, "cf+item-item": {"item_item": True, "item_item_text_weight": 0.0,
                                                                  "use_text": False, "use_kg": False},
             "+user": {"use_user_features": True}, "+social": {"use_social": True},
             "no-item-item": {"item_item": False}}
GROUPS = ("sources", "knowledge", "fusion", "alpha")


@dataclass(frozen=True, eq=False)
class PlannedVariant:
    """One row of the ablation table. ``index``: its place in the full grid; ``changes``: what differs from the base
    config; ``same_as``: the index of an earlier planned row with the same settings, whose training this row reuses
    (None: this row trains). :attr:`folder` is named by group and variant alone, so rows added to the grid leave the
    other rows' folders (and a rerun's reuse of them) as they were."""

    index: int
    group: str
    label: str
    config: RunConfig
    changes: str
    same_as: int | None

    @property
    def folder(self) -> str:
        label = self.label.replace('=', '-').replace('+', '_')
        return f"{self.group}-{label.lstrip('_')}"


def ablation_variants(cfg: RunConfig) -> list[tuple[str, str, RunConfig]]:
    """(group, label, config) for every row of the ablation table (the same settings may appear in several groups;
    :func:`run_ablation` trains them once)."""
    if cfg.model.name != "fusionrec":
        raise ConfigError(f"ablate needs a fusionrec config, got model {cfg.model.name!r}", key="model.name")
    out = []

    def add(group: str, label: str, params: dict, alpha: float) -> None:
        params = {**cfg.model.params, **params}
        if params.get("item_item") and not params.get("use_text", True):
            params["item_item_text_weight"] = 0.0  # a row without text reads none in the item-item Gram either
        model = replace(cfg.model, params=params)
        out.append((group, label, replace(cfg, model=model, training=replace(cfg.training, kg_alpha=alpha))))

    for label, params in SOURCES.items():
        add("sources", label, params, cfg.training.kg_alpha)
    for label, params in KNOWLEDGE.items():
        add("knowledge", label, params, cfg.training.kg_alpha)
    for fusion in FUSIONS:
        add("fusion", fusion, {"use_text": True, "use_kg": True, "fusion": fusion}, cfg.training.kg_alpha)
    for alpha in ALPHAS:
        add("alpha", f"alpha={alpha:g}", {"use_text": True, "use_kg": True}, alpha)
    return out


def variant_names() -> list[str]:
    """Every name ``--variants`` accepts: the groups, then the variants."""
    return [*GROUPS, *SOURCES, *KNOWLEDGE, *FUSIONS, *(f"alpha={a:g}" for a in ALPHAS)]


def _settings(cfg: RunConfig) -> tuple:
    return tuple(sorted(cfg.model.params.items())), cfg.training.kg_alpha


def _yaml(value) -> str:
    """A value as a YAML file would show it: ``true``, ``0.1``, ``gate``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def describe_changes(base: RunConfig, variant: RunConfig) -> str:
    """``use_text true -> false, training.kg_alpha 0.1 -> 0`` (a key the base leaves at its default shows as
    ``(default)``); ``(the base config)`` when nothing changes."""
    old, new = base.model.params, variant.model.params
    parts = [f"{k} {_yaml(old[k]) if k in old else '(default)'} -> {_yaml(new[k])}"
             for k in new if old.get(k, object()) != new[k]]
    if variant.training.kg_alpha != base.training.kg_alpha:
        parts.append(f"training.kg_alpha {_yaml(base.training.kg_alpha)} -> {_yaml(variant.training.kg_alpha)}")
    return ", ".join(parts) or "(the base config)"


def plan_ablation(cfg: RunConfig, variants: str | None = None) -> list[PlannedVariant]:
    """The rows to run: all of them, or those ``variants`` names (comma-separated groups and variants, e.g.
    ``sources,alpha=0.1``), in the grid's order. An unknown name raises ConfigError listing the known ones."""
    grid = ablation_variants(cfg)
    chosen = set(range(len(grid)))
    if variants is not None:
        names = [n.strip() for n in variants.split(",") if n.strip()]
        if not names:
            raise ConfigError(f"names no variant; choose from {', '.join(variant_names())}", key="--variants")
        chosen = set()
        for name in names:
            hits = {i for i, (group, label, _) in enumerate(grid) if name in (group, label)
                    or _same_alpha(name, label)}
            if not hits:
                raise ConfigError(f"unknown variant {name!r}; choose from groups {', '.join(GROUPS)} or variants "
                                  f"{', '.join(variant_names()[len(GROUPS):])}", key="--variants")
            chosen |= hits
    plan, first = [], {}
    for i in sorted(chosen):
        group, label, variant = grid[i]
        key = _settings(variant)
        plan.append(PlannedVariant(i, group, label, variant, describe_changes(cfg, variant), first.get(key)))
        first.setdefault(key, i)
    return plan


def _same_alpha(name: str, label: str) -> bool:
    """``alpha=.1`` names ``alpha=0.1``."""
    if not (name.startswith("alpha=") and label.startswith("alpha=")):
        return False
    try:
        return float(name[6:]) == float(label[6:])
    except ValueError:
        return False


def epoch_bounds(cfg: RunConfig) -> tuple[int, int]:
    """(fewest, most) epochs one training can run: early stopping needs ``patience + 1`` validations, one every
    ``eval_every`` epochs, and ``training.epochs`` caps both."""
    t = cfg.training
    fewest = t.epochs if t.patience == 0 else min(t.epochs, t.eval_every * (t.patience + 1))
    return fewest, t.epochs


def format_plan(cfg: RunConfig, plan: list[PlannedVariant], n_seeds: int = 1) -> str:
    """The plan as text: one line per row (what it changes, whether it trains) and the epochs per training."""
    from fusionrec.evaluation.report import markdown_table

    trainings = sum(p.same_as is None for p in plan) * n_seeds
    by_index = {p.index: n for n, p in enumerate(plan, 1)}
    rows = [{"#": n, "group": p.group, "variant": p.label, "what changes (vs the base config)": p.changes,
             "trains": "yes" if p.same_as is None else f"no: same run as #{by_index[p.same_as]}"}
            for n, p in enumerate(plan, 1)]
    fewest, most = epoch_bounds(cfg)
    t = cfg.training
    budget = f"; training.time_budget_s {t.time_budget_s:g} s caps each" if t.time_budget_s else ""
    return (f"ablation plan: {len(plan)} row(s), {trainings} training(s) of fusionrec on {cfg.dataset.name}\n\n"
            f"{markdown_table(rows)}\n"
            f"each training: {fewest} to {most} epochs (early stopping after {t.patience} validations without "
            f"improvement, one every {t.eval_every} epoch(s); training.epochs {t.epochs}){budget}\n")


def format_estimate(cfg: RunConfig, plan: list[PlannedVariant], epoch_s: float, timed: str,
                    n_seeds: int = 1) -> str:
    """The training time the plan may take, from one measured epoch (``epoch_s`` seconds, of variant ``timed``)."""
    trainings = sum(p.same_as is None for p in plan) * n_seeds
    fewest, most = epoch_bounds(cfg)
    lo, hi = trainings * fewest * epoch_s, trainings * most * epoch_s
    if cfg.training.time_budget_s:
        hi = min(hi, trainings * cfg.training.time_budget_s)
    return (f"estimate: one epoch of {timed} took {epoch_s:.2f} s (timed just now, the dearest planned variant); "
            f"{trainings} training(s) x {fewest}..{most} epochs = {duration(lo)} .. {duration(hi)} of training, "
            f"plus validation, test evaluation and any text encoding (not counted)\n")


def duration(seconds: float) -> str:
    """``45 s``, ``3.2 min`` or ``1.5 h``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 \
        else f"{seconds / 3600:.1f} h"
