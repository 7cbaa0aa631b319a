"""A new dataset's chunks are uploaded while its file is still being hashed; a re-publish waits to know."""

from __future__ import annotations

import threading

import blosc2
import numpy as np
import pytest

from functions.adapters.memory import MemoryStore
from functions.engine import content, layout
from functions.engine.publish import Publisher
from functions.engine.region import CacheStats, Region


class Watched(MemoryStore):
    """A store that says when a first chunk was stored."""

    def __init__(self) -> None:
        super().__init__("origin")
        self.chunk_stored = threading.Event()

    def put(self, key, data, **kw):
        etag = super().put(key, data, **kw)
        if key.startswith("c/"):
            self.chunk_stored.set()
        return etag


@pytest.fixture
def hashing_waits_for_a_put(monkeypatch):
    """The last chunk's hash waits (up to 5 s) for a chunk upload: only an eager publish gets past quickly."""
    real = content._describe
    waited = {}

    def describe(item, name):
        if item[0] == waited["last"]:
            waited["ok"] = waited["store"].chunk_stored.wait(5)
        return real(item, name)

    monkeypatch.setattr(content, "_describe", describe)
    return waited


def _file(tmp_path, values, name="a.b2nd"):
    path = tmp_path / name
    blosc2.asarray(values, chunks=(100,), urlpath=str(path), mode="w")
    return path


def test_a_new_dataset_uploads_while_it_is_hashed(tmp_path, hashing_waits_for_a_put):
    values = np.random.default_rng(2).normal(size=2000)
    store = Watched()
    hashing_waits_for_a_put.update(store=store, last=19)
    result = Publisher(store).publish_file("t", "a.b2nd", _file(tmp_path, values))
    assert hashing_waits_for_a_put["ok"]  # a chunk was stored before hashing ended
    assert result.status == "published" and result.uploaded_chunks == 20
    manifest = Region(store).dataset("t", "a.b2nd")
    got = b"".join(Region(store).chunks(manifest, range(20), CacheStats()).values())
    assert len(got) > 0 and all(store.exists(layout.chunk_key(r.digest)) for r in manifest.refs)
    assert np.array_equal(blosc2.open(str(tmp_path / "a.b2nd"))[:], values)


def test_a_republish_uploads_only_what_changed(tmp_path):
    values = np.random.default_rng(3).normal(size=2000)
    store = MemoryStore("origin")
    publisher = Publisher(store)
    publisher.publish_file("t", "a.b2nd", _file(tmp_path, values))
    puts = store.puts
    values[150] = 7.0  # chunk 1
    result = publisher.publish_file("t", "a.b2nd", _file(tmp_path, values))
    assert result.changed_chunks == [1] and result.uploaded_chunks == 1
    assert store.puts - puts == 1 + 4  # the chunk; manifest, head, feed entry, catalog
