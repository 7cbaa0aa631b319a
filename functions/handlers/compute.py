"""Compute function: evaluate an expression over a slice of its operands, on demand."""

from __future__ import annotations

import base64

from functions.engine.compute import evaluate_request, to_cframe
from functions.engine.errors import BadRequest, DatasetNotFound, OriginUnavailable
from functions.engine.reader import CacheStats
from functions.handlers.common import logger, metrics, tracer

_region = None


def process(region, event: dict) -> dict:
    """Evaluate *event*; errors come back as ``{"error", "status"}`` rather than as a crash."""
    stats = CacheStats()
    try:
        body = to_cframe(evaluate_request(region, event, stats))
    except BadRequest as exc:
        return {"status": 400, "error": str(exc)}
    except DatasetNotFound as exc:
        return {"status": 404, "error": f"not found: {exc}"}
    except OriginUnavailable as exc:
        return {"status": 503, "error": str(exc)}
    logger.info("evaluated", expression=event.get("expression"), cache=stats.header())
    return {"status": 200, "cframe": base64.b64encode(body).decode(), "cache": stats.header()}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event, context):
    """Lambda entry point (invoked by the API function)."""
    global _region
    if _region is None:
        from functions.aws import build_services
        from functions.settings import Settings

        _region = build_services(Settings.from_env()).region
    return process(_region, event)
