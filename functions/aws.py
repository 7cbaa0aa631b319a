"""Composition root on AWS (or moto/LocalStack): boto3 clients → adapters → services; wiring only.

Built once per process (Lambda cold start, or local stack start-up) and passed in.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import boto3
from botocore.config import Config

from functions.adapters.s3 import S3Staging, S3Store, guard
from functions.adapters.sns import SnsSink
from functions.adapters.url_fetch import UrlDownloader
from functions.engine.ports import EventSink
from functions.engine.publish import Publisher
from functions.engine.region import Region
from functions.engine.validation import FrameLimits
from functions.settings import Settings

if TYPE_CHECKING:
    from functions.services import Services


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
        # Everything inside the API's 29 s: a stalled S3 costs one wait of ~3 s, after
        # which the client's StallBreaker fails calls (and botocore's one retry) at once
        retries={"total_max_attempts": 2, "mode": "standard"},
        connect_timeout=2,
        read_timeout=3,
    )


#: What a local emulator (moto, LocalStack) gets when nothing is configured: both accept any
#: credentials, and moto's resources live in us-east-1 unless told otherwise.
EMULATOR_REGION = "us-east-1"
EMULATOR_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def is_loopback(endpoint_url: str | None) -> bool:
    """Whether *endpoint_url* names this machine (an emulator, never AWS)."""
    if not endpoint_url:
        return False
    host = (urlsplit(endpoint_url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


# One session per endpoint and process: a session loads botocore's service models once,
# and every client made from it shares them (~50 ms per extra session at cold start).
@functools.lru_cache(maxsize=4)
def session(endpoint_url: str | None) -> boto3.Session:
    """The boto3 session every client is made from.

    Against a loopback endpoint, a missing region and missing credentials default to
    the emulator's (so ``cat-publish`` and ``cat-admin`` work against ``make run``
    with nothing but ``AWS_ENDPOINT_URL``); against AWS nothing is invented and
    boto3's usual chain applies.
    """
    if not is_loopback(endpoint_url):
        return boto3.Session()
    env = os.environ
    kwargs = {}
    if not (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")):
        kwargs["region_name"] = EMULATOR_REGION
    # Only the environment is consulted: profiles would name real accounts, never moto's
    if not env.get("AWS_ACCESS_KEY_ID") and not env.get("AWS_PROFILE"):
        kwargs.update(EMULATOR_CREDENTIALS)
    return boto3.Session(**kwargs)


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
    client = session(settings.endpoint_url).client(
        "s3", endpoint_url=settings.endpoint_url, region_name=region, config=s3_config(settings.endpoint_url)
    )
    guard(client, settings.stall_cooldown)
    return client


#: SNS and Cognito calls are small: a stalled endpoint must not hold a request past the API's 29 s
SMALL_CALLS = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 2, "mode": "standard"})


def sns_client(settings: Settings):
    """An SNS client in the topic's region (a subscriber stack's topic lives in the origin's region)."""
    region = region_of_arn(settings.topic_arn)
    return session(settings.endpoint_url).client(
        "sns", endpoint_url=settings.endpoint_url, region_name=region, config=SMALL_CALLS
    )


def cognito_client(settings: Settings):
    """A boto3 ``cognito-idp`` client in the user pool's region."""
    from functions.adapters.cognito import pool_region

    return session(settings.endpoint_url).client(
        "cognito-idp",
        endpoint_url=settings.endpoint_url,
        region_name=pool_region(settings.user_pool_id),
        config=SMALL_CALLS,
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


def _origin_client(settings: Settings, s3):
    """The S3 client for the origin bucket: a subscriber stack reads it in the topic's region."""
    origin_region = region_of_arn(settings.topic_arn)
    if origin_region in (None, s3.meta.region_name):
        return s3
    return s3_client(settings, origin_region)


def _event_sink(settings: Settings):
    """(SNS client, sink) for the change topic, or (None, None) without one."""
    if not settings.topic_arn:
        return None, None
    sns = sns_client(settings)
    return sns, SnsSink(sns, settings.topic_arn)


def build_publisher(settings: Settings) -> Publisher:
    """Only what publishing needs (``cat-publish``): the origin store and the event sink.

    No cache, read path, thread pools or authenticator: a publisher writes chunks,
    manifests, heads and catalogs and announces them.
    """
    s3 = s3_client(settings)
    _, events = _event_sink(settings)
    return Publisher(
        S3Store(_origin_client(settings, s3), settings.origin_bucket),
        events,
        frame_limits=frame_limits(settings),
    )


def frame_limits(settings: Settings) -> FrameLimits:
    """The decompressed-size bounds every door applies to frames (uploads, drops, publishes)."""
    return FrameLimits(settings.max_chunk_nbytes, settings.max_upload_nbytes)


def warm(stores) -> threading.Thread:
    """Make each store's first call now, in a daemon thread, not in the first request.

    botocore's first call on a client resolves its endpoint rules and signer, and
    each bucket's host needs a TCP (and TLS) connection: ~12 % and ~14 % of a cold
    first read's time when paid on the request path.  A HEAD of each bucket pays
    both at start-up (on Lambda, in the init phase).  Errors are ignored: the
    request that needs the bucket meets them again and answers them.
    """

    def run() -> None:
        for store in stores:
            store.warm()

    thread = threading.Thread(target=run, daemon=True, name="warm-s3")
    thread.start()
    return thread


def build_services(settings: Settings, *, events: EventSink | None = None) -> Services:
    """Wire adapters and domain objects from *settings*."""
    # Here, not at the top: the publisher's command (cat-publish) needs none of the API's services
    from functions.services import Services

    s3 = s3_client(settings)
    origin = S3Store(_origin_client(settings, s3), settings.origin_bucket)
    cache = S3Store(s3, settings.cache_bucket) if settings.cache_bucket else None
    warm([origin] + ([cache] if cache is not None else []))
    sns = None
    if events is None:
        sns, events = _event_sink(settings)
    region = Region(
        origin,
        cache,
        head_ttl=settings.head_ttl,
        memo_ttl=settings.memo_ttl,
        stale_ttl=settings.stale_ttl,
        lru_bytes=settings.lru_bytes,
    )
    staging_bucket = settings.ingest_bucket or settings.cache_bucket
    return Services(
        settings,
        region,
        Publisher(origin, events, frame_limits=frame_limits(settings)),
        events,
        clients={"s3": s3, "sns": sns},
        auth=build_authenticator(settings),
        staging=S3Staging(s3, staging_bucket) if staging_bucket else None,
        invoker=build_invoker(settings),
        drop=S3Store(s3, settings.ingest_bucket) if settings.ingest_bucket else None,
        downloader=UrlDownloader(s3),
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
    client = session(settings.endpoint_url).client(
        "lambda", endpoint_url=settings.endpoint_url, config=config
    )
    return LambdaInvoker(client, settings.compute_function)
