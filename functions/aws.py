"""Composition root on AWS (or moto/LocalStack): boto3 clients → adapters → services.

Built once per process (Lambda cold start, or local stack start-up) and passed in.
"""

from __future__ import annotations

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from functions.engine.events import EventSink, NullSink
from functions.engine.publish import Publisher
from functions.engine.reader import Region
from functions.events_sns import SnsSink
from functions.services import Services
from functions.settings import Settings
from functions.storage.ports import NotFound
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


class S3Staging:
    """The staging port of large uploads over a bucket: presigned PUTs, then read once and deleted.

    Parameters
    ----------
    client : botocore S3 client
        Shared, built at cold start.
    bucket : str
        The ingest bucket (origin stacks) or, without one, this region's cache bucket.

    """

    def __init__(self, client, bucket: str) -> None:
        self._s3 = client
        self._store = S3Store(client, bucket)
        self.bucket = bucket

    def presign_put(self, key: str, expires: int) -> str:
        """A URL that PUTs *key* for *expires* seconds (the caller's own credentials sign it)."""
        return self._s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(expires)
        )

    def size(self, key: str) -> int:
        """Bytes of a staged object (``NotFound`` if absent)."""
        try:
            return int(self._s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"s3://{self.bucket}/{key}") from None
            raise

    def read(self, key: str) -> bytes:
        """A staged object's bytes."""
        return self._store.get(key).data

    def delete(self, key: str) -> None:
        """Remove a staged object."""
        self._store.delete(key)


def cognito_client(settings: Settings):
    """A boto3 ``cognito-idp`` client in the user pool's region."""
    from functions.auth.cognito import pool_region

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
    from functions.auth.cognito import CognitoAuthenticator

    return CognitoAuthenticator(
        cognito_client(settings),
        settings.user_pool_id,
        settings.user_pool_client_id,
        endpoint_url=settings.endpoint_url,
    )


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
    )


def build_invoker(settings: Settings):
    """The compute function through ``lambda.invoke`` when one is configured, else None (in-process)."""
    if not settings.compute_function:
        return None
    from functions.invoke_lambda import LambdaInvoker

    # Reductions fan out: the pool must hold as many connections as parallel invocations;
    # a compute invocation may run up to the API's own 29 s.
    config = Config(
        max_pool_connections=max(10, settings.fanout * 2), read_timeout=30, retries={"max_attempts": 1}
    )
    client = boto3.client("lambda", endpoint_url=settings.endpoint_url, config=config)
    return LambdaInvoker(client, settings.compute_function)
