"""Composition root on AWS (or moto/LocalStack): boto3 clients → adapters → services.

Built once per process (Lambda cold start, or local stack start-up) and passed in.
"""

from __future__ import annotations

import boto3
from botocore.config import Config

from functions.engine.events import EventSink, NullSink
from functions.engine.publish import Publisher
from functions.engine.reader import Region
from functions.events_sns import SnsSink
from functions.services import Services
from functions.settings import Settings
from functions.storage.s3 import S3Store

# Parallel chunk GETs share one client: its pool must be at least as large as the
# read path's thread pool or requests queue for connections.
_S3_CONFIG = Config(
    max_pool_connections=64,
    retries={"max_attempts": 3, "mode": "standard"},
    connect_timeout=3,
    read_timeout=20,
    s3={"addressing_style": "path"},
)


def s3_client(settings: Settings):
    """A boto3 S3 client (honours ``AWS_ENDPOINT_URL`` through ``settings.endpoint_url``)."""
    return boto3.client("s3", endpoint_url=settings.endpoint_url, config=_S3_CONFIG)


def build_services(settings: Settings, *, events: EventSink | None = None) -> Services:
    """Wire adapters and domain objects from *settings*."""
    s3 = s3_client(settings)
    origin = S3Store(s3, settings.origin_bucket)
    cache = S3Store(s3, settings.cache_bucket) if settings.cache_bucket else None
    sns = None
    if events is None:
        if settings.topic_arn:
            sns = boto3.client("sns", endpoint_url=settings.endpoint_url)
            events = SnsSink(sns, settings.topic_arn)
        else:
            events = NullSink()
    region = Region(
        origin,
        cache,
        head_ttl=settings.head_ttl,
        memo_ttl=settings.memo_ttl,
        lru_bytes=settings.lru_bytes,
    )
    return Services(settings, region, Publisher(origin, events), events, clients={"s3": s3, "sns": sns})
