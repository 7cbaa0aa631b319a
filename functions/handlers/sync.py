"""Sync function: change events (SNS → this region's SQS queue) → this region's cache (idempotent)."""

from __future__ import annotations

import json

from aws_lambda_powertools.metrics import MetricUnit

from functions.engine.healing import heal_all
from functions.engine.sync import apply_message
from functions.handlers.common import (
    RecordFailed,
    in_lambda_init,
    logger,
    metrics,
    partial_batch,
    services,
    tracer,
)


def message_body(sqs_body: str) -> str:
    """The change event inside an SQS record's body: the SNS envelope's ``Message`` (raw delivery off)."""
    try:
        envelope = json.loads(sqs_body)
        return envelope["Message"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"not an SNS notification: {exc!r}") from None


def process(region, event: dict, context=None) -> dict:
    """Apply each SQS record's change event to *region*; the partial batch response.

    A record that is not a change event, or whose application failed (the origin or
    the cache bucket unreachable), is failed alone: retried, then parked in the DLQ.
    """
    subscribed = region.subscriptions()
    counts = {"applied": 0, "ignored": 0, "rejected": 0}

    def outcome_of(record) -> None:
        try:
            outcome = apply_message(region, message_body(record.body), subscribed)
        except ValueError as exc:
            counts["rejected"] += 1
            logger.warning("change event", status="rejected", detail=str(exc))
            raise RecordFailed(str(exc)) from None
        except Exception:
            logger.exception("change event not applied, to be retried", message_id=record.message_id)
            raise
        counts[outcome.status] += 1
        logger.info("change event", status=outcome.status, detail=outcome.detail)

    response = partial_batch(event, outcome_of, context)
    for status, value in counts.items():
        metrics.add_metric(name=f"SyncEvents{status.title()}", unit=MetricUnit.Count, value=value)
    return response


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    """Lambda entry point (SQS event source of this region's sync queue, ``ReportBatchItemFailures``).

    A scheduled event (EventBridge, ``"source": "aws.events"``) instead compares every
    root's applied feed position with the origin and heals the roots behind.
    """
    if isinstance(event, dict) and event.get("source") == "aws.events":
        healed = heal_all(services().region)
        logger.info("feed heal", roots={root: h.changes for root, h in healed.items()})
        return {"healed": {root: h.changes for root, h in healed.items()}}
    return process(services().region, event, context)


if in_lambda_init():
    services()  # Lambda's init phase: settings and clients built before the first event
