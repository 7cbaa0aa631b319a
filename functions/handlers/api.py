"""API function: the FastAPI app through Mangum, built once at cold start."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit

from functions.handlers.common import in_lambda_init, logger, metrics, report_event_failures, services, tracer

_handler = None


def make_handler(services):
    """A Mangum handler over the app built from *services* (local stack and tests)."""
    from mangum import Mangum

    from functions.api.app import create_app

    return Mangum(create_app(services), lifespan="off")


@logger.inject_lambda_context(correlation_id_path="requestContext.requestId", clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    """Lambda entry point (API Gateway HTTP API, payload v2)."""
    global _handler
    if _handler is None:
        _handler = make_handler(services())
    failures = services().publisher.event_failures
    response = _handler(event, context)
    record_cache_metrics(response.get("headers") or {})
    report_event_failures(failures)
    return response


def record_cache_metrics(headers: dict) -> None:
    """Emit the ``X-Cat-Cache`` figures of a data response as metrics."""
    value = {k.lower(): v for k, v in headers.items()}.get("x-cat-cache")
    if not value:
        return
    figures = dict(part.split("=", 1) for part in value.split() if "=" in part)
    metrics.add_metric(name="CacheHits", unit=MetricUnit.Count, value=int(figures.get("hits", 0)))
    metrics.add_metric(name="CacheMisses", unit=MetricUnit.Count, value=int(figures.get("misses", 0)))
    metrics.add_metric(name="OriginBytes", unit=MetricUnit.Bytes, value=int(figures.get("origin-bytes", 0)))


if in_lambda_init():
    # Lambda's init phase: clients, settings and the app are built before the first request
    _handler = make_handler(services())
