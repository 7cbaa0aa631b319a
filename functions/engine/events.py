"""The change-event port and its in-process implementations (the SNS one is an adapter)."""

from __future__ import annotations

import threading
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


class MemorySink:
    """Keeps events in a list (tests)."""

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self._lock = threading.Lock()

    def emit(self, event: ChangeEvent) -> None:  # noqa: D102 - protocol method
        with self._lock:
            self.events.append(event)


class FanoutSink:
    """Emits to several sinks in order (e.g. SNS plus an in-process listener)."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def emit(self, event: ChangeEvent) -> None:  # noqa: D102 - protocol method
        for sink in self.sinks:
            sink.emit(event)
