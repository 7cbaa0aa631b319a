"""The regional read path (docs/ARCHITECTURE.md, "Read path"): heads, manifests, chunks via a cache bucket.

Chunks are immutable and content-addressed, so a cached chunk is valid forever;
only heads, catalogs and the roots index can go stale.  Their cache-bucket
copies carry the time they were last checked against the origin, are refreshed
by change events (:meth:`Region.apply_event`), and are revalidated after
``head_ttl`` seconds as the safety net for lost events.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from functions.engine import layout
from functions.engine.copies import ColdSet, CopyWriter, KnownSet
from functions.engine.errors import (
    CorruptChunk,
    DatasetNotFound,
    NotFound,
    OriginUnavailable,
    StoreUnavailable,
)
from functions.engine.model import Catalog, ChangeEvent, Head, Manifest, dumps
from functions.engine.ports import BlobStore

log = logging.getLogger(__name__)


@dataclass
class CacheStats:
    """Per-request figures for the ``X-Cat-Cache`` header and metrics."""

    hits: int = 0
    misses: int = 0
    origin_bytes: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, hits: int = 0, misses: int = 0, origin_bytes: int = 0) -> None:
        """Count chunks served from the region, fetched from the origin, and origin bytes."""
        with self._lock:
            self.hits += hits
            self.misses += misses
            self.origin_bytes += origin_bytes

    def header(self) -> str:
        """``hits=H misses=M origin-bytes=B``."""
        return f"hits={self.hits} misses={self.misses} origin-bytes={self.origin_bytes}"


class ByteLRU:
    """A thread-safe LRU bounded by total value bytes (a warm Lambda container keeps it)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        """The value, marked recently used, or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        """Insert, evicting least recently used values beyond the byte bound."""
        if len(value) > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)


def _version(value) -> int:
    """The ``version`` of a head or catalog JSON value (0 for none)."""
    return int(value.get("version", 0)) if isinstance(value, dict) else 0


class Region:
    """One region's view of the data: origin bucket + regional cache bucket.

    Parsed manifests are kept (immutable; up to :attr:`MANIFESTS_KEPT` of them).

    Parameters
    ----------
    origin : BlobStore
        The origin bucket (truth).
    cache : BlobStore or None
        The region's cache bucket; None reads the origin directly.
    head_ttl : float
        Seconds a cache-bucket copy of a head/catalog is trusted before it is
        revalidated against the origin (the safety net for lost events).
    memo_ttl : float
        Seconds this process trusts what it read of a head without asking the
        cache bucket again.  Kept well under a second so events show at once.
    stale_ttl : float
        Seconds a head (or catalog) this process read may still be served when
        neither the cache bucket nor the origin answers (a stall or an outage):
        stale data is served rather than none, within this bound.
    lru_bytes : int
        Bound of the in-process chunk/manifest LRU.
    workers : int
        Parallel chunk fetches; S3 latency (tens of ms) is what they hide.
    background_copies : bool
        Write cache-bucket copies of what a read fetched from the origin after
        the answer (:class:`~functions.engine.copies.CopyWriter`), not before it.
        Copies read plans presign are always written before the plan is sent.

    """

    MANIFESTS_KEPT = 1024

    def __init__(
        self,
        origin: BlobStore,
        cache: BlobStore | None = None,
        *,
        head_ttl: float = 2.0,
        memo_ttl: float = 0.2,
        stale_ttl: float = 300.0,
        lru_bytes: int = 256 << 20,
        workers: int = 32,
        wall: Callable[[], float] = time.time,
        verify_chunks: bool = True,
        background_copies: bool = True,
    ) -> None:
        self.origin = origin
        self.cache = cache
        self.head_ttl = head_ttl
        self.memo_ttl = memo_ttl
        self.stale_ttl = stale_ttl
        self.lru = ByteLRU(lru_bytes)
        self._memo: dict[str, tuple[float, object]] = {}
        self._memo_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chunks")
        self._wall = wall
        self.verify_chunks = verify_chunks
        # Chunk keys this process has seen in the cache bucket.  Chunks are immutable
        # and the bucket never expires c/, so a key seen there stays there: read plans
        # skip their HEAD (100 HEADs were 70 % of a plan for 100 chunks).  At most
        # 200k keys of ~70 bytes; a client falls back to /api/chunk should a GET fail.
        self.in_cache = KnownSet(200_000)
        self._manifests: OrderedDict[str, Manifest] = OrderedDict()
        self._manifest_lock = threading.Lock()
        #: Called with (key, value) when a copy past its TTL was read again from the origin
        #: (``functions.engine.healing.revalidation_hook``); None: nothing more happens
        self.on_revalidate: Callable[[str, object], None] | None = None
        self.copies = CopyWriter(cache) if cache is not None and background_copies else None
        # Manifests (keys) and versions (tags) read while their head had no copy here:
        # their manifest and chunks are not in the cache bucket either (see copies.ColdSet)
        self.cold = ColdSet()

    # ------------------------------------------------------------------ metadata

    def _origin_json(self, key: str):
        try:
            return json.loads(self.origin.get(key).data)
        except NotFound:
            return None
        except StoreUnavailable as exc:
            raise OriginUnavailable(str(exc)) from exc

    def _write_copy(self, key: str, value, *, background: bool = False) -> None:
        body = dumps({"validated_at": self._wall(), "value": value})
        if background and self.copies is not None:
            self.copies.put(key, body)
            return
        try:
            self.cache.put(key, body)
        except StoreUnavailable:
            log.warning("cache bucket unavailable; not caching %s", key)

    def _copy(self, key: str, data: bytes, *, now: bool) -> None:
        """A cache-bucket copy of an immutable object; *now* (a plan will presign it): before returning."""
        if self.copies is not None and not now:
            self.copies.put(key, data, on_done=lambda: self.in_cache.add(key))
            return
        try:
            self.cache.put(key, data)
            self.in_cache.add(key)
        except StoreUnavailable:
            log.warning("cache bucket unavailable; not caching %s", key)

    def _meta(self, key: str, *, fresh: bool = False):
        """JSON at *key*: memo → cache-bucket copy (within TTL) → origin (and copy it)."""
        now = time.monotonic()
        with self._memo_lock:
            hit = self._memo.get(key)
        if not fresh and hit is not None and now - hit[0] < self.memo_ttl:
            return hit[1]
        try:
            value = self._meta_uncached(key, fresh)
        except (OriginUnavailable, StoreUnavailable) as exc:
            return self._stale(key, hit, now, exc)
        with self._memo_lock:
            held = self._memo.get(key)
            # A local write learned while this read was in flight (versions only grow, deletes
            # included): the newer value stays, or this older read would hide it for memo_ttl
            if held is not None and _version(held[1]) > _version(value):
                return held[1]
            self._memo[key] = (now, value)
        return value

    def _stale(self, key: str, hit: tuple[float, object] | None, now: float, exc: Exception):
        """What this process last read at *key*, if recent enough, when nothing can be asked; else *exc*."""
        if hit is None or now - hit[0] >= self.stale_ttl:
            raise exc
        log.warning("storage unreachable; serving %s as read %.0f s ago", key, now - hit[0])
        return hit[1]

    def _meta_uncached(self, key: str, fresh: bool):
        if self.cache is None:
            return self._origin_json(key)
        copy = None
        try:
            copy = json.loads(self.cache.get(key).data)
        except NotFound:
            pass
        except StoreUnavailable:
            log.warning("cache bucket unavailable; reading %s from the origin", key)
            return self._origin_json(key)
        if copy is not None and not fresh and self._wall() - copy["validated_at"] < self.head_ttl:
            return copy["value"]
        try:
            value = self._origin_json(key)
        except OriginUnavailable:
            if copy is not None:
                return copy["value"]  # stale but served: the origin is down
            raise
        if copy is None and isinstance(value, dict) and isinstance(value.get("manifest"), str):
            # A head this region never copied: nor did it copy the manifest it names
            self.cold.add(value["manifest"])
        # After the answer (the event sync or the next revalidation would make it too);
        # an explicit refresh (fresh: an event) writes it before returning
        self._write_copy(key, value, background=not fresh)
        if not fresh and self.on_revalidate is not None:
            self.on_revalidate(key, value)  # a TTL miss: healing compares feed positions
        return value

    def learn(self, key: str, value) -> None:
        """Take *value* as the current JSON at *key* (what a local write just committed).

        The memo and the cache-bucket copy are replaced without asking the origin:
        the caller wrote it there a moment ago with a conditional PUT.  A value
        older than what this process already holds (a racing writer's newer
        version arrived first) is ignored.
        """
        with self._memo_lock:
            held = self._memo.get(key)
        if held is not None and _version(held[1]) > _version(value):
            return
        if self.cache is not None:
            self._write_copy(key, value)
        with self._memo_lock:
            self._memo[key] = (time.monotonic(), value)

    def forget(self, key: str) -> None:
        """Drop the in-process memo of *key* (after an event or a local write)."""
        with self._memo_lock:
            self._memo.pop(key, None)

    def head(self, root: str, path: str, *, fresh: bool = False) -> Head:
        """The current head of a dataset (``fresh``: asked of the origin, whatever the copies say).

        Raises
        ------
        DatasetNotFound
            If it does not exist or was deleted.

        """
        value = self._meta(layout.head_key(root, path), fresh=fresh)
        if value is None or value.get("deleted"):
            raise DatasetNotFound(f"{root}/{path}")
        return Head.from_json(value)

    def catalog(self, root: str) -> Catalog:
        """A root's catalog; raises :class:`DatasetNotFound` for an unknown root."""
        value = self._meta(layout.catalog_key(root))
        if value is None:
            raise DatasetNotFound(root)
        return Catalog(root=value["root"], version=value["version"], datasets=value["datasets"])

    def roots(self) -> dict:
        """``{name: {...}}`` of every published root."""
        value = self._meta(layout.ROOTS_KEY)
        return dict(value["roots"]) if value else {}

    def manifest(self, head: Head) -> Manifest:
        """The manifest a head names (immutable, so cached without revalidation)."""
        return self.manifest_at(head.manifest)

    def manifest_at(self, key: str) -> Manifest:
        """A manifest by its (immutable) key: one exact version, whatever the head says now."""
        with self._manifest_lock:
            parsed = self._manifests.get(key)
            if parsed is not None:
                self._manifests.move_to_end(key)
                return parsed
        # Immutable, so parsed once: a manifest of 10k chunks is ~1 MB of JSON
        cold = key in self.cold
        parsed = Manifest.from_bytes(self._immutable(key, CacheStats(), cache_first=not cold))
        if cold:
            self.cold.add(_tag(parsed))  # nor its chunks
        with self._manifest_lock:
            self._manifests[key] = parsed
            while len(self._manifests) > self.MANIFESTS_KEPT:
                self._manifests.popitem(last=False)
        return parsed

    def dataset(self, root: str, path: str) -> Manifest:
        """Current manifest of ``root/path``."""
        return self.manifest(self.head(root, path))

    # ------------------------------------------------------------------ chunks

    def _immutable(
        self,
        key: str,
        stats: CacheStats,
        digest: str | None = None,
        *,
        cache_first: bool = True,
        copy_now: bool = False,
    ) -> bytes:
        """An immutable object: cache bucket, else origin (then copied into the cache bucket).

        ``cache_first=False`` goes straight to the origin (the caller knows the
        cache bucket has no copy); ``copy_now`` writes the copy before returning
        (else after the answer, when copies are written in the background).
        """
        if self.cache is not None and cache_first:
            try:
                data = self.cache.get(key).data
                stats.add(hits=1)
                self.in_cache.add(key)
                return data
            except NotFound:
                pass
            except StoreUnavailable:
                log.warning("cache bucket unavailable; reading %s from the origin", key)
        try:
            data = self.origin.get(key).data
        except StoreUnavailable as exc:
            if self.cache is not None and not cache_first:
                # Skipped as "not copied yet": it may be by now, and the origin is down
                return self._immutable(key, stats, digest)
            raise OriginUnavailable(f"origin unreachable and {key} is not cached: {exc}") from exc
        except NotFound:
            raise DatasetNotFound(f"object {key} is missing from the origin") from None
        if digest is not None and self.verify_chunks and not layout.chunk_matches(data, digest):
            raise CorruptChunk(f"chunk {digest} read from the origin does not match its hash")
        stats.add(misses=1, origin_bytes=len(data))
        if self.cache is not None:
            self._copy(key, data, now=copy_now)
        return data

    def chunk(self, manifest: Manifest, nchunk: int, stats: CacheStats) -> bytes:
        """One chunk's bytes."""
        return self.chunks(manifest, [nchunk], stats)[nchunk]

    def chunks(
        self,
        manifest: Manifest,
        indices: Iterable[int],
        stats: CacheStats,
        *,
        keep: bool = True,
        serial: bool = False,
    ) -> dict[int, bytes]:
        """Bytes of the chunks at *indices*, fetched in parallel; identical chunks once.

        ``keep=False`` leaves what was fetched out of the in-process LRU: a streamed
        answer reads a whole dataset once, which would evict the working set of the
        small reads the LRU is for (the chunks stay in the region's cache bucket).
        ``serial=True`` fetches in the calling thread: for callers that hold a lock other
        threads may need (h5py reading a stored file holds its global lock, and a worker
        collecting an h5py object needs it: waiting on that worker would deadlock).  A
        single chunk is always fetched in the calling thread (no hop to the pool).
        """
        out: dict[int, bytes] = {}
        wanted: dict[str, list[int]] = {}
        for i in indices:
            ref = manifest.refs[i]
            if ref.inline is not None:
                out[i] = ref.inline
                continue
            data = self.lru.get(ref.digest)
            if data is not None:
                stats.add(hits=1)
                out[i] = data
            else:
                wanted.setdefault(ref.digest, []).append(i)

        cold = _tag(manifest) in self.cold

        def fetch(digest: str) -> tuple[str, bytes]:
            return digest, self._immutable(layout.chunk_key(digest), stats, digest, cache_first=not cold)

        fetched = map(fetch, wanted) if serial or len(wanted) == 1 else self._pool.map(fetch, wanted)
        for digest, data in fetched:
            if keep:
                self.lru.put(digest, data)
            for i in wanted[digest]:
                out[i] = data
        return out

    def objects(self, digests: Iterable[str], stats: CacheStats, *, keep: bool = True) -> dict[str, bytes]:
        """Bytes of stored objects by content address (a kept frame's pieces), fetched in parallel."""
        out: dict[str, bytes] = {}
        wanted = []
        for digest in dict.fromkeys(digests):
            data = self.lru.get(digest)
            if data is not None:
                stats.add(hits=1)
                out[digest] = data
            else:
                wanted.append(digest)
        fetched = self._pool.map(lambda d: self._immutable(layout.chunk_key(d), stats, d), wanted)
        for digest, data in zip(wanted, fetched, strict=True):
            if keep:
                self.lru.put(digest, data)
            out[digest] = data
        return out

    def ensure_cached(self, manifest: Manifest, indices: Iterable[int], stats: CacheStats) -> None:
        """Make sure the chunks are in the cache bucket (for presigned read plans)."""
        if self.cache is None:
            return

        cold = _tag(manifest) in self.cold

        def ensure(digest: str) -> None:
            key = layout.chunk_key(digest)
            # A cold version's chunks are not here: no HEAD to learn it.  The copy is
            # written before the plan is answered: the client GETs it next
            if cold or not self.cache.exists(key):
                self._immutable(key, stats, digest, cache_first=False, copy_now=True)
            else:
                stats.add(hits=1)
                self.in_cache.add(key)

        digests = {manifest.refs[i].digest for i in indices if manifest.refs[i].digest}
        todo = [d for d in digests if layout.chunk_key(d) not in self.in_cache]
        stats.add(hits=len(digests) - len(todo))
        list(self._pool.map(ensure, todo))

    def presign(self, digest: str, expires: int) -> str | None:
        """A presigned GET of a chunk in the cache bucket (or the origin without one)."""
        store = self.cache if self.cache is not None else self.origin
        return store.presign_get(layout.chunk_key(digest), expires)

    # ------------------------------------------------------------------ events

    def apply_event(self, event: ChangeEvent, *, prefetch: bool = False) -> bool:
        """Bring this region's copies up to *event*; idempotent, ignores stale events.

        Returns True when something changed.  The origin is re-read rather than
        trusting the event body, so a duplicated, reordered or forged event can
        only make the copy fresher, never wrong.
        """
        if self.cache is None:
            return False
        key = layout.head_key(event.root, event.path)
        try:
            copy = json.loads(self.cache.get(key).data)["value"]
        except NotFound:
            copy = None
        if copy is not None and int(copy.get("version", 0)) >= event.version:
            return False
        value = self._meta(key, fresh=True)
        self._meta(layout.catalog_key(event.root), fresh=True)
        if event.root not in self.roots():
            # Roots are only ever added: the index changes with a new root, not with every
            # event (each refresh is an origin GET plus a cache-bucket PUT, cross-region on AWS)
            self._meta(layout.ROOTS_KEY, fresh=True)
        if prefetch and value and not value.get("deleted") and event.changed_chunks:
            manifest = self.manifest(Head.from_json(value))
            valid = [i for i in event.changed_chunks if 0 <= i < len(manifest.refs)]
            self.ensure_cached(manifest, valid, CacheStats())
        return True

    # ------------------------------------------------------------------ subscriptions

    def subscriptions(self) -> set[str]:
        """Roots this region follows (prefetching their changed chunks).

        Memoised for ``memo_ttl`` like heads: ``/api/roots`` asks on every request.
        """
        if self.cache is None:
            return set()
        now = time.monotonic()
        with self._memo_lock:
            hit = self._memo.get(layout.SUBSCRIPTIONS_KEY)
        if hit is not None and now - hit[0] < self.memo_ttl:
            return set(hit[1])
        try:
            roots = frozenset(json.loads(self.cache.get(layout.SUBSCRIPTIONS_KEY).data)["roots"])
        except NotFound:
            roots = frozenset()
        except StoreUnavailable as exc:
            return set(self._stale(layout.SUBSCRIPTIONS_KEY, hit, now, exc))
        with self._memo_lock:
            self._memo[layout.SUBSCRIPTIONS_KEY] = (now, roots)
        return set(roots)

    def set_subscribed(self, root: str, subscribed: bool) -> set[str]:
        """Subscribe or unsubscribe *root*; returns the new set."""
        if self.cache is None:
            raise OriginUnavailable("this region has no cache bucket to subscribe into")
        roots = self.subscriptions()
        roots = roots | {root} if subscribed else roots - {root}
        self.cache.put(layout.SUBSCRIPTIONS_KEY, dumps({"roots": sorted(roots)}))
        self.forget(layout.SUBSCRIPTIONS_KEY)
        return roots


def _tag(manifest: Manifest) -> str:
    """What :attr:`Region.cold` calls one version of a dataset."""
    return f"{manifest.root}/{manifest.path}@{manifest.version}"
