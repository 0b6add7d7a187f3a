"""Serving: the Recommender API over a saved artifact (and, in a later layer, the HTTP service). Never trains."""

from fusionrec.serving.recommender import Recommender

__all__ = ["Recommender"]
