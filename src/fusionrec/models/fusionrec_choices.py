"""What FusionRec chooses on the validation set after training (:class:`ValidationTuned`): the item-item source's
share of the score (:class:`~fusionrec.models.item_item_source.ItemItemShare`), or, with ``cold_path: neighbours``
and ``cold_warm_tolerance``, how high the items without interactions are scored (their borrowed vectors' scale).

The cold scale is chosen by a rule of its own, not by the run's validation metric alone: the largest cold-item
Recall@20 among the scales whose warm-item NDCG@10 stays within ``cold_warm_tolerance`` (a share, e.g. 0.02) of the
warm-item NDCG@10 with every cold item scored 0 (scale 0: the warm model's lists, as near as scores allow). New
items then get the exposure the warm accuracy can afford, measured on the split's own validation users."""

from __future__ import annotations

import torch

from fusionrec.models.item_item_source import ItemItemShare

COLD_SCALES = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)  # the validation grid of the cold scale
WARM_METRIC, COLD_METRIC = "warm_items/ndcg@10", "cold_items/recall@20"


def pick_cold_scale(grid: list[dict[str, float]], scores: list[dict[str, float]], tolerance: float) -> int:
    """Index into ``grid`` (settings ``{"cold_scale": s}``, one with s = 0) of the largest ``COLD_METRIC`` among the
    settings whose ``WARM_METRIC`` is at least ``(1 - tolerance)`` times the scale-0 setting's; the smaller scale
    among equals."""
    reference = next(s[WARM_METRIC] for g, s in zip(grid, scores) if g["cold_scale"] == 0.0)
    allowed = [i for i, s in enumerate(scores) if s[WARM_METRIC] >= (1.0 - tolerance) * reference]
    return max(allowed, key=lambda i: (scores[i][COLD_METRIC], -grid[i]["cold_scale"]))


class FusionRecChoices(ItemItemShare):
    """Mixed into :class:`~fusionrec.models.fusionrec.FusionRec` (its params, ``item_item``, the ``cold_scale_now``
    buffer and ``cold_nbr_index``)."""

    cold_scale_now: torch.Tensor
    cold_nbr_index: torch.Tensor

    def _chooses_cold_scale(self) -> bool:
        p = self.params
        return (p.cold_path == "neighbours" and p.cold_warm_tolerance is not None
                and self.cold_nbr_index.numel() > 0 and bool((self.cold_nbr_index[:, 0] >= 0).any()))

    def validation_grid(self) -> list[dict[str, float]]:
        if self.item_item is not None:
            return super().validation_grid()
        if self._chooses_cold_scale():  # the configured scale first: the setting the model trained with
            return [{"cold_scale": s} for s in (self.params.cold_scale,
                                                *(s for s in COLD_SCALES if s != self.params.cold_scale))]
        return []

    def validation_metrics(self) -> tuple[str, ...]:
        return (WARM_METRIC, COLD_METRIC) if self.item_item is None and self._chooses_cold_scale() else ()

    def select(self, grid: list[dict[str, float]], scores: list[dict[str, float]]) -> int | None:
        if self.item_item is None and self._chooses_cold_scale():
            return pick_cold_scale(grid, scores, self.params.cold_warm_tolerance)
        return None

    def choose(self, setting: dict[str, float]) -> None:
        if set(setting) == {"cold_scale"} and self._chooses_cold_scale():
            self.cold_scale_now.fill_(float(setting["cold_scale"]))
            self._cache.clear()
            return
        super().choose(setting)

    def chosen(self) -> dict[str, float]:
        if self.item_item is None and self._chooses_cold_scale():
            return {"cold_scale": float(self.cold_scale_now)}
        return super().chosen()
