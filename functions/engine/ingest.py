"""Event-driven publishing: a file dropped at ``<root>/<path>`` in the ingest bucket is published."""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from functions.engine.content import Loaded, load_bytes, load_path
from functions.engine.errors import BadRequest
from functions.engine.paths import split_path
from functions.engine.ports import BlobStore, NotFound, StoreError
from functions.engine.publish import Publisher, PublishResult
from functions.engine.writes import STAGING_PREFIX

log = logging.getLogger(__name__)

#: Largest object ingested in one invocation (bytes): the ingest function's ephemeral
#: storage (/tmp, 10 GB at most, 4 GB in the template) holds it while it is published.
MAX_INGEST_BYTES = 2 << 30
#: Objects up to this size are read into memory; larger ones stream through a temporary
#: file, so a big drop never needs its size in memory twice (bytes + chunks).
IN_MEMORY_BYTES = 64 << 20


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one dropped object.

    ``ok`` = published (or unchanged); otherwise ``error`` says why. A *rejected* drop
    (bad path, not Blosc2, too big, vanished) would fail the same way again; a *failed*
    one (``retry=True``: storage unreachable, lost races) is worth delivering again.
    """

    key: str
    ok: bool
    result: PublishResult | None = None
    error: str | None = None
    skipped: bool = False  # a large upload staged by the API, committed by the API
    #: An HDF5 drop: its unfold report (``UnfoldReport.to_json()``, or ``{"error": ...}``)
    unfolded: dict | None = None
    retry: bool = False


def decode_key(raw_key: str) -> str:
    """S3 event keys are URL-encoded with ``+`` for spaces (the AWS way)."""
    return urllib.parse.unquote_plus(raw_key)


@dataclass(frozen=True)
class _Drop:
    """A dropped object that passed the checks made before reading it."""

    key: str
    root: str
    rel: str
    size: int

    @property
    def is_hdf5(self) -> bool:
        return self.rel.lower().endswith((".h5", ".hdf5"))


def _check(drop: BlobStore, raw_key: str) -> _Drop | IngestOutcome:
    """Path and size of a drop, checked before a byte is read; or the outcome that ends it."""
    key = decode_key(raw_key)
    if key.startswith(STAGING_PREFIX):
        return IngestOutcome(key, False, skipped=True)
    try:
        root, rel = split_path(key, allow_root_only=False)
        size = drop.size(key)
    except BadRequest as exc:
        return IngestOutcome(key, False, error=str(exc))
    except NotFound:
        return IngestOutcome(key, False, error=f"{key} is no longer in the ingest bucket")
    except StoreError as exc:
        return IngestOutcome(key, False, error=str(exc), retry=True)
    if size > MAX_INGEST_BYTES:
        too_big = f"{key} is {size} bytes, over the ingest limit of {MAX_INGEST_BYTES} bytes"
        return IngestOutcome(key, False, error=too_big)
    return _Drop(key, root, rel, size)


def _outcome(key: str, result: PublishResult | Exception) -> IngestOutcome:
    """A publish's result (or the exception it raised) as an ingest outcome."""
    if isinstance(result, PublishResult):
        return IngestOutcome(key, True, result)
    if isinstance(result, BadRequest):  # NotBlosc2 included
        return IngestOutcome(key, False, error=str(result))
    if isinstance(result, NotFound):
        return IngestOutcome(key, False, error=f"{key} is no longer in the ingest bucket")
    return IngestOutcome(key, False, error=f"{type(result).__name__}: {result}", retry=True)


def ingest_object(publisher: Publisher, drop: BlobStore, raw_key: str) -> IngestOutcome:
    """Publish the dropped object *raw_key* (as it appears in the S3 event) into the origin.

    Bad input (a path with ``..``, a non-Blosc2 file named ``.b2nd``, a vanished
    object) yields ``ok=False`` with a reason; nothing partial is ever published,
    because publishing commits only after all chunks and the manifest are stored.
    """
    return ingest_objects(publisher, drop, [raw_key])[0]


def ingest_objects(publisher: Publisher, drop: BlobStore, raw_keys: list[str]) -> list[IngestOutcome]:
    """Publish many dropped objects (one SQS batch), updating each root's catalog once.

    Objects are grouped by root and published with :meth:`Publisher.publish_batch`, so a
    bulk drop of hundreds of files into one root costs one catalog write per batch, not
    one per file racing the others. HDF5 files are stored and unfolded one by one (each
    is a tree of datasets of its own).

    Returns
    -------
    list of IngestOutcome
        One per key, in order.
    """
    outcomes: dict[int, IngestOutcome] = {}
    by_root: dict[str, list[tuple[int, _Drop]]] = {}
    for i, raw in enumerate(raw_keys):
        checked = _check(drop, raw)
        if isinstance(checked, IngestOutcome):
            outcomes[i] = checked
        elif checked.is_hdf5:
            outcomes[i] = _ingest_hdf5(publisher, drop, checked)
        else:
            by_root.setdefault(checked.root, []).append((i, checked))
    for root, items in by_root.items():
        results = publisher.publish_batch(
            root, [(d.rel, functools.partial(_load, publisher, drop, d.key, d.rel, d.size)) for _, d in items]
        )
        for (i, d), result in zip(items, results, strict=True):
            outcomes[i] = _outcome(d.key, result)
    return [outcomes[i] for i in range(len(raw_keys))]


def _load(publisher: Publisher, drop: BlobStore, key: str, rel: str, size: int) -> Loaded:
    """The dropped object's content: read into memory when small, streamed through /tmp when not."""
    if size <= IN_MEMORY_BYTES:
        return load_bytes(rel, drop.get(key).data, publisher.frame_limits)
    suffix = os.path.splitext(rel)[1]
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        local = Path(tmp) / f"drop{suffix}"
        drop.fetch_to(key, str(local))
        return load_path(local, publisher.frame_limits)


def _ingest_hdf5(publisher: Publisher, drop: BlobStore, d: _Drop) -> IngestOutcome:
    """Store a dropped HDF5 file and unfold it beside itself (``x.h5`` → ``x/``), through /tmp.

    Conversion streams chunk by chunk from the local copy: memory stays bounded
    whatever the file's size (docs/hdf5.md gives the measured figures).
    """
    from functions.engine.hdf5 import convert
    from functions.engine.hdf5.unfold import directory_of, publish_plain_file, unfold  # h5py only here

    try:
        with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
            local = Path(tmp) / "drop.h5"
            drop.fetch_to(d.key, str(local))
            result = publish_plain_file(publisher, d.root, d.rel, local)
            try:
                with convert.open_file(local) as f:
                    report = unfold(f, publisher, d.root, directory_of(d.rel))
            except (BadRequest, OSError) as exc:  # not HDF5 after all, or no arrays: stored as a file only
                log.warning("%s: stored, not unfolded: %s", d.key, exc)
                return IngestOutcome(d.key, True, result, unfolded={"error": str(exc)})
    except Exception as exc:  # noqa: BLE001 - one drop's failure is its outcome, never the batch's
        return _outcome(d.key, exc)
    for where, reason in report.skipped:
        log.warning("%s: skipped %s: %s", d.key, where, reason)
    return IngestOutcome(d.key, True, result, unfolded=report.to_json())
