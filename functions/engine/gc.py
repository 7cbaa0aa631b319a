"""Garbage collection of the origin bucket: chunks and manifests no live version references.

Publishing never deletes: a re-published dataset leaves its old manifest and the
chunks only that manifest referenced, and a lost race or a crash leaves chunks
and manifests no head ever pointed at.  :func:`collect` finds them and, when
asked, deletes them.

What is live (kept)
-------------------
* every manifest a head names (the current version of each dataset) and every
  manifest a catalog names (a catalog may lag its heads after a crash);
* every object written less than ``grace`` seconds before the collection
  started: a publish in flight has uploaded chunks and maybe a manifest that no
  head names yet;
* every version that was current less than ``grace`` ago: a publisher that read
  it reuses its chunks without uploading them again (``Loaded`` with ``None``
  chunks: unchanged chunks, copies, appends, HDF5 re-publishes), and a reader
  may hold a read plan of it.  Version *v* stopped being current before the
  head was last written, and before any manifest of version *v* + 2 was
  written (that publisher read the head at *v* + 1), so it is kept unless one of
  those is older than ``grace``;
* the ``keep`` newest earlier versions of each dataset, and every version
  committed less than ``keep_seconds`` ago, if asked: the retention of versions
  read through ``?version=`` (``CAT_KEEP_VERSIONS``, ``CAT_KEEP_SECONDS``);
* every chunk such a manifest references.  Chunks are shared across datasets by
  content address: one live reference anywhere keeps a chunk.

Heads (tombstones included: they keep version numbers monotonic, which regions
rely on to ignore stale events), catalogs, the roots index and anything outside
``c/`` and ``m/`` are never deleted.  Keys under ``c/`` and ``m/`` that are not
the layout's are counted as ``other`` and kept.

Order
-----
Chunks are listed first, then manifests, then heads (read, then listed again for
their write times, so a head rewritten meanwhile counts as young), then the live
manifests are read.  A chunk uploaded after its listing is simply not seen; a
chunk a publisher finds already stored is written again
(:func:`functions.engine.publish.store_chunk`), which makes it young; each
deletion re-checks the object's age (:meth:`BlobStore.delete_if_older`).
The windows that remain are documented in docs/deploy.md ("Garbage collection").
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from functions.engine import frames
from functions.engine.errors import NotFound, UnsafeToCollect
from functions.engine.model import Catalog, Head, Manifest
from functions.engine.ports import BlobStore, Listing

#: Default grace period, seconds: longer than any publish takes from its first
#: upload to its head's commit, and than the longest presigned read URL
#: (``functions.engine.reads.MAX_PRESIGN_SECONDS``).
DEFAULT_GRACE = 3600.0
#: Report progress every this many objects of a phase.
PROGRESS_EVERY = 1000

_CHUNK = re.compile(r"c/([0-9a-f]{2})/\1[0-9a-f]{62}")
_MANIFEST = re.compile(r"m/(?P<dataset>.+)/(?P<version>[0-9]+)-[0-9a-f]{12}\.json")

#: ``progress(phase, done)``: called every :data:`PROGRESS_EVERY` objects and at a phase's end
Progress = Callable[[str, int], None]


@dataclass
class Tally:
    """A number of objects and their bytes."""

    count: int = 0
    bytes: int = 0

    def add(self, item: Listing) -> None:
        """Count *item*."""
        self.count += 1
        self.bytes += item.size


@dataclass
class KindReport:
    """What a collection found of one kind of object (chunks or manifests).

    ``scanned`` = ``live`` + ``young`` + ``garbage``.  ``live``: a live manifest
    (current, named by a catalog, retained, or young: a publish in flight) and
    the chunks those reference; ``young``: nothing live references it, but it was
    written within the grace period.  Of the garbage, a deleting run removed
    ``deleted`` and found the rest rewritten or gone meanwhile (``skipped``, kept).
    """

    scanned: Tally = field(default_factory=Tally)
    live: Tally = field(default_factory=Tally)
    young: Tally = field(default_factory=Tally)
    garbage: Tally = field(default_factory=Tally)
    deleted: Tally = field(default_factory=Tally)
    skipped: Tally = field(default_factory=Tally)

    def to_json(self) -> dict:
        """``{"scanned": {"count", "bytes"}, ...}``."""
        return {name: vars(tally) for name, tally in vars(self).items()}


@dataclass
class GcReport:
    """The outcome of :func:`collect`.

    Attributes
    ----------
    grace : float
        Seconds an object is protected after its last write.
    cutoff : float
        POSIX time: objects written after it were young, hence kept.
    deleting : bool
        Whether garbage was deleted (False: a dry run).
    chunks, manifests : KindReport
        Counts and bytes per category.
    other : Tally
        Keys under ``c/`` and ``m/`` that are not the layout's (kept).
    heads, catalogs : int
        How many heads and catalogs were read.

    """

    grace: float
    cutoff: float
    deleting: bool
    chunks: KindReport = field(default_factory=KindReport)
    manifests: KindReport = field(default_factory=KindReport)
    other: Tally = field(default_factory=Tally)
    heads: int = 0
    catalogs: int = 0
    #: The garbage found, key → listing (what a deleting run deletes)
    doomed: dict[str, Listing] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict:
        """JSON form for ``cat-admin gc --json``."""
        return {
            "grace": self.grace,
            "cutoff": self.cutoff,
            "deleting": self.deleting,
            "chunks": self.chunks.to_json(),
            "manifests": self.manifests.to_json(),
            "other": vars(self.other),
            "heads": self.heads,
            "catalogs": self.catalogs,
        }


def collect(
    store: BlobStore,
    *,
    grace: float = DEFAULT_GRACE,
    delete: bool = False,
    keep: int = 0,
    keep_seconds: float = 0.0,
    clock: Callable[[], float] = time.time,
    progress: Progress | None = None,
    workers: int = 16,
) -> GcReport:
    """Find (and with *delete*, remove) the chunks and manifests no live version references.

    Parameters
    ----------
    store : BlobStore
        The origin bucket.
    grace : float
        Seconds after its last write during which an object is never deleted
        (and a superseded version stays live); must cover the longest publish.
    delete : bool
        Delete the garbage; without it, only count it (a dry run).
    keep : int
        Earlier versions of each dataset to keep besides those the grace keeps.
    keep_seconds : float
        Also keep every version whose manifest was written less than this many seconds ago.
    clock : callable
        Now, POSIX seconds (the store's write times are compared with it).
    progress : callable, optional
        ``progress(phase, done)`` for long scans (see :data:`Progress`).
    workers : int
        Parallel reads and deletions (S3 latency bounds them, not bandwidth).

    Raises
    ------
    UnsafeToCollect
        A head, manifest or catalog could not be parsed: nothing was deleted.
    ValueError
        A negative *grace* or *keep*.

    """
    if grace < 0 or keep < 0 or keep_seconds < 0:
        raise ValueError("grace, keep and keep_seconds must not be negative")
    report = GcReport(grace=grace, cutoff=clock() - grace, deleting=delete)
    chunks = list(_counted(store.scan("c/"), "list c/", progress))
    manifests = list(_counted(store.scan("m/"), "list m/", progress))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gc") as pool:
        heads = _read_heads(store, pool, progress)
        report.heads = len(heads)
        named, report.catalogs = _catalog_manifests(store, pool)
        by_dataset = _group_manifests(manifests, report)
        live_keys = named | {h.manifest for h, _ in heads.values() if h.manifest and not h.deleted}
        live_keys |= _retained(by_dataset, heads, report.cutoff, keep)
        if keep_seconds:
            recent = clock() - keep_seconds
            live_keys |= {
                item.key for entries in by_dataset.values() for _, item in entries if item.modified > recent
            }
        digests = _referenced(store, pool, live_keys, progress)
        listed = [item for entries in by_dataset.values() for _, item in entries]
        _classify(report, report.manifests, listed, live_keys.__contains__)
        _classify_chunks(report, chunks, digests)
        if delete:
            _delete(store, pool, report, progress)
    return report


# ---------------------------------------------------------------------- phases


def _counted(items: Iterable, phase: str, progress: Progress | None) -> Iterator:
    done = 0
    for item in items:
        done += 1
        if progress and done % PROGRESS_EVERY == 0:
            progress(phase, done)
        yield item
    if progress:
        progress(phase, done)


def _load(store: BlobStore, key: str, parse: Callable[[bytes], object]):
    """Parse the object at *key* (None if absent); an unparseable one stops the collection."""
    try:
        data = store.get(key).data
    except NotFound:
        return None
    try:
        return parse(data)
    except (ValueError, KeyError, TypeError) as exc:
        raise UnsafeToCollect(f"{store.name}/{key} cannot be read ({exc!r}): nothing deleted") from None


def _read_heads(store: BlobStore, pool: ThreadPoolExecutor, progress) -> dict[str, tuple[Head, float]]:
    """Dataset (``root/path``) → (its head, when the head was last written)."""
    keys = [item.key for item in store.scan("h/") if item.key.endswith(".json")]
    parsed = pool.map(lambda key: _load(store, key, lambda d: Head.from_json(json.loads(d))), keys)
    found = dict(zip(keys, _counted(parsed, "read h/", progress), strict=True))
    # Listed again after the reads: a head rewritten after the first listing shows its
    # new write time, so the version read is never judged by an older one
    written = {item.key: item.modified for item in store.scan("h/")}
    return {
        key[2:-5]: (head, written.get(key, float("inf"))) for key, head in found.items() if head is not None
    }


def _catalog_manifests(store: BlobStore, pool: ThreadPoolExecutor) -> tuple[set[str], int]:
    """The manifests the catalogs name, and how many catalogs there are."""
    keys = [item.key for item in store.scan("r/") if item.key.endswith(".json")]
    named: set[str] = set()
    for catalog in pool.map(lambda key: _load(store, key, Catalog.from_bytes), keys):
        for entry in catalog.datasets.values() if catalog else ():
            if entry.get("manifest") and not entry.get("deleted"):
                named.add(str(entry["manifest"]))
    return named, len(keys)


def _group_manifests(manifests: list[Listing], report: GcReport) -> dict[str, list[tuple[int, Listing]]]:
    """Layout manifests by dataset, as (version, listing); others counted in ``report.other``."""
    by_dataset: dict[str, list[tuple[int, Listing]]] = defaultdict(list)
    for item in manifests:
        match = _MANIFEST.fullmatch(item.key)
        if match is None:
            report.other.add(item)
            continue
        by_dataset[match["dataset"]].append((int(match["version"]), item))
    return by_dataset


def _retained(
    by_dataset: dict[str, list[tuple[int, Listing]]],
    heads: dict[str, tuple[Head, float]],
    cutoff: float,
    keep: int,
) -> set[str]:
    """Manifests kept besides the current ones: young, recently superseded, or among the ``keep`` newest."""
    kept: set[str] = set()
    for dataset, entries in by_dataset.items():
        head, head_written = heads.get(dataset, (None, -float("inf")))
        # Newest version whose manifest is older than the grace: every version at least
        # two below it was superseded before that manifest was written
        old = [version for version, item in entries if item.modified <= cutoff]
        settled_below = max(old, default=0) - 1
        current = head.version if head is not None else 0
        earlier = sorted({v for v, _ in entries if v < current}, reverse=True)[:keep]
        for version, item in entries:
            superseded_long_ago = head_written <= cutoff or version < settled_below
            if item.modified > cutoff or not superseded_long_ago or version in earlier:
                kept.add(item.key)
    return kept


def _referenced(store: BlobStore, pool: ThreadPoolExecutor, manifests: set[str], progress) -> set[str]:
    """Digests of the objects the manifests reference (chunks and kept frames' pieces)."""
    digests: set[str] = set()
    loaded = pool.map(lambda key: _load(store, key, Manifest.from_bytes), sorted(manifests))
    for manifest in _counted(loaded, "read live manifests", progress):
        if manifest is not None:
            digests.update(frames.referenced(manifest))
    return digests


def _classify(report: GcReport, kind: KindReport, items: list[Listing], live: Callable[[str], bool]) -> None:
    for item in items:
        kind.scanned.add(item)
        if live(item.key):
            kind.live.add(item)
        elif item.modified > report.cutoff:
            kind.young.add(item)
        else:
            kind.garbage.add(item)
            report.doomed[item.key] = item


def _classify_chunks(report: GcReport, chunks: list[Listing], digests: set[str]) -> None:
    layout_chunks = []
    for item in chunks:
        if _CHUNK.fullmatch(item.key):
            layout_chunks.append(item)
        else:
            report.other.add(item)
    _classify(report, report.chunks, layout_chunks, lambda key: key.rsplit("/", 1)[1] in digests)


def _delete(store: BlobStore, pool: ThreadPoolExecutor, report: GcReport, progress) -> None:
    """Delete the garbage, manifests first: a run cut short never leaves a manifest whose chunks are gone."""
    for prefix, kind in (("m/", report.manifests), ("c/", report.chunks)):
        items = [item for key, item in report.doomed.items() if key.startswith(prefix)]
        done = pool.map(lambda item: store.delete_if_older(item.key, report.cutoff), items)
        for item, deleted in zip(items, _counted(done, f"delete {prefix}", progress), strict=True):
            (kind.deleted if deleted else kind.skipped).add(item)


__all__ = ["DEFAULT_GRACE", "GcReport", "KindReport", "Tally", "collect"]
