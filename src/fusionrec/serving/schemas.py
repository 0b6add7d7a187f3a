"""Request and response bodies of the HTTP service. Types are strict: ``"5"`` is not a valid ``k``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

Id = Field(min_length=1, max_length=256)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RecommendRequest(_Body):
    user_id: StrictStr = Id
    k: StrictInt = 10
    exclude_seen: StrictBool = True
    candidates: list[StrictStr] | None = None
    exclude: list[StrictStr] | None = None


class BatchRecommendRequest(_Body):
    user_ids: list[StrictStr] = Field(min_length=1)
    k: StrictInt = 10
    exclude_seen: StrictBool = True
    candidates: list[StrictStr] | None = None
    exclude: list[StrictStr] | None = None


class ScoredItem(BaseModel):
    item_id: str
    score: float


class RecommendResponse(BaseModel):
    """``source``: "model" (trained vector), "history" (added interactions folded in) or "popularity" (a new user
    with no interactions yet: a non-personal fallback)."""

    user_id: str
    items: list[ScoredItem]
    source: str
    model_version: str


class BatchRecommendResponse(BaseModel):
    results: list[RecommendResponse]
    model_version: str


class SimilarResponse(BaseModel):
    item_id: str
    items: list[ScoredItem]
    model_version: str


class Interaction(_Body):
    user_id: StrictStr = Id
    item_id: StrictStr = Id
    timestamp: StrictFloat | StrictInt | None = None
    weight: StrictFloat | StrictInt = 1.0


class InteractionsResponse(BaseModel):
    added: int


class ForgetResponse(BaseModel):
    user_id: str
    removed_events: int


class ExplainRequest(_Body):
    user_id: StrictStr = Id
    item_id: StrictStr = Id
    n_history: StrictInt = Field(5, ge=0, le=100)
    n_paths: StrictInt = Field(3, ge=0, le=20)


class SourceContribution(BaseModel):
    """``weight``: the fusion's weight for the source (None when the fusion gives none); ``alone`` / ``drop``: the
    user's score of the item's fused vector from this source alone / how much it falls without it."""

    source: str
    present: bool
    weight: float | None = None
    alone: float | None = None
    drop: float | None = None


class HistoryContribution(BaseModel):
    """``contribution`` = ``weight`` x ``similarity`` to the item; for a sequence model the newest position's
    ``attention`` to the history item (``steps_back`` 1: the newest), each position of the sequence weighing 1."""

    item_id: str
    name: str | None = None
    weight: float
    similarity: float
    contribution: float
    attention: float | None = None
    steps_back: int | None = None


class PathNode(BaseModel):
    entity: str
    item_id: str | None = None
    name: str | None = None


class PathStep(BaseModel):
    relation: str
    direction: str  # "forward": previous -relation-> next; "backward": previous <-relation- next


class KGPathOut(BaseModel):
    hops: int
    nodes: list[PathNode]
    relations: list[PathStep]
    text: str


class ExplainResponse(BaseModel):
    user_id: str
    item_id: str
    name: str | None = None
    score: float | None
    score_source: str
    model: str
    sources: list[SourceContribution]
    history: list[HistoryContribution]
    paths: list[KGPathOut]
    notes: list[str]
    model_version: str


class Triple(_Body):
    head: StrictStr = Id
    relation: StrictStr = Id
    tail: StrictStr = Id


class TriplesResponse(BaseModel):
    """``changed``: how many triples were new (POST) or present and removed (DELETE); ``triples``: the graph's size
    after the edit."""

    changed: int
    triples: int


class NewItemBody(_Body):
    """An item to add: ``fields`` are the item's side-information fields (rendered with the run's text template;
    a list value is joined with ", "), ``entities`` raw ids of knowledge-graph entities it links to."""

    item_id: StrictStr = Id
    fields: dict[StrictStr, StrictStr | list[StrictStr] | StrictInt | StrictFloat] = Field(default_factory=dict)
    entities: list[StrictStr] = Field(default_factory=list)


class ItemsAddedResponse(BaseModel):
    """``added``: the new item ids; ``notes``: what was ignored (unknown entity ids, fields the template does not
    read); ``items``: the catalogue's size now."""

    added: list[str]
    notes: list[str]
    items: int
