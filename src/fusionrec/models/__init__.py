"""Models: one file per model, each registered by name (``get_model_class("lightgcn")``).

The contract (``Model``, ``ModelInputs``, ``Batch``, ``ForwardOut``) lives in :mod:`fusionrec.models.base`;
``docs/models.md`` lists the models and their hyper-parameters."""

from fusionrec.models.base import Batch, ForwardOut, Model, ModelInputs, NoParams, ScoreFactors, dense_scores
from fusionrec.models.registry import get_model_class, model_names, register

__all__ = ["Batch", "ForwardOut", "Model", "ModelInputs", "NoParams", "ScoreFactors", "dense_scores", "get_model_class",
           "model_names", "register"]
