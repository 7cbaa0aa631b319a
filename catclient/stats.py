"""What a client transferred (:class:`TransferStats`) and how a long transfer shows (progress bars)."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass, fields

#: Seconds a transfer must last before its progress bar shows.
PROGRESS_DELAY = 0.5


@dataclass
class TransferStats:
    """What a :class:`Client` sent and received, for tests, benchmarks and curiosity.

    Attributes
    ----------
    api_requests : int
        Requests to the API (including plans and chunks through the API).
    plan_requests : int
        ``GET /api/plan`` requests.
    chunk_downloads : int
        Chunks fetched straight from S3 through presigned URLs.
    api_chunk_requests : int
        Chunks fetched through ``GET /api/chunk``.
    cache_hits : int
        Chunks found in the local cache (not transferred at all).
    bytes_received : int
        Body bytes received, from the API and from S3.
    retries : int
        Requests sent again after a dropped connection or a 502/503/504.

    """

    api_requests: int = 0
    plan_requests: int = 0
    chunk_downloads: int = 0
    api_chunk_requests: int = 0
    cache_hits: int = 0
    bytes_received: int = 0
    retries: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, **counts: int) -> None:
        """Add to counters (thread-safe)."""
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def reset(self) -> None:
        """Set every counter to zero."""
        with self._lock:
            for f in fields(self):
                setattr(self, f.name, 0)

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self)}


class Progress:
    """A tqdm bar on stderr that shows only for transfers lasting a moment (no-op without tqdm)."""

    def __init__(self, enabled: bool, total: int | None, desc: str, unit: str = "B") -> None:
        self._bar = None
        self._lock = threading.Lock()
        if not enabled or not total:
            return
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm is optional: no bar then
            return
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=unit == "B",
            unit_divisor=1000,
            delay=PROGRESS_DELAY,
            file=sys.stderr,
            leave=False,
            dynamic_ncols=True,
        )

    def update(self, n: int) -> None:
        """Advance the bar by *n* (bytes or chunks)."""
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()


class ProgressReader:
    """A binary file wrapper that reports what httpx reads from it (upload progress)."""

    def __init__(self, fh, progress: Progress) -> None:
        self._fh = fh
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        """Read like the wrapped file, and report how much."""
        data = self._fh.read(n)
        self._progress.update(len(data))
        return data

    def __getattr__(self, name: str):
        # seek/tell/fileno/name: httpx uses them to learn the length up front
        return getattr(self._fh, name)
