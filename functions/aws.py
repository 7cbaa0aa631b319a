"""Composition root on AWS (or moto/LocalStack): boto3 clients → adapters → services; wiring only.

Built once per process (Lambda cold start, or local stack start-up) and passed in.
"""

from __future__ import annotations

import boto3
from botocore.config import Config

from functions.adapters.s3 import S3Staging, S3Store
from functions.adapters.sns import SnsSink
from functions.engine.ports import EventSink
from functions.engine.publish import Publisher
from functions.engine.region import Region
from functions.services import Services
from functions.settings import Settings


def s3_config(endpoint_url: str | None) -> Config:
    """How every S3 client of the functions talks to S3.

    SigV4 always: botocore presigns with SigV2 unless told otherwise, and S3
    refuses SigV2 on buckets created after June 2020, so read plans and
    presigned uploads would fail on AWS while moto accepts them.  Virtual-hosted
    addressing on AWS (path style is deprecated there); path style for an
    emulator endpoint (moto, LocalStack), whose bucket names do not resolve as
    host names.
    """
    return Config(
        signature_version="s3v4",
        s3={"addressing_style": "path" if endpoint_url else "virtual"},
        # Parallel chunk GETs share one client: its pool must be at least as large
        # as the read path's thread pool or requests queue for connections.
        max_pool_connections=64,
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=3,
        read_timeout=20,
    )


def region_of_arn(arn: str) -> str | None:
    """The region field of an ARN (``arn:aws:sns:us-east-1:123:topic`` → ``us-east-1``), or None."""
    parts = arn.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        return None
    return parts[3] or None


def s3_client(settings: Settings, region: str | None = None):
    """A boto3 S3 client (honours ``AWS_ENDPOINT_URL`` through ``settings.endpoint_url``).

    *region* is the buckets' region when it is not the function's own: SigV4
    signatures name the region, and a URL signed for another one is refused.
    """
    return boto3.client(
        "s3", endpoint_url=settings.endpoint_url, region_name=region, config=s3_config(settings.endpoint_url)
    )


def sns_client(settings: Settings):
    """An SNS client in the topic's region (a subscriber stack's topic lives in the origin's region)."""
    region = region_of_arn(settings.topic_arn)
    return boto3.client("sns", endpoint_url=settings.endpoint_url, region_name=region)


def cognito_client(settings: Settings):
    """A boto3 ``cognito-idp`` client in the user pool's region."""
    from functions.adapters.cognito import pool_region

    return boto3.client(
        "cognito-idp", endpoint_url=settings.endpoint_url, region_name=pool_region(settings.user_pool_id)
    )


def build_authenticator(settings: Settings):
    """The Cognito adapter of the auth port, or None without a configured user pool."""
    if not settings.user_pool_id:
        return None
    if not settings.user_pool_client_id:
        raise RuntimeError("CAT_USER_POOL_ID is set but CAT_USER_POOL_CLIENT_ID is not: which app client?")
    # Imported here: PyJWT + cryptography cost cold-start time only where logins exist
    from functions.adapters.cognito import CognitoAuthenticator

    return CognitoAuthenticator(
        cognito_client(settings),
        settings.user_pool_id,
        settings.user_pool_client_id,
        endpoint_url=settings.endpoint_url,
    )


def build_services(settings: Settings, *, events: EventSink | None = None) -> Services:
    """Wire adapters and domain objects from *settings*."""
    s3 = s3_client(settings)
    # A subscriber stack reads the origin bucket in the origin's region (the topic's)
    origin_region = region_of_arn(settings.topic_arn)
    own_region = s3.meta.region_name
    origin_s3 = s3 if origin_region in (None, own_region) else s3_client(settings, origin_region)
    origin = S3Store(origin_s3, settings.origin_bucket)
    cache = S3Store(s3, settings.cache_bucket) if settings.cache_bucket else None
    sns = None
    if events is None and settings.topic_arn:
        sns = sns_client(settings)
        events = SnsSink(sns, settings.topic_arn)
    region = Region(
        origin,
        cache,
        head_ttl=settings.head_ttl,
        memo_ttl=settings.memo_ttl,
        lru_bytes=settings.lru_bytes,
    )
    staging_bucket = settings.ingest_bucket or settings.cache_bucket
    return Services(
        settings,
        region,
        Publisher(origin, events),
        events,
        clients={"s3": s3, "sns": sns},
        auth=build_authenticator(settings),
        staging=S3Staging(s3, staging_bucket) if staging_bucket else None,
        invoker=build_invoker(settings),
        drop=S3Store(s3, settings.ingest_bucket) if settings.ingest_bucket else None,
    )


def build_invoker(settings: Settings):
    """The compute function through ``lambda.invoke`` when one is configured, else None (in-process)."""
    if not settings.compute_function:
        return None
    from functions.adapters.lambda_invoker import LambdaInvoker

    # Reductions fan out: the pool must hold as many connections as parallel invocations;
    # a compute invocation may run up to the API's own 29 s.
    config = Config(
        max_pool_connections=max(10, settings.fanout * 2), read_timeout=30, retries={"max_attempts": 1}
    )
    client = boto3.client("lambda", endpoint_url=settings.endpoint_url, config=config)
    return LambdaInvoker(client, settings.compute_function)
