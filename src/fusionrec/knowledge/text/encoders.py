"""The text-encoder interface and the factory that builds one from :class:`fusionrec.config.TextConfig`.

An encoder turns a list of texts into float32 vectors of shape (n, dim). ``encoder_id`` names the model and every
setting that changes its vectors (not the batch size); the embedding cache is keyed by it, so two encoders with
the same id must give the same vectors. Building an encoder loads nothing: the model is loaded (or the server first
asked) on the first ``encode`` or ``dim``, so a run whose vectors are all cached never loads a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from fusionrec.config import TextConfig
from fusionrec.errors import ConfigError, FusionrecError

INSTALL_HINT = "pip install 'fusionrec[text]'"


class EncoderError(FusionrecError):
    """An encoder could not be built or could not encode: a missing package or model, an unreachable server, a
    request the server refused, or an answer of the wrong shape."""


class TextEncoder(Protocol):
    """``encode(texts)``: float32 array of shape (len(texts), dim). (Not runtime-checkable on purpose: an
    ``isinstance`` check would read ``dim`` and so load the model.)"""

    @property
    def encoder_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...


def make_encoder(cfg: TextConfig) -> TextEncoder:
    """The encoder ``cfg.encoder`` names, configured from ``cfg``; nothing is loaded or requested yet. The ONNX
    backends keep their exported model under ``cfg.onnx_dir`` (default ``<data dir>/onnx``, data dir from
    ``$FUSIONREC_DATA_DIR`` or ``~/.cache/fusionrec``; :func:`fusionrec.knowledge.encode_step.encode_items` fills
    it in from the run's ``data_dir``)."""
    if cfg.batch_size < 1:
        raise ConfigError(f"must be at least 1, got {cfg.batch_size}", key="text.batch_size")
    if cfg.backend != "torch" and cfg.encoder != "sentence-transformers":
        raise ConfigError(f"backend {cfg.backend!r} runs sentence-transformers models; the {cfg.encoder!r} encoder "
                          f"has no backend to choose (leave text.backend at 'torch')", key="text.backend")
    if cfg.encoder == "sentence-transformers" and cfg.backend in ("onnx", "onnx-int8"):
        from fusionrec.data.fetch import resolve_data_dir
        from fusionrec.knowledge.text.onnx_encoder import OnnxSentenceEncoder

        onnx_dir = Path(cfg.onnx_dir).expanduser() if cfg.onnx_dir else resolve_data_dir() / "onnx"
        return OnnxSentenceEncoder(cfg.model, quantize=cfg.backend == "onnx-int8", onnx_dir=onnx_dir,
                                   batch_size=cfg.batch_size, normalize=cfg.normalize)
    if cfg.encoder == "sentence-transformers":
        from fusionrec.knowledge.text.sentence_transformer import SentenceTransformerEncoder

        return SentenceTransformerEncoder(cfg.model, batch_size=cfg.batch_size, normalize=cfg.normalize)
    if cfg.encoder == "openai":
        from fusionrec.knowledge.text.openai_client import OpenAIEmbeddingEncoder

        if not cfg.base_url:
            raise ConfigError("the openai encoder needs the server's URL, e.g. http://127.0.0.1:8080/v1",
                              key="text.base_url")
        return OpenAIEmbeddingEncoder(cfg.base_url, cfg.model, api_key_env=cfg.api_key_env,
                                      batch_size=cfg.batch_size, timeout_s=cfg.timeout_s,
                                      max_retries=cfg.max_retries, normalize=cfg.normalize)
    raise ConfigError(f"unknown encoder {cfg.encoder!r}; use 'sentence-transformers' or 'openai'", key="text.encoder")


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; an all-zero row stays zero. ``vectors``: (n, d) -> (n, d) float32."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)
