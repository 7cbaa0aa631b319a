"""Event-driven publishing: a file dropped at ``<root>/<path>`` in the ingest bucket is published."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from functions.engine.content import load_bytes
from functions.engine.errors import BadRequest
from functions.engine.paths import split_path
from functions.engine.ports import BlobStore, NotFound
from functions.engine.publish import Publisher, PublishResult
from functions.engine.writes import STAGING_PREFIX

#: Largest object ingested in one invocation (bytes); Lambda memory bounds it.
MAX_INGEST_BYTES = 2 << 30


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one dropped object."""

    key: str
    ok: bool
    result: PublishResult | None = None
    error: str | None = None
    skipped: bool = False  # a large upload staged by the API, committed by the API


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
        data = drop.get(key).data
        if len(data) > MAX_INGEST_BYTES:
            raise BadRequest(f"{key} is larger than {MAX_INGEST_BYTES} bytes")
        loaded = load_bytes(rel, data)
        return IngestOutcome(key, True, publisher.publish(root, rel, loaded))
    except BadRequest as exc:  # NotBlosc2 included
        return IngestOutcome(key, False, error=str(exc))
    except NotFound:
        return IngestOutcome(key, False, error=f"{key} is no longer in the ingest bucket")
