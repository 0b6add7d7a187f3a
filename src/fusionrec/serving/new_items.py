"""Items added while serving: their content vectors, from the text fields and linked entities a request gives.

A new item has no interactions, so a model can place it only through content: FusionRec (with a text and/or KG
source) fuses the item's text embedding (the run's template over the given fields, encoded by the run's encoder,
projected by the model) with the mean of its linked entities' vectors (and their one-hop neighbours when the model
was trained that way and the artifact holds the graph). That is exactly how FusionRec scores a cold catalogue item,
so a new item lands where a cold item with the same text and links would. Nothing is trained.
"""

from __future__ import annotations

import dataclasses
import math
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from fusionrec.errors import ConfigError, DataError, FusionrecError
from fusionrec.models.capabilities import ContentPlacer

if TYPE_CHECKING:
    from fusionrec.config import TextConfig


@dataclass(frozen=True)
class NewItem:
    """An item to add: its raw id, text fields (``{"movie_title": "...", "class": ["Comedy", "Drama"]}``; lists are
    joined with ", ", as multi-valued fields are in training) and raw ids of knowledge-graph entities it links to."""

    item_id: str
    fields: dict = field(default_factory=dict)
    entities: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class EmbeddingEndpoint:
    """The OpenAI-compatible embeddings server this service sends new items' text to, and ``key_env``, the
    environment variable whose value goes with it as the Bearer token (None: no token). The server operator's
    setting (``fusionrec serve --embeddings-url URL --embeddings-key-env VAR``): a model folder never chooses where
    text or a secret goes."""

    url: str
    key_env: str | None = None


def serving_text_config(trained: "TextConfig", endpoint: EmbeddingEndpoint | None) -> "TextConfig":
    """The run's text settings as the service encodes with them. From the artifact: what shapes the vectors (encoder
    kind, model, template, normalisation, backend). From the server: where an ``openai`` encoder sends text and which
    environment variable holds its key (``endpoint``); the artifact's ``base_url`` and ``api_key_env`` are dropped,
    and so are its ``cache_dir`` / ``onnx_dir`` (the server's defaults are used). Raises ConfigError when the run's
    encoder is a server and the service has none configured."""
    server = {"base_url": None, "api_key_env": None}
    if trained.encoder == "openai":
        if endpoint is None:
            raise ConfigError(
                f"the model was trained with text vectors from an OpenAI-compatible embeddings server (model "
                f"{trained.model!r}); new items' text is encoded by the server this service is given, never by "
                "an address in the model folder: start it with --embeddings-url URL (and --embeddings-key-env VAR "
                "when that server needs a key)", key="embeddings_url")
        server = {"base_url": endpoint.url, "api_key_env": endpoint.key_env}
    return dataclasses.replace(trained, cache_dir=None, onnx_dir=None, **server)


@dataclass
class EncodedItems:
    """New items with their text rendered and encoded (:meth:`ContentPath.encode`), ready to be placed."""

    items: list[NewItem]
    text: torch.Tensor | None  # (N, text_dim) or None when the model has no text source
    text_mask: torch.Tensor | None  # (N,) bool: which items have text
    entity_lists: list[list[int]]
    notes: list[str]


class UnsupportedError(FusionrecError):
    """The model cannot do what was asked (e.g. place a new item without a content path)."""


class ContentPath:
    """Builds content vectors for :class:`NewItem` s from a model artifact. The text encoder is built on first use
    (``make_encoder`` over the run's ``text`` config), so a service that never adds items never loads it."""

    def __init__(self, artifact, endpoint: EmbeddingEndpoint | None = None):
        """``endpoint``: the server's embeddings server, needed (and only used) when the run's text encoder is one;
        the artifact's own URL and key variable are never used (:func:`serving_text_config`)."""
        model = artifact.model
        if not isinstance(model, ContentPlacer) or not model.content_sources:
            raise UnsupportedError(
                f"model {model.name!r} cannot place new items: it has no content path. New items need a fusionrec "
                "model trained with item text (model.params.use_text) and/or a knowledge graph (use_kg)")
        self.model = model
        self.uses_text, self.uses_kg = "text" in model.content_sources, "kg" in model.content_sources
        from fusionrec.config import TextConfig
        from fusionrec.typed_config import build

        # the run's text settings (the defaults when absent), with the server's endpoint; built once
        trained = build(TextConfig, (artifact.meta.get("run_config") or {}).get("text") or {}, key="text")
        self.text_config = serving_text_config(trained, endpoint) if self.uses_text else trained
        self._encoder = None
        graph = artifact.knowledge.graph
        self.entities = graph.entities if graph is not None else None
        self.triples = graph.triples if graph is not None else None

    # -- text -----------------------------------------------------------------------------------------------------
    def render(self, item: NewItem) -> tuple[str, list[str]]:
        """(text, field names the template did not use) for one item; text "" when it has none."""
        values = {name: _value_text(value) for name, value in item.fields.items()}
        template = self.text_config.template
        if template is None:  # as ItemSideInfo.render: every field as "name: value"
            return "; ".join(f"{n}: {v}" for n, v in values.items() if v), []
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name]
        if not any(values.get(n) for n in names):
            return "", [n for n in values if n not in names]
        return template.format(**{n: values.get(n, "") for n in names}).strip(), [n for n in values if n not in names]

    def encoder(self):
        if self._encoder is None:
            from fusionrec.knowledge.text.encoders import make_encoder

            self._encoder = make_encoder(self.text_config)
        return self._encoder

    # -- vectors --------------------------------------------------------------------------------------------------
    def vectors(self, items: list[NewItem]) -> tuple[np.ndarray, list[str]]:
        """(content vectors (N, d) float32, notes): :meth:`encode` then :meth:`place`."""
        encoded = self.encode(items)
        return self.place(encoded), encoded.notes

    def encode(self, items: list[NewItem]) -> EncodedItems:
        """Renders and encodes the items' text and resolves their entities: the slow part (the encoder may load a
        model or ask a server), which reads nothing that serving changes, so it needs no lock. Notes say which
        fields, entities or sources were ignored; an item left with neither text nor a known entity raises
        ``DataError`` naming it."""
        notes: list[str] = []
        texts, text_mask, entity_lists = [], [], []
        for row, item in enumerate(items):
            text, unused = self.render(item) if item.fields else ("", [])
            if unused:
                notes.append(f"item {item.item_id!r}: fields not in the run's text template ignored: {unused}")
            if text and not self.uses_text:
                notes.append(f"item {item.item_id!r}: text ignored (the model has no text source)")
                text = ""
            known, unknown = self._entity_indices(item.entities)
            if unknown:
                notes.append(f"item {item.item_id!r}: unknown entity ids ignored: {unknown}")
            if known and not self.uses_kg:
                notes.append(f"item {item.item_id!r}: entities ignored (the model has no knowledge-graph source)")
                known = []
            if not text and not known:
                needs = " or ".join((["text fields"] if self.uses_text else [])
                                    + (["known entity ids"] if self.uses_kg else []))
                raise DataError(f"item {item.item_id!r} has no content the model can use: give {needs}",
                                line=row + 1, field="fields" if self.uses_text else "entities")
            texts.append(text)
            text_mask.append(bool(text))
            entity_lists.append(known)
        text_emb = mask = None
        if self.uses_text:
            dim = self.model.text_dim
            text_emb = torch.zeros(len(items), dim)
            mask = torch.tensor(text_mask, dtype=torch.bool)
            rows = [r for r, keep in enumerate(text_mask) if keep]
            if rows:
                encoded = np.asarray(self.encoder().encode([texts[r] for r in rows]), dtype=np.float32)
                if encoded.shape != (len(rows), dim):
                    raise FusionrecError(f"the text encoder gave vectors of shape {encoded.shape}; the model was "
                                         f"trained on {dim}-d text vectors (is it the run's encoder?)")
                text_emb[rows] = torch.from_numpy(encoded)
        return EncodedItems(list(items), text_emb, mask, entity_lists, notes)

    def place(self, encoded: EncodedItems) -> np.ndarray:
        """The content vectors (N, d) float32 of encoded items, from the model and the graph as they are now
        (knowledge edits included): cheap, done under the serving lock."""
        entity_lists = encoded.entity_lists if self.uses_kg else None
        with torch.no_grad():
            vectors = self.model.content_vectors(encoded.text, encoded.text_mask, entity_lists, self.triples)
        return vectors.numpy().astype(np.float32)

    def _entity_indices(self, raw: list[str]) -> tuple[list[int], list[str]]:
        if not raw:
            return [], []
        if self.entities is None:
            return [], list(raw)  # the artifact holds no entity ids: none can be resolved
        known, unknown = [], []
        for e in dict.fromkeys(raw):
            index = self.entities.get(e)
            (known.append(index) if 0 <= index < self.model.n_entities else unknown.append(e))
        return known, unknown


def _value_text(value) -> str:
    """A field value as text, as ``ItemSideInfo.value_text`` renders it (lists joined with ', ')."""
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return "" if math.isnan(value) else (str(int(value)) if value.is_integer() else str(value))
    return str(value)
