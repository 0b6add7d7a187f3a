"""A disk cache of text embeddings, keyed by the encoder's id and the sha256 of each text.

Layout: ``<cache_dir>/<safe(encoder_id)>/`` holds ``meta.json`` (encoder id, dimension) and append-only shards
``shard-<time ns>-<pid>-<random>.npz`` (older caches: ``shard-000001.npz``), each with ``hashes`` (m,) ``S64`` (hex
sha256 of the UTF-8 text) and ``vectors`` (m, d) float32. Missing texts are encoded in chunks and every chunk is
written (atomically: temporary file, then rename) as soon as it is encoded, so an interrupted run keeps what it
finished and the next run resumes there. A shard that cannot be read is skipped with a warning; it never stops a
run. Deleting the folder clears the cache.

Several processes may share one cache at once: every shard has a name no other writer can pick, so no writer ever
replaces another's shard; :meth:`EmbeddingCache.compact` runs under an exclusive file lock (``.lock``) and keeps
the rows of every shard on disk, including those other processes wrote since this one loaded; a reader that finds
a shard gone (compacted away while it read) lists the folder again and reads the shard that replaced it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from fusionrec.util import atomic_io
from fusionrec.errors import DataError
from fusionrec.knowledge.text.encoders import TextEncoder
from fusionrec.knowledge.text.file_lock import exclusive_lock

FORMAT_VERSION = 1
LOCK_NAME = ".lock"
_SHARD = re.compile(r"^shard-[0-9a-f-]+\.npz$")
_MAX_RELISTS = 8  # a reader lists the folder again at most this often when shards vanish under it
_VANISHED = object()  # _read_shard: the file was removed (compacted away) before it could be read


def safe_name(encoder_id: str) -> str:
    """A folder name for ``encoder_id``: unsafe characters become ``_`` and a short hash of the exact id keeps two
    ids that differ only in those characters apart, e.g. ``st_all-MiniLM-L6-v2_norm-3f2a9c1b``."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder_id).strip("._")[:80]
    return f"{readable}-{hashlib.sha256(encoder_id.encode('utf-8')).hexdigest()[:8]}"


def text_hashes(texts: list[str]) -> np.ndarray:
    """Hex sha256 of each text's UTF-8 bytes: (n,) ``S64``."""
    return np.array([hashlib.sha256(t.encode("utf-8")).hexdigest().encode("ascii") for t in texts], dtype="S64")


class EmbeddingCache:
    """The cached vectors of one encoder under ``directory``. ``last_encoded`` / ``last_cached``: how many distinct
    texts the latest :meth:`get_or_encode` had to encode / found in the cache."""

    def __init__(self, directory: str | Path, encoder_id: str):
        self.root = Path(directory).expanduser()
        self.encoder_id = encoder_id
        self.path = self.root / safe_name(encoder_id)
        self.last_encoded = 0
        self.last_cached = 0
        self._hashes = np.zeros(0, dtype="S64")  # sorted, unique
        self._vectors = np.zeros((0, 0), dtype=np.float32)  # rows aligned with _hashes
        self._dim: int | None = None
        self._seen: set[str] = set()  # names of the shards already read (or written) by this object
        self._meta_ok = False
        self._load()

    # ----------------------------------------------------------------------------------------------- reading
    @property
    def dim(self) -> int | None:
        return self._dim

    def __len__(self) -> int:
        return len(self._hashes)

    def _load(self) -> None:
        meta = self._read_meta()
        if meta is not None:
            self._dim, self._meta_ok = meta["dim"], True
        self.refresh()

    def _shard_paths(self) -> list[Path]:
        """Every complete shard in the folder now, oldest name first (temporary files are never listed)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return [self.path / name for name in sorted(names) if _SHARD.match(name)]

    def refresh(self) -> int:
        """Reads the shards that appeared since this object last looked (written by another process, or left by
        a compaction); returns how many new distinct texts that added."""
        before = len(self)
        for _ in range(_MAX_RELISTS):
            new = [p for p in self._shard_paths() if p.name not in self._seen]
            if not new:
                break
            vanished = self._read_into_memory(new)
            if not vanished:
                break
        return len(self) - before

    def _read_into_memory(self, paths: list[Path]) -> bool:
        """Reads ``paths`` and merges their rows; True when one of them vanished before it could be read."""
        hashes, vectors, vanished = [], [], False
        for path in paths:
            loaded = self._read_shard(path)
            if loaded is _VANISHED:
                vanished = True
                continue
            self._seen.add(path.name)
            if loaded is not None:
                hashes.append(loaded[0])
                vectors.append(loaded[1])
        if hashes:
            self._merge(np.concatenate(hashes), np.concatenate(vectors))
        return vanished

    def _read_meta(self) -> dict | None:
        file = self.path / "meta.json"
        if not file.is_file():
            return None
        try:
            meta = json.loads(file.read_text())
            if meta["encoder_id"] != self.encoder_id:
                raise DataError(f"this cache folder belongs to encoder {meta['encoder_id']!r}, not "
                                f"{self.encoder_id!r}; delete {self.path}", file=str(file), field="encoder_id")
            meta["dim"] = int(meta["dim"])
            return meta
        except (ValueError, KeyError, TypeError, OSError) as exc:
            if isinstance(exc, DataError):
                raise
            warnings.warn(f"{file}: unreadable cache metadata ({type(exc).__name__}: {exc}); the dimension will be "
                          f"taken from the shards", stacklevel=3)
            return None

    def _read_shard(self, path: Path):
        """(hashes (m,) S64, vectors (m, d) float32); None (with a warning) when the shard is damaged;
        ``_VANISHED`` when it no longer exists."""
        try:
            with np.load(path, allow_pickle=False) as npz:
                hashes, vectors = npz["hashes"], npz["vectors"]
        except FileNotFoundError:
            return _VANISHED
        except Exception as exc:  # noqa: BLE001  (zipfile, OSError, ValueError, KeyError, EOFError ...)
            warnings.warn(f"{path}: skipping unreadable cache shard ({type(exc).__name__}: {exc})", stacklevel=5)
            return None
        problem = None
        if hashes.dtype != np.dtype("S64") or hashes.ndim != 1:
            problem = f"hashes have dtype {hashes.dtype} and shape {hashes.shape}"
        elif vectors.dtype != np.float32 or vectors.ndim != 2 or len(vectors) != len(hashes):
            problem = f"vectors of dtype {vectors.dtype} and shape {vectors.shape} for {len(hashes)} hashes"
        elif self._dim is not None and vectors.shape[1] != self._dim:
            problem = f"{vectors.shape[1]}-d vectors in a {self._dim}-d cache"
        elif not np.isfinite(vectors).all():
            problem = "non-finite values"
        if problem:
            warnings.warn(f"{path}: skipping damaged cache shard ({problem})", stacklevel=5)
            return None
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        return hashes, vectors

    def _merge(self, hashes: np.ndarray, vectors: np.ndarray) -> None:
        """Adds rows; for a hash already present the newest row wins."""
        all_h = np.concatenate([hashes[::-1], self._hashes])
        all_v = np.concatenate([vectors[::-1], self._vectors.reshape(-1, vectors.shape[1])])
        uniq, first = np.unique(all_h, return_index=True)  # first occurrence = newest
        self._hashes, self._vectors = uniq, np.ascontiguousarray(all_v[first])

    def lookup(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``hashes``: (n,) S64 -> (rows (n,) int64 into the cache, found (n,) bool)."""
        if len(self._hashes) == 0:
            return np.zeros(len(hashes), dtype=np.int64), np.zeros(len(hashes), dtype=bool)
        rows = np.searchsorted(self._hashes, hashes)
        rows = np.minimum(rows, len(self._hashes) - 1)
        return rows, self._hashes[rows] == hashes

    # ---------------------------------------------------------------------------------------------- encoding
    def get_or_encode(self, texts: list[str], encoder: TextEncoder, progress: bool = True,
                      chunk_size: int = 256) -> np.ndarray:
        """Vectors for ``texts``: (n, d) float32. Only texts not in the cache are encoded (each distinct text once),
        ``chunk_size`` at a time; each chunk is saved before the next starts."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        if encoder.encoder_id != self.encoder_id:
            raise DataError(f"encoder {encoder.encoder_id!r} used with the cache of {self.encoder_id!r}",
                            file=str(self.path))
        texts = list(texts)
        hashes = text_hashes(texts)
        self.refresh()  # what other processes wrote since this object loaded
        _, found = self.lookup(hashes)
        missing_at = np.flatnonzero(~found)
        _, first = np.unique(hashes[missing_at], return_index=True)
        missing_at = missing_at[np.sort(first)]  # each missing text once, in input order
        missing_hashes, missing_texts = hashes[missing_at], [texts[i] for i in missing_at]
        self.last_cached = len(np.unique(hashes[found]))
        self.last_encoded = 0
        if missing_texts:
            self._encode_missing(missing_texts, missing_hashes, encoder, progress, chunk_size)
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        rows, found = self.lookup(hashes)
        if not found.all():  # cannot happen unless the encoder dropped rows, which _check_chunk rejects
            raise RuntimeError("embedding cache lost rows it had just written")
        return self._vectors[rows]

    def _encode_missing(self, texts: list[str], hashes: np.ndarray, encoder: TextEncoder, progress: bool,
                        chunk_size: int) -> None:
        from tqdm.auto import tqdm

        with tqdm(total=len(texts), desc="encoding item texts", unit="text", file=sys.stderr,
                  disable=not progress, leave=False) as bar:
            for start in range(0, len(texts), chunk_size):
                chunk = texts[start:start + chunk_size]
                vectors = np.asarray(encoder.encode(chunk))
                self._check_chunk(vectors, len(chunk))
                chunk_hashes = hashes[start:start + chunk_size]
                self._write_shard(chunk_hashes, vectors.astype(np.float32, copy=False))
                self._merge(chunk_hashes, vectors.astype(np.float32, copy=False))
                self.last_encoded += len(chunk)
                bar.update(len(chunk))

    def _check_chunk(self, vectors: np.ndarray, n: int) -> None:
        if vectors.ndim != 2 or len(vectors) != n:
            raise DataError(f"encoder {self.encoder_id!r} returned shape {vectors.shape} for {n} texts")
        if self._dim is not None and vectors.shape[1] != self._dim:
            raise DataError(f"encoder {self.encoder_id!r} now returns {vectors.shape[1]}-d vectors but this cache "
                            f"holds {self._dim}-d ones: the model changed under the same name; delete {self.path} "
                            f"(or set text.cache_dir elsewhere)", file=str(self.path))
        if not np.isfinite(vectors).all():
            raise DataError(f"encoder {self.encoder_id!r} returned non-finite values")

    def _write_shard(self, hashes: np.ndarray, vectors: np.ndarray) -> Path:
        """Writes one new shard under a name no other writer can choose (time, pid, random); never replaces one."""
        if not self._meta_ok:
            self._dim = int(vectors.shape[1])
            atomic_io.write_json(self.path / "meta.json", {"encoder_id": self.encoder_id, "dim": self._dim,
                                                           "format": FORMAT_VERSION})
            self._meta_ok = True
        buffer = io.BytesIO()
        np.savez(buffer, hashes=hashes, vectors=vectors)
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.npz"
        atomic_io.write_bytes(self.path / name, buffer.getvalue())
        self._seen.add(name)
        return self.path / name

    def compact(self) -> None:
        """Rewrites every shard on disk as one (drops duplicate and damaged rows), under an exclusive lock so two
        compactions never interleave. The rows of every shard listed, whoever wrote it, are read before anything
        is deleted, and shards written while it runs are left alone: nothing is lost. Safe to interrupt (the
        merged shard is written before the old ones are removed)."""
        with exclusive_lock(self.path / LOCK_NAME):
            listed = self._shard_paths()
            self._read_into_memory([p for p in listed if p.name not in self._seen])
            if len(self._hashes) == 0:
                return
            merged = self._write_shard(self._hashes, self._vectors)
            for path in listed:
                if path != merged:
                    path.unlink(missing_ok=True)
