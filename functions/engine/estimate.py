"""What a read would cost, before it runs: chunks, S3 requests, bytes, route, dollars.

The figures come from the manifest alone (no chunk is fetched): the chunks a key
touches (the same :class:`catclient.wire.Selection` the read uses), the stored
size of each, and the answer limits.  ``s3_gets`` and ``compressed_bytes`` are
what a cold region moves from storage (distinct stored chunks; inline special
chunks cost nothing): a warm region moves less, and its ``X-Cat-Cache`` header
says how much.
"""

from __future__ import annotations

from dataclasses import dataclass

from catclient import wire
from functions.engine.answers import FRAME_SLACK, AnswerLimits
from functions.engine.model import Manifest

#: Fixed API time of one request, seconds (routing, auth, manifest from memory)
BASE_SECONDS = 0.02
#: Rates the Lambda time is estimated from, bytes per second (measured orders of
#: magnitude on a 1 GB function: S3 GETs in parallel, Blosc2 decompression)
FETCH_RATE = 100e6
DECOMPRESS_RATE = 1e9


@dataclass(frozen=True)
class Prices:
    """The price table of estimates, USD (``CAT_PRICE_*`` settings)."""

    get_per_1000: float = 0.0004
    egress_per_gb: float = 0.09
    lambda_per_gbs: float = 0.0000166667
    memory_mb: int = 1024


def estimate(m: Manifest, key: tuple, limits: AnswerLimits, prices: Prices) -> dict:
    """The estimate of reading *key* of the stored dataset *m* (see the module docstring).

    Returns
    -------
    dict
        ``chunks`` (touched), ``s3_gets``, ``compressed_bytes`` (moved from storage),
        ``decompressed_bytes`` (decompressed to answer), ``answer_bytes`` (about),
        ``route`` (``"api"``, ``"stream"`` or ``"plan"``: past the answer limits only
        a read plan can serve it), and ``cost`` (USD, itemised; the plan route is
        priced as catclient reads it: GETs straight from S3, no Lambda time).

    Raises
    ------
    catclient.wire.SliceError
        If *key* does not fit the dataset.
    """
    geo = m.geometry
    selection = wire.Selection.of(geo, key)
    special = {i for i, r in enumerate(m.refs) if r.inline is not None}
    stored = {m.refs[i].digest: m.refs[i].size for i in selection.touched if m.refs[i].digest}
    cbytes = sum(stored.values())
    if selection.whole:
        answer = m.content.cbytes + FRAME_SLACK
        decompressed = 0
    else:
        answer = int(selection.estimate_cbytes([r.size for r in m.refs]))
        decompressed = selection.touched_nbytes(special)
    route = _route(answer, limits)
    gets = len(stored)
    seconds = 0.0 if route == "plan" else BASE_SECONDS + cbytes / FETCH_RATE + decompressed / DECOMPRESS_RATE
    moved_out = cbytes if route == "plan" else answer
    cost = {
        "s3_gets": gets * prices.get_per_1000 / 1000,
        "egress": moved_out / 1e9 * prices.egress_per_gb,
        "lambda": seconds * prices.memory_mb / 1024 * prices.lambda_per_gbs,
    }
    cost["total"] = sum(cost.values())
    return {
        "path": m.path,
        "version": m.version,
        "slice_": wire.format_slice(key),
        "chunks": len(selection.touched),
        "stored_chunks": gets,
        "s3_gets": gets,
        "compressed_bytes": cbytes,
        "decompressed_bytes": decompressed,
        "answer_bytes": answer,
        "route": route,
        "lambda_seconds": round(seconds, 6),
        "cost_usd": {k: round(v, 10) for k, v in cost.items()},
    }


def _route(answer: int, limits: AnswerLimits) -> str:
    if not limits.buffered or answer <= limits.buffered:
        return "api"
    if limits.streamed and answer <= limits.streamed:
        return "stream"
    return "plan"


__all__ = ["Prices", "estimate"]
