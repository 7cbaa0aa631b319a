"""The Lambda handlers with realistic events (SQS-wrapped S3 and SNS records) and a fake context, on moto."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass

import blosc2
import boto3
import caterva2 as cat2
import numpy as np
import pytest

from functions.engine import compute
from functions.engine.model import ChangeEvent
from functions.engine.spaces import ANONYMOUS, locate
from functions.handlers import api as api_handler
from functions.handlers import common
from functions.handlers import compute as compute_handler
from functions.handlers import ingest as ingest_handler
from functions.handlers import sync as sync_handler
from infra.lambda_events import failed_ids, http_event, s3_notification, sns_envelope, sqs_event


@dataclass
class FakeContext:
    function_name: str = "cat-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:cat-test"
    aws_request_id: str = "req-1234"


@pytest.fixture
def lambda_env(stack, monkeypatch):
    plan = stack.resources["plan"]
    monkeypatch.setenv("CAT_ORIGIN_BUCKET", plan.origin_bucket)
    monkeypatch.setenv("CAT_CACHE_BUCKET", plan.cache_buckets["r1"])
    monkeypatch.setenv("CAT_INGEST_BUCKET", plan.ingest_bucket)
    monkeypatch.setenv("CAT_TOPIC_ARN", stack.resources["topic_arn"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)
    # Each container builds its services once: a fresh "container" per test
    monkeypatch.setattr(common, "_services", None)
    monkeypatch.setattr(api_handler, "_handler", None)
    return plan


@pytest.fixture
def drops(lambda_env, stack, monkeypatch):
    """An ingest bucket of the test's own: no notification, so the stack's dispatcher never races it."""
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    name = f"test-drops-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    monkeypatch.setenv("CAT_INGEST_BUCKET", name)
    return s3, name


@pytest.fixture
def logs():
    """JSON log lines the handlers write, formatted by Powertools exactly as Lambda would ship them."""
    import io
    import logging

    from functions.handlers.common import logger

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        yield lambda: _json_lines(buffer.getvalue())
    finally:
        logging.getLogger(logger.name).removeHandler(handler)


def _json_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


_http_event = http_event


def test_api_handler_serves_through_mangum(lambda_env, capsys):
    response = api_handler.handler(
        _http_event("/api/fetch/example/ds-1d.b2nd", "slice_=10%3A20"), FakeContext()
    )
    assert response["statusCode"] == 200
    body = base64.b64decode(response["body"]) if response["isBase64Encoded"] else response["body"].encode()
    assert list(blosc2.ndarray_from_cframe(body)[:]) == list(range(10, 20))
    assert "hits=" in response["headers"]["x-cat-cache"]
    out = capsys.readouterr().out
    emf = [line for line in _json_lines(out) if "_aws" in line]
    names = {m["Name"] for line in emf for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"CacheHits", "CacheMisses", "OriginBytes", "ColdStart"} <= names
    roots = api_handler.handler(_http_event("/api/roots"), FakeContext())
    assert json.loads(roots["body"])["example"]["name"] == "example"


def test_api_handler_bad_input_is_4xx(lambda_env):
    response = api_handler.handler(_http_event("/api/chunk/example/ds-1d.b2nd", "nchunk=x"), FakeContext())
    assert response["statusCode"] == 400


def test_ingest_handler_publishes_url_encoded_keys(lambda_env, stack, logs):
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    key = "dropped/sub dir/new file+1.b2nd"
    values = np.arange(300, dtype=np.int16).reshape(10, 30)
    s3.put_object(Bucket=lambda_env.ingest_bucket, Key=key, Body=blosc2.asarray(values).to_cframe())
    event = sqs_event([s3_notification(lambda_env.ingest_bucket, [key])])
    assert "%2B" in event["Records"][0]["body"]  # S3 URL-encodes keys ('+' is a space)
    result = ingest_handler.handler(event, FakeContext())
    assert result == {"batchItemFailures": []}
    manifest = stack.regions[0].services.region.dataset("dropped", "sub dir/new file+1.b2nd")
    assert manifest.geometry.shape == (10, 30)
    ingested = [line for line in logs() if line.get("message") == "ingested" and line.get("key") == key]
    assert ingested and ingested[0]["function_request_id"] == "req-1234" and ingested[0]["level"] == "INFO"


def test_ingest_handler_fails_only_the_bad_record(drops, stack, logs, monkeypatch):
    """One batch: published, rejected (not retried), ignored, unreadable and failing records."""
    s3, bucket = drops
    s3.put_object(Bucket=bucket, Key="dropped/fake.b2nd", Body=b"not blosc2 at all")
    s3.put_object(Bucket=bucket, Key="dropped/ok.txt", Body=b"fine")
    s3.put_object(Bucket=bucket, Key="flaky/a.txt", Body=b"retry me")
    bodies = [
        s3_notification(bucket, ["dropped/fake.b2nd"]),  # m0 rejected: would fail again
        s3_notification("some-other-bucket", ["dropped/x.b2nd"]),  # m1 ignored
        s3_notification(bucket, ["dropped/../escape.txt"]),  # m2 rejected
        s3_notification(bucket, ["dropped/missing.b2nd"]),  # m3 rejected: gone
        s3_notification(bucket, ["dropped/ok.txt"]),  # m4 published
        s3_notification(bucket, ["_staging/some-user/1234"]),  # m5 skipped: the API commits it
        "{not json",  # m6 unreadable: failed, retried, then parked in the DLQ
        {"Event": "s3:TestEvent", "Bucket": bucket},  # m7 S3's set-up message
        s3_notification(bucket, ["flaky/a.txt"]),  # m8 storage error: failed, retried
    ]
    real_put = stack.regions[0].services.publisher.store.put

    def flaky_put(key, *args, **kwargs):
        if key.startswith(("h/flaky/", "r/flaky")):
            from functions.engine.errors import StoreUnavailable

            raise StoreUnavailable("injected: origin unreachable")
        return real_put(key, *args, **kwargs)

    services = common.services()
    monkeypatch.setattr(services.publisher.store, "put", flaky_put)
    result = ingest_handler.handler(sqs_event(bodies), FakeContext())
    assert failed_ids(result) == ["m6", "m8"]
    deadline = time.monotonic() + 3  # the region learns of ok.txt through its change event
    while "ok.txt" not in (
        listing := stack.regions[0].services.read.list(locate("dropped", "", ANONYMOUS), ANONYMOUS)
    ):
        assert time.monotonic() < deadline, listing
        time.sleep(0.05)
    assert "fake.b2nd" not in listing and "missing.b2nd" not in listing
    lines = logs()
    assert any(line.get("message") == "ignored record" for line in lines)
    assert any(
        "not a valid Blosc2" in str(line.get("error", "")) and line["level"] == "WARNING" for line in lines
    )
    assert any(line.get("message") == "ingest failed, to be retried" for line in lines)


def test_ingest_handler_batches_catalog_updates_per_root(drops, monkeypatch):
    """A bulk drop of 40 files into two roots: one catalog write per root, not one per file."""
    s3, bucket = drops
    keys = [f"bulk{i % 2}/f{i:03d}.txt" for i in range(40)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    services = common.services()
    catalog_puts = []
    real_put = services.publisher.store.put

    def counting_put(key, *args, **kwargs):
        if key.startswith("r/"):
            catalog_puts.append(key)
        return real_put(key, *args, **kwargs)

    monkeypatch.setattr(services.publisher.store, "put", counting_put)
    # 40 SQS records of one S3 record each, as S3 notifies (the template's BatchSize is 50)
    result = ingest_handler.handler(sqs_event([s3_notification(bucket, [k]) for k in keys]), FakeContext())
    assert result == {"batchItemFailures": []}
    assert sorted(catalog_puts) == ["r/bulk0.json", "r/bulk1.json"]
    for root in ("bulk0", "bulk1"):
        catalog, _ = services.publisher.read_catalog(root)
        assert len(catalog.datasets) == 20 and catalog.version == 1


def test_ingest_handler_tolerates_empty_events(lambda_env):
    assert ingest_handler.handler({"Records": []}, FakeContext()) == {"batchItemFailures": []}


def test_sync_handler_fails_only_the_bad_record(lambda_env, stack, capsys):
    head = stack.regions[0].services.region.head("example", "ds-1d.b2nd")
    newest = ChangeEvent("published", "example", "ds-1d.b2nd", head.version, 0, head.mtime, head.manifest)
    stale = ChangeEvent("published", "example", "ds-1d.b2nd", 0, 0, "", None)
    topic = stack.resources["topic_arn"]
    event = sqs_event(
        [
            sns_envelope(json.dumps(newest.to_json()), topic),  # m0 applied (or already known)
            sns_envelope(json.dumps(stale.to_json()), topic),  # m1 ignored: older than the region's
            sns_envelope("{broken", topic),  # m2 not a change event: failed -> retried -> DLQ
            "not an SNS envelope",  # m3 failed
        ]
    )
    result = sync_handler.handler(event, FakeContext())
    assert failed_ids(result) == ["m2", "m3"]
    out = capsys.readouterr().out
    emf = [line for line in _json_lines(out) if "_aws" in line]
    values = {k: v for line in emf for k, v in line.items() if k.startswith("SyncEvents")}
    # (a list when the stack's own dispatcher flushed into the same metrics object meanwhile)
    as_list = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
    assert 2 in as_list(values["SyncEventsRejected"]) and max(as_list(values["SyncEventsIgnored"])) >= 1


def test_compute_handler_evaluates_a_slice(lambda_env, stack):
    manifest = stack.regions[0].services.region.head("example", "ds-1d.b2nd").manifest
    event = {"op": "slice", "expression": "x * 2 + 1", "operands": {"x": manifest}, "key": [[0, 5, 1]]}
    result = compute_handler.handler(event, FakeContext())
    assert result["status"] == 200
    got = blosc2.ndarray_from_cframe(base64.b64decode(result["cframe"]))[:]  # base64: a Lambda answer is JSON
    assert list(got) == [1, 3, 5, 7, 9]
    bad = compute_handler.handler({**event, "expression": "__import__('os')"}, FakeContext())
    assert bad["status"] == 400 and "not allowed" in bad["error"]
    missing = compute_handler.handler({**event, "operands": {"x": "m/nope/1-x.json"}}, FakeContext())
    assert missing["status"] == 404
    partial = compute_handler.handler(
        {
            "op": "partials",
            "expression": "x",
            "operands": {"x": manifest},
            "reduction": "sum",
            "axis": None,
            "boxes": [[[0, 500, 1]], [[500, 1000, 1]]],
        },
        FakeContext(),
    )
    sums = [compute.decode_array(p["v"]).item() for _, p in partial["parts"]]
    assert sums == [sum(range(500)), sum(range(500, 1000))]


def test_drop_into_ingest_bucket_is_readable_by_caterva2_client_in_every_region(stack):
    """S3 notification → SQS → local dispatcher → the same ingest handler → every region's API."""
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    values = np.linspace(0, 1, 5000).reshape(50, 100)
    s3.put_object(
        Bucket=stack.resources["plan"].ingest_bucket,
        Key="dropzone/data set.b2nd",
        Body=blosc2.asarray(values, chunks=(10, 50)).to_cframe(),
    )
    deadline = time.monotonic() + 5
    for rt in stack.regions:
        with cat2.Client(rt.url) as client:
            while True:
                try:
                    listing = client.get_list("dropzone")
                except Exception:  # noqa: BLE001 - 404 until the root exists
                    listing = []
                if "data set.b2nd" in listing or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert "data set.b2nd" in listing
            assert np.array_equal(client.fetch("dropzone/data set.b2nd"), values)
