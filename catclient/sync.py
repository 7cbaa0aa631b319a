"""Delta sync: a local directory kept in step with a root through its change feed.

``sync(client, root, directory)`` (``catclient sync ROOT DIR``):

1. reads the root's change feed after the cursor of the last sync (the first sync takes
   the feed's end as its cursor, then lists the root);
2. for each changed dataset, asks for a read plan of the whole of it and fetches only the
   chunks whose content hash the local copy does not have (the others are read back from
   the local file, checked against their hash), then assembles the new file beside the
   old one, without recompressing, and renames it into place (atomic);
3. records, after each file, its version and chunk hashes, and after all of them the new
   cursor, in ``DIR/.catclient-sync.json``: an interrupted sync re-reads the same changes
   and skips the files already at their version, so it resumes where it stopped.

A sync with nothing new makes one request (the feed page).  ``.b2nd`` and ``.b2frame``
datasets are synced chunk by chunk; other files are plain bytes locally, so a changed one
is fetched whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import blosc2

from catclient import wire
from catclient.cache import chunk_matches
from catclient.errors import BadRequest, NotFound

STATE_NAME = ".catclient-sync.json"
STATE_FORMAT = 1


@dataclass
class SyncReport:
    """What one sync did."""

    root: str
    changes: int = 0
    written: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks_fetched: int = 0
    bytes_fetched: int = 0
    chunks_reused: int = 0
    root_cbytes: int = 0
    requests: int = 0
    cursor: str = ""

    def to_json(self) -> dict:
        """JSON form (``catclient sync --json``)."""
        return asdict(self)


class _State:
    """``DIR/.catclient-sync.json``: the feed cursor, and each file's version and chunk hashes."""

    def __init__(self, directory: Path, url: str, root: str) -> None:
        self.path = directory / STATE_NAME
        self.url, self.root = url, root
        self.cursor: str | None = None
        self.files: dict[str, dict] = {}
        if self.path.exists():
            data = json.loads(self.path.read_text())
            if data.get("root") != root or data.get("format") != STATE_FORMAT:
                raise BadRequest(f"{directory} is synced with root {data.get('root')!r}, not {root!r}")
            self.cursor, self.files = data.get("cursor"), dict(data.get("files", {}))

    def save(self) -> None:
        body = {"format": STATE_FORMAT, "url": self.url, "root": self.root, "cursor": self.cursor,
                "files": self.files}
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(body, sort_keys=True))
        os.replace(tmp, self.path)


def _local(directory: Path, rel: str) -> Path:
    """Where *rel* (a path inside the root, as the server lists it) goes below *directory*."""
    parts = PurePosixPath(rel).parts
    if not parts or any(p in ("", ".", "..") for p in parts) or rel.startswith("/"):
        raise BadRequest(f"the server named an unsafe path: {rel!r}")
    return directory.joinpath(*parts)


def sync(client, root: str, directory) -> SyncReport:
    """Bring *directory* in step with *root*; see the module docstring.

    Parameters
    ----------
    client : catclient.Client
        Reads through it (plans, presigned GETs, ``/api/chunk``, the feed).
    root : str
        The root (``example``, ``@public``, ``@personal``).
    directory : str or Path
        The local directory (created if missing).

    Returns
    -------
    SyncReport
        Changes read, files written and removed, chunks and bytes fetched, requests made.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = _State(directory, client.urlbase, root)
    before = client.stats.api_requests + client.stats.chunk_downloads
    report = SyncReport(root)
    if state.cursor is None:
        cursor, _ = _feed_end(client, root, None)
        todo = {rel: None for rel in client.get_list(root)}  # None: the current version
    else:
        cursor, changes = _feed_end(client, root, state.cursor)
        report.changes = len(changes)
        # The last change of each path, in feed order: its version is what the file must become
        todo = {c["path"]: (c["version"] if c["type"] == "published" else 0) for c in changes}
    for rel in sorted(todo):
        _apply(client, root, rel, todo[rel], directory, state, report)
        state.save()  # each file recorded as it lands: an interrupted sync resumes after it
    state.cursor = cursor
    state.save()
    report.cursor = cursor
    report.root_cbytes = sum(int(f.get("cbytes", 0)) for f in state.files.values())
    report.requests = client.stats.api_requests + client.stats.chunk_downloads - before
    return report


def _feed_end(client, root: str, since: str | None) -> tuple[str, list[dict]]:
    """The cursor at the feed's end, and the changes after *since* (all of them, page after page)."""
    changes = []
    while True:
        page = client.changes(root, since, limit=1000)
        changes += page["changes"]
        since = page["cursor"]
        if not page["more"]:
            return since, changes


def _write(kind: str, geo: wire.Geometry, tmp: Path, chunk, n: int) -> None:
    """The new local file at *tmp*, from ``chunk(i)`` for each of its *n* chunks (one in memory at a time)."""
    if kind == "ndarray":
        made = wire.assemble_ndarray(geo, ((i, chunk(i)) for i in range(n)), urlpath=str(tmp))
        del made  # blosc2 flushes and closes the file with the object
    elif kind == "schunk":
        made = wire.assemble_schunk(geo, (chunk(i) for i in range(n)), urlpath=str(tmp))
        del made
    else:  # a plain file: its bytes, decompressed chunk by chunk
        with open(tmp, "wb") as fh:
            for i in range(n):
                fh.write(blosc2.decompress(chunk(i)))
            fh.truncate(geo.nbytes)


def _plan(client, path: str, version: int | None) -> dict | None:
    """The whole dataset's plan at *version* (the feed's), else (collected meanwhile) the current one."""
    if version is not None:
        try:
            return client.at_version(version).plan(path, ())
        except NotFound:
            pass  # collected, or deleted since: the current state decides
    return client.plan(path, ())


def _apply(
    client, root: str, rel: str, version: int | None, directory: Path, state: _State, report: SyncReport
) -> None:
    """Make the local copy of *rel* that *version* (0: deleted; None: the current one)."""
    target = _local(directory, rel)
    known = state.files.get(rel)
    if version and known is not None and known.get("version") == version and target.exists():
        report.unchanged += 1  # already applied (a resumed sync): not even a plan
        return
    try:
        if version == 0:
            raise NotFound(f"{root}/{rel} was deleted")
        plan = _plan(client, f"{root}/{rel}", version)
        reader = client.at_version(plan["version"]) if plan else client  # chunks of exactly that version
    except NotFound:
        if state.files.pop(rel, None) is not None or target.exists():
            target.unlink(missing_ok=True)
            report.removed += 1
        return
    if plan is None:
        raise BadRequest(f"{client.urlbase} offers no read plans: sync needs them")
    if known is not None and known.get("version") == plan["version"] and target.exists():
        report.unchanged += 1
        return
    geo = wire.Geometry.from_json(plan)
    refs = dict(wire.iter_chunk_refs(plan["chunk_refs"]))
    hashes = [refs[i].get("hash") for i in range(len(refs))]
    kind = plan.get("kind")
    reusable = kind in ("ndarray", "schunk") and known is not None and target.exists()
    local = _LocalChunks(target, known, kind) if reusable else _LocalChunks.none()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.sync-tmp")
    tmp.unlink(missing_ok=True)
    path = f"{root}/{rel}"

    def chunk(i: int) -> bytes:
        ref = refs[i]
        if ref.get("inline") is not None:
            return wire.decode_inline(ref["inline"])
        digest = ref["hash"]
        data = local.get(digest)
        if data is not None:
            report.chunks_reused += 1
            return data
        data = reader._chunk_by_ref(path, digest, ref.get("url"), i)
        report.chunks_fetched += 1
        report.bytes_fetched += len(data)
        return data

    _write(kind, geo, tmp, chunk, len(refs))
    os.replace(tmp, target)
    state.files[rel] = {"version": plan["version"], "hashes": hashes, "kind": kind,
                        "cbytes": sum(int(r.get("size") or 0) for r in refs.values())}
    report.written += 1


class _LocalChunks:
    """The compressed chunks of the local copy, by hash, read when asked and checked against it."""

    def __init__(self, target: Path | None, known: dict | None, kind: str | None) -> None:
        self._schunk = None
        self._where: dict[str, int] = {}
        if target is None:
            return
        try:
            opened = blosc2.open(str(target), mode="r")
        except (RuntimeError, ValueError, OSError):
            return  # not a Blosc2 file any more: everything is fetched
        self._opened = opened  # the NDArray owns its SChunk: keep it alive while chunks are read
        self._schunk = opened.schunk if kind == "ndarray" else opened
        for i, digest in enumerate(known.get("hashes") or []):
            if digest is not None and i < self._schunk.nchunks:
                self._where.setdefault(digest, i)

    @classmethod
    def none(cls) -> _LocalChunks:
        """No local copy."""
        return cls(None, None, None)

    def get(self, digest: str) -> bytes | None:
        """The chunk with *digest*, if the local copy has it intact (a file edited locally is re-fetched)."""
        i = self._where.get(digest)
        if i is None:
            return None
        data = self._schunk.get_chunk(i)
        return data if chunk_matches(data, digest) else None


__all__ = ["STATE_NAME", "SyncReport", "sync"]
