"""Content addresses: SHA-256 now, and chunks named by blake2b-256 (before 2026-12-03) still read."""

from __future__ import annotations

import hashlib

import blosc2
import numpy as np
import pytest

from catclient.cache import ChunkCache, chunk_digest, chunk_matches
from functions.adapters.memory import MemoryStore
from functions.engine import compute, content, layout, model
from functions.engine.content import load_object
from functions.engine.errors import CorruptChunk
from functions.engine.publish import Publisher
from functions.engine.region import CacheStats, Region

ARRAY = np.random.default_rng(7).random((40, 300))  # incompressible: no chunk is small enough to inline


def _blake2b(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def test_server_and_client_name_a_chunk_alike():
    data = b"a chunk's bytes"
    assert layout.chunk_hash(data) == chunk_digest(data) == hashlib.sha256(data).hexdigest()
    for matches in (layout.chunk_matches, chunk_matches):
        assert matches(data, hashlib.sha256(data).hexdigest())
        assert matches(data, _blake2b(data))  # a chunk named before the change
        assert not matches(data + b"!", hashlib.sha256(data).hexdigest())
        assert not matches(data + b"!", _blake2b(data))


def _published_before(monkeypatch) -> tuple[MemoryStore, list[str]]:
    """A dataset published as before 2026-12-03: its chunks named by blake2b-256."""
    origin = MemoryStore("origin")
    with monkeypatch.context() as m:
        m.setattr(model, "chunk_hash", _blake2b)
        m.setattr(content, "data_hash", lambda data: hashlib.blake2b(data, digest_size=16).hexdigest())
        Publisher(origin).publish("t", "a.b2nd", load_object(blosc2.asarray(ARRAY, chunks=(10, 300))))
    region = Region(origin)
    manifest = region.manifest_at(region.head("t", "a.b2nd").manifest)
    digests = [ref.digest for ref in manifest.refs if ref.digest]
    assert len(digests) == 4
    assert all(_blake2b(origin.get(layout.chunk_key(d)).data) == d for d in digests)
    return origin, digests


def _read(origin: MemoryStore) -> np.ndarray:
    region = Region(origin, MemoryStore("cache"))
    manifest = region.manifest_at(region.head("t", "a.b2nd").manifest)
    return compute.DatasetSource(region, manifest, CacheStats()).read(())


def test_chunks_named_by_blake2b_are_read_and_still_checked(monkeypatch):
    origin, digests = _published_before(monkeypatch)
    np.testing.assert_array_equal(_read(origin), ARRAY)
    # the check is not skipped for them: other bytes under such a name are refused
    key = layout.chunk_key(digests[1])
    origin.put(key, origin.get(layout.chunk_key(digests[0])).data)
    with pytest.raises(CorruptChunk):
        _read(origin)


def test_a_republish_of_such_a_dataset_names_its_chunks_by_sha256(monkeypatch):
    # Nothing of the old manifest matches (names and decompressed hashes changed): uploaded once more
    origin, old = _published_before(monkeypatch)
    publisher = Publisher(origin)
    publisher.publish("t", "a.b2nd", load_object(blosc2.asarray(ARRAY, chunks=(10, 300))))
    region = Region(origin)
    manifest = region.manifest_at(region.head("t", "a.b2nd").manifest)
    for ref in manifest.refs:
        assert ref.digest not in old
        assert hashlib.sha256(origin.get(layout.chunk_key(ref.digest)).data).hexdigest() == ref.digest
    np.testing.assert_array_equal(_read(origin), ARRAY)


def test_the_client_cache_keeps_chunks_of_either_name(tmp_path):
    cache = ChunkCache(tmp_path / "cache")
    old, new = b"named before", b"named after"
    cache.put(_blake2b(old), old)
    cache.put(chunk_digest(new), new)
    assert cache.get(_blake2b(old)) == old and cache.get(chunk_digest(new)) == new
    with pytest.raises(ValueError, match="do not match"):
        cache.put(chunk_digest(new), old)
