"""The catclient library: Caterva2's client API, reading big slices straight from S3.

The API mirrors ``caterva2.Client`` (see the seed tutorial): a :class:`Client`
with ``get_roots``, ``get_list``, ``get_info``, ``fetch``, ``download``,
``upload`` ... and an object API (:class:`Root`, :class:`Dataset`,
:class:`File`).  What differs is how large reads travel: instead of squeezing
them through the API (at most ~4.5 MB on Lambda), the client asks for a *read
plan* -- the chunks a slice touches, as short-lived presigned S3 URLs -- fetches
those in parallel, checks each against its content hash and assembles the
answer locally through :mod:`catclient.wire`, without recompressing.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

import blosc2
import httpx
import numpy as np

from catclient import wire
from catclient.cache import DEFAULT_CACHE_BYTES, ChunkCache, chunk_digest
from catclient.errors import (
    BadRequest,
    CatClientError,
    IntegrityError,
    NotFound,
    NotSupported,
    ServerError,
    ServerUnavailable,
    TooLarge,
    Unauthorized,
)

log = logging.getLogger(__name__)

__all__ = ["Client", "Root", "File", "Dataset", "Group", "TransferStats", "DEFAULT_URL"]

#: Where ``make run`` serves the first region's API.
DEFAULT_URL = "http://127.0.0.1:8000"

#: Selections larger than this (uncompressed bytes) are read through plans.
DEFAULT_PLAN_THRESHOLD = 1_000_000

#: Parallel chunk transfers; S3 latency (tens of ms per GET) is what they hide.
DEFAULT_WORKERS = 16

#: Query strings longer than this go as ``POST /api/fetch`` with a JSON body
#: (proxies and API Gateway refuse URLs of a few KB).
MAX_QUERY_CHARS = 4000

#: Seconds a transfer must last before its progress bar shows.
PROGRESS_DELAY = 0.5

#: Uploads over this many bytes first learn the API's payload limit (``/api/limits``):
#: bigger ones go through a presigned S3 PUT instead of the API.
UPLOAD_PROBE_BYTES = 1_000_000

#: Attempts at one presigned GET before going through the API instead.
PRESIGNED_ATTEMPTS = 3

_BLOSC2_SUFFIXES = (".b2nd", ".b2frame")
_SLICE_LIKE = re.compile(r"^[\s\[\(]*-?\d*\s*(:\s*-?\d*\s*){0,2}(,\s*-?\d*\s*(:\s*-?\d*\s*){0,2})*[\]\)\s]*$")


# --------------------------------------------------------------------------- figures


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

    """

    api_requests: int = 0
    plan_requests: int = 0
    chunk_downloads: int = 0
    api_chunk_requests: int = 0
    cache_hits: int = 0
    bytes_received: int = 0

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


class _Progress:
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
        if self._bar is not None:
            with self._lock:
                self._bar.update(n)

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()


class _ProgressReader:
    """A binary file wrapper that reports what httpx reads from it (upload progress)."""

    def __init__(self, fh, progress: _Progress) -> None:
        self._fh = fh
        self._progress = progress

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(n)
        self._progress.update(len(data))
        return data

    def __getattr__(self, name: str):
        # seek/tell/fileno/name: httpx uses them to learn the length up front
        return getattr(self._fh, name)


# --------------------------------------------------------------------------- helpers


def _path_str(path) -> str:
    """A dataset path as ``root/rel`` text, from str, PurePath or a catclient object."""
    if isinstance(path, File | Group):
        path = path.path
    elif isinstance(path, Root):
        path = path.name
    text = path.as_posix() if isinstance(path, PurePosixPath | Path) else str(path)
    text = text.strip().strip("/")
    if not text:
        raise BadRequest("a path is needed (root or root/path)")
    return text


def _detail(resp: httpx.Response) -> str | None:
    try:
        body = resp.json()
    except ValueError:
        text = resp.text.strip()
        return text[:300] or None
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        if isinstance(detail, list):  # FastAPI validation errors
            return "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
        return str(detail)
    return None


def _error_for(resp: httpx.Response, endpoint: str, optional: bool) -> CatClientError:
    """The exception an HTTP error answer stands for."""
    status = resp.status_code
    detail = _detail(resp)
    url = str(resp.request.url.copy_with(query=None)) if resp.request else None
    kw = {"status": status, "detail": detail, "url": url}
    # FastAPI answers an unknown route with exactly "Not Found"; for endpoints that
    # not every server has (plans, writes) that means "not offered", not "no such data"
    if status == 405 or (status in (404, 501) and optional and detail in (None, "Not Found")):
        return NotSupported(f"the server at {url} does not offer /{endpoint} (HTTP {status})", **kw)
    message = detail or resp.reason_phrase or f"HTTP {status}"
    if status in (400, 422):
        return BadRequest(message, **kw)
    if status in (401, 403):
        if not detail:
            message = "not authorized: log in first (catclient login) or pass auth= to Client"
        return Unauthorized(message, **kw)
    if status == 404:
        return NotFound(message if detail else f"not found: {url}", **kw)
    if status == 413:
        return TooLarge(message, **kw)
    if status == 429:
        retry = resp.headers.get("Retry-After")
        later = f"; retry after {retry} s" if retry else ""
        return CatClientError(f"too many requests (HTTP 429): {message}{later}", **kw)
    if status in (502, 503, 504):
        return ServerUnavailable(f"server unavailable (HTTP {status}): {message}", **kw)
    if status >= 500:
        return ServerError(f"server error (HTTP {status}): {message}", **kw)
    return CatClientError(f"HTTP {status}: {message}", **kw)


def _kind(meta: Mapping) -> str:
    """``group``, ``ndarray`` or ``schunk`` (SChunks and plain files) from ``/api/info``."""
    if meta.get("kind") == "group":
        return "group"
    return "ndarray" if "shape" in meta else "schunk"


def _geometry(meta: Mapping, path: str) -> wire.Geometry | None:
    """Assembly geometry from ``/api/info`` (None for lazy expressions, which have no chunks)."""
    if "expression" in meta:
        return None  # computed on read: its chunks exist nowhere to be fetched
    try:
        if "shape" in meta:
            sc = meta["schunk"]
            d = {
                "kind": "ndarray",
                "shape": meta["shape"],
                "chunks": meta["chunks"],
                "blocks": meta["blocks"],
                "dtype": meta["dtype"],
            }
        else:
            sc = meta
            kind = "schunk" if path.endswith(_BLOSC2_SUFFIXES) else "file"
            d = {"kind": kind, "shape": None, "chunks": None, "blocks": None, "dtype": None}
        d.update(
            cparams=sc["cparams"],
            chunksize=sc["chunksize"],
            typesize=sc["cparams"]["typesize"],
            nbytes=sc["nbytes"],
            nchunks=sc["nchunks"],
            vlmeta=sc.get("vlmeta") or {},
        )
        return wire.Geometry.from_json(d)
    except (KeyError, TypeError, ValueError):
        return None


def _cbytes(meta: Mapping) -> int:
    sc = meta.get("schunk", meta)
    return int(sc.get("cbytes") or sc.get("nbytes") or 0)


def _slice_entry(entry, what: str) -> slice:
    def bound(v):
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise BadRequest(f"slice bounds must be integers, not {v!r} in {what}")
        return int(v)

    if entry.step is not None and bound(entry.step) == 0:
        raise BadRequest(f"slice step cannot be zero in {what}")
    return slice(bound(entry.start), bound(entry.stop), bound(entry.step))


def normalize_key(key, ndim: int | None) -> tuple[tuple, bool]:
    """Turn a user key into a tuple of ints, slices and index arrays.

    Parameters
    ----------
    key : None, str, int, slice, list, numpy.ndarray, Ellipsis or tuple of those
        A string is Caterva2's ``slice_`` syntax (``"2:4, 3:6"``); lists and
        arrays are fancy (coordinate) indices, boolean ones masks.
    ndim : int or None
        Dimensions of the dataset (1 for SChunks and files).

    Returns
    -------
    (tuple, bool)
        The key and whether it is fancy (holds index arrays).

    Raises
    ------
    BadRequest
        For keys that cannot index a remote dataset.

    """
    if key is None:
        return (), False
    if isinstance(key, str):
        try:
            return wire.parse_slice(key, ndim), False
        except wire.SliceError as exc:
            raise BadRequest(str(exc)) from None
    if not isinstance(key, tuple):
        key = (key,)
    ellipses = [i for i, k in enumerate(key) if k is Ellipsis]
    if len(ellipses) > 1:
        raise BadRequest("an index can only have a single ellipsis ('...')")
    if ellipses:
        i = ellipses[0]
        fill = max(0, (ndim if ndim is not None else len(key) - 1) - (len(key) - 1))
        key = key[:i] + (slice(None),) * fill + key[i + 1 :]
    out: list = []
    fancy = False
    for entry in key:
        if isinstance(entry, bool | np.bool_):
            raise BadRequest(f"{entry!r} is not an index")
        if isinstance(entry, int | np.integer):
            out.append(int(entry))
        elif isinstance(entry, slice):
            out.append(_slice_entry(entry, repr(key)))
        elif isinstance(entry, list | np.ndarray):
            arr = np.asarray(entry)
            if arr.dtype == np.bool_:
                if arr.ndim != 1:
                    raise BadRequest("boolean masks must be one-dimensional (one per dimension)")
                arr = np.flatnonzero(arr)
            if arr.size and not np.issubdtype(arr.dtype, np.integer):
                raise BadRequest(f"index arrays must hold integers, not {arr.dtype}")
            if arr.ndim != 1:
                raise BadRequest("index arrays must be one-dimensional")
            out.append(arr.astype(np.int64))
            fancy = True
        elif entry is None:
            raise BadRequest("numpy.newaxis (None) cannot index a remote dataset")
        else:
            raise BadRequest(f"cannot index a remote dataset with {entry!r}")
    if ndim is not None and len(out) > ndim:
        raise BadRequest(f"too many indices: {len(out)} for {ndim} dimension(s)")
    return tuple(out), fancy


def _indices_param(key: tuple) -> str:
    """The ``indices`` JSON of a fancy key (one entry per dimension)."""
    entries: list = []
    for entry in key:
        if isinstance(entry, np.ndarray):
            entries.append([int(v) for v in entry])
        elif isinstance(entry, slice):
            entries.append(None if entry == slice(None) else wire.format_slice((entry,)))
        else:
            entries.append(int(entry))
    return json.dumps(entries, separators=(",", ":"))


def _selection_nbytes(meta: Mapping, key: tuple) -> int:
    """Uncompressed bytes a key selects (an upper bound for several index arrays)."""
    try:
        if "shape" in meta:
            itemsize = wire.dtype_from_str(meta["dtype"]).itemsize
            if not meta["shape"]:
                return itemsize
            full, _ = wire.normalize_key(key, meta["shape"])
            n = 1
            for entry in full:
                if isinstance(entry, slice):
                    n *= len(range(entry.start, entry.stop, entry.step))
                elif isinstance(entry, np.ndarray):
                    n *= len(entry)
            return n * itemsize
        typesize = int(meta["cparams"]["typesize"])
        items = wire.schunk_item_range(key, int(meta["nbytes"]) // max(1, typesize))
        return len(range(items.start, items.stop, items.step)) * typesize
    except wire.SliceError as exc:
        raise BadRequest(str(exc)) from None
    except (KeyError, TypeError, ValueError):
        return 0


def _write_atomic(dest: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write *dest* through a temporary file in the same directory, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _write_chunks(fh, schunk) -> None:
    """Write an SChunk's decompressed content chunk by chunk (never all of it in memory)."""
    for i in range(schunk.nchunks):
        fh.write(schunk.decompress_chunk(i))


def _to_numpy(obj):
    if isinstance(obj, blosc2.NDArray):
        return obj[()] if obj.ndim == 0 else obj[:]
    return obj[:]


# --------------------------------------------------------------------------- client


class Client:
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
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._token: str | None = None
        self._auth_headers: dict[str, str] = {}
        self._limits: dict | None = None
        # One pooled client for the API and S3 alike: keep-alive connections are
        # most of the speed of many small chunk GETs
        pool = max(20, 2 * self.workers)
        self._http = httpx.Client(
            timeout=timeout,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            follow_redirects=False,
            headers={"User-Agent": f"catclient/{_version()}"},
            transport=transport,
        )
        try:
            if isinstance(auth, tuple | list):
                if len(auth) != 2:
                    raise BadRequest("auth must be (username, password) or a token string")
                self.login(*auth)
            elif isinstance(auth, str) and auth:
                self._set_token(auth, cookie=False)
            elif auth is not None and not isinstance(auth, str):
                raise BadRequest("auth must be (username, password) or a token string")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Release connections, worker threads and the cache index."""
        self._http.close()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        who = "authenticated" if self._token else "anonymous"
        return f"<catclient.Client {self.urlbase} ({who})>"

    # ------------------------------------------------------------------ auth

    def _set_token(self, token: str, *, cookie: bool) -> None:
        self._token = token
        if cookie:
            self._auth_headers = {"Cookie": f"c2subauth={token}"}
        else:
            self._auth_headers = {"Authorization": f"Bearer {token}"}

    @property
    def token(self) -> str | None:
        """The session token (the ``c2subauth`` cookie value or bearer token), if any."""
        return self._token

    @property
    def cookie(self) -> str | None:
        """``c2subauth=<token>`` as Caterva2's clients send it, or None when anonymous."""
        return f"c2subauth={self._token}" if self._token else None

    def login(self, username: str, password: str) -> str:
        """Log in with ``POST /auth/jwt/login`` and use the session from now on.

        Parameters
        ----------
        username, password : str
            The account's credentials.

        Returns
        -------
        str
            The session token (the ``c2subauth`` cookie value).

        Raises
        ------
        Unauthorized
            If the credentials are wrong or the server sends no session cookie.
        NotSupported
            If the server has no login endpoint.

        """
        url = f"{self.urlbase}/auth/jwt/login"
        try:
            resp = self._request(
                "POST", url, "auth/jwt/login", data={"username": username, "password": password},
                optional=True, auth=False,
            )
        except BadRequest as exc:
            raise Unauthorized(f"login failed for {username!r}: {exc}", status=exc.status, detail=exc.detail,
                               url=exc.url) from None
        token = resp.cookies.get("c2subauth")
        # The jar would send the cookie to every host on this domain, S3 included;
        # it travels only in API requests' headers instead
        self._http.cookies.clear()
        if not token:
            raise Unauthorized(f"login at {url} returned no c2subauth cookie", status=resp.status_code,
                               url=url)
        self._set_token(token, cookie=True)
        return token

    # ------------------------------------------------------------------ HTTP

    def _url(self, endpoint: str, path: str | None = None, *, slash: bool = True) -> str:
        if path is None:
            # Caterva2's move/copy/lazyexpr endpoints carry a trailing slash
            return f"{self.urlbase}/api/{endpoint}/" if slash else f"{self.urlbase}/api/{endpoint}"
        # '@' goes as %40 as Caterva2's clients send it
        return f"{self.urlbase}/api/{endpoint}/{urllib.parse.quote(path, safe='/')}"

    def _request(
        self,
        method: str,
        url: str,
        endpoint: str,
        *,
        params: Mapping | None = None,
        json: Any = None,
        data: Mapping | None = None,
        files: Mapping | None = None,
        headers: Mapping | None = None,
        optional: bool = False,
        auth: bool = True,
    ) -> httpx.Response:
        """One API request; HTTP and network errors become :mod:`catclient.errors` exceptions."""
        hdrs = {**(self._auth_headers if auth else {}), **(headers or {})}
        try:
            resp = self._http.request(method, url, params=params, json=json, data=data, files=files,
                                      headers=hdrs)
        except httpx.TimeoutException as exc:
            raise ServerUnavailable(f"timed out after {self.timeout}s talking to {self.urlbase}: {exc}",
                                    url=url) from None
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"cannot reach {self.urlbase}: {exc}", url=url) from None
        except httpx.HTTPError as exc:
            raise CatClientError(f"request to {url} failed: {exc}", url=url) from None
        self.stats.add(
            api_requests=1,
            plan_requests=endpoint == "plan",
            api_chunk_requests=endpoint == "chunk",
            bytes_received=len(resp.content),
        )
        if resp.status_code >= 400:
            raise _error_for(resp, endpoint, optional)
        return resp

    def _json(self, method: str, endpoint: str, path: str | None = None, *, slash: bool = True, **kw) -> Any:
        resp = self._request(method, self._url(endpoint, path, slash=slash), endpoint, **kw)
        try:
            return resp.json()
        except ValueError:
            raise ServerError(f"/api/{endpoint} answered with something that is not JSON",
                              status=resp.status_code, url=str(resp.url)) from None

    def _map(self, fn: Callable, items: Iterable) -> Iterator:
        items = list(items)
        if len(items) <= 1:
            return map(fn, items)
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="catclient")
            pool = self._pool
        return pool.map(fn, items)

    # ------------------------------------------------------------------ read API

    def get_roots(self) -> dict:
        """The roots this server offers.

        Returns
        -------
        dict
            ``{name: {"name": name, "subscribed": bool, ...}}``.

        """
        return self._request("GET", f"{self.urlbase}/api/roots", "roots").json()

    def get_list(self, path) -> list[str]:
        """Every file below *path* (a root or directory), recursively, relative to it.

        Parameters
        ----------
        path : str, PurePosixPath, Root, Group or File
            Where to list.

        Returns
        -------
        list of str
            Sorted relative paths; ``[basename]`` when *path* names a file.

        """
        return self._json("GET", "list", _path_str(path))

    def get_info(self, path) -> dict:
        """Metadata of a dataset, file, directory or root (Caterva2's ``/api/info`` JSON).

        Parameters
        ----------
        path : str, PurePosixPath or File
            Path as ``root/relative/path``.

        Returns
        -------
        dict
            For arrays: ``shape``, ``chunks``, ``blocks``, ``dtype``, ``schunk``,
            ``mtime``; for files the SChunk fields; for directories ``kind: group``.

        """
        return self._json("GET", "info", _path_str(path))

    def get(self, path) -> Root | File | Dataset | Group:
        """An object for a root, directory, dataset or file.

        Parameters
        ----------
        path : str, PurePosixPath, Root, File or Group
            ``"example"`` gives a :class:`Root`; ``"example/ds-1d.b2nd"`` a
            :class:`Dataset`; a plain file a :class:`File`; a directory a
            :class:`Group`.  Objects are returned as they are.

        Returns
        -------
        Root, Dataset, File or Group

        """
        if isinstance(path, Root | File | Group):
            return path
        text = _path_str(path)
        if "/" not in text:
            return Root(self, text)
        root, rel = text.split("/", 1)
        return Root(self, root)[rel]

    def get_download_url(self, path) -> str:
        """The URL ``download`` reads (what ``catclient url`` prints)."""
        return self._url("download", _path_str(path))

    def fetch(self, path, slice_=None):
        """A slice of a dataset, decompressed.

        Parameters
        ----------
        path : str, PurePosixPath, Dataset or File
            The dataset.
        slice_ : str, int, slice, list, numpy.ndarray or tuple of those, optional
            What to read: ``"2:4, 3:6"``, ``(slice(2, 4), 3)``, ``5``, index
            arrays (fancy indexing).  None reads everything.

        Returns
        -------
        numpy.ndarray or bytes
            An array for n-dimensional datasets, bytes for SChunks and files.

        Notes
        -----
        Selections over ``plan_threshold`` bytes are read through a read plan
        (chunks straight from S3, in parallel) when the server offers plans; the
        rest through ``/api/fetch``.  When the server says an answer is too
        large (413), the chunks are read one by one instead.

        """
        return self.get_slice(path, slice_, as_blosc2=False)

    def get_slice(self, path, key=None, as_blosc2: bool = True, field: str | None = None,
                  filter: str | None = None):
        """A slice of a dataset as a Blosc2 object (or numpy/bytes with ``as_blosc2=False``).

        Parameters
        ----------
        path : str, PurePosixPath, Dataset or File
            The dataset.
        key : str, int, slice, list, numpy.ndarray or tuple of those, optional
            The selection (see :meth:`fetch`).
        as_blosc2 : bool
            True returns ``blosc2.NDArray`` / ``blosc2.SChunk``; False numpy / bytes.
        field : str, optional
            One field of a structured dtype (evaluated by the server).
        filter : str, optional
            A boolean expression over field names, e.g. ``"(a > 990) & d"``
            (evaluated by the server).

        Returns
        -------
        blosc2.NDArray, blosc2.SChunk, numpy.ndarray or bytes

        """
        meta = path.meta if isinstance(path, File) else None
        return self._read(_path_str(path), key, as_blosc2=as_blosc2, meta=meta, field=field, filter=filter)

    def get_chunk(self, path, nchunk: int) -> bytes:
        """One compressed chunk exactly as stored (``schunk.get_chunk(nchunk)``), via ``/api/chunk``.

        Parameters
        ----------
        path : str, PurePosixPath or Dataset
            The dataset.
        nchunk : int
            Flat chunk index.

        Returns
        -------
        bytes

        """
        url = self._url("chunk", _path_str(path))
        resp = self._request("GET", url, "chunk", params={"nchunk": int(nchunk)})
        return resp.content

    # ------------------------------------------------------------------ read core

    def _read(self, path: str, key, *, as_blosc2: bool, meta: Mapping | None = None,
              field: str | None = None, filter: str | None = None):
        meta = self.get_info(path) if meta is None else meta
        kind = _kind(meta)
        if kind == "group":
            raise BadRequest(f"{path} is a directory; list it, or read the datasets in it")
        ndim = len(meta["shape"]) if kind == "ndarray" else 1
        key, fancy = normalize_key(key, ndim)
        geo = _geometry(meta, path)
        if kind != "ndarray" and (fancy or field or filter):
            raise BadRequest(f"fancy indices, field and filter apply to n-d arrays; {path} is not one")
        nbytes = _selection_nbytes(meta, key)
        params = {"indices": _indices_param(key)} if fancy else {"slice_": wire.format_slice(key)}
        if field or filter:
            try:
                return self._fetch_api(path, {**params, "field": field, "filter": filter}, kind, as_blosc2)
            except TooLarge:
                if filter or geo is None:
                    raise
            # A field is a view of the records: read them locally and take it
            whole = self._read_local(path, geo, key, fancy, as_blosc2=False)
            result = np.ascontiguousarray(whole[field])
            return blosc2.asarray(result) if as_blosc2 else result
        if geo is not None and not fancy and self._plans_allowed() and nbytes > self.plan_threshold:
            plan = self.plan(path, key, fancy=False)
            if plan is not None:
                return self._read_local(path, geo, key, fancy, as_blosc2=as_blosc2, plan=plan)
            # No plans on this server: /api/fetch, and chunk by chunk if that is refused
        try:
            return self._fetch_api(path, params, kind, as_blosc2)
        except TooLarge:
            if geo is None:
                raise
        log.info("%s: the API refused the answer as too large; reading its chunks instead", path)
        return self._read_local(path, geo, key, fancy, as_blosc2=as_blosc2)

    def _plans_allowed(self) -> bool:
        return self.use_plans and self._plans_ok is not False

    def _fetch_api(self, path: str, params: Mapping, kind: str, as_blosc2: bool):
        params = {k: v for k, v in params.items() if v is not None}
        url = self._url("fetch", path)
        if len(urllib.parse.urlencode(params)) > MAX_QUERY_CHARS:
            resp = self._request("POST", url, "fetch", json=params)
        else:
            resp = self._request("GET", url, "fetch", params=params)
        data = resp.content
        try:
            if kind == "ndarray":
                obj = blosc2.ndarray_from_cframe(data, copy=True)
            else:
                obj = blosc2.schunk_from_cframe(data, copy=True)
        except (RuntimeError, ValueError) as exc:
            raise ServerError(f"/api/fetch/{path} answered with something that is not a Blosc2 frame: {exc}",
                              url=url) from None
        return obj if as_blosc2 else _to_numpy(obj)

    def _read_local(self, path: str, geo: wire.Geometry, key: tuple, fancy: bool, *, as_blosc2: bool,
                    plan: Mapping | None = None):
        """Fetch the chunks a key touches (plan or ``/api/chunk``) and select locally."""
        geo, chunks = self._gather(path, geo, key, fancy, plan)
        try:
            if geo.kind == "ndarray":
                if as_blosc2 and not key:
                    return wire.assemble_ndarray(geo, chunks)  # as stored: no recompression
                result = wire.select_ndarray(geo, chunks, key)
                return blosc2.asarray(np.ascontiguousarray(result)) if as_blosc2 else result
            if not key:
                schunk = wire.assemble_schunk(geo, [chunks[i] for i in range(geo.nchunks)])
                return schunk if as_blosc2 else (schunk[:] if geo.nbytes else b"")
            data = wire.select_schunk(geo, chunks, wire.schunk_item_range(key, geo.nitems))
        except (wire.SliceError, IndexError) as exc:
            raise BadRequest(str(exc)) from None
        if not as_blosc2:
            return data
        cparams = blosc2.CParams(typesize=geo.typesize)
        return blosc2.SChunk(chunksize=max(len(data), geo.typesize), data=data, cparams=cparams)

    def _touched(self, geo: wire.Geometry, key: tuple) -> list[int]:
        try:
            if geo.kind == "ndarray":
                return wire.touched_chunks(geo.shape, geo.chunks, key)
            items = wire.schunk_item_range(key, geo.nitems)
            return wire.schunk_touched_chunks(items, geo.items_per_chunk) if key else list(range(geo.nchunks))
        except wire.SliceError as exc:
            raise BadRequest(str(exc)) from None

    def _gather(self, path: str, geo: wire.Geometry, key: tuple, fancy: bool,
                plan: Mapping | None = None) -> tuple[wire.Geometry, dict[int, bytes]]:
        """The geometry and the bytes of every chunk *key* touches (from *plan*, if given)."""
        if plan is None and self._plans_allowed():
            # A fancy key is planned as its bounding box, then indexed locally
            box = wire.key_plan(key, geo.shape, geo.chunks)[0] if fancy else key
            plan = self.plan(path, box, fancy=False)
        if plan is not None:
            return wire.Geometry.from_json(plan), self._load_refs(path, plan["chunk_refs"])
        touched = self._touched(geo, key)
        return geo, self._api_chunks(path, touched)

    # ------------------------------------------------------------------ plans & chunks

    def plan(self, path, key=None, *, fancy: bool | None = None) -> dict | None:
        """The server's read plan for a selection, or None when the server offers none.

        Parameters
        ----------
        path : str, PurePosixPath or Dataset
            The dataset.
        key : optional
            The selection (see :meth:`fetch`); fancy keys ask for their bounding box.
        fancy : bool, optional
            Whether *key* is already known to be (non-)fancy.

        Returns
        -------
        dict or None
            The plan JSON (geometry plus ``chunk_refs``; see docs/ARCHITECTURE.md).

        """
        path = _path_str(path)
        if fancy is None:
            key, fancy = normalize_key(key, None)
        if fancy:
            meta = self.get_info(path)
            try:
                key = wire.key_plan(key, meta["shape"], meta["chunks"])[0]
            except wire.SliceError as exc:
                raise BadRequest(str(exc)) from None
        try:
            plan = self._json("GET", "plan", path, params={"slice_": wire.format_slice(key)}, optional=True)
        except NotSupported:
            log.info("%s has no read plans; reading through the API", self.urlbase)
            self._plans_ok = False
            return None
        self._plans_ok = True
        return plan

    def _load_refs(self, path: str, refs: list[Mapping]) -> dict[int, bytes]:
        """Bytes of a plan's chunk refs: inline, local cache, presigned URL, else ``/api/chunk``."""
        out: dict[int, bytes] = {}
        by_hash: dict[str, list[int]] = {}
        urls: dict[str, str | None] = {}
        sizes: dict[str, int] = {}
        for nchunk, ref in wire.iter_chunk_refs(refs):
            if ref.get("inline") is not None:
                out[nchunk] = wire.decode_inline(ref["inline"])
                continue
            digest = str(ref["hash"])
            by_hash.setdefault(digest, []).append(nchunk)
            urls.setdefault(digest, ref.get("url"))
            sizes[digest] = int(ref.get("size") or 0)
        found = self.cache.get_many(by_hash) if self.cache is not None and by_hash else {}
        self.stats.add(cache_hits=len(found))
        todo = [d for d in by_hash if d not in found]
        name = path.rsplit("/", 1)[-1]
        with _Progress(self.progress and bool(todo), sum(sizes[d] for d in todo), name) as bar:

            def one(digest: str) -> tuple[str, bytes]:
                data = self._chunk_by_ref(path, digest, urls[digest], by_hash[digest][0])
                bar.update(len(data))
                return digest, data

            fetched = dict(self._map(one, todo))
        if self.cache is not None and fetched:
            self.cache.put_many(fetched, verified=True)
        for digest, data in (found | fetched).items():
            for nchunk in by_hash[digest]:
                out[nchunk] = data
        return out

    def _chunk_by_ref(self, path: str, digest: str, url: str | None, nchunk: int) -> bytes:
        if url:
            data = self._get_presigned(url)
            if data is not None:
                if chunk_digest(data) == digest:
                    return data
                log.warning("chunk %s of %s from S3 does not match its hash; asking the API", nchunk, path)
        # No URL (a server without S3, e.g. an in-memory store), an expired one,
        # or bad bytes: the API serves the same chunk, checked the same way
        data = self.get_chunk(path, nchunk)
        if chunk_digest(data) != digest:
            raise IntegrityError(f"chunk {nchunk} of {path} does not match its hash {digest}")
        return data

    def _get_presigned(self, url: str) -> bytes | None:
        """A presigned GET (no API credentials: S3 allows one auth mechanism); None if refused."""
        for attempt in range(PRESIGNED_ATTEMPTS):
            try:
                resp = self._http.get(url)
            except httpx.HTTPError as exc:
                log.debug("presigned GET failed (%s), attempt %d", exc, attempt + 1)
                time.sleep(0.05 * 2**attempt)
                continue
            self.stats.add(bytes_received=len(resp.content))
            if resp.status_code == 200:
                self.stats.add(chunk_downloads=1)
                return resp.content
            if resp.status_code < 500:
                return None  # expired or refused: retrying the same URL will not help
            time.sleep(0.05 * 2**attempt)
        return None

    def _api_chunks(self, path: str, indices: list[int]) -> dict[int, bytes]:
        with _Progress(self.progress, len(indices), path.rsplit("/", 1)[-1], unit="chunk") as bar:

            def one(i: int) -> tuple[int, bytes]:
                data = self.get_chunk(path, i)
                bar.update(1)
                return i, data

            return dict(self._map(one, indices))

    # ------------------------------------------------------------------ download

    def download(self, path, localpath=None) -> Path:
        """Save a dataset or file locally.

        Parameters
        ----------
        path : str, PurePosixPath, Dataset or File
            What to download.
        localpath : str or Path, optional
            Target file, or an existing directory to put it in.  Defaults to
            ``./<root>/<path>`` as Caterva2 does.

        Returns
        -------
        Path
            Where the file was written.  ``.b2nd``/``.b2frame`` datasets are
            saved as Blosc2 frames, plain files decompressed.

        Notes
        -----
        Large datasets (over ``plan_threshold`` compressed bytes, or refused by
        the API as too large) are assembled locally from their chunks.

        """
        meta = path.meta if isinstance(path, File) else None
        path = _path_str(path)
        meta = self.get_info(path) if meta is None else meta
        if _kind(meta) == "group":
            raise BadRequest(f"{path} is a directory; download the files in it one by one")
        if localpath is None:
            dest = Path(path)
        else:
            dest = Path(localpath)
            if dest.is_dir():
                dest = dest / PurePosixPath(path).name
        geo = _geometry(meta, path)
        if geo is not None and self._plans_allowed() and _cbytes(meta) > self.plan_threshold:
            plan = self.plan(path, ())
            if plan is not None:
                self._download_local(path, geo, dest, plan)
                return dest
        try:
            self._download_api(path, dest)
        except TooLarge:
            if geo is None:
                raise
            log.info("%s: the API refused the download as too large; reading chunk by chunk", path)
            self._download_local(path, geo, dest)
        return dest

    def _download_api(self, path: str, dest: Path) -> None:
        url = self._url("download", path)
        # Ask for the compressed form of plain files: fewer bytes on the wire
        headers = {**self._auth_headers, "Accept-Encoding": "blosc2"}
        try:
            with self._http.stream("GET", url, headers=headers) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self.stats.add(api_requests=1, bytes_received=len(resp.content))
                    raise _error_for(resp, "download", False)
                total = int(resp.headers.get("Content-Length") or 0)
                packed = resp.headers.get("Content-Encoding") == "blosc2"
                received = 0
                target = dest.with_name(dest.name + ".b2") if packed else dest

                def write(fh) -> None:
                    nonlocal received
                    with _Progress(self.progress, total, dest.name) as bar:
                        for block in resp.iter_raw():
                            fh.write(block)
                            received += len(block)
                            bar.update(len(block))

                _write_atomic(target, write)
                self.stats.add(api_requests=1, bytes_received=received)
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"download of {path} from {self.urlbase} failed: {exc}",
                                    url=url) from None
        if packed:
            try:
                schunk = blosc2.open(str(target), mode="r")
                _write_atomic(dest, lambda fh: _write_chunks(fh, schunk))
            finally:
                target.unlink(missing_ok=True)

    def _download_local(self, path: str, geo: wire.Geometry, dest: Path, plan: Mapping | None = None) -> None:
        geo, chunks = self._gather(path, geo, (), False, plan)
        if geo.kind == "ndarray":
            frame = wire.assemble_ndarray(geo, chunks).to_cframe()
            _write_atomic(dest, lambda fh: fh.write(frame))
            return
        schunk = wire.assemble_schunk(geo, [chunks[i] for i in range(geo.nchunks)])
        if geo.kind == "file":
            _write_atomic(dest, lambda fh: _write_chunks(fh, schunk))
        else:
            frame = schunk.to_cframe()
            _write_atomic(dest, lambda fh: fh.write(frame))

    # ------------------------------------------------------------------ writes

    def upload(self, local, remotepath) -> File:
        """Upload a local file or an in-memory object.

        Parameters
        ----------
        local : str, Path, numpy.ndarray, blosc2.NDArray, blosc2.SChunk or bytes
            A file (``.b2nd``/``.b2frame`` stay Blosc2 datasets, anything else is
            stored compressed), or data: arrays become ``.b2nd`` frames.
        remotepath : str or PurePosixPath
            Destination ``root/path``; a path ending in ``/`` (or naming an existing
            directory) gets the local file's name.

        Returns
        -------
        Dataset or File
            The uploaded object (read back with ``/api/info``).

        Notes
        -----
        Bodies over the API's payload limit (``GET /api/limits``; ~4.5 MB on
        Lambda) go through a presigned S3 PUT (``/api/upload-url``, then the
        commit URL it names) instead of through the API.

        """
        remote = _path_str(remotepath)
        if isinstance(local, str | os.PathLike):
            lp = Path(local)
            if not lp.is_file():
                raise NotFound(f"no such local file: {lp}")
            if str(remotepath).endswith("/"):
                # "into this directory", whether or not it exists yet
                remote = f"{remote}/{lp.name}"
            name, size = lp.name, lp.stat().st_size

            def opener():
                return open(lp, "rb")
        else:
            name, body = _payload(local, remote)
            size = len(body)

            def opener():
                return io.BytesIO(body)

        if size > UPLOAD_PROBE_BYTES and size > self._payload_limit():
            return self.get(self._upload_presigned(remote, opener, size, name))
        try:
            with opener() as fh, _Progress(self.progress, size, f"upload {name}") as bar:
                files = {"file": (name, _ProgressReader(fh, bar), "application/octet-stream")}
                url = self._url("upload", remote)
                resp = self._request("POST", url, "upload", files=files, optional=True)
        except TooLarge as exc:
            # A server whose limits we could not learn: its 413 says where big uploads go
            if "upload-url" not in (exc.detail or ""):
                raise
            return self.get(self._upload_presigned(remote, opener, size, name))
        return self.get(_answer_path(resp))

    def _payload_limit(self) -> float:
        """Largest request body the API takes (``GET /api/limits``; asked once), inf if unknown."""
        if self._limits is None:
            try:
                self._limits = self._json("GET", "limits", None, optional=True, slash=False)
            except (NotSupported, BadRequest, Unauthorized):
                self._limits = {}
        return float(self._limits.get("payload_limit") or "inf")

    def _upload_presigned(self, remote: str, opener: Callable, size: int, name: str) -> str:
        """Upload through a presigned S3 PUT (for bodies over the API's payload limit); the final path."""
        start = self._json("POST", "upload-url", remote, optional=True)
        url = start["url"]
        with opener() as fh, _Progress(self.progress, size, f"upload {name}") as bar:

            def blocks() -> Iterator[bytes]:
                while block := fh.read(1 << 20):
                    bar.update(len(block))
                    yield block

            try:
                # No API credentials: the URL is the authorisation.  An explicit length,
                # since S3 refuses chunked uploads to presigned URLs
                resp = self._http.request(start.get("method", "PUT"), url, content=blocks(),
                                          headers={"Content-Length": str(size)})
            except httpx.HTTPError as exc:
                raise ServerUnavailable(f"upload of {name} to S3 failed: {exc}",
                                        url=url.split("?")[0]) from None
        if resp.status_code >= 300:
            raise _error_for(resp, "upload (presigned PUT)", False)
        commit = urllib.parse.urljoin(self.urlbase + "/", start["commit"].lstrip("/"))
        return _answer_path(self._request("POST", commit, "upload-commit"))

    def remove(self, path) -> PurePosixPath:
        """Remove a dataset, file or directory (recursively).

        Returns
        -------
        PurePosixPath
            The removed path.

        """
        resp = self._request("POST", self._url("remove", _path_str(path)), "remove", optional=True)
        return PurePosixPath(_answer_path(resp))

    def move(self, src, dst) -> File | Group:
        """Move (rename) a dataset or directory; returns the object at its new place."""
        body = {"src": _path_str(src), "dst": _path_str(dst)}
        resp = self._request("POST", self._url("move"), "move", json=body, optional=True)
        return self.get(_answer_path(resp))

    def copy(self, src, dst) -> File | Group:
        """Copy a dataset or directory (chunks are shared, not copied); returns the copy."""
        body = {"src": _path_str(src), "dst": _path_str(dst)}
        resp = self._request("POST", self._url("copy"), "copy", json=body, optional=True)
        return self.get(_answer_path(resp))

    def append(self, path, data) -> tuple[int, ...]:
        """Append rows to an n-d dataset along its first dimension.

        Parameters
        ----------
        path : str, PurePosixPath or Dataset
            The dataset.
        data : array-like
            Rows with the dataset's trailing shape and dtype.

        Returns
        -------
        tuple of int
            The dataset's new shape.

        """
        arr = data if isinstance(data, blosc2.NDArray) else blosc2.asarray(np.asarray(data))
        files = {"file": ("append.b2nd", arr.to_cframe(), "application/octet-stream")}
        url = self._url("append", _path_str(path))
        resp = self._request("POST", url, "append", files=files, optional=True)
        return tuple(int(n) for n in resp.json())

    def lazyexpr(self, name: str, expression: str, operands: Mapping[str, Any]) -> PurePosixPath:
        """Create a lazy expression over remote datasets, stored in ``@personal``.

        Parameters
        ----------
        name : str
            Name of the new dataset (``@personal/<name>.b2nd``).
        expression : str
            E.g. ``"x + 1"``; evaluated by the server only when read, and only
            for the slice read.
        operands : dict
            Variable name -> dataset path (or Dataset).

        Returns
        -------
        PurePosixPath
            The new dataset's path, e.g. ``PurePosixPath('@personal/plusone.b2nd')``.

        """
        ops = {k: _path_str(v) for k, v in operands.items()}
        body = {"name": name, "expression": expression, "operands": ops}
        resp = self._request("POST", self._url("lazyexpr"), "lazyexpr", json=body, optional=True)
        return PurePosixPath(_answer_path(resp))

    def subscribe(self, root) -> dict:
        """Have this region follow *root* (its changed chunks are prefetched).

        Returns
        -------
        dict
            ``{"name": root, "subscribed": True}``.

        """
        return self._json("POST", "subscribe", _path_str(root), optional=True)

    def unsubscribe(self, root) -> dict:
        """Stop following *root* (reads keep working, on demand).

        Returns
        -------
        dict
            ``{"name": root, "subscribed": False}``.

        """
        return self._json("POST", "unsubscribe", _path_str(root), optional=True)


def _answer_path(resp: httpx.Response) -> str:
    try:
        answer = resp.json()
    except ValueError:
        raise ServerError("the server answered a write with something that is not JSON",
                          status=resp.status_code, url=str(resp.url)) from None
    if not isinstance(answer, str):
        raise ServerError(f"the server answered a write with {answer!r}, not a path", url=str(resp.url))
    return answer


def _payload(obj, remote: str) -> tuple[str, bytes]:
    """(filename, bytes) of an in-memory object to upload."""
    name = PurePosixPath(remote).name or "data"
    if isinstance(obj, blosc2.NDArray | blosc2.SChunk):
        return name, obj.to_cframe()
    if isinstance(obj, bytes | bytearray | memoryview):
        if name.endswith(".b2frame"):
            return name, blosc2.SChunk(data=bytes(obj)).to_cframe()
        return name, bytes(obj)
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        return name, blosc2.asarray(np.asarray(obj)).to_cframe()
    raise BadRequest(f"cannot upload a {type(obj).__name__}: pass a path, an array, an SChunk or bytes")


def _version() -> str:
    from catclient import __version__

    return __version__


# --------------------------------------------------------------------------- objects


class Root:
    """A root on the server (``client.get("example")``).

    Parameters
    ----------
    client : Client
        The client to read through.
    name : str
        The root's name, e.g. ``"example"`` or ``"@public"``.

    """

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = _path_str(name)

    @property
    def path(self) -> PurePosixPath:
        """The root's path (its name)."""
        return PurePosixPath(self.name)

    @property
    def file_list(self) -> list[str]:
        """Every file in the root, relative to it, sorted."""
        return self.client.get_list(self.name)

    def __getitem__(self, path) -> File | Dataset | Group:
        rel = _path_str(path)
        full = f"{self.name}/{rel}"
        meta = self.client.get_info(full)
        kind = _kind(meta)
        if kind == "group":
            return Group(self, rel, meta)
        if kind == "ndarray" or rel.endswith(_BLOSC2_SUFFIXES):
            return Dataset(self, rel, meta)
        return File(self, rel, meta)

    def __contains__(self, path) -> bool:
        try:
            self.client.get_info(f"{self.name}/{_path_str(path)}")
        except NotFound:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.file_list)

    def __len__(self) -> int:
        return len(self.file_list)

    def upload(self, local, remotepath=None) -> File:
        """Upload *local* into this root (default name: the local file's name).

        Parameters
        ----------
        local : str, Path or array-like
            See :meth:`Client.upload`.
        remotepath : str, optional
            Path inside the root.

        Returns
        -------
        Dataset or File

        """
        if remotepath is None:
            if not isinstance(local, str | os.PathLike):
                raise BadRequest("give remotepath when uploading an in-memory object")
            remotepath = Path(local).name
        return self.client.upload(local, f"{self.name}/{_path_str(remotepath)}")

    def __repr__(self) -> str:
        return f"<Root: {self.name}>"

    def __str__(self) -> str:
        return self.name


class _Node:
    """Something at a path inside a root, with its ``/api/info`` metadata."""

    def __init__(self, root: Root, path: str, meta: Mapping | None = None) -> None:
        self.root = root
        self.name = _path_str(path)
        self.path = PurePosixPath(f"{root.name}/{self.name}")
        self.meta = dict(meta) if meta is not None else root.client.get_info(self.path)

    @property
    def client(self) -> Client:
        """The client this object reads through."""
        return self.root.client


class File(_Node):
    """A file on the server: a plain file (bytes) or, as :class:`Dataset`, a Blosc2 dataset.

    Parameters
    ----------
    root : Root
        The root it lives in.
    path : str
        Path inside the root.
    meta : dict, optional
        Its ``/api/info`` JSON, if already known.

    """

    @property
    def vlmeta(self) -> dict:
        """User attributes (variable-length metalayers)."""
        return dict(self.meta.get("schunk", self.meta).get("vlmeta") or {})

    @property
    def nbytes(self) -> int:
        """Uncompressed size in bytes."""
        return int(self.meta.get("schunk", self.meta).get("nbytes") or 0)

    @property
    def cbytes(self) -> int:
        """Compressed (stored) size in bytes."""
        return _cbytes(self.meta)

    def __getitem__(self, key):
        return self.slice(key, as_blosc2=False)

    def slice(self, key=None, as_blosc2: bool = True):
        """A slice as a Blosc2 object (an ``SChunk`` for files; numpy/bytes with ``as_blosc2=False``)."""
        return self.client._read(str(self.path), key, as_blosc2=as_blosc2, meta=self.meta)

    def download(self, localpath=None) -> Path:
        """Save locally (see :meth:`Client.download`)."""
        return self.client.download(self, localpath)

    def get_download_url(self) -> str:
        """The URL ``download`` reads."""
        return self.client.get_download_url(self.path)

    def remove(self) -> PurePosixPath:
        """Remove it from the server."""
        return self.client.remove(self.path)

    def move(self, dst) -> File | Group:
        """Move it; returns the object at the new place."""
        return self.client.move(self.path, dst)

    def copy(self, dst) -> File | Group:
        """Copy it; returns the copy."""
        return self.client.copy(self.path, dst)

    def __repr__(self) -> str:
        return f"<File: {self.path}>"

    def __str__(self) -> str:
        return str(self.path)


class Dataset(File):
    """A Blosc2 dataset (``.b2nd`` n-d array or ``.b2frame`` SChunk) on the server.

    Indexing reads like numpy: ``ds[5, 10:12, 3]`` returns a ``numpy.ndarray``
    (bytes for ``.b2frame``); :meth:`slice` returns a ``blosc2.NDArray`` or
    ``blosc2.SChunk`` instead.  A string key is a field name, a ``slice_``
    string (``"2:4, 3:6"``) or a filter expression (``"(a > 990) & d"``).
    """

    @property
    def shape(self) -> tuple[int, ...] | None:
        """Shape of an n-d dataset (None for SChunks)."""
        return tuple(self.meta["shape"]) if "shape" in self.meta else None

    @property
    def ndim(self) -> int | None:
        """Number of dimensions (None for SChunks)."""
        return len(self.meta["shape"]) if "shape" in self.meta else None

    @property
    def dtype(self) -> np.dtype | None:
        """Numpy dtype of an n-d dataset (None for SChunks)."""
        return wire.dtype_from_str(self.meta["dtype"]) if "dtype" in self.meta else None

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """Chunk shape (None for SChunks)."""
        return tuple(self.meta["chunks"]) if "chunks" in self.meta else None

    @property
    def blocks(self) -> tuple[int, ...] | None:
        """Block shape (None for SChunks)."""
        return tuple(self.meta["blocks"]) if "blocks" in self.meta else None

    def __getitem__(self, key):
        if isinstance(key, str):
            dtype = self.dtype
            if dtype is not None and dtype.fields and key in dtype.fields:
                return self.client.get_slice(self, None, as_blosc2=False, field=key)
            if not _SLICE_LIKE.match(key):
                return self.client.get_slice(self, None, as_blosc2=False, filter=key)
        return self.slice(key, as_blosc2=False)

    def __array__(self, dtype=None, copy=None):
        result = np.asarray(self[()])
        return result.astype(dtype) if dtype is not None else result

    def __len__(self) -> int:
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d or SChunk dataset")
        return shape[0]

    def get_chunk(self, nchunk: int) -> bytes:
        """One compressed chunk as stored (see :meth:`Client.get_chunk`)."""
        return self.client.get_chunk(self.path, nchunk)

    def append(self, data) -> tuple[int, ...]:
        """Append rows (see :meth:`Client.append`); updates :attr:`meta`."""
        shape = self.client.append(self.path, data)
        self.meta = self.client.get_info(self.path)
        return shape

    def __repr__(self) -> str:
        return f"<Dataset: {self.path}>"


class Group(_Node):
    """A directory inside a root.

    Parameters
    ----------
    root : Root
        The root it lives in.
    path : str
        Path inside the root.
    meta : dict, optional
        Its ``/api/info`` JSON (``kind: group``).

    """

    @property
    def file_list(self) -> list[str]:
        """Every file below this directory, relative to it."""
        return self.client.get_list(self.path)

    def __getitem__(self, path) -> File | Dataset | Group:
        return self.root[f"{self.name}/{_path_str(path)}"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.file_list)

    def __len__(self) -> int:
        return len(self.file_list)

    def remove(self) -> PurePosixPath:
        """Remove the directory and everything in it."""
        return self.client.remove(self.path)

    def __repr__(self) -> str:
        return f"<Group: {self.path}>"

    def __str__(self) -> str:
        return str(self.path)

