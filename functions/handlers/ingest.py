"""Ingest function: S3 ObjectCreated on the ingest bucket → publish into the origin."""

from __future__ import annotations

import json

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, SQSEvent

from functions.engine.ingest import ingest_object
from functions.handlers.common import in_lambda_init, logger, metrics, services, tracer


def object_keys(event: dict, bucket: str) -> tuple[list[str], list[str]]:
    """Raw keys of ObjectCreated records for *bucket* (S3 directly or via SQS), and rejects."""
    records = event.get("Records") or []
    s3_events = []
    if records and records[0].get("eventSource") == "aws:sqs":
        s3_events = [json.loads(r.body) for r in SQSEvent(event).records]
    else:
        s3_events = [event]
    keys, rejected = [], []
    for s3_event in s3_events:
        for record in S3Event(s3_event).records if s3_event.get("Records") else []:
            try:
                if record.s3.bucket.name != bucket or not record.event_name.startswith("ObjectCreated"):
                    rejected.append(f"{record.s3.bucket.name}/{record.s3.get_object.key}")
                    continue
                keys.append(record.s3.get_object.key)
            except (KeyError, TypeError):
                rejected.append("malformed record")
    return keys, rejected


def process(publisher, drop, event: dict) -> dict:
    """Publish each dropped object; a bad one is logged and skipped, never the batch."""
    keys, rejected = object_keys(event, drop.name)
    for r in rejected:
        logger.warning("ignored record", record=r)
    outcomes = [ingest_object(publisher, drop, k) for k in keys]
    for o in outcomes:
        if o.skipped:
            logger.debug("staged upload, committed by the API", key=o.key)
        elif o.ok:
            logger.info("ingested", key=o.key, status=o.result.status, version=o.result.version)
        else:
            logger.warning("rejected", key=o.key, error=o.error)
    metrics.add_metric(name="IngestPublished", unit=MetricUnit.Count, value=sum(o.ok for o in outcomes))
    metrics.add_metric(
        name="IngestRejected",
        unit=MetricUnit.Count,
        value=len(rejected) + sum(not o.ok and not o.skipped for o in outcomes),
    )
    return {
        "published": [o.key for o in outcomes if o.ok],
        "rejected": [o.key for o in outcomes if not o.ok and not o.skipped],
    }


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    """Lambda entry point."""
    built = services()
    if built.drop is None:
        raise RuntimeError("CAT_INGEST_BUCKET is not set: which bucket does this function ingest from?")
    return process(built.publisher, built.drop, event)


if in_lambda_init():
    services()  # Lambda's init phase: settings and clients built before the first event
