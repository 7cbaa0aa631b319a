"""The downloader port: the file behind an ``https``/``http`` or ``s3://`` URL, bounded.

HTTP(S): each hop's host is resolved once, the addresses are vetted by the caller's
policy, and the connection goes to the vetted address (Host header and TLS SNI keep
the name, so certificates are checked against it): a DNS answer that changes between
the check and the connection (rebinding) cannot reach another address. Redirects are
followed by hand so every hop is vetted. S3: the function's own credentials, sizes
checked before reading.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import Callable

from functions.adapters.s3 import S3Store
from functions.engine.errors import BadRequest, NotFound, StoreError, TooLarge, UpstreamFailed

__all__ = ["UrlDownloader"]

#: Seconds for connecting and between bytes; the whole fetch must end well inside the
#: API's 29 s (API Gateway) together with storing what was fetched.
TIMEOUT = 5.0
DEADLINE = 20.0
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_HOPS = 5


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return list(dict.fromkeys(info[4][0] for info in infos))


def _too_large(max_bytes: int) -> TooLarge:
    return TooLarge(f"the file at the URL is larger than this server's upload limit of {max_bytes} bytes")


class UrlDownloader:
    """Fetch URLs for ``load_from_url``.

    Parameters
    ----------
    s3_client : botocore S3 client, optional
        For ``s3://`` URLs (None: they are refused).
    resolve : callable, optional
        ``(host, port) -> [address, ...]``; the system resolver by default (tests pass their own).
    """

    def __init__(self, s3_client=None, resolve: Callable[[str, int], list[str]] = _resolve):
        self._s3 = s3_client
        self._resolve = resolve

    def fetch(self, url: str, *, max_bytes: int, vet: Callable[[str, list[str]], None]) -> bytes:
        """The body at *url* (see :class:`functions.engine.ports.Downloader`)."""
        if urllib.parse.urlsplit(url).scheme == "s3":
            vet(url, [])
            return self._fetch_s3(url, max_bytes)
        import httpx  # here: the API's cold start does not pay for an HTTP client it rarely needs

        try:
            return self._fetch_http(url, max_bytes, vet)
        except httpx.TimeoutException as exc:
            raise UpstreamFailed(f"{url} timed out ({exc.__class__.__name__})") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"{url} could not be fetched: {exc}") from None

    # ------------------------------------------------------------------ http

    def _fetch_http(self, url: str, max_bytes: int, vet) -> bytes:
        deadline = time.monotonic() + DEADLINE
        # trust_env=False: no proxy or .netrc from the process environment is used for users' URLs
        import httpx

        with httpx.Client(timeout=TIMEOUT, follow_redirects=False, trust_env=False) as client:
            for _ in range(_MAX_HOPS + 1):
                parts = urllib.parse.urlsplit(url)
                port = parts.port or (443 if parts.scheme == "https" else 80)
                addresses = self._resolve(parts.hostname, port)
                vet(url, addresses)
                request = _pinned(client, parts, addresses[0] if addresses else parts.hostname, port)
                response = client.send(request, stream=True)
                try:
                    if response.status_code in _REDIRECTS and "location" in response.headers:
                        url = urllib.parse.urljoin(url, response.headers["location"])
                        continue
                    return _body(url, response, max_bytes, deadline)
                finally:
                    response.close()
        raise BadRequest(f"more than {_MAX_HOPS} redirects")

    # ------------------------------------------------------------------ s3

    def _fetch_s3(self, url: str, max_bytes: int) -> bytes:
        if self._s3 is None:
            raise BadRequest("this server does not load s3:// URLs")
        parts = urllib.parse.urlsplit(url)
        store = S3Store(self._s3, parts.netloc)
        key = urllib.parse.unquote(parts.path.lstrip("/"))
        try:
            if max_bytes and store.size(key) > max_bytes:
                raise _too_large(max_bytes)
            return store.get(key).data
        except NotFound:
            # the same answer for absent and unreadable: the caller learns nothing about the bucket
            raise BadRequest(f"{url} does not exist or this server may not read it") from None
        except StoreError as exc:
            raise UpstreamFailed(f"{url} could not be read: {exc}") from None


def _pinned(client, parts: urllib.parse.SplitResult, address: str, port: int):
    host = f"[{address}]" if ":" in address else address
    target = parts._replace(netloc=f"{host}:{port}").geturl()
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    headers = {"Host": parts.netloc, "Accept-Encoding": "identity"}
    return client.build_request("GET", target, headers=headers, extensions=extensions)


def _body(url: str, response, max_bytes: int, deadline: float) -> bytes:
    if 400 <= response.status_code < 500:
        raise BadRequest(f"{url} answered {response.status_code} {response.reason_phrase}")
    if response.status_code != 200:
        raise UpstreamFailed(f"{url} answered {response.status_code} {response.reason_phrase}")
    declared = response.headers.get("content-length", "")
    if max_bytes and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    body = bytearray()
    for part in response.iter_raw():
        body += part
        if max_bytes and len(body) > max_bytes:
            raise _too_large(max_bytes)
        if time.monotonic() > deadline:
            raise UpstreamFailed(f"{url} took more than {DEADLINE:.0f} s to send")
    return bytes(body)
