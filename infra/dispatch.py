"""The local stand-in for Lambda's event source mappings: SQS queues drained into handler code.

On AWS, Lambda polls each subscription itself; locally one thread per queue receives
batches and hands them, as the ``Records`` of an SQS event, to the same ``process``
functions the Lambda handlers call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("cat-local")

__all__ = ["drain", "start_dispatcher"]

Deliver = Callable[[dict], object]


def drain(sqs, queue_url: str, deliver: Deliver) -> int:
    """Deliver one batch (up to 10 messages) from *queue_url*, then delete it; returns its size.

    A handler that raises is logged and the batch is still deleted: locally there is no
    redrive queue, and a poison message would otherwise come back forever.
    """
    resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    messages = resp.get("Messages", [])
    if not messages:
        return 0
    records = [
        {
            "eventSource": "aws:sqs",
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {},
            "messageAttributes": {},
        }
        for m in messages
    ]
    try:
        deliver({"Records": records})
    except Exception:  # noqa: BLE001 - a handler bug must not stop the dispatcher; it is logged
        log.exception("handler failed on a batch from %s", queue_url)
    sqs.delete_message_batch(
        QueueUrl=queue_url,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
    )
    return len(messages)


def _loop(sqs, queue_url: str, deliver: Deliver, stop: threading.Event, poll_interval: float) -> None:
    while not stop.is_set():
        try:
            busy = drain(sqs, queue_url, deliver)
        except Exception:  # noqa: BLE001 - moto going away at shutdown, mostly
            if stop.is_set():
                return
            log.exception("dispatcher error on %s", queue_url)
            busy = 0
        if not busy:
            stop.wait(poll_interval)


def start_dispatcher(
    sqs, queue_url: str, deliver: Deliver, stop: threading.Event, poll_interval: float = 0.05
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
        Called with an SQS event (``{"Records": [...]}``) per batch.
    stop : threading.Event
        Set to end the loop.
    poll_interval : float
        Seconds to wait after finding the queue empty.

    Returns
    -------
    threading.Thread
        The started thread.
    """
    thread = threading.Thread(
        target=_loop, args=(sqs, queue_url, deliver, stop, poll_interval), daemon=True, name="dispatcher"
    )
    thread.start()
    return thread
