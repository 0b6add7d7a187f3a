"""What `fusionrec tune` searches: a YAML file mapping config keys (as ``--set`` takes them) to ranges.

    training.lr: {float: [0.0005, 0.01], log: true}     # a float in [low, high], sampled on a log scale
    training.temperature: {float: [0.1, 0.4]}
    model.params.n_layers: {int: [1, 4]}                 # an integer in [low, high]; {int: [16, 256], step: 16}
    model.params.fusion: {choices: [concat, gate, attention]}

Every key is checked against the config before a trial runs (an unknown key or a value outside its rule is an
error naming the space file and the key). Keys under ``dataset``, ``split`` and ``evaluation`` are refused: every
trial is compared on the same split and metrics.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fusionrec.config import load_config
from fusionrec.errors import ConfigError

FIXED_SECTIONS = ("dataset.", "split.", "evaluation.")


@dataclass(frozen=True)
class Dimension:
    """One searched key: ``kind`` float | int | choices; ``low``/``high`` (float, int), ``log``, ``step`` (int),
    ``choices`` (any YAML scalars or lists)."""

    key: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial) -> Any:
        """This dimension's value for an Optuna trial."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.key, list(self.choices))

    def corners(self) -> list[Any]:
        """Values that span the dimension (checked against the config before the search starts)."""
        return [self.low, self.high] if self.kind in ("float", "int") else list(self.choices)


def override(key: str, value: Any) -> str:
    """``key=value`` as ``--set`` takes it (the value written as JSON, which YAML reads back unchanged)."""
    return f"{key}={json.dumps(value)}"


def read_space(path: str | Path) -> list[Dimension]:
    """The dimensions of a space file; a :class:`ConfigError` naming the file and the key for anything malformed."""
    file = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the search space: {exc.strerror}", file=file) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=file) from None
    if not isinstance(data, dict) or not data:
        raise ConfigError("a search space maps config keys to ranges, e.g. 'training.lr: {float: [0.001, 0.01], "
                          "log: true}'", file=file)
    return [_dimension(str(key), rule, file) for key, rule in data.items()]


def _dimension(key: str, rule: Any, file: str) -> Dimension:
    def bad(message: str) -> ConfigError:
        return ConfigError(message, file=file, key=key)

    if key.startswith(FIXED_SECTIONS) or key in ("dataset", "split", "evaluation"):
        raise bad("every trial is compared on the same data, split and metrics: not searchable")
    if not isinstance(rule, dict):
        raise bad("must be a mapping: {float: [low, high]}, {int: [low, high]} or {choices: [...]}")
    kinds = [k for k in ("float", "int", "choices") if k in rule]
    unknown = set(rule) - {"float", "int", "choices", "log", "step"}
    if len(kinds) != 1 or unknown:
        raise bad("give exactly one of float, int, choices (with log, step where they apply); got "
                  f"{', '.join(map(str, rule))}")
    kind = kinds[0]
    if kind == "choices":
        choices = rule["choices"]
        if not isinstance(choices, list) or not choices or set(rule) != {"choices"}:
            raise bad("choices must be a non-empty list (and nothing else)")
        return Dimension(key, "choices", choices=tuple(choices))
    bounds = rule[kind]
    number = float if kind == "float" else int
    if not (isinstance(bounds, list) and len(bounds) == 2
            and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds)):
        raise bad(f"{kind} must be [low, high], got {bounds!r}")
    low, high = number(bounds[0]), number(bounds[1])
    if kind == "int" and (bounds[0] != low or bounds[1] != high):
        raise bad(f"int bounds must be whole numbers, got {bounds!r}")
    log = rule.get("log", False)
    step = rule.get("step")
    if not low < high:
        raise bad(f"needs low < high, got [{low}, {high}]")
    if not isinstance(log, bool) or (log and low <= 0):
        raise bad("log must be true or false, and a log scale needs low > 0")
    if step is not None and (kind != "int" or not isinstance(step, int) or step < 1 or log):
        raise bad("step is a whole number >= 1 for an int range without log")
    return Dimension(key, kind, low, high, log, step)


def check_space(dimensions: list[Dimension], config: str | Path, overrides: list[str], space_file: str) -> None:
    """Every value a dimension can reach at its ends builds a valid config and model (keys exist, ranges hold)."""
    from fusionrec.jobs.experiment import model_params

    for dim in dimensions:
        for value in dim.corners():
            try:
                model_params(load_config(config, [*overrides, override(dim.key, value)]))
            except ConfigError as exc:
                raise ConfigError(f"{dim.key}={value!r} does not make a valid config: {exc}", file=space_file,
                                  key=dim.key) from None
