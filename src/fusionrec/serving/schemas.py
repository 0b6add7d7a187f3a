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
