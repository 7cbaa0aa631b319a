"""Applying change events to a region (what the sync Lambda does)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from functions.engine import healing
from functions.engine.model import ChangeEvent
from functions.engine.region import Region


@dataclass(frozen=True)
class SyncOutcome:
    """Result of one message: applied, ignored (stale/duplicate) or rejected (malformed)."""

    status: str
    detail: str = ""


def parse_message(body: str) -> ChangeEvent:
    """A change event from an SNS message body; raises ``ValueError`` if malformed."""
    try:
        data = json.loads(body)
        return ChangeEvent.from_json(data)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"not a change event: {exc!r}") from None


def apply_message(region: Region, body: str, subscribed: set[str] | None = None) -> SyncOutcome:
    """Apply one message body to *region* (raises ``ValueError`` if it is not a change event).

    *subscribed*: the region's subscribed roots (prefetched), if the caller has them.
    """
    event = parse_message(body)
    subscribed = region.subscriptions() if subscribed is None else subscribed
    changed = region.apply_event(event, prefetch=event.root in subscribed)
    # The event's feed position: a gap before it means lost events, healed from the feed now
    healed = healing.after_event(region, event, prefetch=event.root in subscribed)
    detail = f"{event.root}/{event.path} v{event.version}"
    if healed is not None:
        detail += f" (healed {healed.changes} missed change(s) from the feed)"
    return SyncOutcome("applied" if changed or (healed and healed.refreshed) else "ignored", detail)


def apply_messages(region: Region, bodies: Iterable[str]) -> list[SyncOutcome]:
    """Apply each message body to *region*; one bad message never stops the batch."""
    subscribed = region.subscriptions()
    out = []
    for body in bodies:
        try:
            out.append(apply_message(region, body, subscribed))
        except ValueError as exc:
            out.append(SyncOutcome("rejected", str(exc)))
    return out
