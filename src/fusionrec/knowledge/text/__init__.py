"""Item text read by a language model: encoders (sentence-transformers, OpenAI-compatible servers), the embedding
disk cache, and item texts built from side-information templates. See docs/text.md.

Imports no heavy library at import time: sentence-transformers loads on the first encode."""

from fusionrec.knowledge.text.cache import EmbeddingCache, safe_name, text_hashes
from fusionrec.knowledge.text.encoders import EncoderError, TextEncoder, l2_normalize, make_encoder
from fusionrec.knowledge.text.item_text import ItemTexts, item_texts, template_fields
from fusionrec.knowledge.text.openai_client import OpenAIEmbeddingEncoder
from fusionrec.knowledge.text.sentence_transformer import SentenceTransformerEncoder, bundled_model_path

__all__ = [
    "EmbeddingCache", "EncoderError", "ItemTexts", "OpenAIEmbeddingEncoder", "SentenceTransformerEncoder",
    "TextEncoder", "bundled_model_path", "item_texts", "l2_normalize", "make_encoder", "safe_name",
    "template_fields", "text_hashes",
]
