"""What AWS refuses and moto forgives: SigV4 presigned URLs, clients in the right region."""

from __future__ import annotations

import json
import urllib.parse
import uuid

import blosc2
import boto3
import httpx
import numpy as np
import pytest

from functions.aws import build_services, region_of_arn, s3_config
from functions.engine.content import load_object
from functions.settings import Settings
from tests.test_writes import _new_writer

SIGV4 = "AWS4-HMAC-SHA256"


def assert_sigv4(url: str) -> None:
    """A presigned URL S3 accepts on a bucket created after June 2020 (SigV2 is refused there)."""
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert query.get("X-Amz-Algorithm") == [SIGV4], url
    assert "X-Amz-Signature" in query and "X-Amz-Credential" in query and "X-Amz-Expires" in query, url
    assert "AWSAccessKeyId" not in query and "Signature" not in query, url


def test_read_plan_urls_are_sigv4_and_say_when_they_expire(stack):
    values = np.arange(10_000, dtype=np.int64)
    stack.regions[0].services.publisher.publish(
        "prodtest", "plan.b2nd", load_object(blosc2.asarray(values, chunks=(1000,)))
    )
    url = stack.regions[0].url
    plan = httpx.get(f"{url}/api/plan/prodtest/plan.b2nd", params={"slice_": "500:5500"}).json()
    refs = [r for r in plan["chunk_refs"] if "url" in r]
    assert len(refs) == 6
    for ref in refs:
        assert_sigv4(ref["url"])
        got = httpx.get(ref["url"])
        assert got.status_code == 200 and len(got.content) == ref["size"]
    assert 0 < plan["expires_in"] <= 3600 and plan["expires_at"].endswith("Z")


def test_presigned_upload_urls_are_sigv4(stack):
    writer = _new_writer(stack, "sigv4")
    path = f"@personal/sigv4-{uuid.uuid4().hex[:6]}/blob.bin"
    plan = httpx.post(f"{stack.api_url}/api/upload-url/{path}", params={"size": 1000}, headers=writer.headers).json()
    assert_sigv4(plan["url"])
    signed = urllib.parse.parse_qs(urllib.parse.urlsplit(plan["url"]).query)["X-Amz-SignedHeaders"][0]
    assert "content-length" in signed.split(";")  # S3 refuses a PUT of any other length
    assert httpx.put(plan["url"], content=b"x" * 1000).status_code == 200
    assert httpx.post(f"{stack.api_url}{plan['commit']}", headers=writer.headers).status_code == 200


def test_addressing_style_is_virtual_on_aws_and_path_on_emulators():
    assert s3_config(None).s3["addressing_style"] == "virtual"
    assert s3_config("http://127.0.0.1:5000").s3["addressing_style"] == "path"
    assert s3_config(None).signature_version == "s3v4"


def test_region_of_arn():
    assert region_of_arn("arn:aws:sns:eu-west-1:123456789012:changes") == "eu-west-1"
    assert region_of_arn("") is None and region_of_arn("not-an-arn") is None


@pytest.fixture
def two_regions(aws, monkeypatch):
    """An origin in us-east-1 (bucket + topic + a queue on the topic) seen from a us-west-2 function."""
    east_s3 = boto3.client("s3", region_name="us-east-1")
    east_s3.create_bucket(Bucket="origin-east")
    sns = boto3.client("sns", region_name="us-east-1")
    topic = sns.create_topic(Name="changes")["TopicArn"]
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="observer")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    west_s3 = boto3.client("s3", region_name="us-west-2")
    west_s3.create_bucket(Bucket="cache-west", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    # The subscriber's Lambda runs in us-west-2: its default region is not the topic's
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    return {"topic": topic, "queue": queue, "sqs": sqs}


def test_a_subscriber_region_write_emits_to_the_origin_topic(two_regions):
    settings = Settings(origin_bucket="origin-east", cache_bucket="cache-west", topic_arn=two_regions["topic"])
    services = build_services(settings)
    assert services.clients["sns"].meta.region_name == "us-east-1"
    result = services.publisher.publish("sub", "x.b2nd", load_object(blosc2.asarray(np.arange(10))))
    assert result.status == "published"
    messages = two_regions["sqs"].receive_message(QueueUrl=two_regions["queue"], WaitTimeSeconds=1)
    bodies = [json.loads(m["Body"]) for m in messages.get("Messages", [])]
    assert [(b["root"], b["path"], b["version"]) for b in bodies] == [("sub", "x.b2nd", 1)]
    # and the region reads the origin bucket in the origin's region
    assert services.region.origin._s3.meta.region_name == "us-east-1"
    assert services.region.dataset("sub", "x.b2nd").version == 1


def test_a_failed_change_event_is_logged_counted_and_the_write_kept(two_regions, caplog, monkeypatch):
    """A publish the topic refuses: the version is committed, the failure logged and a metric emitted."""
    from functions.handlers import common

    gone = "arn:aws:sns:us-east-1:123456789012:no-such-topic"
    services = build_services(Settings(origin_bucket="origin-east", cache_bucket="cache-west", topic_arn=gone))
    result = services.publisher.publish("sub", "y.b2nd", load_object(blosc2.asarray(np.arange(5))))
    assert result.status == "published" and services.publisher.event_failures == 1
    assert "could not emit change event for sub/y.b2nd v1" in caplog.text
    assert services.region.dataset("sub", "y.b2nd").version == 1  # committed; TTL heals the region
    monkeypatch.setattr(common, "_services", services)
    common.metrics.clear_metrics()
    common.report_event_failures(0)
    assert common.metrics.metric_set["EventPublishFailures"]["Value"] == [1.0]
    common.metrics.clear_metrics()
