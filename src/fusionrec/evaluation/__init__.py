"""Evaluation: RecBole-identical ranking metrics, the chunked full-ranking evaluator, segments and sampled mode.

See ``docs/evaluation.md`` for the protocol and every formula."""

from fusionrec.evaluation.evaluator import DEFAULT_METRICS, Evaluator, sample_negatives
from fusionrec.evaluation.metrics import (LIST_METRICS, TOPK_METRICS, hit_at_k, item_coverage, mae, map_at_k,
                                          mrr_at_k, ndcg_at_k, novelty_per_user, precision_at_k, recall_at_k, rmse,
                                          self_information)
from fusionrec.evaluation.segments import popularity_segments, restrict_targets, segments_from_split

__all__ = [
    "DEFAULT_METRICS", "Evaluator", "LIST_METRICS", "TOPK_METRICS", "hit_at_k", "item_coverage", "mae", "map_at_k",
    "mrr_at_k", "ndcg_at_k", "novelty_per_user", "popularity_segments", "precision_at_k", "recall_at_k",
    "restrict_targets", "rmse", "sample_negatives", "segments_from_split", "self_information",
]
