"""fusionrec: recommendation from behaviour, item text and knowledge graphs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Recommender", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import fusionrec` (e.g. for the CLI's --help) does not import torch.
    if name == "Recommender":
        from fusionrec.serving.recommender import Recommender

        return Recommender
    raise AttributeError(f"module 'fusionrec' has no attribute {name!r}")
