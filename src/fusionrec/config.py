"""The run configuration: typed, validated sections loaded from YAML.

Every key, its type and its default is written here; ``docs/config.md`` explains them for users. Unknown keys and
wrong types raise :class:`fusionrec.errors.ConfigError` naming the key path.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from fusionrec.errors import ConfigError
from fusionrec.typed_config import (CheckedFields, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, Range,
                                    build, to_dict)

Share = Annotated[float, Range(0, 1, low_open=True, high_open=True)]  # (0, 1)


@dataclass(frozen=True)
class InteractionTable:
    """A plain interaction table (CSV/TSV/Parquet) and which of its columns mean what."""

    file: str
    user: str = "user_id"
    item: str = "item_id"
    rating: str | None = None
    timestamp: str | None = None
    weight: str | None = None
    sep: str | None = None  # None: ',' for .csv, '\t' for .tsv/.txt


@dataclass(frozen=True)
class ItemTable:
    file: str
    id: str = "item_id"
    text: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    token_sep: str = "|"  # separator inside a multi-valued categorical cell
    sep: str | None = None


@dataclass(frozen=True)
class TripleTable:
    file: str
    head: str = "head_id"
    relation: str = "relation_id"
    tail: str = "tail_id"
    sep: str | None = None


@dataclass(frozen=True)
class LinkTable:
    file: str
    item: str = "item_id"
    entity: str = "entity_id"
    sep: str | None = None


@dataclass(frozen=True)
class SocialTable:
    """Who knows whom: one directed user -> user edge a row (a friendship may appear once or both ways)."""

    file: str
    source: str = "source_id"
    target: str = "target_id"
    sep: str | None = None


@dataclass(frozen=True)
class DatasetConfig:
    """``name`` is a fetchable dataset (``ml-100k``) or a label; ``path`` a directory of RecBole atomic files
    (``NAME.inter`` ...) or, with ``format: table``, the base directory the table files are relative to."""

    name: str = "ml-100k"
    path: str | None = None
    format: Literal["atomic", "table"] = "atomic"
    interactions: InteractionTable | None = None
    items: ItemTable | None = None
    kg: TripleTable | None = None
    links: LinkTable | None = None
    social: SocialTable | None = None  # format: table; atomic folders read NAME.net
    duplicates: Literal["keep", "drop", "error"] = "keep"  # repeated (user, item) rows
    rating_threshold: float | None = None  # keep only rows with rating >= this as positives (None: all rows)
    unknown_links: Literal["skip", "error"] = "skip"  # links to items not in the catalogue: drop with a note, or fail
    presplit: bool = False  # atomic: use NAME.train.inter / NAME.valid.inter / NAME.test.inter as given
    # item field -> kind, overriding the reader's text/categorical guess, e.g. {tags: categorical}; kinds: text,
    # categorical, numeric, ignore (not read). Tables: moves the column between items.text/categorical/numeric
    fields: dict[str, Literal["text", "categorical", "numeric", "ignore"]] = field(default_factory=dict)


@dataclass(frozen=True)
class SplitConfig(CheckedFields):
    config_key = "split"

    method: Literal["random", "temporal", "leave_one_out", "cold_items", "cold_users", "given"] = "random"
    ratios: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train, valid, test
    cold_share: Share = 0.2  # cold_items / cold_users: share of items/users held out of training
    seed: int | None = None  # None: the run's seed
    # (0, 1]: keep this share of each user's interactions before splitting (sparser data)
    keep_share: Annotated[float, Range(0, 1, low_open=True)] = 1.0
    # the history the test is scored from: train (RecBole's default), or train + valid (published leave-one-out
    # tables); not on the cold splits. Validation always reads train only.
    test_history: Literal["train", "train_valid"] = "train"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_split_ratios(self.ratios)
        if self.method != "given" and self.ratios[2] <= 0:  # every split fusionrec makes needs a test part
            raise ConfigError(f"the test share must be above 0 for split.method {self.method!r}, got "
                              f"{list(self.ratios)}", key="split.ratios")


RATIO_SUM_TOLERANCE = 1e-6


def check_split_ratios(ratios: list[float]) -> None:
    """``split.ratios``: three finite shares (train, valid, test), none negative, train above 0, summing to 1; a
    ConfigError naming the rule otherwise (``[0.8, 0.5, 0.1]`` is a typo, not a 57/36/7 split)."""
    key = "split.ratios"
    if len(ratios) != 3:
        raise ConfigError(f"expected three shares (train, valid, test), got {len(ratios)}: {list(ratios)}", key=key)
    if not all(math.isfinite(r) and r >= 0 for r in ratios) or ratios[0] <= 0:
        raise ConfigError(f"each share must be a finite number >= 0 and train > 0, got {list(ratios)}", key=key)
    if abs(sum(ratios) - 1.0) > RATIO_SUM_TOLERANCE:
        raise ConfigError(f"the shares must sum to 1, got {list(ratios)} (sum {sum(ratios):g})", key=key)


@dataclass(frozen=True)
class TrainingConfig(CheckedFields):
    config_key = "training"

    epochs: NonNegativeInt = 300  # upper bound; early stopping usually ends sooner
    batch_size: PositiveInt = 2048
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: PositiveFloat = 0.001
    weight_decay: NonNegativeFloat = 0.0  # optimiser's L2 on all parameters
    loss: Literal["bpr", "bce", "softmax", "full_softmax", "sampled_softmax", "mse"] = "bpr"
    temperature: PositiveFloat = 1.0  # softmax losses only: scores are divided by it before the cross-entropy
    # negatives per positive, uniform over items the user has not interacted with (unused by full_softmax, whose
    # negatives are every item; sampled_softmax: items drawn per step from neg_distribution into the shared candidates)
    neg_samples: PositiveInt = 1
    neg_pool: Literal["all", "trained"] = "all"  # negatives from every item, or only items with training interactions
    # sampled_softmax: at most this many of the batch's positives join the shared candidate set (a random subset when
    # the batch is larger)
    in_batch_negatives: NonNegativeInt = 2048
    neg_distribution: Literal["uniform", "popularity"] = "uniform"  # sampled_softmax's proposal for its neg_samples
    #                                 draws: uniform over the pool, or (training count + 1)^0.75
    # above this many items full_softmax trains as sampled_softmax (None: never switch)
    full_softmax_max_items: Annotated[int | None, Range(1)] = 20000
    # the batch grows to ceil(train pairs / this) when that exceeds batch_size
    max_steps_per_epoch: Annotated[int | None, Range(1)] = None
    patience: NonNegativeInt = 10  # evaluations without improvement before stopping (0: never stop early)
    valid_metric: str = "ndcg@10"
    eval_every: PositiveInt = 1  # epochs between validations
    # stop training after this many seconds (best weights restored)
    time_budget_s: Annotated[float | None, Range(0, low_open=True)] = None
    term_weights: dict[str, float] = field(default_factory=dict)  # weight per extra loss term, e.g. {reg: 1.0}
    # weight of the knowledge-graph loss: L = L_rec + kg_alpha * L_KG (models with a KG loss)
    kg_alpha: NonNegativeFloat = 0.1
    kg_mode: Literal["joint", "alternating"] = "joint"  # one step on L_rec + alpha L_KG, or a KG epoch after each epoch
    kg_batch_size: PositiveInt = 4096  # triples per KG step
    # alternating: KG steps after each epoch (None: one pass over every triple); a stream that carries on across
    # epochs, so every triple is still visited
    kg_steps_per_epoch: Annotated[int | None, Range(1)] = None
    kg_neg_samples: PositiveInt = 1  # corrupted tails per triple
    progress: bool = True


@dataclass(frozen=True)
class EvaluationConfig(CheckedFields):
    config_key = "evaluation"

    ks: list[PositiveInt] = field(default_factory=lambda: [10, 20])
    metrics: list[str] = field(default_factory=lambda: ["recall", "precision", "ndcg", "hit", "mrr", "map"])
    mode: Literal["full", "sampled"] = "full"
    sampled_negatives: PositiveInt = 100  # sampled mode only: negatives per user, drawn once and saved
    batch_users: PositiveInt = 1024  # users scored per chunk (memory: batch_users x n_items floats)
    # full ranking: the user's known items (train for valid, train + valid for test) are never ranked; false ranks
    # them too, as RecBole's sequential evaluation does (a target that repeats a history item can then be hit)
    exclude_seen: bool = True


@dataclass(frozen=True)
class ModelConfig:
    name: str = "bpr"
    params: dict[str, Any] = field(default_factory=dict)
    # a model folder (DIR/model of 'fusionrec train' or 'fusionrec pretrain') to start from: the model's
    # catalogue-free parameters are copied before training (models with the Transferable capability);
    # training.epochs 0 then uses them as they are (zero-shot)
    init_from: str | None = None


@dataclass(frozen=True)
class TextConfig(CheckedFields):
    """How item text is built and read by a language model (``fusionrec encode``)."""

    config_key = "text"

    encoder: Literal["sentence-transformers", "openai"] = "sentence-transformers"
    model: str = "all-MiniLM-L6-v2"  # a sentence-transformers name, a local model folder, or (openai) the model name
    template: str | None = None  # e.g. "{movie_title} ({release_year}). Genres: {class}." (None: all text fields)
    batch_size: PositiveInt = 64
    cache_dir: str | None = None  # default: <data dir>/embeddings
    base_url: str | None = None  # openai: e.g. http://127.0.0.1:8080/v1
    api_key_env: str | None = None  # openai: the environment variable holding the API key
    timeout_s: PositiveFloat = 30.0  # openai: per request
    max_retries: NonNegativeInt = 5  # openai: retries with exponential backoff on errors and 429/5xx
    normalize: bool = True  # L2-normalise embeddings
    # sentence-transformers: run the model in torch, or exported to ONNX Runtime (fp32, or int8 weights)
    backend: Literal["torch", "onnx", "onnx-int8"] = "torch"
    onnx_dir: str | None = None  # where exported ONNX models are kept; default: <data dir>/onnx


@dataclass(frozen=True)
class KnowledgeConfig:
    """Which knowledge-graph triples a model sees."""

    use_kg_file: bool = True  # the dataset's own .kg/.link (or kg/links tables)
    attributes: list[str] = field(default_factory=list)  # categorical item fields turned into item-has_attr->value
    inverse_relations: bool = True  # add (t, r~inverse, h) for every triple


@dataclass(frozen=True)
class RunConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    text: TextConfig | None = None  # set to give models item text embeddings
    knowledge: KnowledgeConfig = field(default_factory=KnowledgeConfig)
    seed: int = 2020
    data_dir: str | None = None  # where fetched datasets are cached (default: $FUSIONREC_DATA_DIR or ~/.cache/fusionrec)

    def to_dict(self) -> dict:
        return to_dict(self)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Reads a YAML config (or the defaults when ``path`` is None) and applies ``key.path=value`` overrides, whose
    values are parsed as YAML scalars (``training.lr=0.01``, ``model.params.embedding_size=128``)."""
    data: dict = {}
    file = str(path) if path is not None else None
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config: {exc.strerror}", file=file) from None
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {exc}", file=file) from None
        if not isinstance(data, dict):
            raise ConfigError("the top level must be a mapping", file=file)
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value", file="--set")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        with blame_overrides(None, [item]):
            _set_path(data, key.strip(), value)
    with blame_overrides(file, overrides):
        return build(RunConfig, data, file=file)


@contextmanager
def blame_overrides(file: str | Path | None, overrides: list[str] | None):
    """Re-raises a ConfigError about a key that a ``--set KEY=VALUE`` override set (that key or one below it) as
    coming from that override rather than from the config file; others name ``file``."""
    try:
        yield
    except ConfigError as exc:
        for item in reversed(overrides or []):  # the last override of a key is the one in force
            key = item.split("=", 1)[0].strip()
            if exc.key is not None and (exc.key == key or exc.key.startswith((key + ".", key + "["))):
                raise ConfigError(exc.message, key=exc.key, file=f"--set {item}") from None
        if exc.file is None and file is not None:
            raise ConfigError(exc.message, key=exc.key, file=str(file)) from None
        raise


def config_from_dict(data: dict) -> RunConfig:
    return build(RunConfig, data)


def _set_path(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError("cannot set a key below a non-mapping value", key=key)
        node = nxt
    node[parts[-1]] = value
