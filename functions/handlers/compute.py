"""Compute function: evaluate a lazy expression's slice, or reduction partials, on demand."""

from __future__ import annotations

from functions.engine.compute import handle, jsonable
from functions.handlers.common import in_lambda_init, logger, metrics, services, tracer


def process(region, event: dict) -> dict:
    """Run one compute event; bad input comes back as ``{"status": 4xx, "error"}``, never a crash."""
    answer = handle(region, event)
    log = logger.info if answer.get("status") == 200 else logger.warning
    log(
        "compute",
        op=event.get("op"),
        status=answer.get("status"),
        error=answer.get("error"),
        cache=answer.get("cache"),
    )
    return jsonable(answer)  # a Lambda answer is JSON: the result frame as base64


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    """Lambda entry point (invoked by the API function with ``lambda:InvokeFunction``)."""
    return process(services().region, event)


if in_lambda_init():
    services()  # Lambda's init phase: settings and clients built before the first event
