"""Loading a file from a URL into a user space (``POST /api/load_from_url/{path}``).

The server fetches what a caller names, so the URL is the attack surface (server-side
request forgery): by default only ``https`` URLs whose host resolves to public
addresses are fetched, every redirect hop is checked again, and the connection goes to
the address that was checked (no second DNS answer). ``http``, private or loopback
addresses and ``s3://`` buckets are fetched only under a prefix the operator lists
(``CAT_LOAD_URL_ALLOW``). What is fetched is bounded by the upload limit and then
stored exactly as an upload of the same bytes would be (quota, validation).
"""

from __future__ import annotations

import ipaddress
import posixpath
import urllib.parse
from dataclasses import dataclass

from functions.engine.errors import BadRequest
from functions.engine.ports import Downloader
from functions.engine.spaces import Location
from functions.engine.writes import WriteService

__all__ = ["UrlLoads", "UrlPolicy", "target_name"]

#: Longer URLs are refused before anything is resolved (browsers stop near 2 KiB too)
MAX_URL_CHARS = 2048
_SCHEMES = ("https", "http", "s3")


@dataclass(frozen=True)
class UrlPolicy:
    """Which URLs may be fetched, and how much of them.

    Attributes
    ----------
    allow : tuple of str
        URL prefixes fetched whatever their scheme and address (``http://10.1.2.3/``,
        ``s3://my-bucket/``). Outside them only ``https`` to public addresses.
    max_bytes : int
        Largest body fetched, bytes (0 = no bound).
    max_redirects : int
        Redirect hops followed, each checked like the first URL.
    """

    allow: tuple[str, ...] = ()
    max_bytes: int = 0
    max_redirects: int = 5

    def listed(self, url: str) -> bool:
        """Whether *url* falls under a prefix the operator allowed."""
        return any(url.startswith(prefix) for prefix in self.allow if prefix)

    def check(self, url: str) -> urllib.parse.SplitResult:
        """Refuse *url* before anything is resolved; returns its parts.

        Raises
        ------
        BadRequest
            The URL is malformed, carries credentials, or its scheme is not allowed.
        """
        if len(url) > MAX_URL_CHARS:
            raise BadRequest(f"the URL is longer than {MAX_URL_CHARS} characters")
        try:
            parts = urllib.parse.urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except ValueError as exc:
            raise BadRequest(f"malformed URL: {exc}") from None
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise BadRequest("remote_url must be an https:// (or an allowed http:// or s3://) URL")
        if parts.username or parts.password:
            raise BadRequest("remote_url must not carry credentials")
        if parts.scheme != "https" and not self.listed(url):
            raise BadRequest(
                f"{parts.scheme}:// URLs load only under a prefix the server allows (CAT_LOAD_URL_ALLOW)"
            )
        return parts

    def vet(self, url: str, addresses: list[str]) -> None:
        """Refuse a hop whose host resolves to a non-public address (unless allowed).

        Raises
        ------
        BadRequest
            The URL fails :meth:`check`, or an address is private, loopback,
            link-local (cloud metadata endpoints), multicast or reserved.
        """
        parts = self.check(url)
        if self.listed(url):
            return
        if not addresses:
            raise BadRequest(f"{parts.hostname} does not resolve")
        for address in addresses:
            if not ipaddress.ip_address(address.split("%", 1)[0]).is_global:
                raise BadRequest(f"{parts.hostname} resolves to a non-public address; it is not loaded")


def target_name(url: str) -> str:
    """The file name a URL's path ends with (what a directory target receives).

    Raises
    ------
    BadRequest
        The URL's path names no file (``https://host/`` or ``.../dir/``).
    """
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    name = posixpath.basename(path)
    if not name or name in (".", ".."):
        raise BadRequest("the URL names no file; give the dataset's path instead of a directory")
    return name


class UrlLoads:
    """Fetch a URL under a :class:`UrlPolicy` and store it as an upload.

    Parameters
    ----------
    writes : WriteService
        Stores what was fetched (limits, quota and validation of an upload apply).
    downloader : Downloader
        Fetches bytes (HTTP and S3 adapters).
    policy : UrlPolicy
        What may be fetched.
    """

    def __init__(self, writes: WriteService, downloader: Downloader, policy: UrlPolicy):
        self.writes = writes
        self.downloader = downloader
        self.policy = policy

    def load(self, loc: Location, url: str, *, into: bool = False) -> str:
        """Store the file at *url* at *loc*; return the path.

        With *into* (a path given with a trailing ``/``, as Caterva2's clients mean a
        directory), or when *loc* is an existing directory, the URL's file name is appended.
        """
        url = url.strip()
        self.policy.check(url)
        name = target_name(url)
        if into and loc.rel:
            loc = loc.at(f"{loc.rel}/{name}")
        data = self.downloader.fetch(url, max_bytes=self.policy.max_bytes, vet=self.policy.vet)
        return self.writes.upload(loc, name, data)
