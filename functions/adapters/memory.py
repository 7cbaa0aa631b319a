"""An in-memory :class:`~functions.engine.ports.BlobStore` for tests and tools."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator

from functions.engine.errors import NotFound, PreconditionFailed
from functions.engine.ports import Blob, Listing


class MemoryStore:
    """A dict of bytes with S3's conditional-write semantics.

    Parameters
    ----------
    name : str
        Stands in for the bucket name in logs and errors.
    clock : callable, optional
        Time of a write (POSIX seconds), what :meth:`scan` reports as ``modified``;
        tests pass a controllable clock to age objects without waiting.

    """

    def __init__(self, name: str = "memory", *, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._clock = clock
        self._objects: dict[str, tuple[bytes, str]] = {}
        self._modified: dict[str, float] = {}
        self._lock = threading.Lock()
        self.puts = 0  # writes that stored something, for tests that count uploads

    def get(self, key: str) -> Blob:
        with self._lock:
            try:
                data, etag = self._objects[key]
            except KeyError:
                raise NotFound(f"{self.name}/{key}") from None
        return Blob(data, etag)

    def put(self, key, data, *, if_match=None, if_none_match=False, content_type="application/octet-stream"):
        data = bytes(data)
        etag = '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'
        with self._lock:
            current = self._objects.get(key)
            if if_none_match and current is not None:
                raise PreconditionFailed(f"{self.name}/{key} exists")
            if if_match is not None and (current is None or current[1] != if_match):
                raise PreconditionFailed(f"{self.name}/{key} changed")
            self._objects[key] = (data, etag)
            self._modified[key] = self._clock()
            self.puts += 1
        return etag

    def exists(self, key: str) -> bool:
        with self._lock:
            return key in self._objects

    def _data(self, key: str) -> bytes:
        with self._lock:
            try:
                return self._objects[key][0]
            except KeyError:
                raise NotFound(f"{self.name}/{key}") from None

    def size(self, key: str) -> int:
        return len(self._data(key))

    def fetch_to(self, key: str, path: str) -> int:
        data = self._data(key)
        with open(path, "wb") as out:
            out.write(data)
        return len(data)

    def delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)
            self._modified.pop(key, None)

    def list(self, prefix: str, start_after: str = "") -> Iterator[str]:
        with self._lock:
            keys = sorted(k for k in self._objects if k.startswith(prefix) and k > start_after)
        yield from keys

    def presign_get(self, key: str, expires: int) -> str | None:
        return None

    def scan(self, prefix: str) -> Iterator[Listing]:
        with self._lock:
            found = [
                Listing(k, len(data), self._modified[k])
                for k, (data, _etag) in self._objects.items()
                if k.startswith(prefix)
            ]
        yield from sorted(found, key=lambda item: item.key)

    def delete_if_older(self, key: str, cutoff: float) -> bool:
        with self._lock:  # check and removal in one step: no rewrite can slip in between
            if key not in self._objects or self._modified[key] > cutoff:
                return False
            del self._objects[key], self._modified[key]
        return True
