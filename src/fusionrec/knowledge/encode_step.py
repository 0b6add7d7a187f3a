"""The ``encode`` step: every item's text through the configured encoder, via the disk cache, as tensors that
models and fusion take (``fusionrec encode --config FILE`` calls :func:`run_encode`)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from fusionrec.config import RunConfig, TextConfig
from fusionrec.data.dataset import Dataset
from fusionrec.data.fetch import resolve_data_dir
from fusionrec.errors import DataError
from fusionrec.knowledge.text.cache import EmbeddingCache
from fusionrec.knowledge.text.encoders import TextEncoder, make_encoder
from fusionrec.knowledge.text.item_text import item_texts


@dataclass(frozen=True, eq=False)
class ItemTextEmbeddings:
    """``vectors``: (n_items, d) float32, indexed by internal item index, zero rows where ``mask`` is False;
    ``mask``: (n_items,) bool, True where the item has text. ``seconds``: time spent looking up and encoding;
    ``n_encoded`` / ``n_cached``: distinct texts encoded now / found in the cache."""

    vectors: torch.Tensor
    mask: torch.Tensor
    encoder_id: str
    seconds: float
    n_encoded: int
    n_cached: int = 0
    cache_dir: str | None = None

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def default_cache_dir(text_cfg: TextConfig, data_dir: str | Path | None = None) -> Path:
    """``text.cache_dir``, else ``<data dir>/embeddings`` (data dir: the argument, ``$FUSIONREC_DATA_DIR`` or
    ``~/.cache/fusionrec``)."""
    if text_cfg.cache_dir:
        return Path(text_cfg.cache_dir).expanduser()
    return resolve_data_dir(data_dir) / "embeddings"


def with_onnx_dir(text_cfg: TextConfig, data_dir: str | Path | None = None) -> TextConfig:
    """``text_cfg`` with ``onnx_dir`` set to ``<data dir>/onnx`` when an ONNX backend is chosen without one (the
    exported model then lives beside the run's datasets); unchanged otherwise."""
    if text_cfg.backend == "torch" or text_cfg.onnx_dir:
        return text_cfg
    return replace(text_cfg, onnx_dir=str(resolve_data_dir(data_dir) / "onnx"))


def encode_items(dataset: Dataset, text_cfg: TextConfig, data_dir: str | Path | None = None, progress: bool = True,
                 encoder: TextEncoder | None = None, chunk_size: int = 256) -> ItemTextEmbeddings:
    """Embeddings of every item's text (``text_cfg.template`` over its fields). Items without text are not encoded
    and get a zero row and ``mask`` False. ``encoder`` overrides the one ``text_cfg`` describes."""
    texts, mask = item_texts(dataset, text_cfg.template)
    if not mask.any():
        raise DataError(f"no item of dataset {dataset.name!r} has text under template {text_cfg.template!r}",
                        file=dataset.source, field="text.template")
    encoder = encoder if encoder is not None else make_encoder(with_onnx_dir(text_cfg, data_dir))
    cache = EmbeddingCache(default_cache_dir(text_cfg, data_dir), encoder.encoder_id)
    present = np.flatnonzero(mask)
    start = time.perf_counter()
    found = cache.get_or_encode([texts[i] for i in present], encoder, progress=progress, chunk_size=chunk_size)
    seconds = time.perf_counter() - start
    vectors = np.zeros((dataset.n_items, found.shape[1]), dtype=np.float32)
    vectors[present] = found
    return ItemTextEmbeddings(torch.from_numpy(vectors), torch.from_numpy(mask.copy()), encoder.encoder_id,
                              seconds, cache.last_encoded, cache.last_cached, str(cache.path))


def run_encode(cfg: RunConfig, progress: bool = True) -> dict:
    """Loads ``cfg.dataset``, encodes its item texts (``cfg.text``, or the defaults when the config has no ``text``
    section), prints a summary and returns it."""
    from fusionrec.data.loading import load_dataset

    text_cfg = cfg.text if cfg.text is not None else TextConfig()
    dataset = load_dataset(cfg.dataset, data_dir=cfg.data_dir)
    out = encode_items(dataset, text_cfg, data_dir=cfg.data_dir, progress=progress)
    summary = {
        "dataset": dataset.name,
        "items": dataset.n_items,
        "items_with_text": int(out.mask.sum()),
        "encoder_id": out.encoder_id,
        "dim": out.dim,
        "encoded": out.n_encoded,
        "cached": out.n_cached,
        "seconds": round(out.seconds, 3),
        "cache_dir": out.cache_dir,
        "text_config": "defaults (the config has no text section)" if cfg.text is None else "config",
    }
    width = max(map(len, summary))
    for key, value in summary.items():
        print(f"{key:<{width}}  {value}")
    return summary
