"""Cache-bucket copies written off the request path, and what a region knows it has (not) copied.

A cold read used to write each object it fetched from the origin (head copy,
manifest, chunks) into the region's cache bucket before answering: three
sequential PUTs on the way of a small read.  :class:`CopyWriter` writes them
after the answer instead, from a small bounded pool.  The copies are an
optimisation: one that is dropped (the backlog is full) or lost (a Lambda
container recycled before its pool ran) is made again by the next read or by
the event sync.

:class:`ColdSet` remembers, for a short while, the manifests a region read
while their head had no copy in its cache bucket: the region has never served
that version, so its manifest and chunks are not in the cache bucket either,
and asking the bucket first would only add a miss to each sequential step.
:class:`KnownSet` is the other side: chunk keys seen in the cache bucket.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from functions.engine.errors import StoreUnavailable
from functions.engine.ports import BlobStore

log = logging.getLogger(__name__)

#: Bytes of copies waiting to be written; past it a copy is dropped (the next read makes it).
BACKLOG_BYTES = 64 << 20
#: Threads writing copies: S3 PUT latency, not CPU, is what they wait on.
WRITERS = 4


class CopyWriter:
    """Writes cache-bucket copies in the background, at most :data:`BACKLOG_BYTES` pending.

    Parameters
    ----------
    store : BlobStore
        The region's cache bucket.
    backlog_bytes : int
        Bound of the bytes queued and not yet written.
    workers : int
        Parallel writes.

    """

    def __init__(self, store: BlobStore, *, backlog_bytes: int = BACKLOG_BYTES,
                 workers: int = WRITERS) -> None:
        self.store = store
        self.backlog_bytes = backlog_bytes
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cache-copies")
        self._pending = 0
        self._inflight = 0
        self._lock = threading.Condition()
        self.dropped = 0
        self.written = 0

    def put(self, key: str, data: bytes, on_done: Callable[[], None] | None = None) -> bool:
        """Queue a copy of *data* at *key*; *on_done* runs once it is written.

        Returns
        -------
        bool
            False when the backlog is full and the copy was dropped.

        """
        size = len(data)
        with self._lock:
            if self._pending + size > self.backlog_bytes and self._inflight:
                self.dropped += 1
                log.info("cache copy backlog full (%d bytes): not copying %s now", self._pending, key)
                return False
            self._pending += size
            self._inflight += 1
        self._pool.submit(self._write, key, data, on_done)
        return True

    def _write(self, key: str, data: bytes, on_done: Callable[[], None] | None) -> None:
        try:
            self.store.put(key, data)
            if on_done is not None:
                on_done()
            with self._lock:
                self.written += 1
        except StoreUnavailable:
            log.warning("cache bucket unavailable; not caching %s", key)
        except Exception:  # noqa: BLE001 - a background copy must never take the process down
            log.exception("copying %s into the cache bucket failed", key)
        finally:
            with self._lock:
                self._pending -= len(data)
                self._inflight -= 1
                self._lock.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued copy is written (tests, shutdown); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._inflight:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._lock.wait(left)
        return True


class ColdSet:
    """Keys remembered for *ttl* seconds, at most *max_items* of them (oldest forgotten first).

    Parameters
    ----------
    ttl : float
        Seconds a key is remembered: past it, another process may have copied
        what the key stands for, and the cache bucket is asked again.
    max_items : int
        Bound of the keys held.

    """

    def __init__(self, ttl: float = 30.0, max_items: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_items = max_items
        self._clock = clock
        self._items: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        """Remember *key* from now."""
        with self._lock:
            self._items[key] = self._clock()
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            since = self._items.get(key)
            if since is None:
                return False
            if self._clock() - since >= self.ttl:
                del self._items[key]
                return False
            return True


class KnownSet:
    """A bounded, thread-safe set of recently seen keys (oldest forgotten first)."""

    def __init__(self, max_items: int) -> None:
        self.max_items = max_items
        self._items: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._items

    def add(self, key: str) -> None:
        """Remember *key*, forgetting the oldest beyond the bound."""
        with self._lock:
            self._items[key] = None
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
