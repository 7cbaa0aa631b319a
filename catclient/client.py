"""The catclient library: Caterva2's client API, reading big slices straight from S3.

The API mirrors ``caterva2.Client`` (see the seed tutorial): a :class:`Client`
with ``get_roots``, ``get_list``, ``get_info``, ``fetch``, ``download``,
``upload`` ... and an object API (:class:`Root`, :class:`Dataset`,
:class:`File`).  What differs is how large reads travel: instead of squeezing
them through the API (at most ~4.5 MB on Lambda), the client asks for a *read
plan* -- the chunks a slice touches, as short-lived presigned S3 URLs -- fetches
those in parallel, checks each against its content hash and assembles the
answer locally through :mod:`catclient.wire`, without recompressing.

:class:`Client` is assembled from one mixin per concern: :mod:`catclient.session`
(HTTP, auth), :mod:`catclient.reads` (listing, metadata, selections),
:mod:`catclient.chunks` (plans, presigned GETs, the cache),
:mod:`catclient.transfers` (download, upload) and :mod:`catclient.writes`.
"""

from __future__ import annotations

import os

import httpx

from catclient import __version__
from catclient.cache import DEFAULT_CACHE_BYTES, ChunkCache
from catclient.chunks import Chunks
from catclient.errors import BadRequest
from catclient.history import History
from catclient.keys import normalize_key as normalize_key  # where the one-module client had it
from catclient.objects import Dataset, File, Group, Root
from catclient.reads import Reads
from catclient.session import Session
from catclient.stats import TransferStats
from catclient.transfers import Transfers
from catclient.writes import Writes

__all__ = ["Client", "Root", "File", "Dataset", "Group", "TransferStats", "DEFAULT_URL"]

#: Where ``make run`` serves the first region's API.
DEFAULT_URL = "http://127.0.0.1:8000"

#: Selections larger than this (uncompressed bytes) are read through plans.
DEFAULT_PLAN_THRESHOLD = 1_000_000

#: Parallel chunk transfers; S3 latency (tens of ms per GET) is what they hide.
DEFAULT_WORKERS = 16


class Client(Session, Reads, Chunks, Transfers, Writes, History):
    """A client of a Caterva2-compatible API (ours, or Caterva2's own server).

    Parameters
    ----------
    urlbase : str
        Base URL of the API, e.g. ``"http://127.0.0.1:8000"``.
    auth : tuple of (str, str), or str, optional
        ``(username, password)`` logs in with ``POST /auth/jwt/login`` and keeps
        the ``c2subauth`` cookie; a string is a token sent as
        ``Authorization: Bearer``.  None reads anonymously.
    timeout : float
        Seconds to wait for the server on each request.
    cache_dir : str or Path, optional
        A directory for a persistent chunk cache shared across sessions and
        processes (see :class:`catclient.cache.ChunkCache`).  None: no cache.
    cache_bytes : int
        Size bound of that cache (least recently used chunks are evicted).
    plan_threshold : int
        Selections of more uncompressed bytes than this are read through read
        plans (chunks straight from S3) instead of ``/api/fetch``.
    use_plans : bool
        False never asks for plans: everything goes through the API (chunk by
        chunk through ``/api/chunk`` when the server says an answer is too large).
    workers : int
        Parallel chunk transfers.
    progress : bool
        Show tqdm progress bars on stderr for transfers lasting more than a
        moment (needs ``tqdm``; silently off without it).
    transport : httpx.BaseTransport, optional
        For tests: a transport to use instead of the network.

    Examples
    --------
    >>> client = Client("http://127.0.0.1:8000")
    >>> client.get_roots()
    {'example': {'name': 'example', 'subscribed': False}}
    >>> client.fetch("example/dir1/ds-2d.b2nd", slice_="2:4, 3:6")
    array([[43, 44, 45],
           [63, 64, 65]], dtype=uint16)

    """

    def __init__(
        self,
        urlbase: str = DEFAULT_URL,
        auth: tuple[str, str] | str | None = None,
        *,
        timeout: float = 30.0,
        cache_dir: str | os.PathLike | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        plan_threshold: int = DEFAULT_PLAN_THRESHOLD,
        use_plans: bool = True,
        workers: int = DEFAULT_WORKERS,
        progress: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.urlbase = str(urlbase).rstrip("/")
        if not self.urlbase.startswith(("http://", "https://")):
            raise BadRequest(f"the server URL must start with http:// or https://, not {urlbase!r}")
        self.timeout = timeout
        self.plan_threshold = int(plan_threshold)
        self.use_plans = use_plans
        self.workers = max(1, int(workers))
        self.progress = progress
        self.stats = TransferStats()
        self.cache = ChunkCache(cache_dir, cache_bytes) if cache_dir is not None else None
        # None: not asked yet; False: the server has no /api/plan
        self._plans_ok: bool | None = None
        # Metadata of datasets last read through a plan (see Reads._read): a bounded memo
        self._planned: dict[str, dict] = {}
        self._limits: dict | None = None
        self._open_session(auth, transport, user_agent=f"catclient/{__version__}")
