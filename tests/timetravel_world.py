"""An API over in-memory buckets with a hand-moved clock, served over real HTTP (time travel, feed, GC)."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import blosc2
import numpy as np

from functions.adapters.memory import MemoryStore
from functions.api.app import create_app
from functions.engine.content import load_object
from functions.engine.model import ChangeEvent
from functions.engine.publish import Publisher
from functions.engine.region import Region
from functions.services import Services
from functions.settings import Settings
from tests.serving import serve


class Clock:
    """POSIX seconds that tests move by hand: objects age without waiting."""

    def __init__(self) -> None:
        self._now = 1_800_000_000.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds


@dataclass
class Captured:
    """An event sink keeping every event (a test decides which ones a region gets)."""

    events: list[ChangeEvent] = field(default_factory=list)

    def emit(self, event: ChangeEvent) -> None:
        self.events.append(event)


@dataclass
class World:
    """Origin, one region (with a cache bucket), a publisher, and the API's URL."""

    url: str
    clock: Clock
    origin: MemoryStore
    region: Region
    publisher: Publisher
    sink: Captured
    services: Services

    def publish(self, root: str, path: str, values: np.ndarray, chunks=(100,)):
        arr = blosc2.asarray(values, chunks=chunks, blocks=tuple(max(1, c // 10) for c in chunks),
                             cparams=blosc2.CParams(nthreads=1))
        return self.publisher.publish(root, path, load_object(arr))


def region_over(origin: MemoryStore, clock: Clock, **kw) -> Region:
    """A region of *origin* with its own cache bucket, trusting copies for a minute (no TTL help)."""
    return Region(origin, MemoryStore("cache", clock=clock), head_ttl=60.0, memo_ttl=0.0, wall=clock, **kw)


@contextmanager
def world(**settings):
    """Serve a fresh :class:`World`; *settings* override :class:`Settings` fields."""
    clock = Clock()
    origin = MemoryStore("origin", clock=clock)
    sink = Captured()
    publisher = Publisher(origin, sink)
    region = region_over(origin, clock)
    services = Services(Settings(**settings), region, publisher, sink)
    with serve(create_app(services)) as url:
        yield World(url, clock, origin, region, publisher, sink, services)
