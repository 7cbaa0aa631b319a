"""One contract, every BlobStore adapter: in-memory and S3 (moto in-process; plain and versioned bucket)."""

from __future__ import annotations

import threading
import time

import boto3
import pytest

from functions.adapters.memory import MemoryStore
from functions.adapters.s3 import S3Store
from functions.engine.ports import BlobStore, NotFound, PreconditionFailed, StoreUnavailable


@pytest.fixture(params=["memory", "s3", "s3-versioned"])
def store(request) -> BlobStore:
    if request.param == "memory":
        yield MemoryStore("contract")
        return
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="contract")
        if request.param == "s3-versioned":
            client.put_bucket_versioning(Bucket="contract", VersioningConfiguration={"Status": "Enabled"})
        yield S3Store(client, "contract")


def test_is_a_blob_store(store):
    assert isinstance(store, BlobStore)


def test_put_get_round_trip(store):
    etag = store.put("a/b", b"hello")
    blob = store.get("a/b")
    assert blob.data == b"hello" and blob.etag == etag


def test_missing_key(store):
    with pytest.raises(NotFound):
        store.get("nope")
    assert not store.exists("nope")
    store.delete("nope")  # no error


def test_if_none_match_creates_once(store):
    store.put("k", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed):
        store.put("k", b"2", if_none_match=True)
    assert store.get("k").data == b"1"


def test_if_match_replaces_only_the_version_read(store):
    etag = store.put("k", b"1")
    new = store.put("k", b"2", if_match=etag)
    with pytest.raises(PreconditionFailed):
        store.put("k", b"3", if_match=etag)  # stale etag: someone else wrote in between
    assert store.get("k").data == b"2" and store.get("k").etag == new


def test_if_match_on_missing_key_fails(store):
    with pytest.raises((PreconditionFailed, NotFound)):
        store.put("absent", b"x", if_match='"0123"')
    assert not store.exists("absent")


def test_list_by_prefix_sorted(store):
    for key in ["c/02/x", "c/01/y", "m/z", "c/01/a"]:
        store.put(key, b"")
    assert list(store.list("c/")) == ["c/01/a", "c/01/y", "c/02/x"]


def test_delete(store):
    store.put("k", b"1")
    store.delete("k")
    assert not store.exists("k")


def test_concurrent_conditional_writers_exactly_one_wins(store):
    etag = store.put("head", b"v0")
    wins, losses = [], []
    barrier = threading.Barrier(8)

    def writer(i):
        barrier.wait()
        try:
            store.put("head", f"v1-{i}".encode(), if_match=etag)
            wins.append(i)
        except PreconditionFailed:
            losses.append(i)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 7
    assert store.get("head").data == f"v1-{wins[0]}".encode()


def test_unreachable_s3_is_store_unavailable():
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}, connect_timeout=0.5),
    )
    with pytest.raises(StoreUnavailable):
        S3Store(client, "x").get("k")


def test_size_without_reading_and_fetch_to_a_file(store, tmp_path):
    data = bytes(range(256)) * 40_000  # 10 MB: several parts of a streamed S3 download
    store.put("big/object", data)
    assert store.size("big/object") == len(data)
    target = tmp_path / "copy.bin"
    assert store.fetch_to("big/object", str(target)) == len(data)
    assert target.read_bytes() == data
    with pytest.raises(NotFound):
        store.size("big/missing")
    with pytest.raises(NotFound):
        store.fetch_to("big/missing", str(tmp_path / "none.bin"))


def test_scan_gives_sizes_and_write_times_never_earlier_than_the_write(store):
    before = time.time()
    for key, data in [("c/02/x", b"abc"), ("c/01/y", b""), ("m/z", b"zz")]:
        store.put(key, data)
    found = list(store.scan("c/"))
    assert [(f.key, f.size) for f in found] == [("c/01/y", 0), ("c/02/x", 3)]
    # S3 reports whole seconds: the adapter rounds up, so an object never looks older than it is
    assert all(before <= f.modified <= time.time() + 1.0 for f in found)
    assert list(store.scan("nothing/")) == []


def test_delete_if_older_checks_the_write_time(store):
    store.put("c/aa/k", b"1")
    (listed,) = store.scan("c/aa/k")
    assert not store.delete_if_older("c/aa/k", listed.modified - 0.001)  # written after the cutoff
    assert store.exists("c/aa/k")
    assert store.delete_if_older("c/aa/k", listed.modified)
    assert not store.exists("c/aa/k")
    assert not store.delete_if_older("c/aa/k", time.time() + 10)  # absent: nothing removed


def test_a_rewrite_between_check_and_delete_survives_in_a_versioned_bucket(store):
    """S3Store deletes exactly the version its HEAD saw: a publisher's re-store in between stays."""
    if not isinstance(store, S3Store) or store._s3.get_bucket_versioning(Bucket=store.name).get("Status") != "Enabled":
        pytest.skip("only a versioned bucket can tell the two writes apart")
    store.put("c/aa/k", b"chunk")
    real = store._s3

    class RewriteAfterHead:
        def __getattr__(self, name):
            return getattr(real, name)

        def head_object(self, **kwargs):
            meta = real.head_object(**kwargs)
            real.put_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"], Body=b"chunk")
            return meta

    store._s3 = RewriteAfterHead()
    try:
        assert store.delete_if_older("c/aa/k", time.time() + 10)
    finally:
        store._s3 = real
    assert store.get("c/aa/k").data == b"chunk"
