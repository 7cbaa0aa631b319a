"""A cold small read: the fewest sequential S3 round trips, and no cache-bucket write before the answer."""

from __future__ import annotations

import threading

import blosc2
import numpy as np

from functions.adapters.memory import MemoryStore
from functions.engine import layout
from functions.engine.content import load_object
from functions.engine.copies import ColdSet, CopyWriter
from functions.engine.publish import Publisher
from functions.engine.region import CacheStats, Region


class Counting:
    """A blob store that logs every call as ``(bucket, operation, key kind)``, in order."""

    def __init__(self, store: MemoryStore, log: list) -> None:
        self.store, self.log = store, log
        self.hold = threading.Event()
        self.hold.set()

    def _note(self, op: str, key: str) -> None:
        self.log.append((self.store.name, op, key.split("/", 1)[0]))

    def get(self, key):
        self._note("get", key)
        return self.store.get(key)

    def put(self, key, data, **kw):
        self.hold.wait(10)  # a slow PUT: tests hold it to see who waits for it
        self._note("put", key)
        return self.store.put(key, data, **kw)

    def exists(self, key):
        self._note("head", key)
        return self.store.exists(key)

    def presign_get(self, key, expires):
        return f"https://cache.example/{key}"


def _setup():
    log: list = []
    origin, cache = MemoryStore("origin"), MemoryStore("cache")
    values = np.arange(4000, dtype="f8").reshape(40, 100)
    Publisher(origin).publish("t", "a.b2nd", load_object(blosc2.asarray(values, chunks=(10, 100))))
    return values, origin, cache, Counting(origin, log), Counting(cache, log), log


def _read(region: Region, nchunk: int = 1) -> bytes:
    manifest = region.dataset("t", "a.b2nd")
    return region.chunk(manifest, nchunk, CacheStats())


def test_a_cold_read_makes_four_sequential_gets_and_writes_after_the_answer():
    values, origin, cache, o, c, log = _setup()
    region = Region(o, c)
    c.hold.clear()  # every cache-bucket PUT waits: the answer must not
    data = _read(region)
    assert np.array_equal(np.frombuffer(blosc2.decompress2(data), "f8"), values[10:20].ravel())
    # the head copy is missing: the region never served this dataset, so its manifest
    # and chunks are not in its cache bucket either -- straight to the origin for those
    assert log == [
        ("cache", "get", "h"),
        ("origin", "get", "h"),
        ("origin", "get", "m"),
        ("origin", "get", "c"),
    ]
    c.hold.set()
    assert region.copies.flush(10)
    # written after the answer: the head copy, the manifest and the chunk
    assert sorted(op[2] for op in log[4:]) == ["c", "h", "m"] and all(op[1] == "put" for op in log[4:])
    assert cache.exists(layout.chunk_key(region.dataset("t", "a.b2nd").refs[1].digest))


def test_a_warm_bucket_read_by_a_new_process_touches_only_the_cache_bucket():
    _, origin, cache, o, c, log = _setup()
    first = Region(o, c)
    _read(first)
    first.copies.flush(10)
    log.clear()
    _read(Region(o, c))  # another container: nothing in process, the bucket has the copies
    assert log == [("cache", "get", "h"), ("cache", "get", "m"), ("cache", "get", "c")]


def test_another_chunk_of_a_cold_version_still_skips_the_cache_bucket_until_the_ttl():
    _, origin, cache, o, c, log = _setup()
    region = Region(o, c, memo_ttl=60)
    _read(region, 1)
    region.copies.flush(10)
    log.clear()
    _read(region, 2)  # head and manifest in process; the chunk was never copied
    region.copies.flush(10)
    assert log == [("origin", "get", "c"), ("cache", "put", "c")]
    clock = [0.0]
    region.cold = ColdSet(ttl=30, clock=lambda: clock[0])
    region.cold.add("t/a.b2nd@1")
    clock[0] = 31  # past the TTL another container may have copied it: ask the bucket first
    log.clear()
    _read(region, 3)
    region.copies.flush(10)
    assert log == [("cache", "get", "c"), ("origin", "get", "c"), ("cache", "put", "c")]


def test_a_plan_of_a_cold_version_copies_before_answering_without_a_head_per_chunk():
    _, origin, cache, o, c, log = _setup()
    region = Region(o, c)
    manifest = region.dataset("t", "a.b2nd")
    region.copies.flush(10)  # the head copy and the manifest, written after that read
    log.clear()
    region.ensure_cached(manifest, [0, 1, 2], CacheStats())
    ops = sorted(log)
    # presigned URLs are GET next: the copies are there when ensure_cached returns
    assert ops == [("cache", "put", "c")] * 3 + [("origin", "get", "c")] * 3
    assert all(cache.exists(layout.chunk_key(manifest.refs[i].digest)) for i in range(3))


def test_the_copy_backlog_is_bounded():
    store = MemoryStore("cache")
    gate = threading.Event()
    slow = Counting(store, [])
    slow.hold = gate
    writer = CopyWriter(slow, backlog_bytes=100, workers=1)
    assert writer.put("a", b"x" * 60)
    assert not writer.put("b", b"x" * 60)  # over the bound while "a" is pending: dropped
    gate.set()
    assert writer.flush(10)
    assert store.exists("a") and not store.exists("b") and writer.dropped == 1


def test_a_read_in_flight_does_not_hide_a_newer_version_learned_meanwhile():
    # A local write learns its new head while an older read of it is still in flight (an
    # event sync's fresh read, say): the older value must not replace it in the memo
    _, origin, cache, o, c, _ = _setup()
    region = Region(o, c)
    key = layout.head_key("t", "a.b2nd")
    old = region._meta(key, fresh=True)
    newer = {**old, "version": old["version"] + 1}
    real = region._meta_uncached

    def slow_read(k, fresh):
        value = real(k, fresh)
        region.learn(k, newer)  # committed and learned while this read was on its way
        return value

    region._meta_uncached = slow_read
    assert region._meta(key, fresh=True)["version"] == newer["version"]
    region._meta_uncached = real
    assert region._meta(key)["version"] == newer["version"]  # the memo kept the newer one
