"""The API's view of versions, the change feed and estimates, each taking a located path.

Like :class:`~functions.engine.reads.ReadService`, nothing here knows about HTTP:
the router (``functions/api/history.py``) resolves the path (access checked),
calls these methods, and turns domain errors into statuses.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from catclient import wire
from functions.engine import estimate, feed, history
from functions.engine.errors import BadRequest, DatasetNotFound, OriginUnavailable, StoreUnavailable
from functions.engine.model import Kind
from functions.engine.reads import ReadService
from functions.engine.spaces import Location, Principal


class BudgetExceeded(Exception):
    """A read over the caller's ``X-Cat-Max-Bytes`` (HTTP 413 with the estimate)."""

    def __init__(self, message: str, figures: dict) -> None:
        super().__init__(message)
        self.figures = figures


class TimeTravel:
    """History, feed and estimates over a :class:`ReadService`'s region.

    Parameters
    ----------
    reads : ReadService
        Its region (heads, manifests; the origin for listings and the feed) and answer limits.
    prices : estimate.Prices
        The price table of estimates.
    """

    def __init__(self, reads: ReadService, prices: estimate.Prices) -> None:
        self.reads = reads
        self.region = reads.region
        self.prices = prices
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="feed")

    def history(self, loc: Location, who: Principal, *, limit: int = 50, before: int | None = None) -> dict:
        """The kept versions of a dataset, newest first (:func:`functions.engine.history.history`)."""
        with self.reads._as_user(loc, who):
            if not loc.rel:
                raise BadRequest(f"{loc.space!r} is a root: history lists a dataset's versions")
            out = history.history(self.region, loc.root, loc.rel, limit=limit, before=before)
        return {**out, "path": loc.path}

    def changes(self, loc: Location, who: Principal, *, since: str | None, limit: int = 100) -> dict:
        """The root's committed changes after the cursor *since* (:func:`functions.engine.feed.read`)."""
        if loc.rel:
            raise BadRequest("the change feed is per root: name a root, not a path inside it")
        with self.reads._as_user(loc, who):
            try:
                self.region.catalog(loc.root)
                page = feed.read(self.region.origin, loc.root, since, limit=limit, pool=self._pool)
            except StoreUnavailable as exc:
                raise OriginUnavailable(f"the origin cannot answer the feed: {exc}") from exc
        out = page.to_json()
        # Manifest keys are storage details (and name a personal space's storage root)
        out["changes"] = [{k: v for k, v in c.items() if k != "manifest"} for c in out["changes"]]
        return {**out, "root": loc.space}

    def estimate(self, loc: Location, slice_: str | None, who: Principal) -> dict:
        """What reading ``slice_`` would do and cost (:func:`functions.engine.estimate.estimate`)."""
        with self.reads._as_user(loc, who):
            m = self.reads.manifest(loc)
            if m.kind == Kind.LAZY:
                raise BadRequest(f"{loc.path} is computed on read: its cost depends on its operands' reads")
            try:
                key = wire.parse_key(m.geometry, slice_)
                out = estimate.estimate(m, key, self.reads.limits, self.prices)
            except wire.SliceError as exc:
                raise BadRequest(str(exc)) from None
        return {**out, "path": loc.path}

    def check_budget(self, loc: Location, slice_: str | None, who: Principal, max_bytes: int) -> None:
        """Refuse a read that would move more than *max_bytes* compressed bytes from storage.

        Raises
        ------
        BudgetExceeded
            With the estimate, for a 413.
        """
        if max_bytes < 0:
            raise BadRequest(f"X-Cat-Max-Bytes must be a number of bytes, not {max_bytes}")
        try:
            figures = self.estimate(loc, slice_, who)
        except BadRequest:
            return  # the read itself answers why it cannot be made
        except DatasetNotFound:
            return
        if figures["compressed_bytes"] > max_bytes:
            raise BudgetExceeded(
                f"this read would move {figures['compressed_bytes']} compressed bytes "
                f"({figures['chunks']} chunk(s)), over X-Cat-Max-Bytes {max_bytes}",
                figures,
            )
