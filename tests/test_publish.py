"""Publishing into S3 (moto): dedup, deletes, concurrent publishers, one SNS event per version."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import blosc2
import boto3
import numpy as np
import pytest

from catclient import wire
from functions.adapters.memory import MemoryStore
from functions.adapters.s3 import S3Store
from functions.adapters.sns import SnsSink
from functions.engine import layout
from functions.engine.content import load_object
from functions.engine.model import Head, Manifest
from functions.engine.publish import Publisher
from functions.engine.region import CacheStats, Region
from infra.example_data import expected, write_example


class CountingStore(S3Store):
    """S3Store that counts chunk uploads (what re-publishing must minimise)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.chunk_puts = 0
        self.chunk_bytes = 0
        self._lock = threading.Lock()  # uploads run in parallel threads

    def put(self, key, data, **kwargs):
        etag = super().put(key, data, **kwargs)
        if key.startswith("c/"):
            with self._lock:
                self.chunk_puts += 1
                self.chunk_bytes += len(data)
        return etag


@pytest.fixture
def env(aws):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="origin")
    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="changes")["TopicArn"]
    queue = sqs.create_queue(QueueName="observer")["QueueUrl"]
    qarn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=qarn)
    store = CountingStore(s3, "origin")

    def events():
        out = []
        while True:
            msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(json.loads(json.loads(m["Body"])["Message"]))
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])

    return store, Publisher(store, SnsSink(sns, topic)), events


def _array(values, chunks=(100,), blocks=(10,)):
    return load_object(blosc2.asarray(values, chunks=chunks, blocks=blocks))


def test_publish_directory_then_read_back(env, tmp_path):
    store, pub, events = env
    write_example(tmp_path)
    results = pub.publish_directory("example", tmp_path)
    assert {r.status for r in results} == {"published"}
    assert len(events()) == len(expected())
    region = Region(store)
    for path, truth in expected().items():
        m = region.dataset("example", path)
        chunks = region.chunks(m, range(len(m.refs)), CacheStats())
        if m.kind == "ndarray":
            got = wire.assemble_ndarray(m.geometry, chunks)[()]
            assert np.array_equal(got, truth), path
        else:
            assert wire.assemble_schunk(m.geometry, [chunks[i] for i in range(len(m.refs))])[:] == truth


def test_republish_unchanged_is_a_noop(env, tmp_path):
    store, pub, events = env
    write_example(tmp_path)
    pub.publish_directory("example", tmp_path)
    events()
    before = store.chunk_puts
    again = pub.publish_directory("example", tmp_path)
    assert {r.status for r in again} == {"unchanged"}
    assert store.chunk_puts == before
    assert events() == []  # no new version, no event


def test_changing_one_chunk_uploads_one_chunk(env):
    store, pub, events = env
    values = np.arange(1000, dtype=np.int64)
    first = pub.publish("r", "a.b2nd", _array(values))
    values[250] = -1  # inside chunk 2 of 10
    before = store.chunk_puts
    second = pub.publish("r", "a.b2nd", _array(values))
    assert (first.version, second.version) == (1, 2)
    assert store.chunk_puts - before == 1
    assert second.uploaded_chunks == 1 and second.changed_chunks == [2]
    evs = events()
    assert [e["version"] for e in evs] == [1, 2]
    assert evs[1]["previous_version"] == 1 and evs[1]["changed_chunks"] == [2]
    assert evs[1]["type"] == "published" and evs[1]["root"] == "r"


def test_identical_chunks_are_stored_once(env):
    store, pub, _ = env
    pub.publish("r", "b.b2nd", _array(np.array([b"foobar"] * 1000)))
    assert store.chunk_puts == 1  # ten identical chunks, one object


def test_recompressed_identical_data_is_unchanged(env):
    """Multithreaded Blosc2 compression is not byte-deterministic; equal data still uploads nothing."""
    store, pub, events = env
    values = np.arange(200_000, dtype=np.float64)
    cparams = blosc2.CParams(nthreads=2)
    pub.publish("r", "f.b2nd", load_object(blosc2.asarray(values, chunks=(10_000,), cparams=cparams)))
    events()
    before = store.chunk_puts
    for _ in range(3):
        again = pub.publish(
            "r", "f.b2nd", load_object(blosc2.asarray(values, chunks=(10_000,), cparams=cparams))
        )
        assert again.status == "unchanged"
    assert store.chunk_puts == before and events() == []


def test_delete_on_republish_of_directory(env, tmp_path):
    store, pub, events = env
    write_example(tmp_path)
    pub.publish_directory("example", tmp_path)
    events()
    (tmp_path / "dir1" / "ds-3d.b2nd").unlink()
    results = pub.publish_directory("example", tmp_path)
    deleted = [r for r in results if r.status == "deleted"]
    assert [r.path for r in deleted] == ["dir1/ds-3d.b2nd"]
    evs = events()
    assert [(e["type"], e["path"]) for e in evs] == [("deleted", "dir1/ds-3d.b2nd")]
    region = Region(store)
    assert "dir1/ds-3d.b2nd" not in region.catalog("example").datasets
    with pytest.raises(LookupError):
        region.head("example", "dir1/ds-3d.b2nd")


def test_concurrent_publishers_never_tear_a_dataset(env):
    """Two publishers race on one path: both versions commit in some order, nothing is lost or torn."""
    store, pub, events = env
    other = Publisher(store, pub.events)
    a = np.arange(1000, dtype=np.int64)
    b = a * 10
    barrier = threading.Barrier(2)
    results = {}

    def run(name, publisher, values):
        barrier.wait()
        results[name] = publisher.publish("r", "race.b2nd", _array(values))

    threads = [
        threading.Thread(target=run, args=("a", pub, a)),
        threading.Thread(target=run, args=("b", other, b)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.version for r in results.values()) == [1, 2]
    head = Head.from_json(json.loads(store.get(layout.head_key("r", "race.b2nd")).data))
    assert head.version == 2
    winner = "a" if results["a"].version == 2 else "b"
    manifest = Manifest.from_bytes(store.get(head.manifest).data)
    region = Region(store)
    got = wire.assemble_ndarray(manifest.geometry, region.chunks(manifest, range(10), CacheStats()))[:]
    assert np.array_equal(got, a if winner == "a" else b)
    assert sorted(e["version"] for e in events()) == [1, 2]


def test_catalog_lists_every_dataset_under_concurrency(env):
    """Many publishers adding different datasets to one root: the catalog's CAS loses none."""
    store, pub, _ = env
    publishers = [Publisher(store, pub.events) for _ in range(6)]
    threads = [
        threading.Thread(target=p.publish, args=("many", f"d{i}.b2nd", _array(np.arange(100) + i)))
        for i, p in enumerate(publishers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(Region(store).catalog("many").datasets) == [f"d{i}.b2nd" for i in range(6)]


def test_crash_before_head_leaves_old_version_readable(env, monkeypatch):
    store, pub, _ = env
    pub.publish("r", "c.b2nd", _array(np.arange(1000)))

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash before the head write")

    monkeypatch.setattr(pub, "_cas_head", boom)
    with pytest.raises(RuntimeError):
        pub.publish("r", "c.b2nd", _array(np.arange(1000) * 2))
    region = Region(store)
    m = region.dataset("r", "c.b2nd")
    assert m.version == 1
    got = wire.assemble_ndarray(m.geometry, region.chunks(m, range(10), CacheStats()))[:]
    assert np.array_equal(got, np.arange(1000))


def test_plain_file_and_frame(env, tmp_path):
    store, pub, _ = env
    (tmp_path / "notes.txt").write_bytes(b"x" * 3_000_000)
    result = pub.publish_file("r", "notes.txt", tmp_path / "notes.txt")
    assert result.status == "published"
    m = Region(store).dataset("r", "notes.txt")
    assert m.kind == "file" and m.geometry.nbytes == 3_000_000 and len(m.refs) == 3
    assert Path(tmp_path / "notes.txt").exists()


class _CountingDrop(MemoryStore):
    """An ingest bucket that counts whole-object reads."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.gets = 0
        self.streamed = 0

    def get(self, key):
        self.gets += 1
        return super().get(key)

    def fetch_to(self, key, path):
        self.streamed += 1
        return super().fetch_to(key, path)


def test_ingest_checks_size_before_reading_and_streams_big_drops(monkeypatch):
    from functions.engine import ingest

    origin, drop = MemoryStore("origin"), _CountingDrop("drop")
    publisher = Publisher(origin)
    values = np.arange(200_000, dtype=np.int64)
    drop.put("big/a.b2nd", blosc2.asarray(values, chunks=(50_000,)).to_cframe())
    drop.put("big/notes.txt", b"hello " * 50_000)
    monkeypatch.setattr(ingest, "MAX_INGEST_BYTES", 1000)
    outcome = ingest.ingest_object(publisher, drop, "big/a.b2nd")
    assert not outcome.ok and "over the ingest limit" in outcome.error and drop.gets == 0
    monkeypatch.setattr(ingest, "MAX_INGEST_BYTES", 1 << 30)
    monkeypatch.setattr(ingest, "IN_MEMORY_BYTES", 1000)  # both drops are "big" now
    for key in ("big/a.b2nd", "big/notes.txt"):
        assert ingest.ingest_object(publisher, drop, key).ok
    assert drop.gets == 0 and drop.streamed == 2
    region = Region(origin)
    got = region.chunks(region.dataset("big", "a.b2nd"), range(4), CacheStats())
    assert len(got) == 4
    manifest = region.dataset("big", "notes.txt")
    assert manifest.geometry.nbytes == len(b"hello " * 50_000)


class _OrderedStore(MemoryStore):
    """MemoryStore that logs every write, and can fail the catalog's."""

    def __init__(self, name, log):
        super().__init__(name)
        self.log, self.fail_catalog = log, False

    def put(self, key, data, **kwargs):
        if key.startswith("r/") and self.fail_catalog:
            from functions.engine.errors import StoreUnavailable

            raise StoreUnavailable("injected")
        self.log.append(("put", key))
        return super().put(key, data, **kwargs)


class _LoggingSink:
    def __init__(self, log):
        self.log = log

    def emit(self, event):
        self.log.append(("event", f"{event.root}/{event.path}"))


def test_publish_batch_merges_the_catalog_once_then_emits():
    from functions.engine.content import NotBlosc2, load_bytes

    log: list = []
    store = _OrderedStore("origin", log)
    pub = Publisher(store, _LoggingSink(log))

    def bad():
        raise NotBlosc2("x.b2nd is not a valid Blosc2 frame")

    items = [(f"d{i}.txt", lambda i=i: load_bytes(f"d{i}.txt", b"%d" % i)) for i in range(5)]
    items.insert(2, ("x.b2nd", bad))
    results = pub.publish_batch("bulk", items)
    assert isinstance(results[2], NotBlosc2)
    assert [r.status for i, r in enumerate(results) if i != 2] == ["published"] * 5
    catalog_puts = [i for i, (kind, key) in enumerate(log) if key == "r/bulk.json"]
    events = [i for i, (kind, _) in enumerate(log) if kind == "event"]
    assert len(catalog_puts) == 1 and len(events) == 5 and catalog_puts[0] < min(events)
    catalog, _ = pub.read_catalog("bulk")
    assert sorted(catalog.datasets) == [f"d{i}.txt" for i in range(5)] and catalog.version == 1
    # again: unchanged, nothing written, no events
    log.clear()
    assert {r.status for r in pub.publish_batch("bulk", items[:2])} == {"unchanged"}
    assert not log


def test_publish_batch_reports_a_failed_catalog_merge_and_a_retry_repairs_it():
    from functions.engine.content import load_bytes
    from functions.engine.errors import StoreUnavailable

    log: list = []
    store = _OrderedStore("origin", log)
    pub = Publisher(store, _LoggingSink(log))
    items = [(f"d{i}.txt", lambda i=i: load_bytes(f"d{i}.txt", b"v%d" % i)) for i in range(3)]
    store.fail_catalog = True
    results = pub.publish_batch("bulk", items)
    assert all(isinstance(r, StoreUnavailable) for r in results)  # heads committed, catalog not: retry
    assert not [k for k, _ in log if k == "event"]  # nothing announced that a listing would miss
    store.fail_catalog = False
    again = pub.publish_batch("bulk", items)
    assert [r.status for r in again] == ["unchanged"] * 3
    catalog, _ = pub.read_catalog("bulk")
    assert sorted(catalog.datasets) == ["d0.txt", "d1.txt", "d2.txt"]
