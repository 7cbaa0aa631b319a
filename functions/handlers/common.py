"""Powertools objects shared by the handlers (Logger, Tracer, Metrics), built once."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "caterva-serverless")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "CatervaServerless")

logger = Logger(service=SERVICE)
# Tracing needs the X-Ray daemon; off unless Lambda turned it on for us
tracer = Tracer(service=SERVICE, disabled=not os.environ.get("AWS_XRAY_DAEMON_ADDRESS"))
metrics = Metrics(service=SERVICE, namespace=NAMESPACE)
