"""Sync function: SNS change events → this region's cache (idempotent)."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SNSEvent, SQSEvent

from functions.engine.sync import apply_messages
from functions.handlers.common import in_lambda_init, logger, metrics, services, tracer


def message_bodies(event: dict) -> list[str]:
    """SNS records directly, or SNS envelopes inside SQS records (the local stack's wiring)."""
    records = event.get("Records") or []
    if records and records[0].get("EventSource", records[0].get("eventSource")) == "aws:sqs":
        import json

        return [json.loads(r.body).get("Message", "") for r in SQSEvent(event).records]
    return [r.sns.message for r in SNSEvent(event).records]


def process(region, event: dict) -> dict:
    """Apply the event's messages to *region*; log and count outcomes."""
    outcomes = apply_messages(region, message_bodies(event))
    for o in outcomes:
        (logger.warning if o.status == "rejected" else logger.info)(
            "change event", status=o.status, detail=o.detail
        )
    for status in ("applied", "ignored", "rejected"):
        metrics.add_metric(
            name=f"SyncEvents{status.title()}",
            unit=MetricUnit.Count,
            value=sum(o.status == status for o in outcomes),
        )
    return {"outcomes": [o.__dict__ for o in outcomes]}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    """Lambda entry point."""
    return process(services().region, event)


if in_lambda_init():
    services()  # Lambda's init phase: settings and clients built before the first event
