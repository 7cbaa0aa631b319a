"""The change-event port, and the sink used when no topic is configured (SNS is an adapter)."""

from __future__ import annotations

from typing import Protocol

from functions.engine.model import ChangeEvent


class EventSink(Protocol):
    """Where committed versions are announced."""

    def emit(self, event: ChangeEvent) -> None:
        """Announce one committed version."""
        ...


class NullSink:
    """Drops events (a publisher with no topic configured)."""

    def emit(self, event: ChangeEvent) -> None:  # noqa: D102 - protocol method
        return None
