"""HTTP plumbing of :class:`catclient.Client`: one pooled connection set, auth, requests, worker threads.

:class:`Session` is a mixin: :class:`catclient.Client` sets the attributes it
uses (``urlbase``, ``timeout``, ``stats``, ``workers``) before calling
:meth:`Session._open_session`.
"""

from __future__ import annotations

import functools
import random
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

import httpx
import urllib3

from catclient.errors import (
    BadRequest,
    CatClientError,
    ServerError,
    ServerUnavailable,
    Unauthorized,
    error_for,
)

#: Attempts at one request (see :meth:`Session._send`).
REQUEST_ATTEMPTS = 3
IDEMPOTENT = frozenset({"GET", "HEAD"})
#: Answers that say "try again shortly": a gateway's or an overloaded function's.
RETRY_STATUSES = frozenset({502, 503, 504})
#: Longest wait between attempts, seconds; a longer Retry-After is cut to it.
MAX_WAIT = 2.0


def _backoff(attempt: int) -> float:
    """Seconds before attempt *attempt* + 2: 0.1, 0.2, 0.4 ... with jitter, at most MAX_WAIT."""
    return min(MAX_WAIT, 0.1 * 2**attempt) * (0.5 + random.random() / 2)


def _retry_after(value: str | None, attempt: int) -> float:
    try:
        return min(MAX_WAIT, max(0.0, float(value))) if value else _backoff(attempt)
    except ValueError:  # an HTTP date: not worth parsing for a wait this short
        return _backoff(attempt)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client of this process (it reads the CA bundle: ~17 ms each).

    Made as httpx makes its own (certifi's bundle, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured);
    a context is safe to share between connections and threads.
    """
    return httpx.create_ssl_context()


#: Endpoints that read one version of a dataset: a pinned client (``Client.at_version``) adds ``version``
VERSIONED = frozenset({"info", "fetch", "chunk", "download", "plan", "estimate"})


class Session:
    """Connections, credentials and requests (the part of a client that speaks HTTP)."""

    #: The dataset version this client reads (None: the current one; see ``Client.at_version``)
    _version: int | None = None

    def _open_session(self, auth, transport: httpx.BaseTransport | None, *, user_agent: str) -> None:
        """Open the connection pool and log in (or take a token); closes everything on failure."""
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._token: str | None = None
        self._auth_headers: dict[str, str] = {}
        # One pooled client for the API and S3 alike: keep-alive connections are
        # most of the speed of many small chunk GETs
        pool = max(20, 2 * self.workers)
        self._http = httpx.Client(
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            follow_redirects=False,
            headers={"User-Agent": user_agent},
            transport=transport,
            verify=_tls_context(),
        )
        # Chunk GETs of read plans go straight to S3 through urllib3 (what boto3 uses): about
        # a tenth less time than httpx for 200 MB of 2 MB chunks, on the CPU the chunks are
        # decoded with.  A client given its own transport (tests) sends them through it.
        self._s3 = None
        if transport is None:
            self._s3 = urllib3.PoolManager(
                maxsize=pool,
                retries=False,  # _get_presigned retries, with backoff
                timeout=urllib3.Timeout(connect=min(10.0, self.timeout), read=self.timeout),
                ssl_context=_tls_context(),
                headers={"User-Agent": user_agent},
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

    def close(self) -> None:
        """Release connections, worker threads and the cache index."""
        self._http.close()
        if getattr(self, "_s3", None) is not None:
            self._s3.clear()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        who = "authenticated" if self._token else "anonymous"
        return f"<catclient.Client {self.urlbase} ({who})>"

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

    def _url(self, endpoint: str, path: str | None = None, *, slash: bool = True) -> str:
        if path is None:
            # Caterva2's move/copy/lazyexpr endpoints carry a trailing slash
            return f"{self.urlbase}/api/{endpoint}/" if slash else f"{self.urlbase}/api/{endpoint}"
        # '@' goes as %40 as Caterva2's clients send it
        url = f"{self.urlbase}/api/{endpoint}/{urllib.parse.quote(path, safe='/')}"
        if self._version is not None and endpoint in VERSIONED:  # requests without params keep it
            url += f"?version={self._version}"
        return url

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
        if self._version is not None and endpoint in VERSIONED:
            params = {**(params or {}), "version": self._version}  # params replace the URL's query
        try:
            resp = self._send(method, url, params=params, json=json, data=data, files=files, headers=hdrs)
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
            raise error_for(resp, endpoint, optional)
        return resp

    def _send(self, method: str, url: str, **kw) -> httpx.Response:
        """Send one request, again (with backoff) when that is safe and may help.

        A request whose connection could not be opened (refused, or not open within
        the connect timeout) was never sent: any method is sent again.  An idempotent
        one (GET, HEAD) is also sent again when the connection dropped mid-answer (a
        reset by a proxy or a recycled keep-alive connection) or the answer is
        502/503/504, honouring a short ``Retry-After``.
        Read timeouts are not retried: the caller's patience is ``timeout``, not a multiple.
        """
        idempotent = method in IDEMPOTENT
        for attempt in range(REQUEST_ATTEMPTS):
            last = attempt + 1 == REQUEST_ATTEMPTS
            try:
                resp = self._http.request(method, url, **kw)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if last:
                    raise
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
                if last or not idempotent:
                    raise
            else:
                if last or not idempotent or resp.status_code not in RETRY_STATUSES:
                    return resp
                time.sleep(_retry_after(resp.headers.get("retry-after"), attempt))
                self.stats.add(retries=1)
                continue
            time.sleep(_backoff(attempt))
            self.stats.add(retries=1)
        raise AssertionError("unreachable: the last attempt returns or raises")

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
