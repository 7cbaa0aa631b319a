"""Time travel: any committed version of a dataset, and the list of its versions.

Manifests are immutable and keyed ``m/<root>/<path>/<version>-<hash12>.json``, so a
version is found by listing that prefix in the origin (the truth: a version the
garbage collector removed is gone from it, whatever a cache bucket still holds).
A lost publish race can leave a second manifest of the same version that no head
ever named; then the chain of ``previous`` keys from the head, which the head's
conditional writes made the committed history, tells which one was committed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from functions.engine.errors import BadRequest, DatasetNotFound, OriginUnavailable, StoreUnavailable
from functions.engine.model import Manifest
from functions.engine.region import Region

#: Most versions one history answer lists (each costs a manifest read)
MAX_HISTORY = 200

#: Manifest reads of one history answer run in parallel (S3 latency bounds them)
_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="history")

_VERSION = re.compile(r"([0-9]+)-[0-9a-f]{12}\.json")


def _listed(region: Region, root: str, path: str, version: int | None = None) -> dict[int, list[str]]:
    """Manifest keys in the origin by version (only *version*'s, if given)."""
    prefix = f"m/{root}/{path}/" + (f"{version}-" if version is not None else "")
    out: dict[int, list[str]] = {}
    try:
        for key in region.origin.list(prefix):
            match = _VERSION.fullmatch(key.rsplit("/", 1)[1])
            if match and "/" not in key[len(f"m/{root}/{path}/") :]:
                out.setdefault(int(match[1]), []).append(key)
    except StoreUnavailable as exc:
        raise OriginUnavailable(f"the origin cannot list versions of {root}/{path}: {exc}") from exc
    return out


def _chain(region: Region, start: str | None) -> Iterator[Manifest]:
    """Manifests from *start* down its ``previous`` keys (stops at a collected or legacy one)."""
    key = start
    while key:
        try:
            manifest = region.manifest_at(key)
        except DatasetNotFound:
            return
        yield manifest
        key = manifest.previous


class VersionGone(DatasetNotFound):
    """A version that never existed or was collected (404); ``reason`` names no storage root."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.reason = reason


def _gone(root: str, path: str, version: int, current: int) -> VersionGone:
    if version > current:
        return VersionGone(
            f"{root}/{path}", f"there is no version {version} (the current version is {current})"
        )
    return VersionGone(
        f"{root}/{path}",
        f"version {version} is no longer kept (garbage-collected; the current version is {current})",
    )


def manifest_of(region: Region, root: str, path: str, version: int | None) -> Manifest:
    """The manifest of *version* of ``root/path`` (the current one for None).

    Raises
    ------
    DatasetNotFound
        The dataset does not exist, never had that version, or it was collected.
    BadRequest
        A version below 1.
    """
    head = region.head(root, path)
    if version is None or version == head.version:
        return region.manifest(head)
    if version < 1:
        raise BadRequest(f"version must be 1 or more, not {version}")
    if version > head.version:  # a version newer than this region's copy (a feed reader): ask the origin
        head = region.head(root, path, fresh=True)
        if version == head.version:
            return region.manifest(head)
        if version > head.version:
            raise _gone(root, path, version, head.version)
    keys = _listed(region, root, path, version).get(version, [])
    if len(keys) > 1:  # a lost race's orphan beside the committed one: follow the chain
        keys = [m_key for m_key, m in _committed(region, head.manifest, version) if m_key in keys]
    if not keys:
        raise _gone(root, path, version, head.version)
    try:
        return region.manifest_at(keys[0])
    except DatasetNotFound:  # collected between the listing and the read
        raise _gone(root, path, version, head.version) from None


def _committed(region: Region, start: str | None, down_to: int) -> Iterator[tuple[str, Manifest]]:
    key = start
    for manifest in _chain(region, start):
        if manifest.version < down_to:
            return
        yield key, manifest
        key = manifest.previous


@dataclass(frozen=True)
class Version:
    """One line of a dataset's history."""

    version: int
    mtime: str
    shape: list | None
    cbytes: int
    nchunks: int
    changed_chunks: int | None  # None: the previous version is not kept (cannot compare)
    author: str | None
    current: bool

    def to_json(self) -> dict:
        """JSON form."""
        return dict(self.__dict__)


def history(region: Region, root: str, path: str, *, limit: int = 50, before: int | None = None) -> dict:
    """The kept versions of ``root/path``, newest first, at most *limit* (older than *before*, if given).

    Returns ``{"path", "current", "versions": [...], "more"}``; each version says how
    many chunks changed from the version before it (None when that one is not kept).
    """
    if not 1 <= limit <= MAX_HISTORY:
        raise BadRequest(f"limit must be within 1..{MAX_HISTORY}, not {limit}")
    head = region.head(root, path)
    listed = _listed(region, root, path)
    ambiguous = {v for v, keys in listed.items() if len(keys) > 1}
    if ambiguous:
        committed = {m.version: k for k, m in _committed(region, head.manifest, min(ambiguous))}
        for v in ambiguous:
            listed[v] = [committed[v]] if v in committed else []
    listed[head.version] = [head.manifest]
    top = head.version if before is None else min(before - 1, head.version)
    versions = sorted((v for v, keys in listed.items() if keys and v <= top), reverse=True)
    shown, more = versions[:limit], len(versions) > limit
    # One version older than the page, to count the oldest shown one's changed chunks
    needed = versions[: limit + 1]
    manifests = dict(zip(needed, _POOL.map(lambda v: _read(region, listed[v][0]), needed), strict=True))
    out = []
    for v in shown:
        m = manifests[v]
        if m is None:
            continue
        prev = manifests.get(v - 1)
        out.append(_line(m, prev, v == head.version).to_json())
    return {"path": path, "current": head.version, "versions": out, "more": more}


def _read(region: Region, key: str) -> Manifest | None:
    try:
        return region.manifest_at(key)
    except DatasetNotFound:
        return None


def _line(m: Manifest, prev: Manifest | None, current: bool) -> Version:
    geo = m.content.geometry
    if m.version == 1:
        changed = len(m.refs)
    elif prev is None:
        changed = None
    else:
        changed = changed_count(prev, m)
    return Version(
        version=m.version,
        mtime=m.mtime,
        shape=list(geo["shape"]) if geo.get("shape") is not None else None,
        cbytes=m.content.cbytes,
        nchunks=len(m.refs),
        changed_chunks=changed,
        author=m.author,
        current=current,
    )


def changed_count(old: Manifest, new: Manifest) -> int:
    """Chunks of *new* whose bytes differ from *old*'s at the same index (or that *old* lacks)."""
    return sum(
        1 for i, ref in enumerate(new.refs) if i >= len(old.refs) or old.refs[i].identity != ref.identity
    )


__all__ = ["MAX_HISTORY", "Version", "VersionGone", "changed_count", "history", "manifest_of"]
