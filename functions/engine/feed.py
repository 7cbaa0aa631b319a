"""A root's change feed: every committed change in one total order, readable after a cursor.

Order
-----
A root's catalog is written with a conditional PUT, so its versions are already a
total order of the root's commits.  The feed makes that order durable and
readable: before catalog version *s* is written, its entry ``f/<root>/<s>.json``
(the heads it merges and the changes they are) is *claimed* with ``If-None-Match``.
Only one writer can claim *s*; a writer that finds *s* claimed completes it (merges
that entry's heads into the catalog at *s* - 1, which anyone may do: merging
heads is idempotent) and tries *s* + 1.  So a crash between the claim and the
catalog write loses nothing: the next commit of the root completes it.  Catalog
version *s* is therefore always exactly "catalog *s* - 1 plus entry *s*", and the
feed has no gaps from the first commit that wrote one.

A change superseded before its catalog merge (two publishers of one dataset, the
later one merging first) is still in the feed: its entry lists it, although the
catalog keeps the newer head.  Feed entries are never garbage-collected; the
changes of collected versions stay listed (their manifests answer 404).

Cursor
------
Opaque to clients: ``c1.<base64url>`` of ``[seq, n, root-tag]``, the position after
the *n*-th change of entry *seq*; the root tag refuses a cursor of another root.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from functions.engine import layout
from functions.engine.errors import BadRequest, Conflict, NotFound, PreconditionFailed
from functions.engine.model import Catalog, ChangeEvent, Head, dumps
from functions.engine.ports import BlobStore

#: Most changes one page of the feed answers (a page reads at most this many entries)
MAX_PAGE = 1000
#: Conditional-write attempts of one commit (claims and catalog writes) before :class:`Conflict`
ATTEMPTS = 48

_CURSOR_PREFIX = "c1."


# ---------------------------------------------------------------------- cursors


def _root_tag(root: str) -> str:
    return hashlib.blake2b(root.encode(), digest_size=4).hexdigest()


def encode_cursor(root: str, seq: int, n: int) -> str:
    """The cursor after the *n*-th change of entry *seq* of *root*'s feed (``seq=0``: the start)."""
    raw = json.dumps([seq, n, _root_tag(root)], separators=(",", ":")).encode()
    return _CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(root: str, cursor: str | None) -> tuple[int, int]:
    """``(seq, n)`` of a cursor of *root* (``(0, 0)`` for none).

    Raises
    ------
    BadRequest
        A malformed cursor, or one of another root.
    """
    if not cursor:
        return 0, 0
    try:
        if not cursor.startswith(_CURSOR_PREFIX) or len(cursor) > 200:
            raise ValueError("prefix")
        body = cursor[len(_CURSOR_PREFIX) :]
        seq, n, tag = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        seq, n = int(seq), int(n)
        if seq < 0 or n < 0:
            raise ValueError("negative")
    except (ValueError, TypeError, json.JSONDecodeError):
        raise BadRequest(
            f"not a change-feed cursor: {cursor[:80]!r} (pass back the 'cursor' an answer gave)"
        ) from None
    if tag != _root_tag(root):
        raise BadRequest(f"that cursor belongs to another root's feed, not {root!r}")
    return seq, n


# ---------------------------------------------------------------------- writing


def change_of(event: ChangeEvent) -> dict:
    """The feed's record of one change (the event body without root and feed position)."""
    out = event.to_json()
    for key in ("root", "seq", "cursor"):
        out.pop(key, None)
    return out


def _repair_change(head: Head, previous_version: int) -> dict:
    """A change for a head whose commit left no record (a crash before its catalog merge)."""
    return {
        "type": "deleted" if head.deleted else "published",
        "path": head.path,
        "version": head.version,
        "previous_version": previous_version,
        "mtime": head.mtime,
        "manifest": head.manifest,
        "changed_chunks": None,  # unknown: a subscriber re-reads the whole dataset
        "nchunks": 0,
    }


def _read_catalog(store: BlobStore, root: str) -> tuple[Catalog | None, str | None]:
    try:
        blob = store.get(layout.catalog_key(root))
    except NotFound:
        return None, None
    return Catalog.from_bytes(blob.data), blob.etag


def merge_entry(catalog: Catalog, head: Head, created: bool) -> bool:
    """Apply *head* to *catalog*'s entries; whether that changed anything (or creates the catalog)."""
    entry = catalog.datasets.get(head.path)
    if entry is not None and entry.get("version", 0) >= head.version:
        return False
    if head.deleted:
        if entry is None and not created:
            return False
        catalog.datasets.pop(head.path, None)
    else:
        catalog.datasets[head.path] = head.to_json()
    return True


@dataclass(frozen=True)
class Committed:
    """What :func:`commit` wrote, key → JSON value (``{}``: another writer wrote it), and its seq."""

    written: dict
    seq: int


def commit(
    store: BlobStore,
    root: str,
    heads: list[Head],
    changes: list[dict],
    *,
    clock: Callable[[], str],
    attempts: Callable[[int], Iterable[int]],
) -> Committed:
    """Record *changes* in *root*'s feed and merge *heads* into its catalog, as one catalog version.

    Parameters
    ----------
    store : BlobStore
        The origin bucket.
    root : str
        The root all *heads* belong to.
    heads : list of Head
        Heads already committed (their conditional writes won).
    changes : list of dict
        Their changes (:func:`change_of`), in commit order; a head that changes the
        catalog without one (a repair) gets a change with ``changed_chunks`` None.
    clock : callable
        Now as ISO-8601 (the entry's ``mtime``).
    attempts : callable
        ``attempts(n)`` yields attempt numbers, backing off between them.

    Returns
    -------
    Committed
        ``seq`` 0 when nothing needed recording (every head already merged, no change).
    """
    created = False  # whether this call (helping another writer, maybe) created the catalog
    for _attempt in attempts(ATTEMPTS):
        catalog, etag = _read_catalog(store, root)
        base = catalog or Catalog(root)
        trial = Catalog(root, base.version, dict(base.datasets))
        recorded = {(c["path"], c["version"]) for c in changes}
        todo = list(changes)
        for head in heads:
            before = int(trial.datasets.get(head.path, {}).get("version", 0))
            if merge_entry(trial, head, catalog is None) and (head.path, head.version) not in recorded:
                todo.append(_repair_change(head, before))
        if not todo and catalog is not None and trial.datasets == base.datasets:
            return Committed({"created": True} if created else {}, 0)
        seq = base.version + 1
        entry = {
            "seq": seq,
            "root": root,
            "mtime": clock(),
            "heads": [h.to_json() for h in heads],
            "changes": todo,
        }
        try:
            store.put(
                layout.feed_key(root, seq), dumps(entry), if_none_match=True, content_type="application/json"
            )
        except PreconditionFailed:
            # Another writer's claim, maybe stalled: finish it (and register the root if that creates it)
            created |= bool(_complete(store, root, seq, attempts).get("created"))
            continue
        # the catalog and its ETag just read are what the claim follows: no second GET
        written = _complete(store, root, seq, attempts, entry, read=(catalog, etag))
        if created:
            written["created"] = True
        return Committed(written, seq)
    raise Conflict(f"catalog of {root}: too many concurrent writers")


def _complete(
    store: BlobStore,
    root: str,
    seq: int,
    attempts: Callable[[int], Iterable[int]],
    entry: dict | None = None,
    read: tuple[Catalog | None, str | None] | None = None,
) -> dict:
    """Write catalog version *seq* = catalog *seq* - 1 + entry *seq*'s heads (``{}``: written already).

    *read* is the catalog and ETag the caller has just read (its first attempt uses them).
    """
    if entry is None:
        try:
            entry = json.loads(store.get(layout.feed_key(root, seq)).data)
        except NotFound:
            return {}
    heads = [Head.from_json(h) for h in entry["heads"]]
    created = False  # whether this call (helping another writer, maybe) created the catalog
    for _attempt in attempts(ATTEMPTS):
        catalog, etag = read if read is not None else _read_catalog(store, root)
        read = None  # a retry follows a lost race: read again
        if catalog is not None and catalog.version >= seq:
            return {}
        created = catalog is None
        catalog = catalog or Catalog(root)
        if catalog.version != seq - 1:  # cannot happen: a claim of seq read catalog seq - 1
            raise Conflict(f"catalog of {root} is at {catalog.version}, feed entry {seq} cannot follow it")
        for head in heads:
            merge_entry(catalog, head, created)
        catalog.version = seq
        body = catalog.to_bytes()
        try:
            if etag is None:
                store.put(layout.catalog_key(root), body, if_none_match=True, content_type="application/json")
            else:
                store.put(layout.catalog_key(root), body, if_match=etag, content_type="application/json")
        except PreconditionFailed:
            continue
        return {layout.catalog_key(root): json.loads(body), "created": created}
    raise Conflict(f"catalog of {root}: too many concurrent writers")


# ---------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Page:
    """One page of a feed: changes in commit order, the cursor after them, whether more follow."""

    root: str
    changes: list[dict]
    cursor: str
    more: bool

    def to_json(self) -> dict:
        """``{"root", "changes", "cursor", "more"}``."""
        return {"root": self.root, "changes": self.changes, "cursor": self.cursor, "more": self.more}


def read(
    store: BlobStore,
    root: str,
    cursor: str | None,
    *,
    limit: int = 100,
    pool: ThreadPoolExecutor | None = None,
) -> Page:
    """The changes of *root* after *cursor*, at most *limit* of them.

    Each change carries its ``seq`` and the ``cursor`` after it; the page's
    ``cursor`` is the last one (or *cursor* itself when nothing is new).

    Raises
    ------
    BadRequest
        A bad cursor, or *limit* outside 1..:data:`MAX_PAGE`.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"limit must be within 1..{MAX_PAGE}, not {limit}")
    seq, n = decode_cursor(root, cursor)
    after = layout.feed_key(root, seq - 1) if seq > 0 else ""
    keys = []
    for key in store.list(layout.feed_prefix(root), start_after=after):
        keys.append(key)
        if len(keys) > limit:  # one more than a page: whether more follow
            break
    entries = list((pool.map if pool else map)(lambda k: _entry(store, k), keys))
    out: list[dict] = []
    more = False
    last = (seq, n)
    for entry in entries:
        if entry is None:
            continue
        s = int(entry["seq"])
        start = n if s == seq else 0
        for i, change in enumerate(entry["changes"][start:], start=start):
            if len(out) == limit:
                more = True
                break
            out.append({**change, "seq": s, "cursor": encode_cursor(root, s, i + 1)})
            last = (s, i + 1)
        if more:
            break
    else:
        more = len(keys) > limit
    return Page(root, out, encode_cursor(root, *last) if out else (cursor or encode_cursor(root, 0, 0)), more)


def _entry(store: BlobStore, key: str) -> dict | None:
    try:
        return json.loads(store.get(key).data)
    except NotFound:
        return None


def latest_seq(store: BlobStore, root: str) -> int:
    """The feed position a root's catalog is at (its version; 0 for an unknown root)."""
    catalog, _ = _read_catalog(store, root)
    return catalog.version if catalog else 0


__all__ = ["MAX_PAGE", "Committed", "Page", "change_of", "commit", "decode_cursor", "encode_cursor", "read"]
