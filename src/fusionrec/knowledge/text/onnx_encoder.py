"""A sentence-transformers model run by ONNX Runtime: the transformer exported once to an ONNX file (fp32, or with
int8 weights by dynamic quantisation), cached on disk, then tokenised by the model's own fast tokenizer and pooled
here exactly as sentence-transformers pools (mean / CLS / max over the attention mask, then L2 normalisation).

The export (``text.backend: onnx`` or ``onnx-int8``) loads the model through :class:`SentenceTransformerEncoder`'s
offline rules, traces its transformer with ``torch.onnx.export``, quantises it when asked, and checks the result
against the torch model on a fixed set of probe sentences (padded together, of different lengths) before keeping
it: an fp32 export must agree to cosine .999, an int8 export to a mean cosine of :data:`INT8_MIN_MEAN_COSINE`, else
the export is refused with a message that names the cosine and suggests ``backend: onnx`` or ``torch``.

On disk, ``<onnx_dir>/<safe(model key + backend)>/`` holds ``model.onnx``, ``tokenizer.json`` and ``meta.json``
(the pooling, the input names, the dimension, the sha256 of both files, the probe cosines, package versions). The
folder is written whole into a temporary directory and renamed into place under an exclusive lock, so two
processes never export at once and never see half a folder. A later load checks the sha256; a damaged or
incomplete folder is exported again, with a warning. ``onnxruntime`` (and ``onnx`` for quantisation) are imported
only here, when first needed.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from fusionrec.util import atomic_io
from fusionrec.data.fetch import sha256_file
from fusionrec.knowledge.text.cache import safe_name
from fusionrec.knowledge.text.encoders import EncoderError, l2_normalize
from fusionrec.knowledge.text.file_lock import exclusive_lock
from fusionrec.knowledge.text.sentence_transformer import SentenceTransformerEncoder

ONNX_HINT = "pip install 'fusionrec[onnx]'"
EXPORT_FORMAT = 1
OPSET = 17
FP32_MIN_COSINE = 0.999
INT8_MIN_MEAN_COSINE = 0.99
POOLING_MODES = ("mean", "cls", "max")
PROBES = [  # of very different lengths, so the export is checked with padding inside one batch
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "GoldenEye",
    "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1963). Genres: Sci-Fi, War.",
    "a",
    "Wallace & Gromit: The Best of Aardman Animation (1996)",
    "Ça ne se refuse pas, naïve café — 東京物語 (1953)",
    "The quick brown fox jumps over the lazy dog, then sleeps for a while in the warm afternoon sun "
    "while the farmer, who has seen it all before, goes on with his work in the field beside the river.",
    "Rock; Pop; 80s; female vocalists; dance",
]


class OnnxSentenceEncoder:
    """``encode(texts)``: float32 (n, dim), L2-normalised when ``normalize`` (or when the model ends with a
    Normalize module, as in torch).

    ``encoder_id``: the torch encoder's id with the backend before the normalisation flag, e.g.
    ``st:all-MiniLM-L6-v2:onnx-int8:norm``, so the embedding cache never mixes vectors of two backends."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", *, quantize: bool = False, onnx_dir: str | Path,
                 batch_size: int = 64, normalize: bool = True):
        self.model_name, self.quantize, self.batch_size, self.normalize = model, quantize, batch_size, normalize
        self.backend = "onnx-int8" if quantize else "onnx"
        self._torch = SentenceTransformerEncoder(model, batch_size=batch_size, normalize=normalize)
        self.folder = Path(onnx_dir).expanduser() / safe_name(f"{self._torch.model_key}:{self.backend}:v{EXPORT_FORMAT}")
        self._session = None
        self._tokenizer = None
        self._meta: dict | None = None
        self.exports = 0  # how many times this object exported the model (0 when the cached file was used)

    @property
    def encoder_id(self) -> str:
        return f"st:{self._torch.model_key}:{self.backend}:{'norm' if self.normalize else 'raw'}"

    @property
    def dim(self) -> int:
        self._load()
        return int(self._meta["dim"])

    @property
    def meta(self) -> dict:
        """The export's ``meta.json`` (pooling, inputs, dim, probe cosines ...); loads or exports the model."""
        self._load()
        return dict(self._meta)

    # -------------------------------------------------------------------------------------------- loading
    def _load(self) -> None:
        if self._session is not None:
            return
        try:
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise EncoderError(f"text.backend {self.backend!r} needs onnxruntime ({exc}); {ONNX_HINT}") from None
        with exclusive_lock(self.folder.with_name(f".{self.folder.name}.lock")):
            problem = self._check_folder()
            if problem is not None:
                if problem != "missing":
                    warnings.warn(f"{self.folder}: {problem}; exporting the model again", stacklevel=4)
                self._export()
                problem = self._check_folder()
                if problem is not None:
                    raise EncoderError(f"{self.folder}: the ONNX export just written does not load ({problem}); "
                                       f"delete the folder and retry, or use text.backend: torch")
            self._meta = json.loads((self.folder / "meta.json").read_text())
            self._session = self._open_session(self.folder / "model.onnx")
            self._tokenizer = self._open_tokenizer(self.folder / "tokenizer.json", self._meta)

    def _check_folder(self) -> str | None:
        """None when the exported folder is complete and intact, else what is wrong ("missing" when absent)."""
        meta_file = self.folder / "meta.json"
        if not meta_file.is_file():
            return "missing"
        try:
            meta = json.loads(meta_file.read_text())
            if meta.get("format") != EXPORT_FORMAT or meta.get("backend") != self.backend:
                return f"meta.json is of format {meta.get('format')!r} / backend {meta.get('backend')!r}"
            for name in ("model.onnx", "tokenizer.json"):
                if sha256_file(self.folder / name) != meta["sha256"][name]:
                    return f"{name} does not match the sha256 recorded at export (damaged or replaced)"
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return f"unreadable export ({type(exc).__name__}: {exc})"
        return None

    def _open_session(self, path: Path):
        import onnxruntime as ort

        from fusionrec.util.threads import heavy_work_threads

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = heavy_work_threads() or _int_env("OMP_NUM_THREADS")
        if threads:
            opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only
        try:
            return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001  (onnxruntime raises its own exception types)
            raise EncoderError(f"{path}: onnxruntime cannot load the exported model ({type(exc).__name__}: {exc}); "
                               f"delete {self.folder} to export it again") from exc

    @staticmethod
    def _open_tokenizer(path: Path, meta: dict):
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(path))
        tok.no_padding()
        tok.enable_truncation(max_length=int(meta["max_seq_length"]))
        return tok

    # ------------------------------------------------------------------------------------------- encoding
    def encode(self, texts: list[str]) -> np.ndarray:
        """``texts``: n strings -> float32 (n, dim). Texts are tokenised once, sorted by token count and run in
        batches of ``batch_size`` padded to their own longest text (little padding), then put back in order."""
        self._load()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._run(texts)

    def _run(self, texts: list[str]) -> np.ndarray:
        meta = self._meta
        if meta["do_lower_case"]:
            texts = [t.lower() for t in texts]
        encodings = self._tokenizer.encode_batch(texts)
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")
        out = np.zeros((len(texts), int(meta["dim"])), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = int(lengths[rows].max())
            feeds = {name: np.zeros((len(rows), width), dtype=np.int64) for name in meta["inputs"]}
            for i, r in enumerate(rows):
                enc, n = encodings[r], lengths[r]
                feeds["input_ids"][i, :n] = enc.ids
                feeds["input_ids"][i, n:] = meta["pad_id"]
                if "attention_mask" in feeds:
                    feeds["attention_mask"][i, :n] = 1
                if "token_type_ids" in feeds:
                    feeds["token_type_ids"][i, :n] = enc.type_ids
            mask = (np.arange(width)[None, :] < lengths[rows][:, None])
            (tokens,) = self._session.run(["token_embeddings"], feeds)
            out[rows] = pool(tokens, mask, meta["pooling"])
        if meta["normalize_module"] or self.normalize:
            out = l2_normalize(out)
        return out

    # -------------------------------------------------------------------------------------------- export
    def _export(self) -> None:
        """Exports (and quantises) the model into a temporary folder, checks it on :data:`PROBES`, renames it into
        place. Raises :class:`EncoderError` with the reason when the model cannot be exported or is not accurate."""
        import torch

        st = self._torch.load_model()
        modules = [type(m).__name__ for m in st]
        if not modules or modules[0] != "Transformer" or modules[1:2] != ["Pooling"] \
                or modules[2:] not in ([], ["Normalize"]):
            raise EncoderError(f"text.backend {self.backend!r} handles Transformer + Pooling (+ Normalize) models; "
                               f"{self.model_name!r} has {' + '.join(modules)}: use text.backend: torch")
        transformer, pooling = st[0], st[1]
        mode = pooling.get_config_dict().get("pooling_mode")
        if mode not in POOLING_MODES:
            raise EncoderError(f"text.backend {self.backend!r}: pooling {mode!r} of {self.model_name!r} is not "
                               f"supported (only {', '.join(POOLING_MODES)}): use text.backend: torch")
        backend_tok = getattr(st.tokenizer, "backend_tokenizer", None)  # transformers' fast tokenizers have it
        if backend_tok is None:
            raise EncoderError(f"text.backend {self.backend!r} needs a fast (tokenizers) tokenizer; "
                               f"{self.model_name!r} has {type(st.tokenizer).__name__}: use text.backend: torch")
        names = list(st.tokenizer.model_input_names)
        inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in names]
        features = st.tokenizer(PROBES[:2], padding=True, return_tensors="pt")

        class _TokenEmbeddings(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, *args):
                kwargs = dict(zip(inputs, args))
                return self.model(**kwargs, return_dict=True).last_hidden_state

        self.folder.parent.mkdir(parents=True, exist_ok=True)
        with atomic_io.directory(self.folder) as tmp:
            fp32 = tmp / ("model-fp32.onnx" if self.quantize else "model.onnx")
            example = tuple(features[k] for k in inputs)
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")  # the tracer's and the legacy exporter's notices
                    torch.onnx.export(
                        _TokenEmbeddings(transformer.auto_model.eval()), example, str(fp32), dynamo=False,
                        input_names=inputs, output_names=["token_embeddings"], opset_version=OPSET,
                        dynamic_axes={k: {0: "batch", 1: "tokens"} for k in [*inputs, "token_embeddings"]})
            except Exception as exc:  # noqa: BLE001  (the exporter raises many types)
                raise EncoderError(f"cannot export {self.model_name!r} to ONNX ({type(exc).__name__}: {exc}); "
                                   f"use text.backend: torch") from exc
            if self.quantize:
                _quantize_int8(fp32, tmp / "model.onnx")
                fp32.unlink()
            backend_tok.save(str(tmp / "tokenizer.json"))
            meta = {
                "format": EXPORT_FORMAT, "backend": self.backend, "model": self.model_name,
                "model_key": self._torch.model_key, "inputs": inputs, "pooling": mode,
                "normalize_module": modules[2:] == ["Normalize"], "do_lower_case": bool(transformer.do_lower_case),
                "max_seq_length": int(transformer.max_seq_length), "pad_id": int(st.tokenizer.pad_token_id or 0),
                "dim": self._torch.dim, "opset": OPSET,
                "versions": _versions(),
            }
            cosines = self._probe(tmp, meta, st)
            meta["probe_cosine"] = {"mean": float(cosines.mean()), "min": float(cosines.min())}
            if self.quantize and cosines.mean() < INT8_MIN_MEAN_COSINE:
                raise EncoderError(f"int8 quantisation of {self.model_name!r} loses too much: mean cosine "
                                   f"{cosines.mean():.4f} (< {INT8_MIN_MEAN_COSINE}) to the torch model on "
                                   f"{len(PROBES)} probe sentences; use text.backend: onnx")
            if not self.quantize and cosines.min() < FP32_MIN_COSINE:
                raise EncoderError(f"the ONNX export of {self.model_name!r} disagrees with the torch model (min "
                                   f"cosine {cosines.min():.5f} on {len(PROBES)} probe sentences); use "
                                   f"text.backend: torch")
            meta["sha256"] = {name: sha256_file(tmp / name) for name in ("model.onnx", "tokenizer.json")}
            atomic_io.write_json(tmp / "meta.json", meta)
        self.exports += 1

    def _probe(self, folder: Path, meta: dict, st) -> np.ndarray:
        """Cosines (len(PROBES),) between this export's vectors and the torch model's."""
        session, tok = self._open_session(folder / "model.onnx"), self._open_tokenizer(folder / "tokenizer.json", meta)
        keep = self._session, self._tokenizer, self._meta
        self._session, self._tokenizer, self._meta = session, tok, meta
        try:
            mine = l2_normalize(self._run(list(PROBES)))
        finally:
            self._session, self._tokenizer, self._meta = keep
        ref = l2_normalize(np.asarray(st.encode(list(PROBES), batch_size=len(PROBES), convert_to_numpy=True,
                                                show_progress_bar=False), dtype=np.float32))
        return (mine * ref).sum(axis=1)


def pool(tokens: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    """sentence-transformers' pooling. ``tokens``: (b, t, d) float32, ``mask``: (b, t) bool -> (b, d) float32."""
    if mode == "cls":
        return tokens[:, 0].astype(np.float32, copy=False)
    m = mask[:, :, None]
    if mode == "max":
        return np.where(m, tokens, np.float32(-1e9)).max(axis=1).astype(np.float32, copy=False)
    summed = (tokens * m).sum(axis=1, dtype=np.float32)
    return (summed / np.maximum(m.sum(axis=1), 1e-9)).astype(np.float32, copy=False)


def _quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the weights of ``src`` (MatMul / Gemm), written to ``dst``."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise EncoderError(f"text.backend 'onnx-int8' needs onnxruntime's quantisation tools and onnx ({exc}); "
                           f"{ONNX_HINT}") from None
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul", "Gemm"])


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "sentence-transformers", "onnxruntime", "onnx", "tokenizers"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _int_env(name: str) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else None
