"""Powertools objects shared by the handlers (Logger, Tracer, Metrics), built once."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "caterva-serverless")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CatervaServerless")


class _NoTracer:
    """Stands in for Powertools' Tracer where nothing would be traced.

    The Tracer imports the X-Ray SDK (~0.23 s here, most of the handler's import
    time) even when disabled; off Lambda, or with ``POWERTOOLS_TRACE_DISABLED``,
    that is cold-start time spent for nothing.
    """

    def capture_lambda_handler(self, *args, **kwargs):  # noqa: D102 - same signature as Tracer's
        def decorate(fn):
            return fn

        return decorate if not args or not callable(args[0]) else args[0]


def _tracing_on() -> bool:
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true", "yes")
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and not disabled


logger = Logger(service=SERVICE)
if _tracing_on():
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service=SERVICE)
else:
    tracer = _NoTracer()
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)

_services = None


def in_lambda_init() -> bool:
    """Whether this import is a Lambda init phase with a configuration to build from.

    Building clients and the app at import time runs them in Lambda's init phase
    (not billed to the first request's latency in the same way, and snapshotted
    by SnapStart); off Lambda (tests, the local stack) nothing is built on import.
    """
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return False
    # Imported only on Lambda, where the build that follows needs the settings anyway
    from functions.settings import configured

    return configured()


def report_event_failures(before: int) -> None:
    """Emit ``EventPublishFailures`` when a write of this invocation could not announce its version."""
    failed = services().publisher.event_failures - before
    if failed > 0:
        from aws_lambda_powertools.metrics import MetricUnit

        metrics.add_metric(name="EventPublishFailures", unit=MetricUnit.Count, value=failed)


def services():
    """The container's services, built from the environment on first use (the cold start)."""
    global _services
    if _services is None:
        from functions.aws import build_services
        from functions.settings import Settings

        _services = build_services(Settings.from_env())
    return _services


class RecordFailed(Exception):
    """One SQS record whose work did not succeed: reported in ``batchItemFailures``, delivered again."""


def partial_batch(event: dict, outcome_of, context=None) -> dict:
    """Run *outcome_of* over each SQS record of *event*; the Lambda partial batch response.

    Powertools' ``BatchProcessor`` calls *outcome_of(record)* for each record (an
    ``SQSRecord``); a record whose call raises is listed in ``batchItemFailures`` and only
    it is delivered again (then parked in the DLQ after the queue's ``maxReceiveCount``),
    never the records that succeeded. A batch whose every record failed is answered the
    same way rather than raised: the retry is identical, and no invocation error is
    counted for what the DLQ alarm reports. A processor per call: the local stack runs
    handlers of several queues in threads at once.
    """
    if not event.get("Records"):
        return {"batchItemFailures": []}  # Powertools refuses an empty batch; Lambda never sends one
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(
        event=event, record_handler=outcome_of, processor=processor, context=context
    )
