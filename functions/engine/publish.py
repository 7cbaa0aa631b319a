"""Publishing: upload missing chunks → write manifest → CAS head and catalog → emit event.

A crash at any step leaves the previous version fully readable (docs/ARCHITECTURE.md, "S3 layout"):
chunks and manifests are immutable and only become reachable when the head's
conditional write succeeds.  Orphans from a lost race are garbage, never
corruption.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from functions.engine import authorship, feed, frames, layout
from functions.engine.content import Loaded, load_path, reuse_unchanged
from functions.engine.errors import Conflict, NotFound, PreconditionFailed
from functions.engine.model import Catalog, ChangeEvent, Content, Head, Manifest, dumps, utcnow_iso
from functions.engine.ports import BlobStore, EventSink
from functions.engine.validation import FrameLimits

log = logging.getLogger(__name__)

#: Attempts at a conditional write before giving up with :class:`Conflict`.  Each
#: loss means another writer committed in between; with the backoff below, a dozen
#: losses in a row is contention worth reporting rather than spinning on.
MAX_CAS_ATTEMPTS = 12
#: Backoff between attempts, seconds: full jitter over base * 2**attempt, capped.
#: Without it, racing writers retry in lockstep and the same one can keep losing
#: (six uploads to one path: a writer lost 8 rounds in a row).
BACKOFF_BASE = 0.005
BACKOFF_CAP = 0.4


def _attempts(limit: int):
    """Attempt numbers of an optimistic-concurrency loop, backing off between them."""
    for attempt in range(limit):
        if attempt:
            time.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))
        yield attempt


@dataclass
class PublishResult:
    """What one dataset's publish did."""

    root: str
    path: str
    status: str  # "published" | "unchanged" | "deleted" | "absent"
    version: int
    uploaded_chunks: int = 0
    uploaded_bytes: int = 0
    changed_chunks: list[int] = field(default_factory=list)
    #: What the commit wrote, object key → JSON value (head, catalog, roots index):
    #: a region applies it as it is instead of reading back what was just written
    written: dict = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        """JSON form for CLIs and logs."""
        return {k: v for k, v in self.__dict__.items() if k != "written"}


def store_chunk(store: BlobStore, digest: str, data: bytes) -> int:
    """Store one chunk under its content address; return the bytes uploaded (0 if it was there).

    A chunk already stored (another dataset, a concurrent publisher, or garbage no
    version references any more) is written again: the same bytes, but a fresh
    write time, so the garbage collector (:mod:`functions.engine.gc`), which
    deletes only objects older than its grace period, keeps it for the version
    about to reference it.  That second PUT is rare: chunks of the version being
    replaced are never re-sent.
    """
    key = layout.chunk_key(digest)
    try:
        store.put(key, data, if_none_match=True)
    except PreconditionFailed:
        store.put(key, data)
        return 0
    return len(data)


class Publisher:
    """Writes datasets into the origin bucket following the storage layout.

    Parameters
    ----------
    store : BlobStore
        The origin bucket.
    events : EventSink
        Where committed versions are announced (SNS in production).
    executor : ThreadPoolExecutor, optional
        Used for parallel chunk uploads; S3 latency, not bandwidth, bounds a
        publish of many small chunks.
    clock : callable, optional
        Returns the mtime of a new version (ISO-8601 UTC).
    frame_limits : FrameLimits, optional
        Decompressed-size bounds of the frames it loads from files and uploads
        (``CAT_MAX_CHUNK_NBYTES``, ``CAT_MAX_UPLOAD_NBYTES``); every door passes them.

    """

    def __init__(
        self,
        store: BlobStore,
        events: EventSink | None = None,
        *,
        executor: ThreadPoolExecutor | None = None,
        clock: Callable[[], str] = utcnow_iso,
        frame_limits: FrameLimits | None = None,
    ) -> None:
        self.store = store
        self.frame_limits = frame_limits or FrameLimits()
        #: None = no topic configured: versions are committed but not announced
        self.events = events
        #: Change events that could not be emitted (committed anyway; handlers report it as a metric)
        self.event_failures = 0
        self._pool = executor or ThreadPoolExecutor(max_workers=16, thread_name_prefix="publish")
        self._clock = clock

    # ------------------------------------------------------------------ reads

    def read_head(self, root: str, path: str) -> tuple[Head | None, str | None]:
        """Current head and its etag (None, None when the dataset never existed)."""
        try:
            blob = self.store.get(layout.head_key(root, path))
        except NotFound:
            return None, None
        return Head.from_json(json.loads(blob.data)), blob.etag

    def read_manifest(self, key: str) -> Manifest:
        """A stored manifest."""
        return Manifest.from_bytes(self.store.get(key).data)

    def read_catalog(self, root: str) -> tuple[Catalog | None, str | None]:
        """A root's catalog and its etag."""
        try:
            blob = self.store.get(layout.catalog_key(root))
        except NotFound:
            return None, None
        return Catalog.from_bytes(blob.data), blob.etag

    # ------------------------------------------------------------------ chunks

    def _upload_chunks(self, loaded: Loaded, known: set[str]) -> tuple[int, int]:
        """Upload chunks not already known to be stored; return (count, bytes).

        A ``None`` in ``loaded.chunks`` marks a chunk already in the store (a copy
        or an append reuses the objects of a committed version).
        """
        todo: dict[str, bytes] = {}
        for ref, data in zip(loaded.content.refs, loaded.chunks, strict=True):
            if ref.digest and ref.digest not in known and data is not None:
                todo.setdefault(ref.digest, data)
        for digest, data in loaded.blobs.items():  # the kept frame's other pieces
            if digest not in known:
                todo.setdefault(digest, data)
        if not todo:
            return 0, 0

        def upload(item: tuple[str, bytes]) -> int:
            # No HEAD first: chunks of the previous version are already skipped, so
            # what is left is nearly always new, and a round trip per chunk cost more
            # (publish of 200 MB: 0.9 s -> 0.6 s) than re-sending the rare duplicate,
            # which the conditional PUT refuses without harm
            return store_chunk(self.store, *item)

        sizes = list(self._pool.map(upload, todo.items()))
        return sum(1 for s in sizes if s), sum(sizes)

    # ------------------------------------------------------------------ commit

    def publish(
        self,
        root: str,
        path: str,
        loaded: Loaded,
        *,
        expect_version: int | None = None,
        author: str | None = None,
        _deferred: list | None = None,
        _uploaded: tuple[set[str], int, int] | None = None,
    ) -> PublishResult:
        """Publish one dataset version; a no-op when the content did not change.

        Parameters
        ----------
        root, path : str
            Where the dataset goes.
        loaded : Loaded
            Its content and chunk bytes (``None`` for chunks known to be stored).
        expect_version : int, optional
            Commit only over this version (0: the dataset must not exist); for
            read-modify-write callers (append, move) that must not lose an update.
        author : str, optional
            Who commits it (kept in the manifest; the history lists it).

        Raises
        ------
        Conflict
            If the head's conditional write kept losing to other writers, or
            the head is not at *expect_version*.

        """
        # _deferred (publish_batch only): collects (head, event) instead of updating the
        # catalog and emitting, so a batch merges each root's catalog once.
        # _uploaded (publish_file of a new dataset): chunks already stored while it was hashed
        stored, *counts = _uploaded or (set(), 0, 0)
        uploaded = (0, 0)
        for _attempt in _attempts(MAX_CAS_ATTEMPTS):
            head, etag = self.read_head(root, path)
            _check_expected(root, path, head, expect_version)
            live = head is not None and not head.deleted
            previous = self.read_manifest(head.manifest) if live else None
            if previous is not None:
                loaded = reuse_unchanged(loaded, previous.refs, previous.content.geometry)
            content_hash = loaded.content.content_hash
            if live and head.content_hash == content_hash:
                if _deferred is None:
                    self._ensure_catalog(head)
                else:  # the batch's merge repairs a catalog entry a crash left behind
                    _deferred.append((head, None))
                return PublishResult(root, path, "unchanged", head.version)
            known = frames.referenced(previous) if previous else set()
            if uploaded == (0, 0):
                more = self._upload_chunks(loaded, known | stored)
                uploaded = (more[0] + counts[0], more[1] + counts[1])
            version = (head.version if head else 0) + 1
            manifest = Manifest(
                root, path, version, self._clock(), loaded.content, head.manifest if live else None,
                author or authorship.current(),
            )
            mkey = layout.manifest_key(root, path, version, content_hash)
            try:
                self.store.put(mkey, manifest.to_bytes(), if_none_match=True, content_type="application/json")
            except PreconditionFailed:
                continue  # same version and content raced in; re-read the head
            new_head = Head(
                root=root,
                path=path,
                version=version,
                mtime=manifest.mtime,
                kind=loaded.content.kind,
                manifest=mkey,
                content_hash=content_hash,
                nbytes=int(loaded.content.geometry["nbytes"]),
                cbytes=loaded.content.cbytes,
            )
            if not self._cas_head(new_head, etag):
                continue
            changed = _changed_chunks(previous, manifest)
            written = self._commit_side_effects(new_head, head, changed, len(manifest.refs), _deferred)
            return PublishResult(
                root, path, "published", version, *uploaded, changed_chunks=changed, written=written
            )
        raise Conflict(f"{root}/{path}: gave up after {MAX_CAS_ATTEMPTS} concurrent writes won the head")

    def publish_content(
        self, root: str, path: str, content: Content, *, expect_version: int | None = None
    ) -> PublishResult:
        """Publish *content* whose chunks are all stored already (a copy): no chunk bytes move.

        Chunks are immutable and shared by content address, so a copy is one new
        manifest and head that point at the source's chunk objects.
        """
        stored = Loaded(content, [None] * len(content.refs))
        return self.publish(root, path, stored, expect_version=expect_version)

    def delete(self, root: str, path: str, *, expect_version: int | None = None) -> PublishResult:
        """Delete a dataset: a tombstone head (versions stay monotonic), catalog entry removed.

        With *expect_version*, only that version is deleted (:class:`Conflict` otherwise).
        """
        for _attempt in _attempts(MAX_CAS_ATTEMPTS):
            head, etag = self.read_head(root, path)
            _check_expected(root, path, head, expect_version)
            if head is None or head.deleted:
                return PublishResult(root, path, "absent", head.version if head else 0)
            tomb = Head(root, path, head.version + 1, self._clock(), head.kind, None, None, deleted=True)
            if self._cas_head(tomb, etag):
                written = self._commit_side_effects(tomb, head, [], 0)
                return PublishResult(root, path, "deleted", tomb.version, written=written)
        raise Conflict(f"{root}/{path}: gave up deleting after {MAX_CAS_ATTEMPTS} concurrent writes")

    def _cas_put(self, key: str, body: bytes, etag: str | None) -> bool:
        """Replace the version of *key* with *etag* (create when None); False if another writer won."""
        try:
            if etag is None:
                self.store.put(key, body, if_none_match=True, content_type="application/json")
            else:
                self.store.put(key, body, if_match=etag, content_type="application/json")
        except PreconditionFailed:
            return False
        return True

    def _cas_head(self, head: Head, etag: str | None) -> bool:
        return self._cas_put(layout.head_key(head.root, head.path), dumps(head.to_json()), etag)

    def publish_batch(
        self, root: str, items: Iterable[tuple[str, Callable[[], Loaded]]]
    ) -> list[PublishResult | Exception]:
        """Publish many datasets of one root, merging the root's catalog once for all of them.

        A bulk drop of hundreds of files into one root would otherwise be hundreds of
        conditional writes of the same catalog object, each racing the others (and every
        concurrent ingest) and retrying; here each dataset's head is committed as usual,
        then one catalog merge takes all of them, then their change events are emitted
        (after the catalog, as for a single publish).

        Parameters
        ----------
        root : str
            The root every item goes to.
        items : iterable of (path, load)
            *load* is called when the item's turn comes (so only one item's content is in
            memory at a time) and returns its :class:`Loaded` content.

        Returns
        -------
        list
            Per item, in order: its :class:`PublishResult`, or the exception it raised
            (bad content: :class:`BadRequest`; anything else is worth a retry). Items whose
            head was committed get the exception of the catalog merge if that fails: a
            retry re-publishes them as ``unchanged`` and repairs the catalog (their change
            events are then never sent; regions see the heads within their head TTL, as
            after a crash between a single publish's head and catalog writes).
        """
        deferred: list[tuple[Head, ChangeEvent | None]] = []
        out: list[PublishResult | Exception] = []
        for path, load in items:
            try:
                out.append(self.publish(root, path, load(), _deferred=deferred))
            except Exception as exc:  # noqa: BLE001 - per item: the others of the batch go on
                out.append(exc)
        if not deferred:
            return out
        changes = [feed.change_of(event) for _, event in deferred if event is not None]
        try:
            written, seq = self._merge_catalog(root, [head for head, _ in deferred], changes)
        except Exception as exc:  # noqa: BLE001 - heads are committed; a retry repairs the catalog
            return [exc if isinstance(r, PublishResult) else r for r in out]
        for result in out:
            if isinstance(result, PublishResult) and result.status == "published":
                result.written.update(written)
        events = [event for _, event in deferred if event is not None]
        for n, event in enumerate(events, start=1):
            self._emit(_positioned(event, seq, n))
        return out

    def _commit_side_effects(
        self,
        head: Head,
        previous: Head | None,
        changed: list[int],
        nchunks: int,
        deferred: list | None = None,
    ) -> dict:
        """Catalog and event after a head's commit; returns what was written (key → JSON value)."""
        written = {layout.head_key(head.root, head.path): head.to_json()}
        event = ChangeEvent(
            type="deleted" if head.deleted else "published",
            root=head.root,
            path=head.path,
            version=head.version,
            previous_version=previous.version if previous else 0,
            mtime=head.mtime,
            manifest=head.manifest,
            changed_chunks=tuple(changed),
            nchunks=nchunks,
        )
        if deferred is not None:
            deferred.append((head, event))
            return written
        catalog_written, seq = self._update_catalog(head, [feed.change_of(event)])
        written.update(catalog_written)
        self._emit(_positioned(event, seq, 1))
        return written

    def _emit(self, event: ChangeEvent) -> None:
        """Announce a committed version; a failure is logged and counted, never raised."""
        if self.events is None:
            return
        try:
            self.events.emit(event)
        except Exception:  # noqa: BLE001 - the version is committed; TTL revalidation heals a lost event
            self.event_failures += 1
            log.exception(
                "could not emit change event for %s/%s v%d: committed; other regions see it within their "
                "head TTL",
                event.root,
                event.path,
                event.version,
            )

    # ------------------------------------------------------------------ catalog

    def _ensure_catalog(self, head: Head) -> None:
        """Repair a catalog that missed a committed head (a crash between the two writes)."""
        catalog, _ = self.read_catalog(head.root)
        entry = catalog.datasets.get(head.path) if catalog else None
        if entry is None or entry.get("version", 0) < head.version:
            self._update_catalog(head)

    def _update_catalog(self, head: Head, changes: list[dict] | None = None) -> tuple[dict, int]:
        """Merge *head* into its root's catalog; see :meth:`_merge_catalog`."""
        return self._merge_catalog(head.root, [head], changes or [])

    def _merge_catalog(self, root: str, heads: list[Head], changes: list[dict]) -> tuple[dict, int]:
        """Record *changes* in the root's feed and merge *heads* into its catalog (:func:`feed.commit`).

        An older head never overwrites a newer entry. Returns what it wrote (catalog,
        and the roots index for a new root), key → JSON value, and the feed seq (0: nothing new).
        """
        done = feed.commit(self.store, root, heads, changes, clock=self._clock, attempts=_attempts)
        written = dict(done.written)
        if written.pop("created", False):
            written.update(self._register_root(root))
        return written, done.seq

    def _register_root(self, root: str) -> dict:
        for _attempt in _attempts(MAX_CAS_ATTEMPTS * 4):
            try:
                blob = self.store.get(layout.ROOTS_KEY)
                roots, etag = json.loads(blob.data), blob.etag
            except NotFound:
                roots, etag = {"roots": {}}, None
            if root in roots["roots"]:
                return {}
            roots["roots"][root] = {"name": root, "created": self._clock()}
            if self._cas_put(layout.ROOTS_KEY, dumps(roots), etag):
                return {layout.ROOTS_KEY: roots}
        raise Conflict("roots index: too many concurrent writers")

    # ------------------------------------------------------------------ directories

    def publish_file(self, root: str, path: str, local: Path) -> PublishResult:
        """Publish one local file as ``root/path``.

        A dataset new at *path* has its chunks uploaded while the file is still
        being hashed (:mod:`functions.engine.eager`): it has nothing to reuse.
        """
        head, _ = self.read_head(root, path)
        if head is None or head.deleted:
            from functions.engine.eager import load_uploading

            loaded, uploaded = load_uploading(self.store, self._pool, store_chunk, local, self.frame_limits)
            return self.publish(root, path, loaded, _uploaded=uploaded)
        return self.publish(root, path, load_path(local, self.frame_limits))

    def publish_directory(
        self,
        root: str,
        directory: Path,
        *,
        prefix: str = "",
        progress: Callable[[PublishResult], None] | None = None,
        on_error: Callable[[str, Exception], None] | None = None,
        on_skip: Callable[[str, str], None] | None = None,
        unfold_hdf5: bool = True,
    ) -> list[PublishResult]:
        """Publish every file below *directory* into *root*; remove datasets whose file is gone.

        Parameters
        ----------
        root : str
            The root to publish into.
        directory : Path
            Local directory whose files become datasets.
        prefix : str
            Path inside the root to publish under (``"examples/"``); only datasets
            under it are candidates for removal.
        progress : callable, optional
            Called with each dataset's result as it completes.
        on_error : callable, optional
            Called with ``(path, exception)`` for a file that cannot be published
            (not valid Blosc2, inconsistent, too big decompressed); the others go on, and the dataset already
            published under that path is kept.  Without it the error propagates.
        on_skip : callable, optional
            Called with ``(path, reason)`` for each object of an HDF5 file that
            cannot be converted (``x.h5:/group/name``); the rest is published.

        unfold_hdf5 : bool
            Whether an HDF5 file ``x.h5`` is published as the file itself plus its
            datasets unfolded below ``x/`` (:mod:`functions.engine.hdf5.unfold`), or
            only as the file (as Caterva2's server serves a directory).

        Hidden files and directories (names starting with ``.``) are skipped.
        """
        from functions.engine.directories import publish_directory

        return publish_directory(
            self, root, directory, prefix=prefix, progress=progress, on_error=on_error, on_skip=on_skip,
            unfold_hdf5=unfold_hdf5,
        )


def _positioned(event: ChangeEvent, seq: int, n: int) -> ChangeEvent:
    """*event* with its place in the root's feed (the *n*-th change of entry *seq*)."""
    if not seq:
        return event
    return dataclasses.replace(event, seq=seq, cursor=feed.encode_cursor(event.root, seq, n))


def _check_expected(root: str, path: str, head: Head | None, expect_version: int | None) -> None:
    if expect_version is None:
        return
    current = head.version if head is not None and not head.deleted else 0
    if current != expect_version:
        raise Conflict(f"{root}/{path} changed meanwhile (version {current}, not {expect_version}); retry")


def _changed_chunks(previous: Manifest | None, current: Manifest) -> list[int]:
    if previous is None:
        return list(range(len(current.refs)))
    old = previous.refs
    return [i for i, ref in enumerate(current.refs) if i >= len(old) or old[i].identity != ref.identity]
