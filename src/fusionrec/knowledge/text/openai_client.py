"""A client for OpenAI-compatible ``POST {base_url}/embeddings`` servers (OpenAI, vLLM, TEI, Ollama, LM Studio ...).

Standard library only (urllib), so the ``text`` extra stays light. Texts go in batches of ``batch_size``; each
request has its own timeout; connection errors, timeouts, 429 and 5xx are retried up to ``max_retries`` times with
exponential backoff and jitter (a ``Retry-After`` header is honoured, capped at ``max_backoff_s``); any other 4xx
fails at once with the server's own message. Vectors come back ordered by the response's ``index``.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import random
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable

import numpy as np

from fusionrec.errors import ConfigError
from fusionrec.knowledge.text.encoders import EncoderError, l2_normalize

RETRY_STATUS = frozenset({429}) | frozenset(range(500, 600))
_PROBE_TEXT = "dimension probe"


class OpenAIEmbeddingEncoder:
    """``encode(texts)``: float32 (n, dim) from the server, L2-normalised here when ``normalize``.

    ``encoder_id``: ``openai:<host:port/path>:<model>:norm`` (``:raw`` without normalisation). ``dim`` is read from
    the first answer (asking the server once when nothing has been encoded yet)."""

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None, batch_size: int = 64,
                 timeout_s: float = 30.0, max_retries: int = 5, normalize: bool = True, backoff_s: float = 0.5,
                 max_backoff_s: float = 20.0, sleep: Callable[[float], None] = time.sleep, seed: int | None = None):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"expected an http(s) URL such as http://127.0.0.1:8080/v1, got {base_url!r}",
                              key="text.base_url")
        if batch_size < 1 or max_retries < 0 or timeout_s <= 0:
            raise ConfigError(f"batch_size must be >= 1, max_retries >= 0 and timeout_s > 0 (got {batch_size}, "
                              f"{max_retries}, {timeout_s})", key="text")
        self.base_url, self.model = base_url.rstrip("/"), model
        self.url = self.base_url + "/embeddings"
        self.batch_size, self.timeout_s, self.max_retries = batch_size, timeout_s, max_retries
        self.normalize, self.backoff_s, self.max_backoff_s = normalize, backoff_s, max_backoff_s
        self._sleep, self._rng = sleep, random.Random(seed)
        self._where = parts.netloc + parts.path.rstrip("/")
        self._api_key = None
        if api_key_env:
            self._api_key = os.environ.get(api_key_env)
            if not self._api_key:
                raise EncoderError(f"text.api_key_env names the environment variable {api_key_env}, "
                                   f"which is not set (or empty); export it or remove api_key_env")
        # a server on this machine is never reached through an HTTP proxy
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(parts.hostname) else []
        self._opener = urllib.request.build_opener(*handlers)
        self._dim: int | None = None
        self.requests_sent = 0

    @property
    def encoder_id(self) -> str:
        return f"openai:{self._where}:{self.model}:{'norm' if self.normalize else 'raw'}"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.encode([_PROBE_TEXT])
        return self._dim

    def encode(self, texts: list[str]) -> np.ndarray:
        """``texts``: n strings -> float32 (n, dim), one request per ``batch_size`` texts."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        parts = [self._embed_batch(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        out = np.concatenate(parts, axis=0)
        return l2_normalize(out) if self.normalize else out

    def _embed_batch(self, batch: list[str]) -> np.ndarray:
        body = json.dumps({"model": self.model, "input": batch}).encode("utf-8")
        vectors = self._parse(self._post(body), len(batch))
        if self._dim is None:
            self._dim = vectors.shape[1]
        elif vectors.shape[1] != self._dim:
            raise EncoderError(f"{self.url} returned {vectors.shape[1]}-d vectors after {self._dim}-d ones")
        return vectors

    def _post(self, body: bytes) -> bytes:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        attempts = self.max_retries + 1
        last = ""
        for attempt in range(attempts):
            retry_after = None
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            self.requests_sent += 1
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    return response.read()
            except urllib.error.HTTPError as exc:
                message = _server_message(exc)
                if exc.code not in RETRY_STATUS:
                    raise EncoderError(f"{self.url} refused the request with HTTP {exc.code}: {message}") from None
                last = f"HTTP {exc.code}: {message}"
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            except urllib.error.URLError as exc:
                reason = exc.reason
                timed_out = isinstance(reason, (TimeoutError, socket.timeout))
                last = f"timed out after {self.timeout_s:g} s" if timed_out else f"{reason}"
            except (TimeoutError, socket.timeout):
                last = f"timed out after {self.timeout_s:g} s"
            except (ConnectionError, http.client.HTTPException, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < attempts:
                self._sleep(self._delay(attempt, retry_after))
        raise EncoderError(f"the embedding server at {self.url} gave no usable answer after {attempts} attempt(s) "
                           f"(timeout {self.timeout_s:g} s each); last error: {last}")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with jitter: base * 2**attempt scaled by a random factor in [0.5, 1], capped."""
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        return min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * self._rng.uniform(0.5, 1.0)

    def _parse(self, raw: bytes, n: int) -> np.ndarray:
        try:
            data = json.loads(raw)
            items = data["data"]
            order = np.array([int(item["index"]) for item in items], dtype=np.int64)
            vectors = np.array([item["embedding"] for item in items], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise EncoderError(f"{self.url} answered something that is not an embeddings response "
                               f"({type(exc).__name__}: {exc}): {raw[:200]!r}") from None
        if len(items) != n or not np.array_equal(np.sort(order), np.arange(n)):
            raise EncoderError(f"{self.url} returned {len(items)} embeddings with indices {sorted(order.tolist())[:10]}"
                               f" for {n} inputs")
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise EncoderError(f"{self.url} returned embeddings of ragged or empty length")
        if not np.isfinite(vectors).all():
            raise EncoderError(f"{self.url} returned non-finite embedding values")
        out = np.empty_like(vectors)
        out[order] = vectors
        return out


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _server_message(exc: urllib.error.HTTPError) -> str:
    """The error text a server put in its body: OpenAI ``{"error": {"message": ...}}``, TEI ``{"error": "..."}``,
    or the raw body."""
    try:
        raw = exc.read()
    except OSError:
        raw = b""
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or exc.reason or "(no message)"
    if isinstance(data, dict):
        error = data.get("error", data.get("message", data.get("detail")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            return str(error)[:500]
    return text[:500]


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
