"""The Lambda handlers with realistic events and a fake context, against the stack's moto server."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
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


def _http_event(path: str, query: str = "", method: str = "GET") -> dict:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": "abc.execute-api.us-east-1.amazonaws.com", "accept": "*/*"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.execute-api.us-east-1.amazonaws.com",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "pytest",
            },
            "requestId": "corr-42",
            "routeKey": "$default",
            "stage": "$default",
            "time": "21/Nov/2026:08:00:00 +0000",
            "timeEpoch": 1795334400000,
        },
        "isBase64Encoded": False,
    }


def _s3_event(bucket: str, key: str, event_name: str = "ObjectCreated:Put") -> dict:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-21T08:00:00.000Z",
                "eventName": event_name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "ingest",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": key, "size": 1, "eTag": "x", "sequencer": "0"},
                },
            }
        ]
    }


def _sns_event(messages: list[str]) -> dict:
    return {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSource": "aws:sns",
                "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:changes:sub",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": f"m{i}",
                    "TopicArn": "arn:aws:sns:us-east-1:123456789012:changes",
                    "Subject": None,
                    "Message": m,
                    "Timestamp": "2026-11-21T08:00:00.000Z",
                    "MessageAttributes": {},
                },
            }
            for i, m in enumerate(messages)
        ]
    }


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
    encoded = urllib.parse.quote_plus(key, safe="/")
    result = ingest_handler.handler(_s3_event(lambda_env.ingest_bucket, encoded), FakeContext())
    assert result["published"] == [key] and result["rejected"] == []
    manifest = stack.regions[0].services.region.dataset("dropped", "sub dir/new file+1.b2nd")
    assert manifest.geometry.shape == (10, 30)
    ingested = [line for line in logs() if line.get("message") == "ingested" and line.get("key") == key]
    assert ingested and ingested[0]["function_request_id"] == "req-1234" and ingested[0]["level"] == "INFO"


def test_ingest_handler_rejects_bad_records_without_crashing(lambda_env, stack, logs):
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    s3.put_object(Bucket=lambda_env.ingest_bucket, Key="dropped/fake.b2nd", Body=b"not blosc2 at all")
    s3.put_object(Bucket=lambda_env.ingest_bucket, Key="dropped/ok.txt", Body=b"fine")
    event = _s3_event(lambda_env.ingest_bucket, "dropped/fake.b2nd")
    event["Records"] += _s3_event("some-other-bucket", "dropped/x.b2nd")["Records"]
    event["Records"] += _s3_event(lambda_env.ingest_bucket, "dropped/%2E%2E/escape.txt")["Records"]
    event["Records"] += _s3_event(lambda_env.ingest_bucket, "dropped/missing.b2nd")["Records"]
    event["Records"] += _s3_event(lambda_env.ingest_bucket, "dropped/ok.txt")["Records"]
    event["Records"] += _s3_event(lambda_env.ingest_bucket, "_staging/some-user/1234")["Records"]
    result = ingest_handler.handler(event, FakeContext())
    assert result["published"] == ["dropped/ok.txt"]
    assert sorted(result["rejected"]) == [
        "dropped/../escape.txt",
        "dropped/fake.b2nd",
        "dropped/missing.b2nd",
    ]
    deadline = time.monotonic() + 3  # the region learns of ok.txt through its change event
    while "ok.txt" not in (listing := stack.regions[0].services.read.list(locate("dropped", "", ANONYMOUS), ANONYMOUS)):
        assert time.monotonic() < deadline, listing
        time.sleep(0.05)
    assert "fake.b2nd" not in listing and "missing.b2nd" not in listing
    lines = logs()
    assert any(line.get("message") == "ignored record" for line in lines)
    assert any(
        "not a valid Blosc2" in str(line.get("error", "")) and line["level"] == "WARNING" for line in lines
    )


def test_ingest_handler_tolerates_malformed_events(lambda_env):
    assert ingest_handler.handler({"Records": []}, FakeContext()) == {"published": [], "rejected": []}
    assert ingest_handler.handler({}, FakeContext()) == {"published": [], "rejected": []}


def test_sync_handler_applies_and_ignores(lambda_env, stack, capsys):
    head = stack.regions[0].services.region.head("example", "ds-1d.b2nd")
    newest = ChangeEvent("published", "example", "ds-1d.b2nd", head.version, 0, head.mtime, head.manifest)
    stale = ChangeEvent("published", "example", "ds-1d.b2nd", 0, 0, "", None)
    result = sync_handler.handler(
        _sns_event([json.dumps(newest.to_json()), json.dumps(stale.to_json()), "{broken"]), FakeContext()
    )
    statuses = [o["status"] for o in result["outcomes"]]
    assert statuses[1:] == ["ignored", "rejected"] and statuses[0] in ("applied", "ignored")
    out = capsys.readouterr().out
    assert "SyncEventsRejected" in out


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
        {"op": "partials", "expression": "x", "operands": {"x": manifest}, "reduction": "sum", "axis": None,
         "boxes": [[[0, 500, 1]], [[500, 1000, 1]]]},
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
