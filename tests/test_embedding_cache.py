"""The embedding disk cache: encodes only what is missing, resumes after a crash, survives damaged shards."""

from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest

from fusionrec.errors import DataError
from fusionrec.knowledge.text.cache import EmbeddingCache, safe_name, text_hashes


def fake_vector(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32)


class CountingEncoder:
    """Deterministic vectors per text; counts texts and calls; raises on call number ``fail_on_call`` (1-based)."""

    def __init__(self, dim: int = 8, encoder_id: str = "fake:counting", fail_on_call: int | None = None):
        self.dim, self.encoder_id, self.fail_on_call = dim, encoder_id, fail_on_call
        self.calls, self.texts = 0, []

    def encode(self, texts):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("encoder crashed")
        self.texts.extend(texts)
        return np.stack([fake_vector(t, self.dim) for t in texts])


TEXTS = [f"item {i}: a film about {w}" for i, w in enumerate(["cats", "dogs", "war", "love", "space", "heists",
                                                                "trains", "ghosts", "chess", "boxing"])]


def expected(texts, dim=8):
    return np.stack([fake_vector(t, dim) for t in texts])


def shards(cache):
    return sorted(cache.path.glob("shard-*.npz"))


def test_second_run_encodes_nothing_and_returns_the_same_vectors(tmp_path):
    first = CountingEncoder()
    out1 = EmbeddingCache(tmp_path, first.encoder_id).get_or_encode(TEXTS, first, progress=False, chunk_size=4)
    assert len(first.texts) == 10 and first.calls == 3  # chunks of 4, 4, 2
    np.testing.assert_array_equal(out1, expected(TEXTS))

    second = CountingEncoder()
    cache = EmbeddingCache(tmp_path, second.encoder_id)
    out2 = cache.get_or_encode(TEXTS, second, progress=False)
    assert second.texts == [] and cache.last_encoded == 0 and cache.last_cached == 10
    np.testing.assert_array_equal(out2, out1)
    assert out2.dtype == np.float32 and out2.shape == (10, 8)


def test_changing_one_text_encodes_exactly_that_text(tmp_path):
    EmbeddingCache(tmp_path, "fake:counting").get_or_encode(TEXTS, CountingEncoder(), progress=False)
    changed = list(TEXTS)
    changed[3] = "item 3: a film about heartbreak"
    enc = CountingEncoder()
    out = EmbeddingCache(tmp_path, enc.encoder_id).get_or_encode(changed, enc, progress=False)
    assert enc.texts == [changed[3]]
    np.testing.assert_array_equal(out, expected(changed))


def test_duplicates_are_encoded_once_and_returned_in_input_order(tmp_path):
    enc = CountingEncoder()
    texts = ["b", "a", "b", "c", "a"]
    out = EmbeddingCache(tmp_path, enc.encoder_id).get_or_encode(texts, enc, progress=False)
    assert sorted(enc.texts) == ["a", "b", "c"]
    np.testing.assert_array_equal(out, expected(texts))


def test_crash_after_k_chunks_keeps_k_chunks_and_the_rerun_resumes(tmp_path):
    crashing = CountingEncoder(fail_on_call=3)  # chunks 1 and 2 finish, chunk 3 raises
    with pytest.raises(RuntimeError, match="crashed"):
        EmbeddingCache(tmp_path, crashing.encoder_id).get_or_encode(TEXTS, crashing, progress=False, chunk_size=3)
    cache = EmbeddingCache(tmp_path, crashing.encoder_id)
    assert len(shards(cache)) == 2 and len(cache) == 6

    rerun = CountingEncoder()
    out = cache.get_or_encode(TEXTS, rerun, progress=False, chunk_size=3)
    assert len(rerun.texts) == 4 and set(rerun.texts).isdisjoint(crashing.texts)
    np.testing.assert_array_equal(out, expected(TEXTS))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong_keys", "wrong_dim", "empty"])
def test_damaged_shard_is_skipped_with_a_warning_and_its_texts_re_encoded(tmp_path, damage):
    EmbeddingCache(tmp_path, "fake:counting").get_or_encode(TEXTS, CountingEncoder(), progress=False, chunk_size=5)
    cache_dir = tmp_path / safe_name("fake:counting")
    bad = sorted(cache_dir.glob("shard-*.npz"))[1]  # the second chunk written
    if damage == "truncated":
        bad.write_bytes(bad.read_bytes()[:100])
    elif damage == "garbage":
        bad.write_bytes(b"not a zip file at all")
    elif damage == "wrong_keys":
        np.savez(bad, something=np.zeros(3))
    elif damage == "wrong_dim":
        np.savez(bad, hashes=text_hashes(TEXTS[5:]), vectors=np.zeros((5, 3), dtype=np.float32))
    else:
        bad.write_bytes(b"")
    enc = CountingEncoder()
    with pytest.warns(UserWarning, match=bad.name):
        cache = EmbeddingCache(tmp_path, enc.encoder_id)
    assert len(cache) == 5
    out = cache.get_or_encode(TEXTS, enc, progress=False)
    assert sorted(enc.texts) == sorted(TEXTS[5:])
    np.testing.assert_array_equal(out, expected(TEXTS))


def test_leftover_temporary_files_are_ignored(tmp_path):
    EmbeddingCache(tmp_path, "fake:counting").get_or_encode(TEXTS[:4], CountingEncoder(), progress=False)
    cache_dir = tmp_path / safe_name("fake:counting")
    (cache_dir / ".shard-000002.npz.abc123.tmp").write_bytes(b"half a file")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache = EmbeddingCache(tmp_path, "fake:counting")
    assert len(cache) == 4


def test_encoder_dimension_differing_from_the_cache_is_a_clear_error(tmp_path):
    EmbeddingCache(tmp_path, "fake:counting").get_or_encode(TEXTS[:4], CountingEncoder(dim=8), progress=False)
    cache = EmbeddingCache(tmp_path, "fake:counting")
    with pytest.raises(DataError, match=r"now returns 16-d vectors but this cache holds 8-d"):
        cache.get_or_encode(TEXTS, CountingEncoder(dim=16), progress=False)
    assert len(shards(cache)) == 1  # nothing of the wrong size was written


def test_caches_of_different_encoders_are_separate_folders(tmp_path):
    a, b = CountingEncoder(encoder_id="st:model-a:norm"), CountingEncoder(encoder_id="st:model/a:norm")
    EmbeddingCache(tmp_path, a.encoder_id).get_or_encode(TEXTS, a, progress=False)
    EmbeddingCache(tmp_path, b.encoder_id).get_or_encode(TEXTS, b, progress=False)
    assert len(b.texts) == 10  # the other encoder's vectors are never reused
    assert safe_name(a.encoder_id) != safe_name(b.encoder_id)
    assert all("/" not in safe_name(x) and ":" not in safe_name(x) for x in (a.encoder_id, b.encoder_id))


def test_using_an_encoder_with_another_encoders_cache_is_refused(tmp_path):
    with pytest.raises(DataError, match="used with the cache of"):
        EmbeddingCache(tmp_path, "fake:one").get_or_encode(TEXTS, CountingEncoder(encoder_id="fake:two"))


def test_compact_merges_shards_without_losing_vectors(tmp_path):
    enc = CountingEncoder()
    cache = EmbeddingCache(tmp_path, enc.encoder_id)
    cache.get_or_encode(TEXTS, enc, progress=False, chunk_size=2)
    assert len(shards(cache)) == 5
    cache.compact()
    reloaded = EmbeddingCache(tmp_path, enc.encoder_id)
    assert len(shards(reloaded)) == 1
    again = CountingEncoder()
    np.testing.assert_array_equal(reloaded.get_or_encode(TEXTS, again, progress=False), expected(TEXTS))
    assert again.texts == []


def test_empty_input_returns_an_empty_matrix(tmp_path):
    enc = CountingEncoder()
    out = EmbeddingCache(tmp_path, enc.encoder_id).get_or_encode([], enc, progress=False)
    assert out.shape[0] == 0 and enc.calls == 0


# ------------------------------------------------------------------------------------------ concurrent processes
# Guards the bug where two processes sharing one cache both numbered their shards from shard-000001 and replaced
# each other's files (4,608 of 17,632 vectors lost), and a compaction that deleted shards it had never read.

class HashingEncoder:
    """Vectors from a hash of the text (no model); sleeps a little per call so two processes interleave."""

    encoder_id = "fake:hashing"

    def __init__(self, dim: int = 8, delay_s: float = 0.003):
        self.dim, self.delay_s, self.texts = dim, delay_s, []

    def encode(self, texts):
        import time

        time.sleep(self.delay_s)
        self.texts.extend(texts)
        return np.stack([fake_vector(t, self.dim) for t in texts])


def _encode_in_process(cache_dir, texts, chunk_size, barrier, results):
    enc = HashingEncoder()
    barrier.wait()  # both processes load an empty cache, then write at the same time
    out = EmbeddingCache(cache_dir, enc.encoder_id).get_or_encode(texts, enc, progress=False, chunk_size=chunk_size)
    results.put((len(enc.texts), bool(np.array_equal(out, expected(texts)))))


def _compact_in_process(cache_dir, fresh_each_time, stop, results):
    long_lived = EmbeddingCache(cache_dir, HashingEncoder.encoder_id)
    rounds = 0
    while not stop.is_set() or rounds < 2:
        cache = EmbeddingCache(cache_dir, HashingEncoder.encoder_id) if fresh_each_time else long_lived
        cache.compact()
        rounds += 1
    results.put(("compactor", rounds))


def _read_in_process(cache_dir, stop, results):
    """Loads the cache again and again while others write and compact: it must never see fewer texts than the
    load before (a shard compacted away mid-read is found again in its replacement), nor a wrong vector."""
    import warnings as w

    sizes, wrong = [], 0
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        while not stop.is_set():
            cache = EmbeddingCache(cache_dir, HashingEncoder.encoder_id)
            sizes.append(len(cache))
            rows, found = cache.lookup(text_hashes(MANY))
            wrong += int(not np.array_equal(cache._vectors[rows[found]], expected(MANY)[found]))
    monotonic = all(a <= b for a, b in zip(sizes, sizes[1:]))
    results.put(("reader", len(sizes), monotonic, wrong, len(caught)))


MANY = [f"catalogue item {i}: a quiet drama" for i in range(300)]


def _spawn():
    import multiprocessing

    return multiprocessing.get_context("spawn")


def test_two_processes_encoding_into_one_cache_lose_nothing(tmp_path):
    ctx = _spawn()
    barrier, results = ctx.Barrier(2), ctx.Queue()
    a, b = MANY[:200], MANY[100:]  # disjoint parts and an overlap of 100 texts
    procs = [ctx.Process(target=_encode_in_process, args=(str(tmp_path), texts, 4, barrier, results))
             for texts in (a, b)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(ok for _, ok in outcomes)  # each process got the right vectors back
    assert sum(n for n, _ in outcomes) >= len(MANY)

    after = HashingEncoder(delay_s=0)
    cache = EmbeddingCache(tmp_path, after.encoder_id)
    assert len(cache) == len(MANY)  # nothing was lost ...
    np.testing.assert_array_equal(cache.get_or_encode(MANY, after, progress=False), expected(MANY))
    assert after.texts == []  # ... so nothing is encoded again


def test_compaction_beside_a_writer_and_a_reader_keeps_every_vector(tmp_path):
    ctx = _spawn()
    barrier, results, stop = ctx.Barrier(1), ctx.Queue(), ctx.Event()
    EmbeddingCache(tmp_path, HashingEncoder.encoder_id).get_or_encode(MANY[:20], HashingEncoder(), progress=False)
    writer = ctx.Process(target=_encode_in_process, args=(str(tmp_path), MANY, 3, barrier, results))
    others = [ctx.Process(target=_compact_in_process, args=(str(tmp_path), False, stop, results)),
              ctx.Process(target=_compact_in_process, args=(str(tmp_path), True, stop, results)),
              ctx.Process(target=_read_in_process, args=(str(tmp_path), stop, results))]
    for p in others:
        p.start()
    writer.start()
    first = results.get(timeout=120)  # the writer's result comes first: the others run until told to stop
    stop.set()
    rest = [results.get(timeout=120) for _ in others]
    for p in [writer, *others]:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert first[1] is True
    compactors = [r for r in rest if r[0] == "compactor"]
    (reader,) = [r for r in rest if r[0] == "reader"]
    assert len(compactors) == 2 and all(rounds >= 2 for _, rounds in compactors)
    _, loads, monotonic, wrong, n_warnings = reader
    assert loads >= 1 and monotonic and wrong == 0 and n_warnings == 0

    after = HashingEncoder(delay_s=0)
    cache = EmbeddingCache(tmp_path, after.encoder_id)
    assert len(cache) == len(MANY)
    np.testing.assert_array_equal(cache.get_or_encode(MANY, after, progress=False), expected(MANY))
    assert after.texts == []


def test_a_shard_compacted_away_between_listing_and_reading_is_found_in_its_replacement(tmp_path, monkeypatch):
    import fusionrec.knowledge.text.cache as cache_module

    enc = CountingEncoder()
    EmbeddingCache(tmp_path, enc.encoder_id).get_or_encode(TEXTS, enc, progress=False, chunk_size=3)
    folder = tmp_path / safe_name(enc.encoder_id)
    stale = sorted(p.name for p in folder.glob("shard-*.npz"))
    EmbeddingCache(tmp_path, enc.encoder_id).compact()  # replaces the four shards by one
    real_listdir, calls = cache_module.os.listdir, []

    def listdir_seeing_the_old_folder(path):
        calls.append(path)
        return stale if len(calls) == 1 else real_listdir(path)

    monkeypatch.setattr(cache_module.os, "listdir", listdir_seeing_the_old_folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a vanished shard is not damage: no warning
        cache = EmbeddingCache(tmp_path, enc.encoder_id)
    assert len(calls) >= 2 and len(cache) == len(TEXTS)


def test_shard_names_are_unique_per_writer_and_never_replaced(tmp_path):
    one, two = EmbeddingCache(tmp_path, "fake:counting"), EmbeddingCache(tmp_path, "fake:counting")
    one.get_or_encode(TEXTS[:5], CountingEncoder(), progress=False)
    two.get_or_encode(TEXTS[5:], CountingEncoder(), progress=False)  # loaded before one wrote anything
    assert len(shards(one)) == 2 and len(EmbeddingCache(tmp_path, "fake:counting")) == 10
