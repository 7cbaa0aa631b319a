"""Keeping the local stack's buckets across runs (``--state DIR``): saved on stop, restored on start.

The layout is one file per object, ``DIR/<bucket>/<key>``, so a saved state can be read
(and edited) with ordinary tools.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("cat-local")

__all__ = ["restore_buckets", "save_buckets"]


def restore_buckets(s3, buckets: Iterable[str], state: Path | None) -> int:
    """Put back every object :func:`save_buckets` wrote under *state*.

    Parameters
    ----------
    s3 : boto3 S3 client
        Where the buckets live (they must exist).
    buckets : iterable of str
        The buckets to restore; others saved under *state* are ignored.
    state : Path or None
        The state directory; None or a missing directory restores nothing.

    Returns
    -------
    int
        How many objects were put.
    """
    if state is None or not state.is_dir():
        return 0
    count = 0
    for bucket in buckets:
        base = state / bucket
        for path in sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else ():
            s3.put_object(Bucket=bucket, Key=path.relative_to(base).as_posix(), Body=path.read_bytes())
            count += 1
    log.info("restored %d objects from %s", count, state)
    return count


def save_buckets(s3, buckets: Iterable[str], state: Path) -> int:
    """Write every object of *buckets* under ``state/<bucket>/<key>``, replacing what was there.

    Parameters
    ----------
    s3 : boto3 S3 client
        Where the buckets live.
    buckets : iterable of str
        The buckets to save.
    state : Path
        The state directory.

    Returns
    -------
    int
        How many objects were written.
    """
    fresh = state.with_name(state.name + ".saving")
    shutil.rmtree(fresh, ignore_errors=True)
    count = 0
    for bucket in buckets:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", ()):
                target = fresh / bucket / obj["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read())
                count += 1
    # Swap only once the copy is complete: an interrupted save keeps the previous state
    fresh.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(state, ignore_errors=True)
    fresh.rename(state)
    log.info("saved %d objects to %s", count, state)
    return count
