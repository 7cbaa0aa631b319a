"""The local stand-in for Lambda's SQS event source mappings: queues drained into handler code.

On AWS, Lambda polls each queue itself and hands a batch to the function as an SQS event;
locally one thread per queue receives batches and hands them, shaped as Lambda shapes
them, to the same ``process`` functions the Lambda handlers call. As on AWS (with
``ReportBatchItemFailures``), only the records a handler reports in ``batchItemFailures``
stay in the queue, and come back after the visibility timeout; a handler that raises
fails the whole batch. The queues' redrive policy (from template.yaml) parks a record
that keeps failing in its dead-letter queue.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("cat-local")

__all__ = ["drain", "lambda_records", "start_dispatcher"]

Deliver = Callable[[dict], object]

#: Seconds a received batch stays invisible locally. On AWS it is the queue's own timeout
#: (6x the function's); locally a failed record comes back after this, not after 90 minutes.
LOCAL_VISIBILITY_TIMEOUT = 20

#: Seconds one ``ReceiveMessage`` waits for a message (SQS long polling, as Lambda's own
#: pollers do): an idle queue costs one request per this many seconds instead of 20 a
#: second, and a message is still delivered as soon as it arrives. Also how long stopping
#: the stack may wait for a dispatcher thread (they are daemons: nothing waits on them).
LONG_POLL_SECONDS = 2


def lambda_records(messages: list[dict], queue_arn: str, region: str) -> list[dict]:
    """SQS messages (``ReceiveMessage`` output) as the ``Records`` of a Lambda SQS event."""
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": str(int(time.time() * 1000)),
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
            }
            | dict(m.get("Attributes") or {}),
            "messageAttributes": m.get("MessageAttributes") or {},
            "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),  # noqa: S324
            "eventSource": "aws:sqs",
            "eventSourceARN": queue_arn,
            "awsRegion": region,
        }
        for m in messages
    ]


def _failed_ids(response: object) -> set[str]:
    """Message ids a handler's partial batch response reports failed."""
    if not isinstance(response, dict):
        return set()
    return {f.get("itemIdentifier") for f in response.get("batchItemFailures") or [] if isinstance(f, dict)}


def drain(
    sqs, queue_url: str, deliver: Deliver, *, visibility_timeout: int = LOCAL_VISIBILITY_TIMEOUT,
    wait_seconds: int = 0,
) -> int:
    """Deliver one batch (up to 10 messages) from *queue_url*; returns its size.

    *wait_seconds* is SQS's ``WaitTimeSeconds``: how long to wait for a first message
    (0: answer at once, empty or not). The records the handler reports in
    ``batchItemFailures`` are left in the queue (as Lambda leaves them); the others are
    deleted. A handler that raises leaves them all.
    """
    resp = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=10,
        WaitTimeSeconds=wait_seconds,
        VisibilityTimeout=visibility_timeout,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    messages = resp.get("Messages", [])
    if not messages:
        return 0
    arn = _queue_arn(sqs, queue_url)
    try:
        failed = _failed_ids(deliver({"Records": lambda_records(messages, arn, _region(sqs))}))
    except Exception:  # noqa: BLE001 - a handler bug must not stop the dispatcher; it is logged
        log.exception("handler failed on a batch from %s: it will be delivered again", queue_url)
        return len(messages)
    if failed:
        log.warning("%d of %d records from %s failed: delivered again", len(failed), len(messages), queue_url)
    done = [m for m in messages if m["MessageId"] not in failed]
    if done:
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
        )
    return len(messages)


_ARNS: dict[str, str] = {}


def _queue_arn(sqs, queue_url: str) -> str:
    if queue_url not in _ARNS:
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
        _ARNS[queue_url] = attrs["QueueArn"]
    return _ARNS[queue_url]


def _region(sqs) -> str:
    return sqs.meta.region_name or "us-east-1"


def _loop(sqs, queue_url: str, deliver: Deliver, stop: threading.Event, poll_interval: float,
          wait_seconds: int) -> None:
    while not stop.is_set():
        try:
            # A long poll: the wait happens in the queue, not in a loop here
            drain(sqs, queue_url, deliver, wait_seconds=wait_seconds)
        except Exception:  # noqa: BLE001 - moto going away at shutdown, mostly
            if stop.is_set():
                return
            log.exception("dispatcher error on %s", queue_url)
            stop.wait(poll_interval)  # an endpoint that fails at once must not be spun on


def start_dispatcher(
    sqs, queue_url: str, deliver: Deliver, stop: threading.Event, poll_interval: float = 0.05,
    wait_seconds: int = LONG_POLL_SECONDS,
) -> threading.Thread:
    """Start a daemon thread draining *queue_url* into *deliver* until *stop* is set.

    One thread per queue, as Lambda polls each subscription on its own: a region never
    waits for another region's handler (drained in turn, r2 trailed r1 by ~80 ms).

    Parameters
    ----------
    sqs : boto3 SQS client
        Used by this thread only.
    queue_url : str
        The queue to drain.
    deliver : callable
        Called with a Lambda SQS event (``{"Records": [...]}``) per batch; returns the
        partial batch response (``{"batchItemFailures": [{"itemIdentifier": id}, ...]}``).
    stop : threading.Event
        Set to end the loop.
    poll_interval : float
        Seconds to wait after a failed receive before trying again.
    wait_seconds : int
        SQS long-poll wait of each receive (``WaitTimeSeconds``, at most 20).

    Returns
    -------
    threading.Thread
        The started thread.
    """
    thread = threading.Thread(
        target=_loop,
        args=(sqs, queue_url, deliver, stop, poll_interval, wait_seconds),
        daemon=True,
        name="dispatcher",
    )
    thread.start()
    return thread
