"""Garbage collection (functions/engine/gc.py): what is deleted, what is kept, and races with publishers."""

from __future__ import annotations

import json
import threading
import time

import blosc2
import boto3
import numpy as np
import pytest

from catclient import wire
from functions import admin
from functions.adapters.memory import MemoryStore
from functions.adapters.s3 import S3Store
from functions.engine import gc, layout, publish
from functions.engine.content import load_object
from functions.engine.errors import NotFound, UnsafeToCollect
from functions.engine.model import Catalog, Head, Manifest
from functions.engine.publish import Publisher, store_chunk

GRACE = 60.0


class Clock:
    """A clock tests move by hand: objects age without waiting."""

    def __init__(self) -> None:
        self._now = 1_800_000_000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@pytest.fixture
def env():
    clock = Clock()
    store = MemoryStore("origin", clock=clock)
    return store, Publisher(store), clock


def _array(values):
    return load_object(blosc2.asarray(values, chunks=(100,), blocks=(10,)))


def _collect(store, clock, **kwargs):
    return gc.collect(store, grace=GRACE, clock=clock, **kwargs)


def read_back(store, root: str, path: str) -> np.ndarray:
    """A dataset's current version read from the store itself (no cache could hide a lost chunk)."""
    head = Head.from_json(json.loads(store.get(layout.head_key(root, path)).data))
    manifest = Manifest.from_bytes(store.get(head.manifest).data)
    chunks = {
        i: ref.inline if ref.inline is not None else store.get(layout.chunk_key(ref.digest)).data
        for i, ref in enumerate(manifest.refs)
    }
    return wire.assemble_ndarray(manifest.geometry, chunks)[()]


def _chunk_keys(loaded) -> set[str]:
    return {layout.chunk_key(r.digest) for r in loaded.content.refs if r.digest}


def _stored_chunks(store, manifest_key: str) -> set[str]:
    manifest = Manifest.from_bytes(store.get(manifest_key).data)
    return {layout.chunk_key(r.digest) for r in manifest.refs if r.digest}


def _manifest_of(store, root, path) -> str:
    return json.loads(store.get(layout.head_key(root, path)).data)["manifest"]


def _stage_without_head(store, root, path, loaded) -> set[str]:
    """Chunks and manifest of a publish that never reached its head (crashed, or still in flight)."""
    for ref, data in zip(loaded.content.refs, loaded.chunks, strict=True):
        if ref.digest:
            store_chunk(store, ref.digest, data)
    key = layout.manifest_key(root, path, 1, loaded.content.content_hash)
    store.put(key, Manifest(root, path, 1, "2026-01-01T00:00:00Z", loaded.content).to_bytes())
    return _chunk_keys(loaded) | {key}


def test_unreferenced_objects_removed_referenced_and_in_flight_kept(env):
    store, pub, clock = env
    values = np.arange(1000, dtype=np.int64)
    v1 = _array(values)
    pub.publish("r", "a.b2nd", v1)
    old_manifest = _manifest_of(store, "r", "a.b2nd")
    changed = values.copy()
    changed[250] = -1  # chunk 2 of 10: v1's chunk 2 is referenced by v1 only
    v2 = _array(changed)
    pub.publish("r", "a.b2nd", v2)
    b = _array(np.arange(1000, 2000, dtype=np.int64))
    pub.publish("r", "b.b2nd", b)
    b_manifest = _manifest_of(store, "r", "b.b2nd")
    pub.delete("r", "b.b2nd")  # a tombstone: b's manifest and chunks are garbage, the head stays
    crashed = _stage_without_head(store, "r", "c.b2nd", _array(np.arange(5000, 6000, dtype=np.int64)))
    store.put("c/zz/not-a-chunk", b"?")  # not the layout's: counted, never deleted
    clock.advance(GRACE + 1)
    in_flight = _stage_without_head(store, "r", "d.b2nd", _array(np.arange(7000, 8000, dtype=np.int64)))

    # from the stored manifests: a re-publish keeps the stored chunk of equal data (its bytes may differ)
    a_chunks = _stored_chunks(store, old_manifest) - _stored_chunks(store, _manifest_of(store, "r", "a.b2nd"))
    garbage = {old_manifest, b_manifest} | a_chunks | _stored_chunks(store, b_manifest) | crashed
    everything = set(store.list(""))
    dry = _collect(store, clock)
    assert set(dry.doomed) == garbage
    assert dry.chunks.garbage.count == len(garbage) - 3 and dry.manifests.garbage.count == 3
    assert not in_flight & set(dry.doomed)  # young: its manifest counts as live, and so do its chunks
    assert dry.manifests.live.count == 2 and dry.chunks.live.count == 10 + 10
    assert dry.other.count == 1 and dry.heads == 2 and dry.catalogs == 1
    assert dry.chunks.garbage.bytes == sum(store.size(k) for k in garbage if k.startswith("c/"))
    assert set(store.list("")) == everything, "a dry run deletes nothing"

    done = _collect(store, clock, delete=True)
    assert done.chunks.deleted.count + done.manifests.deleted.count == len(garbage)
    assert set(store.list("")) == everything - garbage
    assert np.array_equal(read_back(store, "r", "a.b2nd"), changed)
    assert json.loads(store.get(layout.head_key("r", "b.b2nd")).data)["deleted"]
    assert in_flight <= set(store.list(""))
    again = _collect(store, clock, delete=True)
    assert again.chunks.garbage.count == again.manifests.garbage.count == 0


def test_a_version_superseded_within_the_grace_stays_live(env):
    store, pub, clock = env
    values = np.arange(1000, dtype=np.int64)
    pub.publish("r", "a.b2nd", _array(values))
    v1 = _manifest_of(store, "r", "a.b2nd")
    clock.advance(GRACE + 1)
    pub.publish("r", "a.b2nd", _array(values + 1))  # v1 stops being current now
    report = _collect(store, clock, delete=True)
    assert report.manifests.deleted.count == report.chunks.deleted.count == 0
    assert store.exists(v1), "a publisher or a read plan may still use v1's chunks"
    clock.advance(GRACE + 1)
    report = _collect(store, clock, delete=True)
    assert not store.exists(v1) and report.chunks.deleted.count == 10


def test_a_version_two_below_an_old_manifest_is_collected_while_the_head_is_young(env):
    store, pub, clock = env
    values = np.arange(1000, dtype=np.int64)
    manifests = []
    for step in range(3):
        pub.publish("r", "a.b2nd", _array(values + step))
        manifests.append(_manifest_of(store, "r", "a.b2nd"))
    clock.advance(GRACE + 1)
    pub.publish("r", "a.b2nd", _array(values + 3))  # the head is young again
    _collect(store, clock, delete=True)
    # v1 stopped being current before v3's (old) manifest was written; v2 may have been current until
    # v4, a moment ago
    assert [store.exists(m) for m in manifests] == [False, True, True]


def test_keep_versions(env):
    store, pub, clock = env
    values = np.arange(1000, dtype=np.int64)
    pub.publish("r", "a.b2nd", _array(values))
    v1 = _manifest_of(store, "r", "a.b2nd")
    pub.publish("r", "a.b2nd", _array(values * 2))
    clock.advance(GRACE + 1)
    assert _collect(store, clock, delete=True, keep=1).manifests.deleted.count == 0
    assert store.exists(v1)
    assert _collect(store, clock, delete=True).manifests.deleted.count == 1


def test_a_manifest_a_lagging_catalog_names_is_kept(env):
    store, pub, clock = env
    values = np.arange(1000, dtype=np.int64)
    first = pub.publish("r", "a.b2nd", _array(values))
    v1_head = first.written[layout.head_key("r", "a.b2nd")]
    pub.publish("r", "a.b2nd", _array(values + 5))
    catalog = Catalog.from_bytes(store.get(layout.catalog_key("r")).data)
    catalog.datasets["a.b2nd"] = v1_head  # as after a crash between the head and the catalog
    store.put(layout.catalog_key("r"), catalog.to_bytes())
    clock.advance(GRACE + 1)
    assert _collect(store, clock, delete=True).manifests.deleted.count == 0
    assert store.exists(v1_head["manifest"])


def test_an_unreadable_head_stops_the_collection_before_any_delete(env):
    store, pub, clock = env
    pub.publish("r", "a.b2nd", _array(np.arange(1000)))
    pub.publish("r", "a.b2nd", _array(np.arange(1000) * 3))
    store.put(layout.head_key("r", "broken.b2nd"), b"{not json")
    clock.advance(GRACE + 1)
    before = set(store.list(""))
    with pytest.raises(UnsafeToCollect, match="broken"):
        _collect(store, clock, delete=True)
    assert set(store.list("")) == before


class GcBeforeManifest(MemoryStore):
    """A store that runs a deleting collection just before the first manifest is written.

    The worst moment for a publisher: it has found its chunks stored (garbage of an
    older version) and not yet written the manifest that makes them live again.
    """

    def __init__(self, clock) -> None:
        super().__init__("origin", clock=clock)
        self.armed = False
        self.report = None

    def put(self, key, data, **kwargs):
        if self.armed and key.startswith("m/"):
            self.armed = False
            self.report = gc.collect(self, grace=GRACE, delete=True, clock=self._clock)
        return super().put(key, data, **kwargs)


@pytest.mark.parametrize("rewrite", [True, False], ids=["rewrites-stored-chunks", "without-the-rewrite"])
def test_gc_between_a_publishers_chunks_and_its_manifest(monkeypatch, rewrite):
    clock = Clock()
    store = GcBeforeManifest(clock)
    pub = Publisher(store)
    values = np.arange(1000, dtype=np.int64)
    first = _array(values)  # published twice: the very same chunk bytes
    pub.publish("r", "a.b2nd", first)
    pub.publish("r", "a.b2nd", _array(values + 10**6))  # every chunk of v1 is now garbage
    clock.advance(GRACE + 1)
    if not rewrite:  # the publisher of old: a chunk found stored is trusted as it is
        monkeypatch.setattr(publish, "store_chunk", _store_once)
    store.armed = True
    pub.publish("r", "copy.b2nd", first)  # v1's chunks again, under another name
    assert store.report.manifests.deleted.count == 1  # the collection ran, and deleted v1's manifest
    if rewrite:
        assert store.report.chunks.deleted.count == 0
        assert np.array_equal(read_back(store, "r", "copy.b2nd"), values)
    else:  # what the rewrite prevents: the new version references deleted chunks
        assert store.report.chunks.deleted.count == 10
        with pytest.raises(NotFound):
            read_back(store, "r", "copy.b2nd")


def _store_once(store, digest, data):
    try:
        store.put(layout.chunk_key(digest), data, if_none_match=True)
    except publish.PreconditionFailed:
        return 0
    return len(data)


def _variants() -> list[np.ndarray]:
    """Contents that share chunks: each differs from the base in a few of its 20 chunks."""
    base = np.arange(2000, dtype=np.int64)
    out = []
    for k in range(3):
        v = base.copy()
        v[k * 300 : k * 300 + 250] *= -(k + 1)
        out.append(v)
    return out


def _wrong(store, expected: dict) -> list[str]:
    return [p for p, v in expected.items() if not np.array_equal(read_back(store, "race", p), v)]


def _race(store, publisher, rounds: int, between, collect) -> tuple[list, list]:
    """Publish *rounds* versions while collections run back to back; (failures, reports)."""
    variants, expected, failures, reports = _variants(), {}, [], []
    done = threading.Event()

    def publishing():
        try:
            for i in range(rounds):
                path = ("x.b2nd", "y.b2nd", "z.b2nd")[i % 3]
                values = variants[(i // 3 + i) % 3]
                publisher.publish("race", path, _array(values))
                expected[path] = values
                if i % 7 == 6:  # a delete and a re-create: tombstone, then version numbers go on
                    publisher.delete("race", path)
                    publisher.publish("race", path, _array(values))
                failures.extend(f"round {i}: {p} reads wrong values" for p in _wrong(store, expected))
                between()
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in the thread
            failures.append(f"publisher: {exc!r}")
        finally:
            done.set()

    def collecting():
        try:
            while not done.is_set():
                reports.append(collect())
        except Exception as exc:  # noqa: BLE001
            failures.append(f"gc: {exc!r}")

    threads = [threading.Thread(target=publishing), threading.Thread(target=collecting)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "the race did not finish"
    for p, v in expected.items():
        assert np.array_equal(read_back(store, "race", p), v)
    return failures, reports


def test_gc_racing_publishes_never_breaks_a_version(env):
    """Collections back to back while versions are published; everything older than the last publish is old."""
    store, pub, clock = env
    failures, reports = _race(
        store,
        pub,
        rounds=36,
        between=lambda: clock.advance(GRACE + 1),
        collect=lambda: _collect(store, clock, delete=True),
    )
    assert failures == []
    assert sum(r.chunks.deleted.count for r in reports) > 0, "the collector never found anything to delete"
    clock.advance(GRACE + 1)
    _collect(store, clock, delete=True)
    live = set().union(*(_stored_chunks(store, _manifest_of(store, "race", p)) for p in ("x.b2nd", "y.b2nd", "z.b2nd")))
    assert set(store.list("c/")) == live, "once the race is over, only the current versions' chunks remain"


def test_gc_racing_publishes_on_s3(aws):
    """The same race on S3 (moto), real clock, versioned bucket: HEAD + DELETE of the version seen."""
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="origin")
    s3.put_bucket_versioning(Bucket="origin", VersioningConfiguration={"Status": "Enabled"})
    store = S3Store(s3, "origin")
    grace = 1.0
    failures, reports = _race(
        store,
        Publisher(store),
        rounds=4,
        # S3 times are whole seconds (rounded up by the adapter): wait them out, so objects age
        between=lambda: time.sleep(grace + 1.6),
        collect=lambda: gc.collect(store, grace=grace, delete=True),
    )
    assert failures == []
    assert sum(r.chunks.deleted.count + r.manifests.deleted.count for r in reports) > 0


def test_cat_admin_gc_dry_run_then_delete(aws, capsys):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="origin")
    store = S3Store(s3, "origin")
    pub = Publisher(store)
    pub.publish("r", "a.b2nd", _array(np.arange(1000)))
    pub.publish("r", "a.b2nd", _array(np.arange(1000) + 7))
    assert admin.main(["gc", "--bucket", "origin", "--grace", "3600"]) == 0
    out = capsys.readouterr()
    assert "garbage 0" in out.out and "dry run" in out.out and "gc: list c/" in out.err
    time.sleep(1.1)  # S3's whole seconds: let the first version's objects be a second old
    assert admin.main(["--json", "gc", "--bucket", "origin", "--grace", "0", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chunks"]["garbage"]["count"] == 10 and report["deleting"] is False
    assert len(list(store.list("c/"))) == 20
    assert admin.main(["gc", "--bucket", "origin", "--grace", "0", "--delete", "--quiet"]) == 0
    assert "deleted 10" in capsys.readouterr().out
    assert len(list(store.list("c/"))) == 10
    assert admin.main(["gc", "--bucket", "origin", "--grace", "-1"]) == 1


def test_a_kept_frames_own_pieces_are_live(env):
    """The objects of an exact frame besides the chunks (a chunk stored once for equal data) are kept."""
    from functions.engine.content import load_frame

    store, pub, clock = env
    data = np.arange(4000, dtype=np.int64) % 2000
    a = blosc2.asarray(data, chunks=(2000,), blocks=(500,))
    a.schunk.update_chunk(1, blosc2.compress2(data[2000:].tobytes(), typesize=8, clevel=9, blocksize=4000))
    frame = a.to_cframe()
    loaded = load_frame(frame, "dup.b2nd")
    (own,) = loaded.blobs  # the frame's bytes of chunk 1, which the manifest stores as chunk 0's
    pub.publish("r", "dup.b2nd", loaded)
    clock.advance(GRACE + 1)
    _collect(store, clock, delete=True)
    assert store.exists(layout.chunk_key(own))
    manifest = Manifest.from_bytes(store.get(_manifest_of(store, "r", "dup.b2nd")).data)
    pieces = manifest.content.frame.pieces
    got = b"".join(p.inline if p.inline is not None else store.get(layout.chunk_key(p.digest)).data for p in pieces)
    assert got == frame
    pub.delete("r", "dup.b2nd")
    clock.advance(GRACE + 1)
    _collect(store, clock, delete=True)
    assert not store.exists(layout.chunk_key(own))  # garbage once no version references it
