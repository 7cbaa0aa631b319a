"""Publishing an HDF5 file's datasets as Blosc2 arrays below a directory of a root ("unfolding").

One function does it for every door: ``cat-publish FILE.h5`` (the file as a
root), a directory holding ``x.h5`` (its tree under ``x/``), ``POST
/api/unfold`` (an uploaded file) and the ingest bucket (a dropped file).  Each
dataset ``/a/b`` becomes ``<prefix>a/b.b2nd``; each group (and the file) a
directory with an attribute file ``!_attrs_.json``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from functions.engine.content import FILE_CHUNKSIZE, _plain_schunk, load_object, load_plain
from functions.engine.errors import BadRequest, QuotaExceeded, TooLarge
from functions.engine.hdf5 import convert
from functions.engine.hdf5.attrs import ATTRS_NAME
from functions.engine.hdf5.storedfile import StoredFile
from functions.engine.hdf5.stream import publish_stream
from functions.engine.model import Content, Kind, Manifest
from functions.engine.paths import split_path
from functions.engine.publish import Publisher, PublishResult
from functions.engine.region import CacheStats, Region

#: Suffixes of HDF5 files (what unfolds; Caterva2 accepts the same two).
HDF5_SUFFIXES = (".h5", ".hdf5")
#: Errors of reading a dataset (a missing filter plugin, damaged data): that
#: dataset is skipped and reported, the others go on.
_READ_ERRORS = (OSError, ValueError, TypeError, RuntimeError, KeyError)

#: Datasets converted and committed at once.  Each commit is a handful of S3 round
#: trips (head, manifest, catalog, event): in sequence they dominate a file of many
#: small datasets.  h5py serialises its own calls, so the gain is in compression and
#: I/O; memory is this many read regions (chunking.MAX_READ_BYTES at most each).
DATASET_WORKERS = 4

Check = Callable[[str, Content], None]


def is_hdf5(name: str) -> bool:
    """Whether *name* has an HDF5 suffix."""
    return name.lower().endswith(HDF5_SUFFIXES)


def directory_of(rel: str) -> str:
    """Where ``dir/x.h5`` unfolds: ``dir/x``."""
    for suffix in HDF5_SUFFIXES:
        if rel.lower().endswith(suffix):
            return rel[: -len(suffix)]
    return rel


@dataclass
class UnfoldReport:
    """What unfolding one HDF5 file did."""

    root: str
    directory: str  # the root-relative directory the datasets went to ("" = the root itself)
    results: list[PublishResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (HDF5 path, reason)
    arrays: int = 0

    def to_json(self) -> dict:
        """JSON form for CLIs and API answers."""
        return {
            "root": self.root,
            "directory": self.directory,
            "arrays": self.arrays,
            "changed": sum(r.status in ("published", "deleted") for r in self.results),
            "uploaded_bytes": sum(r.uploaded_bytes for r in self.results),
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def _dataset_content(item: convert.Item) -> Content:
    base = load_object(convert.template(item)).content
    return dataclasses.replace(base, vlmeta=item.vlmeta)


def _valid(root: str, rel: str) -> str | None:
    try:
        split_path(f"{root}/{rel}", allow_root_only=False)
    except BadRequest as exc:
        return str(exc)
    return None


def unfold(
    f,
    publisher: Publisher,
    root: str,
    directory: str,
    *,
    check: Check | None = None,
    progress: Callable[[PublishResult], None] | None = None,
    prune: bool = False,
) -> UnfoldReport:
    """Publish every dataset and group of the open HDF5 file *f* below *directory* of *root*.

    Parameters
    ----------
    f : h5py.File
        The open file.
    publisher : Publisher
        Commits each dataset.
    root : str
        The root to publish into.
    directory : str
        Root-relative directory ("" = the root's top).
    check : callable, optional
        ``check(rel, content)`` before each commit: raise (quota, size) to stop.
    progress : callable, optional
        Called with each dataset's result as it completes.
    prune : bool
        Delete datasets below *directory* that the file no longer has (a
        publisher mirroring its source); uploads and drops never delete.

    Raises
    ------
    BadRequest
        If the file holds no dataset that can be converted.

    """
    walk = convert.walk(f)
    if not walk.datasets:
        detail = "; ".join(f"{p}: {r}" for p, r in walk.skipped[:5])
        raise BadRequest("no arrays found in the HDF5 file" + (f" (skipped: {detail})" if detail else ""))
    prefix = f"{directory}/" if directory else ""
    job = _Job(publisher, UnfoldReport(root, directory, skipped=walk.skipped), check, progress)
    tasks = []
    for group in walk.groups:
        rel = f"{prefix}{group.rel}/{ATTRS_NAME}" if group.rel else f"{prefix}{ATTRS_NAME}"
        tasks.append((job.group, group.h5path, rel, group))
    for item in walk.datasets:
        tasks.append((job.dataset, item.h5path, prefix + item.rel, item))
    job.run(tasks)
    job.report.results.sort(key=lambda r: r.path)
    if prune:
        _prune(publisher, job.report, prefix, job.done)
    return job.report


class _Job:
    """One unfold's shared state: commits run a few at a time, bookkeeping under one lock."""

    def __init__(self, publisher: Publisher, report: UnfoldReport, check, progress) -> None:
        self.publisher, self.report = publisher, report
        self._check, self._progress = check, progress
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def done(self, result: PublishResult) -> None:
        with self._lock:
            self.report.results.append(result)
            if self._progress:
                self._progress(result)

    def check(self, rel: str, content: Content) -> None:
        if self._check is not None:
            with self._lock:
                self._check(rel, content)

    def skip(self, where: str, reason: str) -> None:
        with self._lock:
            self.report.skipped.append((where, reason))

    def group(self, rel: str, group: convert.Group) -> None:
        loaded = load_plain(json.dumps(group.attrs, sort_keys=True, indent=1).encode())
        self.check(rel, loaded.content)
        self.done(self.publisher.publish(self.report.root, rel, loaded))

    def dataset(self, rel: str, item: convert.Item) -> None:
        try:
            result = publish_stream(
                self.publisher, self.report.root, rel, _dataset_content(item), convert.iter_chunks(item),
                before_commit=lambda content: self.check(rel, content),
            )
        except (QuotaExceeded, TooLarge):
            raise
        except _READ_ERRORS as exc:
            self.skip(item.h5path, f"unreadable: {exc}")
            return
        self.done(result)
        with self._lock:
            self.report.arrays += 1

    def _task(self, fn, where: str, rel: str, obj) -> None:
        if self._stop.is_set():
            return
        if (reason := _valid(self.report.root, rel)) is not None:
            self.skip(where, reason)
            return
        try:
            fn(rel, obj)
        except BaseException:
            self._stop.set()  # a refusal (quota) or a store error: start nothing more
            raise

    def run(self, tasks) -> None:
        """Run the commits, ``DATASET_WORKERS`` at a time; the first error is raised after the others stop."""
        with ThreadPoolExecutor(max_workers=DATASET_WORKERS, thread_name_prefix="unfold") as pool:
            futures = [pool.submit(self._task, *task) for task in tasks]
        for future in futures:
            future.result()


def _prune(publisher: Publisher, report: UnfoldReport, prefix: str, done) -> None:
    kept = {r.path for r in report.results}
    catalog, _ = publisher.read_catalog(report.root)
    stale = {p for p in catalog.datasets if p.startswith(prefix)} - kept if catalog else set()
    for path in sorted(stale):
        done(publisher.delete(report.root, path))


# ---------------------------------------------------------------------- files


def publish_plain_file(publisher: Publisher, root: str, rel: str, local: Path) -> PublishResult:
    """Publish a local file as a plain file, streamed: one 1 MiB chunk in memory at a time."""
    size = local.stat().st_size
    base = load_object(_plain_schunk(), kind=Kind.FILE).content
    nchunks = -(-size // FILE_CHUNKSIZE)
    geometry = {**base.geometry, "nbytes": size, "nchunks": nchunks}

    def compress(piece: bytes) -> bytes:
        one = _plain_schunk()
        one.append_data(piece)
        return one.get_chunk(0)

    def chunks():
        # Zstd level 5 runs at tens of MB/s per core: compress a window of pieces in parallel
        with open(local, "rb") as src, ThreadPoolExecutor(max_workers=DATASET_WORKERS) as pool:
            for start in range(0, nchunks, DATASET_WORKERS):
                count = min(DATASET_WORKERS, nchunks - start)
                window = [src.read(FILE_CHUNKSIZE) for _ in range(count)]
                yield from enumerate(pool.map(compress, window), start)

    return publish_stream(publisher, root, rel, dataclasses.replace(base, geometry=geometry), chunks())


def publish_hdf5_file(
    publisher: Publisher,
    root: str,
    rel: str,
    local: Path,
    *,
    progress: Callable[[PublishResult], None] | None = None,
    prune: bool = True,
) -> tuple[PublishResult, UnfoldReport]:
    """Publish the local HDF5 file at *rel* and unfold it into ``directory_of(rel)``.

    The file is published first (its bytes stay downloadable), then its tree.
    """
    result = publish_plain_file(publisher, root, rel, local)
    if progress:
        progress(result)
    with convert.open_file(local) as f:
        report = unfold(f, publisher, root, directory_of(rel), progress=progress, prune=prune)
    return result, report


def unfold_stored(
    manifest: Manifest,
    region: Region,
    publisher: Publisher,
    directory: str,
    *,
    check: Check | None = None,
    progress: Callable[[PublishResult], None] | None = None,
) -> UnfoldReport:
    """Unfold the stored HDF5 file of *manifest* (a plain file) into *directory* of its root.

    Its bytes are read through the region chunk by chunk (:class:`StoredFile`).

    Raises
    ------
    BadRequest
        If the file is not HDF5 or holds no array.

    """
    geo = manifest.geometry
    # serial: fetched in h5py's own thread, which holds its lock (see Region.chunks)
    fetch = lambda idx: region.chunks(manifest, idx, CacheStats(), serial=True)  # noqa: E731
    stored = StoredFile(int(geo.nbytes), int(geo.chunksize), fetch)
    try:
        with stored, convert.open_file(stored) as f:
            return unfold(f, publisher, manifest.root, directory, check=check, progress=progress)
    except OSError as exc:  # h5py: no HDF5 signature, truncated file
        raise BadRequest(f"{manifest.root}/{manifest.path} cannot be read as HDF5: {exc}") from None


def publish_hdf5_root(
    publisher: Publisher, root: str, local: Path, *, progress: Callable[[PublishResult], None] | None = None
) -> UnfoldReport:
    """Publish an HDF5 file as a whole root: its datasets at the top; datasets it lost are deleted."""
    with convert.open_file(local) as f:
        return unfold(f, publisher, root, "", progress=progress, prune=True)
