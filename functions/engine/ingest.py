"""Event-driven publishing: a file dropped at ``<root>/<path>`` in the ingest bucket is published."""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from functions.engine.content import Loaded, load_bytes, load_path
from functions.engine.errors import BadRequest
from functions.engine.paths import split_path
from functions.engine.ports import BlobStore, NotFound
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
    """What happened to one dropped object."""

    key: str
    ok: bool
    result: PublishResult | None = None
    error: str | None = None
    skipped: bool = False  # a large upload staged by the API, committed by the API
    #: An HDF5 drop: its unfold report (``UnfoldReport.to_json()``, or ``{"error": ...}``)
    unfolded: dict | None = None


def decode_key(raw_key: str) -> str:
    """S3 event keys are URL-encoded with ``+`` for spaces (the AWS way)."""
    return urllib.parse.unquote_plus(raw_key)


def ingest_object(publisher: Publisher, drop: BlobStore, raw_key: str) -> IngestOutcome:
    """Publish the dropped object *raw_key* (as it appears in the S3 event) into the origin.

    Bad input (a path with ``..``, a non-Blosc2 file named ``.b2nd``, a vanished
    object) yields ``ok=False`` with a reason; nothing partial is ever published,
    because publishing commits only after all chunks and the manifest are stored.
    """
    key = decode_key(raw_key)
    if key.startswith(STAGING_PREFIX):
        return IngestOutcome(key, False, skipped=True)
    try:
        root, rel = split_path(key, allow_root_only=False)
        size = drop.size(key)  # checked before a byte is read
        if size > MAX_INGEST_BYTES:
            raise BadRequest(f"{key} is {size} bytes, over the ingest limit of {MAX_INGEST_BYTES} bytes")
        if rel.lower().endswith((".h5", ".hdf5")):
            return _ingest_hdf5(publisher, drop, key, root, rel)
        return IngestOutcome(key, True, publisher.publish(root, rel, _load(publisher, drop, key, rel, size)))
    except BadRequest as exc:  # NotBlosc2 included
        return IngestOutcome(key, False, error=str(exc))
    except NotFound:
        return IngestOutcome(key, False, error=f"{key} is no longer in the ingest bucket")


def _load(publisher: Publisher, drop: BlobStore, key: str, rel: str, size: int) -> Loaded:
    """The dropped object's content: read into memory when small, streamed through /tmp when not."""
    if size <= IN_MEMORY_BYTES:
        return load_bytes(rel, drop.get(key).data, publisher.frame_limits)
    suffix = os.path.splitext(rel)[1]
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        local = Path(tmp) / f"drop{suffix}"
        drop.fetch_to(key, str(local))
        return load_path(local, publisher.frame_limits)


def _ingest_hdf5(publisher: Publisher, drop: BlobStore, key: str, root: str, rel: str) -> IngestOutcome:
    """Store a dropped HDF5 file and unfold it beside itself (``x.h5`` → ``x/``), through /tmp.

    Conversion streams chunk by chunk from the local copy: memory stays bounded
    whatever the file's size (docs/hdf5.md gives the measured figures).
    """
    from functions.engine.hdf5 import convert
    from functions.engine.hdf5.unfold import directory_of, publish_plain_file, unfold  # h5py only here

    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp:
        local = Path(tmp) / "drop.h5"
        drop.fetch_to(key, str(local))
        result = publish_plain_file(publisher, root, rel, local)
        try:
            with convert.open_file(local) as f:
                report = unfold(f, publisher, root, directory_of(rel))
        except (BadRequest, OSError) as exc:  # not HDF5 after all, or no arrays: stored as a file only
            log.warning("%s: stored, not unfolded: %s", key, exc)
            return IngestOutcome(key, True, result, unfolded={"error": str(exc)})
    for where, reason in report.skipped:
        log.warning("%s: skipped %s: %s", key, where, reason)
    return IngestOutcome(key, True, result, unfolded=report.to_json())
