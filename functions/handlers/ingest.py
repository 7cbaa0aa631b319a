"""Ingest function: S3 ObjectCreated notifications on the ingest queue (SQS) → publish into the origin."""

from __future__ import annotations

import json

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event

from functions.engine.ingest import IngestOutcome, ingest_objects
from functions.handlers.common import (
    RecordFailed,
    in_lambda_init,
    logger,
    metrics,
    partial_batch,
    services,
    tracer,
)


def object_keys(body: str, bucket: str) -> tuple[list[str], list[str]]:
    """Raw keys of the ObjectCreated records for *bucket* in one SQS message body, and ignored ones.

    The body is S3's notification (``{"Records": [...]}``), or the ``s3:TestEvent`` S3
    sends when the notification is configured (no records). Raises ``ValueError`` for a
    body that is neither: such a message is failed, retried and parked in the DLQ.
    """
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("not an S3 notification")
    if message.get("Event") == "s3:TestEvent":
        return [], []
    if not isinstance(message.get("Records"), list):
        raise ValueError("not an S3 notification: no Records")
    keys, ignored = [], []
    for record in S3Event(message).records:
        try:
            name, key = record.s3.bucket.name, record.s3.get_object.key
            event_name = record.event_name
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed S3 record: {exc!r}") from None
        if name != bucket or not event_name.startswith("ObjectCreated"):
            ignored.append(f"{name}/{key} ({event_name})")
        else:
            keys.append(key)
    return keys, ignored


def _log(outcome: IngestOutcome) -> None:
    if outcome.skipped:
        logger.debug("staged upload, committed by the API", key=outcome.key)
    elif outcome.ok:
        logger.info("ingested", key=outcome.key, status=outcome.result.status, version=outcome.result.version)
    elif outcome.retry:
        logger.warning("ingest failed, to be retried", key=outcome.key, error=outcome.error)
    else:
        logger.warning("rejected", key=outcome.key, error=outcome.error)


def process(publisher, drop, event: dict, context=None) -> dict:
    """Publish the objects of an SQS batch of S3 notifications; the partial batch response.

    All the batch's objects are published together (one catalog merge per root,
    :func:`~functions.engine.ingest.ingest_objects`); then each SQS record is failed
    only if one of its objects failed in a way worth retrying, or it was unreadable.
    A rejected drop (bad path, not Blosc2) is logged and counted, not retried: it would
    fail again.
    """
    per_message: dict[str, list[str] | Exception] = {}
    for record in event.get("Records") or []:
        try:
            keys, ignored = object_keys(record["body"], drop.name)
        except (ValueError, KeyError, TypeError) as exc:
            per_message[record.get("messageId", "")] = exc
            continue
        for text in ignored:
            logger.warning("ignored record", record=text)
        per_message[record["messageId"]] = keys
    all_keys = [k for keys in per_message.values() if isinstance(keys, list) for k in keys]
    outcomes = iter(ingest_objects(publisher, drop, all_keys))
    results = {
        mid: keys if isinstance(keys, Exception) else [next(outcomes) for _ in keys]
        for mid, keys in per_message.items()
    }
    flat = [o for r in results.values() if isinstance(r, list) for o in r]
    for o in flat:
        _log(o)
    metrics.add_metric(name="IngestPublished", unit=MetricUnit.Count, value=sum(o.ok for o in flat))
    metrics.add_metric(
        name="IngestRejected", unit=MetricUnit.Count, value=sum(not o.ok and not o.skipped for o in flat)
    )

    def outcome_of(record) -> None:
        got = results.get(record.message_id)
        if isinstance(got, Exception):
            logger.warning("unreadable ingest message", message_id=record.message_id, error=str(got))
            raise RecordFailed(str(got))
        failed = [o.key for o in got or [] if o.retry]
        if failed:
            raise RecordFailed(f"to retry: {failed}")

    return partial_batch(event, outcome_of, context)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    """Lambda entry point (SQS event source of the ingest queue, ``ReportBatchItemFailures``)."""
    built = services()
    if built.drop is None:
        raise RuntimeError("CAT_INGEST_BUCKET is not set: which bucket does this function ingest from?")
    return process(built.publisher, built.drop, event, context)


if in_lambda_init():
    services()  # Lambda's init phase: settings and clients built before the first event
