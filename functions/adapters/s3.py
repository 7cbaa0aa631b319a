"""The S3 adapters: the blob-store port (:class:`S3Store`) and the staging port (:class:`S3Staging`).

The only module that calls boto3's S3 API on the server side.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator

from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
from botocore.exceptions import ConnectionError as BotoConnectionError

from functions.engine.errors import NotFound, PreconditionFailed, StoreUnavailable
from functions.engine.ports import Blob, Listing

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
# 409 ConditionalRequestConflict: S3's answer when two conditional writes race
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


log = logging.getLogger(__name__)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _written(last_modified) -> float:
    """An object's write time, POSIX seconds, never earlier than the true one.

    S3 reports ``LastModified`` in whole seconds (HEAD always, listings often):
    count the object as written at the end of that second, so the truncation can
    only make it look younger (kept longer by the collector), never older.
    """
    return last_modified.timestamp() + 1.0


class StallBreaker:
    """Fail S3 calls at once for a while after one timed out, instead of waiting again.

    A stalled S3 endpoint (a network partition, a paused emulator) accepts
    connections and never answers: every call would wait for its full timeout,
    and a request touching many objects would outlive the API's 29 s.  After a
    timeout the breaker *opens*: for ``cooldown`` seconds every call through the
    client raises :class:`StoreUnavailable` before it is sent (botocore's own
    retry of the timed-out call too).  Then one call is let through as a probe
    (the others still fail fast); any answer from S3 closes the breaker.

    Parameters
    ----------
    cooldown : float
        Seconds calls fail fast after a timeout.
    clock : callable
        Monotonic seconds (tests pass a fake).

    """

    def __init__(self, cooldown: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.cooldown = cooldown
        self._clock = clock
        self._until: float | None = None  # None: closed
        self._lock = threading.Lock()

    @property
    def open(self) -> bool:
        """Whether calls fail fast now."""
        with self._lock:
            return self._until is not None and self._clock() < self._until

    def before_call(self, **_) -> None:
        """At botocore's ``before-send``: refuse the call while open; past the cooldown, one call probes."""
        with self._lock:
            if self._until is None:
                return
            now = self._clock()
            if now < self._until:
                wait = self._until - now
                raise StoreUnavailable(f"S3 is not answering (a call timed out); next try in {wait:.0f} s")
            self._until = now + self.cooldown  # this call probes; the others keep failing fast

    def after_call(self, exception=None, **_) -> None:
        """At botocore's ``response-received``: a timeout opens the breaker, any answer closes it."""
        if is_timeout(exception):
            self.trip()
        elif exception is None:
            with self._lock:
                self._until = None

    def trip(self) -> None:
        """Open the breaker for ``cooldown`` seconds (a call timed out)."""
        with self._lock:
            if self._until is None:
                log.warning("S3 call timed out: failing S3 calls fast for %.0f s", self.cooldown)
            self._until = self._clock() + self.cooldown


def is_timeout(exc: BaseException | None) -> bool:
    """Whether *exc* is botocore's connect or read timeout (a stalled endpoint, not a refusal)."""
    return isinstance(exc, ReadTimeoutError | ConnectTimeoutError)


#: The breaker guarding each client (see :func:`guard`); a client's stores share it
_BREAKERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def guard(client, cooldown: float = 5.0) -> StallBreaker:
    """Attach a :class:`StallBreaker` to a boto3 S3 *client* (once; returns the one it has)."""
    breaker = _BREAKERS.get(client)
    if breaker is None:
        breaker = StallBreaker(cooldown)
        client.meta.events.register("before-send.s3", breaker.before_call)
        client.meta.events.register("response-received.s3", breaker.after_call)
        _BREAKERS[client] = breaker
    return breaker


def _unavailable(client, message: str, err: BaseException) -> StoreUnavailable:
    """*err* as :class:`StoreUnavailable`; a timeout (also one reading a body) trips the client's breaker."""
    breaker = _BREAKERS.get(client)
    if breaker is not None and is_timeout(err):
        breaker.trip()
    return StoreUnavailable(f"{message}: {err}")


class S3Store:
    """A bucket seen through the :class:`~functions.engine.ports.BlobStore` port.

    Parameters
    ----------
    client : botocore S3 client
        Built once by the caller (at cold start) and shared; boto3 clients are
        thread-safe, which the parallel read path relies on.
    bucket : str
        Bucket name.

    """

    def __init__(self, client, bucket: str) -> None:
        self._s3 = client
        self.name = bucket

    def _call(self, method: str, key: str, **kwargs):
        try:
            return getattr(self._s3, method)(Bucket=self.name, Key=key, **kwargs)
        except ClientError as err:
            code = _code(err)
            if code in _NOT_FOUND:
                raise NotFound(f"s3://{self.name}/{key}") from None
            if code in _CONFLICT:
                raise PreconditionFailed(f"s3://{self.name}/{key}: {code}") from None
            if code in {"NoSuchBucket", "SlowDown", "ServiceUnavailable", "InternalError", "503", "500"}:
                raise StoreUnavailable(f"s3://{self.name}: {code}") from err
            raise
        except (BotoConnectionError, BotoCoreError) as err:
            raise _unavailable(self._s3, f"s3://{self.name} unreachable", err) from err

    def warm(self) -> None:
        """One HEAD of the bucket: the client's first-call set-up and a pooled connection, now.

        Errors are ignored (only a warm-up: the call that needs the bucket reports them).
        """
        try:
            self._s3.head_bucket(Bucket=self.name)
        except Exception:  # noqa: BLE001 - see above
            log.debug("warming s3://%s failed", self.name, exc_info=True)

    def get(self, key: str) -> Blob:
        resp = self._call("get_object", key)
        try:
            data = resp["Body"].read()
        except (BotoConnectionError, BotoCoreError) as err:
            raise _unavailable(self._s3, f"s3://{self.name}/{key}", err) from err
        return Blob(data, resp["ETag"])

    def put(self, key, data, *, if_match=None, if_none_match=False, content_type="application/octet-stream"):
        kwargs = {"Body": bytes(data), "ContentType": content_type}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        return self._call("put_object", key, **kwargs)["ETag"]

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", key)
        except NotFound:
            return False
        return True

    def size(self, key: str) -> int:
        return int(self._call("head_object", key)["ContentLength"])

    def fetch_to(self, key: str, path: str) -> int:
        # download_file streams in parts (8 MB, several in parallel): memory stays bounded
        try:
            self._s3.download_file(self.name, key, path)
        except ClientError as err:
            if _code(err) in _NOT_FOUND:
                raise NotFound(f"s3://{self.name}/{key}") from None
            raise StoreUnavailable(f"s3://{self.name}/{key}: {_code(err)}") from err
        except (BotoConnectionError, BotoCoreError) as err:
            raise _unavailable(self._s3, f"s3://{self.name}/{key} unreachable", err) from err
        return os.path.getsize(path)

    def delete(self, key: str) -> None:
        self._call("delete_object", key)

    def list(self, prefix: str, start_after: str = "") -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        after = {"StartAfter": start_after} if start_after else {}
        try:
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix, **after):
                for obj in page.get("Contents", ()):
                    yield obj["Key"]
        except (BotoConnectionError, BotoCoreError) as err:
            raise _unavailable(self._s3, f"s3://{self.name} unreachable", err) from err

    def presign_get(self, key: str, expires: int) -> str | None:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.name, "Key": key}, ExpiresIn=int(expires)
        )

    def scan(self, prefix: str) -> Iterator[Listing]:
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
                for obj in page.get("Contents", ()):
                    yield Listing(obj["Key"], int(obj["Size"]), _written(obj["LastModified"]))
        except ClientError as err:
            raise StoreUnavailable(f"s3://{self.name}: {_code(err)}") from err
        except (BotoConnectionError, BotoCoreError) as err:
            raise StoreUnavailable(f"s3://{self.name} unreachable: {err}") from err

    def delete_if_older(self, key: str, cutoff: float) -> bool:
        # S3 has no delete conditional on age: HEAD, then DELETE the very version the HEAD
        # saw. In a versioned bucket a rewrite in between (a publisher re-storing a chunk it
        # needs) is another version and survives; unversioned, that one round trip is the
        # window docs/deploy.md ("Garbage collection") describes.
        try:
            meta = self._call("head_object", key)
        except NotFound:
            return False
        if _written(meta["LastModified"]) > cutoff:
            return False
        version = meta.get("VersionId")
        self._call("delete_object", key, **({"VersionId": version} if version else {}))
        return True


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

    def presign_put(self, key: str, expires: int, size: int) -> str:
        """A URL that PUTs *key* for *expires* seconds (the caller's own credentials sign it).

        ``Content-Length`` is one of the signed headers (SigV4): S3 refuses a PUT
        of any other length, so the URL cannot stage more than *size* bytes.
        """
        return self._s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentLength": int(size)},
            ExpiresIn=int(expires),
        )

    def size(self, key: str) -> int:
        """Bytes of a staged object (``NotFound`` if absent; errors mapped like every store call)."""
        return self._store.size(key)

    def read(self, key: str) -> bytes:
        """A staged object's bytes."""
        return self._store.get(key).data

    def delete(self, key: str) -> None:
        """Remove a staged object."""
        self._store.delete(key)
