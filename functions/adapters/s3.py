"""The S3 adapters: the blob-store port (:class:`S3Store`) and the staging port (:class:`S3Staging`).

The only module that calls boto3's S3 API on the server side.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from functions.engine.errors import NotFound, PreconditionFailed, StoreUnavailable
from functions.engine.ports import Blob, Listing

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
# 409 ConditionalRequestConflict: S3's answer when two conditional writes race
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _written(last_modified) -> float:
    """An object's write time, POSIX seconds, never earlier than the true one.

    S3 reports ``LastModified`` in whole seconds (HEAD always, listings often):
    count the object as written at the end of that second, so the truncation can
    only make it look younger (kept longer by the collector), never older.
    """
    return last_modified.timestamp() + 1.0


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
            raise StoreUnavailable(f"s3://{self.name} unreachable: {err}") from err

    def get(self, key: str) -> Blob:
        resp = self._call("get_object", key)
        try:
            data = resp["Body"].read()
        except (BotoConnectionError, BotoCoreError) as err:
            raise StoreUnavailable(f"s3://{self.name}/{key}: {err}") from err
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
            raise StoreUnavailable(f"s3://{self.name}/{key} unreachable: {err}") from err
        return os.path.getsize(path)

    def delete(self, key: str) -> None:
        self._call("delete_object", key)

    def list(self, prefix: str) -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.name, Prefix=prefix):
                for obj in page.get("Contents", ()):
                    yield obj["Key"]
        except (BotoConnectionError, BotoCoreError) as err:
            raise StoreUnavailable(f"s3://{self.name} unreachable: {err}") from err

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

    def presign_put(self, key: str, expires: int) -> str:
        """A URL that PUTs *key* for *expires* seconds (the caller's own credentials sign it)."""
        return self._s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=int(expires)
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
