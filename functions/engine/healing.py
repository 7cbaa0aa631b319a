"""A region catching up from a root's change feed when change events were lost.

Each region remembers, per root, the feed position it has applied
(``s/feed/<root>.json`` in its cache bucket: the highest ``seq`` it saw).  An
event whose ``seq`` is more than one past it reveals a gap (a lost or delayed
event): the region reads the feed from its position and applies every change in
it, before serving anything of it stale for a head TTL.  :func:`heal_all` does the
same for every root on a timer, and :func:`revalidation_hook` for one root when its
catalog's copy ran past its TTL, for a loss no later event reveals.  Applying is
:meth:`Region.apply_event`, which re-reads the origin's heads: healing twice, or
healing a change an event also brings, changes nothing.

A change recorded without its changed chunks (a repaired commit) prefetches the
whole current version for a subscribed root; several versions of one dataset in
the gap prefetch the union of their changed chunks.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from functions.engine import feed
from functions.engine.errors import DatasetNotFound, NotFound, StoreUnavailable
from functions.engine.model import ChangeEvent, dumps
from functions.engine.region import Region

log = logging.getLogger(__name__)


def cursor_key(root: str) -> str:
    """Where a region's cache bucket keeps the feed position it applied for *root*."""
    return f"s/feed/{root}.json"


def applied_seq(region: Region, root: str) -> int | None:
    """The feed position *region* applied for *root* (None: it never recorded one)."""
    if region.cache is None:
        return None
    try:
        return int(json.loads(region.cache.get(cursor_key(root)).data)["seq"])
    except NotFound:
        return None
    except (ValueError, KeyError, TypeError):
        return None  # unreadable: start again from what the next event says


def _record(region: Region, root: str, seq: int) -> None:
    try:
        region.cache.put(cursor_key(root), dumps({"seq": seq}), content_type="application/json")
    except StoreUnavailable:
        log.warning("cache bucket unavailable; feed position of %s not recorded", root)


@dataclass(frozen=True)
class Healed:
    """What :func:`heal` did: the changes it read, the heads it refreshed, the position it reached."""

    changes: int
    refreshed: int
    seq: int


def heal(region: Region, root: str, *, since: int, prefetch: bool) -> Healed:
    """Apply every change of *root*'s feed after position *since*; record the position reached."""
    cursor = feed.encode_cursor(root, since + 1, 0)
    latest: dict[str, ChangeEvent] = {}
    chunks: dict[str, set[int] | None] = {}
    count, seq = 0, since
    while True:
        page = feed.read(region.origin, root, cursor, limit=feed.MAX_PAGE)
        for change in page.changes:
            count += 1
            seq = max(seq, int(change["seq"]))
            path = change["path"]
            if change.get("changed_chunks") is None:
                chunks[path] = None
            elif path not in chunks or chunks[path] is not None:
                chunks[path] = (chunks.get(path) or set()) | set(change["changed_chunks"])
            latest[path] = ChangeEvent.from_json({**change, "root": root, "changed_chunks": ()})
        cursor = page.cursor
        if not page.more:
            break
    refreshed = 0
    for path, event in latest.items():
        wanted = chunks.get(path)
        indices = tuple(sorted(wanted)) if wanted is not None else tuple(range(event.nchunks or 0))
        try:
            refreshed += region.apply_event(_with_chunks(event, indices), prefetch=prefetch)
        except DatasetNotFound:
            continue  # a version collected meanwhile: the head re-read is what matters
    if seq > since:
        _record(region, root, seq)
    return Healed(count, refreshed, seq)


def _with_chunks(event: ChangeEvent, indices: tuple[int, ...]) -> ChangeEvent:
    d = event.to_json()
    d["changed_chunks"] = list(indices)
    return ChangeEvent.from_json(d)


def after_event(region: Region, event: ChangeEvent, *, prefetch: bool) -> Healed | None:
    """Note *event*'s feed position; heal from the feed first if it reveals a gap.

    Returns what healing did, or None when there was no gap (or no position to compare).
    """
    if region.cache is None or not event.seq:
        return None
    applied = applied_seq(region, event.root)
    if applied is not None and event.seq <= applied:
        return None
    if applied is not None and event.seq > applied + 1:
        log.info(
            "feed gap for %s: applied %d, event at %d; healing from the feed", event.root, applied, event.seq
        )
        return heal(region, event.root, since=applied, prefetch=prefetch)
    _record(region, event.root, event.seq)
    return None


def heal_all(region: Region) -> dict[str, Healed]:
    """Compare every root's applied position with its catalog; heal the roots behind (a timer's job).

    A root with no recorded position takes its current one (nothing to compare yet).
    """
    out: dict[str, Healed] = {}
    if region.cache is None:
        return out
    subscribed = region.subscriptions()
    for root in region.roots():
        latest = feed.latest_seq(region.origin, root)
        applied = applied_seq(region, root)
        if applied is None:
            _record(region, root, latest)
        elif latest > applied:
            out[root] = heal(region, root, since=applied, prefetch=root in subscribed)
    return out


def revalidation_hook(region: Region):
    """What *region* calls when a copy past its TTL is read again (``Region.on_revalidate``).

    A root's catalog newer than the feed position the region applied means events were
    lost (or are still on their way): the region heals from the feed at once, so the other
    datasets of the root are fresh before their own TTLs run out, and a subscribed root's
    changed chunks are prefetched.  Failures are logged: the read that revalidated goes on.
    """

    def hook(key: str, value) -> None:
        if not key.startswith("r/") or not isinstance(value, dict):
            return
        root = str(value.get("root", ""))
        try:
            applied = applied_seq(region, root)
            if applied is not None and int(value.get("version", 0)) > applied:
                heal(region, root, since=applied, prefetch=root in region.subscriptions())
        except Exception:  # noqa: BLE001 - healing is an optimisation of freshness, never a read's failure
            log.exception("healing %s from its feed after a TTL miss failed", root)

    return hook


__all__ = ["Healed", "after_event", "applied_seq", "cursor_key", "heal", "heal_all", "revalidation_hook"]
