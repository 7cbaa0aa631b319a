"""One contract, every BlobStore adapter: in-memory and S3 (moto in-process)."""

from __future__ import annotations

import threading

import boto3
import pytest

from functions.adapters.memory import MemoryStore
from functions.adapters.s3 import S3Store
from functions.engine.ports import BlobStore, NotFound, PreconditionFailed, StoreUnavailable


@pytest.fixture(params=["memory", "s3"])
def store(request) -> BlobStore:
    if request.param == "memory":
        yield MemoryStore("contract")
        return
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="contract")
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
