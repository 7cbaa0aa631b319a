"""The AWS endpoint the local stack runs over: its own moto server, or one already running.

``cat-local --aws-endpoint URL`` (or ``--localstack``, LocalStack's address as the
``localstack-client`` package resolves it: ``LOCALSTACK_HOST``, default
``localhost:4566``) runs the APIs and the dispatcher over an emulator someone else
started, LocalStack in Docker typically, instead of starting moto.  The template's
resources are created there (idempotently, so a restart keeps the data) and the
stack leaves the emulator running when it stops.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import httpx

__all__ = ["EndpointError", "localstack_url", "resolve", "wait_until_up"]


class EndpointError(RuntimeError):
    """The endpoint asked for cannot be used (unreachable, not an emulator, a missing package)."""


def localstack_url() -> str:
    """LocalStack's edge URL, as ``localstack-client`` resolves it (imported only when asked for).

    It honours ``LOCALSTACK_HOST`` (``host[:port]``), ``USE_SSL`` and, if set,
    ``AWS_ENDPOINT_URL``.
    """
    try:
        from localstack_client.config import get_service_endpoint
    except ImportError:
        raise EndpointError(
            "--localstack needs the localstack-client package: "
            "pip install 'caterva-serverless[localstack]' (or pass --aws-endpoint URL)"
        ) from None
    url = get_service_endpoint("s3")  # every service answers on LocalStack's one edge port
    if not url:
        raise EndpointError("localstack-client gave no endpoint: set LOCALSTACK_HOST=host:port")
    return url


def resolve(aws_endpoint: str | None, localstack: bool) -> str | None:
    """The endpoint to run over (None: start our own moto).

    Raises
    ------
    EndpointError
        Both options given, a URL that is not ``http(s)://host[:port]``, or an AWS
        endpoint (the local stack creates and uses resources freely: never on an account).
    """
    if aws_endpoint and localstack:
        raise EndpointError("give --aws-endpoint or --localstack, not both")
    url = aws_endpoint or (localstack_url() if localstack else None)
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise EndpointError(f"not an endpoint URL: {url!r} (want http://host:port)")
    if parts.hostname.endswith((".amazonaws.com", ".amazonaws.com.cn")):
        raise EndpointError(f"{url} is AWS itself: deploy there with SAM (docs/deploy.md), not cat-local")
    return url.rstrip("/")


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    """Return once *url* answers HTTP at all (any status); raise :class:`EndpointError` after *timeout* s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url + "/", timeout=2)
            return
        except httpx.HTTPError as exc:
            if time.monotonic() > deadline:
                raise EndpointError(f"nothing answers at {url} ({exc}); is the emulator running?") from None
            time.sleep(0.2)


def add_options(parser) -> None:
    """``--aws-endpoint URL`` and ``--localstack`` on the local stack's command line."""
    group = parser.add_argument_group("over an emulator already running (instead of starting moto)")
    group.add_argument(
        "--aws-endpoint",
        metavar="URL",
        help="run the APIs and the dispatcher over this endpoint (LocalStack, a moto server), "
        "creating template.yaml's resources there",
    )
    group.add_argument(
        "--localstack",
        action="store_true",
        help="the same at LocalStack's address, as localstack-client resolves it "
        "(LOCALSTACK_HOST, default localhost:4566; needs the [localstack] extra)",
    )


def from_args(parser, args) -> str | None:
    """The endpoint the options name (None: start moto); a bad combination is a usage error."""
    try:
        url = resolve(args.aws_endpoint, args.localstack)
    except EndpointError as exc:
        parser.error(str(exc))
    if url and args.state:
        parser.error("--state keeps moto's buckets across runs; an existing endpoint keeps its own")
    return url
