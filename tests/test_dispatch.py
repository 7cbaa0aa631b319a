"""The local dispatcher: Lambda-shaped SQS batches, partial batch failures honoured, redrive to the DLQ."""

from __future__ import annotations

import json
import threading
import time

import boto3

from infra.dispatch import drain, start_dispatcher


def _queue_with_dlq(sqs, max_receive: int = 2) -> tuple[str, str]:
    dlq = sqs.create_queue(QueueName="events-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})
    url = sqs.create_queue(QueueName="events", Attributes={"RedrivePolicy": redrive})["QueueUrl"]
    return url, dlq


def test_batches_are_lambda_shaped_and_only_failed_records_come_back(aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    url, dlq = _queue_with_dlq(sqs)
    for body in ("good-1", "bad", "good-2"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    seen: list[dict] = []

    def handler(event):
        seen.append(event)
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"
            ]
        }

    assert drain(sqs, url, handler, visibility_timeout=0) == 3
    (event,) = seen
    record = event["Records"][0]
    # the fields Lambda's SQS records carry (Powertools' SQSRecord reads them)
    assert {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    } <= set(record)
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":events")
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    # only the failed record is delivered again, then it is parked in the DLQ (maxReceiveCount 2)
    assert drain(sqs, url, handler, visibility_timeout=0) == 1
    assert [r["body"] for r in seen[1]["Records"]] == ["bad"]
    assert seen[1]["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert drain(sqs, url, handler, visibility_timeout=0) == 0
    parked = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in parked] == ["bad"]


def test_a_handler_that_raises_fails_the_whole_batch(aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    url, _ = _queue_with_dlq(sqs, max_receive=5)
    sqs.send_message(QueueUrl=url, MessageBody="x")
    sqs.send_message(QueueUrl=url, MessageBody="y")

    def broken(event):
        raise RuntimeError("handler bug")

    assert drain(sqs, url, broken, visibility_timeout=0) == 2
    got = []
    assert drain(sqs, url, lambda ev: got.extend(r["body"] for r in ev["Records"]), visibility_timeout=0) == 2
    assert sorted(got) == ["x", "y"]  # delivered again, both; a None answer = no failures
    assert drain(sqs, url, lambda ev: None, visibility_timeout=0) == 0


class CountingSQS:
    """An SQS client that counts ``ReceiveMessage`` calls (what an idle dispatcher costs)."""

    def __init__(self, sqs) -> None:
        self.sqs, self.receives = sqs, 0

    def receive_message(self, **kw):
        self.receives += 1
        return self.sqs.receive_message(**kw)

    def __getattr__(self, name):
        return getattr(self.sqs, name)


def test_an_idle_dispatcher_long_polls_and_still_delivers_at_once(aws):
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="idle")["QueueUrl"]
    counting, got, stop = CountingSQS(sqs), [], threading.Event()
    arrived = threading.Event()

    def handler(event):
        got.extend(r["body"] for r in event["Records"])
        arrived.set()

    thread = start_dispatcher(counting, url, handler, stop, wait_seconds=1)
    try:
        time.sleep(1.5)
        # 50 ms polling would have made ~30 receives by now; long polls of 1 s make 2
        assert counting.receives <= 3
        sent = time.monotonic()
        sqs.send_message(QueueUrl=url, MessageBody="hello")
        assert arrived.wait(5)
        # delivered while a receive was waiting, not at the end of a poll interval
        assert time.monotonic() - sent < 0.9
        assert got == ["hello"]
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
