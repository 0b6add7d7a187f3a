"""Helpers with no recommender knowledge, used by every layer: atomic file writes (``atomic_io``), run provenance
(``provenance``: package versions, machine), the thread policy (``threads``) and fixed sparse products
(``sparse_ops``). Imports nothing of fusionrec above ``errors``."""
