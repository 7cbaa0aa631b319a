"""POST /api/load_from_url: files fetched from URLs into user spaces, and the SSRF rules around it.

The session stack allows ``http://127.0.0.1:`` and ``s3://cat-test-loads/`` (tests/conftest.py
sets CAT_LOAD_URL_ALLOW before it starts); everything else must be public https.
"""

from __future__ import annotations

import http.server
import threading
import uuid
from pathlib import Path

import blosc2
import boto3
import caterva2 as cat2
import httpx
import numpy as np
import pytest

from functions import admin
from functions.adapters.url_fetch import UrlDownloader
from functions.engine.errors import BadRequest, TooLarge
from functions.engine.urlload import UrlPolicy, target_name
from tests.conftest import LOAD_BUCKET

RUN = uuid.uuid4().hex[:8]
EXAMPLE = Path(__file__).resolve().parents[1] / "root-example" / "ds-1d.b2nd"


class _Files(http.server.BaseHTTPRequestHandler):
    """Serves the example array, redirects, errors and a body that lies about its size."""

    routes: dict = {}
    seen_hosts: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.seen_hosts.append(self.headers.get("Host"))
        status, headers, body = self.routes.get(self.path, (404, {}, b"no such file"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def files():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    _Files.routes = {
        "/ds-1d.b2nd": (200, {}, EXAMPLE.read_bytes()),
        "/to-example": (302, {"Location": "/ds-1d.b2nd"}, b""),
        "/to-private": (302, {"Location": "http://10.0.0.1/secret"}, b""),
        "/to-metadata": (307, {"Location": "https://169.254.169.254/latest/meta-data/iam"}, b""),
        "/huge.bin": (200, {"Content-Length": str(10**11)}, b"x" * 1000),
        "/broken": (500, {}, b"oops"),
        "/": (200, {}, b"index"),
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def account(stack) -> tuple[str, str]:
    name, password = f"lfu-{RUN}", admin.generate_password()
    argv = ["--pool-id", stack.resources["user_pool_id"], "--endpoint-url", stack.endpoint_url]
    assert admin.main([*argv, "users", "add", name, "--password", password]) == 0
    return name, password


@pytest.fixture(scope="module")
def cookie(stack, account) -> dict:
    name, password = account
    resp = httpx.post(f"{stack.api_url}/auth/jwt/login", data={"username": name, "password": password})
    return {"Cookie": f"c2subauth={resp.cookies['c2subauth']}"}


def _load(stack, path: str, url: str, headers: dict | None) -> httpx.Response:
    return httpx.post(f"{stack.api_url}/api/load_from_url/{path}", data={"remote_url": url}, headers=headers)


def test_a_url_is_loaded_and_reads_like_an_upload(stack, files, cookie):
    want = blosc2.open(str(EXAMPLE))[:]
    resp = _load(stack, f"@personal/lfu-{RUN}/one.b2nd", f"{files}/ds-1d.b2nd", cookie)
    assert resp.status_code == 200, resp.text
    assert resp.json() == f"@personal/lfu-{RUN}/one.b2nd"
    got = httpx.get(f"{stack.api_url}/api/fetch/@personal/lfu-{RUN}/one.b2nd", headers=cookie)
    assert np.array_equal(blosc2.ndarray_from_cframe(got.content)[:], want)
    # a directory target receives the URL's file name; a redirect is followed (and vetted)
    resp = _load(stack, f"@personal/lfu-{RUN}/", f"{files}/to-example", cookie)
    assert resp.status_code == 200, resp.text
    assert resp.json() == f"@personal/lfu-{RUN}/to-example"
    resp = _load(stack, f"@personal/lfu-{RUN}", f"{files}/ds-1d.b2nd", cookie)
    assert resp.json() == f"@personal/lfu-{RUN}/ds-1d.b2nd"


def test_caterva2_client_load_from_url(stack, files, account):
    with cat2.Client(stack.api_url, account) as client:
        ds = client.get("@shared").load_from_url(f"{files}/ds-1d.b2nd", f"lfu-{RUN}/c2.b2nd")
        assert str(ds.path) == f"@shared/lfu-{RUN}/c2.b2nd"
        assert np.array_equal(ds[:], blosc2.open(str(EXAMPLE))[:])


@pytest.mark.parametrize(
    ("url", "status", "word"),
    [
        ("file:///etc/passwd", 400, "https://"),
        ("gopher://127.0.0.1:70/x", 400, "https://"),
        ("http://169.254.169.254/latest/meta-data/iam", 400, "prefix"),  # http, not listed
        ("https://169.254.169.254/latest/meta-data/iam", 400, "non-public"),  # cloud metadata
        ("https://127.0.0.1:1/x", 400, "non-public"),
        ("https://localhost/x", 400, "non-public"),
        ("https://[::1]/x", 400, "non-public"),
        ("https://user:secret@example.com/x", 400, "credentials"),
        ("https://host:99999/x", 400, "malformed"),
        ("https://nonexistent.invalid/x", 400, "resolve"),
        ("s3://some-other-bucket/x", 400, "prefix"),
        ("https://" + "a" * 3000 + ".com/x", 400, "at most 2048 characters"),  # the form field's bound
    ],
)
def test_hostile_urls_are_refused(stack, cookie, url, status, word):
    resp = _load(stack, f"@personal/lfu-{RUN}/h.bin", url, cookie)
    assert resp.status_code == status, resp.text
    assert word in str(resp.json()["detail"])


def test_redirects_are_vetted_and_remote_failures_are_clear(stack, files, cookie):
    resp = _load(stack, f"@personal/lfu-{RUN}/x.bin", f"{files}/to-private", cookie)
    assert resp.status_code == 400 and "prefix" in resp.json()["detail"]
    resp = _load(stack, f"@personal/lfu-{RUN}/x.bin", f"{files}/to-metadata", cookie)
    assert resp.status_code == 400 and "non-public" in resp.json()["detail"]
    resp = _load(stack, f"@personal/lfu-{RUN}/x.bin", f"{files}/missing", cookie)
    assert resp.status_code == 400 and "answered 404" in resp.json()["detail"]
    resp = _load(stack, f"@personal/lfu-{RUN}/x.bin", f"{files}/broken", cookie)
    assert resp.status_code == 502 and "answered 500" in resp.json()["detail"]
    resp = _load(stack, f"@personal/lfu-{RUN}/x.bin", f"{files}/huge.bin", cookie)
    assert resp.status_code == 413 and "upload limit" in resp.json()["detail"]
    resp = _load(stack, f"@personal/lfu-{RUN}/", f"{files}/", cookie)
    assert resp.status_code == 400 and "names no file" in resp.json()["detail"]
    # nothing of the refused loads was stored
    listing = httpx.get(f"{stack.api_url}/api/list/@personal/lfu-{RUN}", headers=cookie).json()
    assert "x.bin" not in listing and "h.bin" not in listing


def test_access_rules_of_uploads_apply(stack, files, cookie):
    assert _load(stack, f"@personal/lfu-{RUN}/a.b2nd", f"{files}/ds-1d.b2nd", None).status_code == 401
    assert _load(stack, "example/a.b2nd", f"{files}/ds-1d.b2nd", cookie).status_code == 403
    resp = _load(stack, f"@personal/lfu-{RUN}/..%2F..%2Fx.b2nd", f"{files}/ds-1d.b2nd", cookie)
    assert resp.status_code == 400, resp.text


def test_an_allowed_bucket_is_loaded_with_the_functions_credentials(stack, cookie):
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    s3.put_object(Bucket=LOAD_BUCKET, Key=f"{RUN}/ds.b2nd", Body=EXAMPLE.read_bytes())
    resp = _load(stack, f"@personal/lfu-{RUN}/s3/", f"s3://{LOAD_BUCKET}/{RUN}/ds.b2nd", cookie)
    assert resp.status_code == 200, resp.text
    assert resp.json() == f"@personal/lfu-{RUN}/s3/ds.b2nd"
    resp = _load(stack, f"@personal/lfu-{RUN}/s3/", f"s3://{LOAD_BUCKET}/{RUN}/missing.b2nd", cookie)
    assert resp.status_code == 400 and "does not exist" in resp.json()["detail"]


# ---------------------------------------------------------------------- the parts alone


def test_the_connection_goes_to_the_vetted_address(files):
    # "data.example" has no DNS: only the address the resolver vetted can be reached, and the
    # request still names the host (Host header; SNI for https)
    port = int(files.rsplit(":", 1)[1])
    vetted = []
    downloader = UrlDownloader(resolve=lambda host, p: ["127.0.0.1"] if host == "data.example" else [])
    policy = UrlPolicy(allow=(f"http://data.example:{port}/",))

    def vet(url, addresses):
        vetted.append((url, addresses))
        policy.vet(url, addresses)

    body = downloader.fetch(f"http://data.example:{port}/ds-1d.b2nd", max_bytes=0, vet=vet)
    assert body == EXAMPLE.read_bytes()
    assert vetted == [(f"http://data.example:{port}/ds-1d.b2nd", ["127.0.0.1"])]
    assert _Files.seen_hosts[-1] == f"data.example:{port}"


def test_a_body_past_the_bound_is_cut_off(files):
    downloader = UrlDownloader()
    policy = UrlPolicy(allow=("http://127.0.0.1:",))
    with pytest.raises(TooLarge):
        downloader.fetch(f"{files}/ds-1d.b2nd", max_bytes=100, vet=policy.vet)


def test_policy_and_names():
    policy = UrlPolicy()
    with pytest.raises(BadRequest):
        policy.vet("https://example.com/x", ["10.1.2.3"])
    with pytest.raises(BadRequest):
        policy.vet("https://example.com/x", ["93.184.216.34", "fe80::1%eth0"])
    policy.vet("https://example.com/x", ["93.184.216.34", "2606:2800:220:1::1"])
    assert target_name("https://h/a/b/ds%201.b2nd?x=1") == "ds 1.b2nd"
    with pytest.raises(BadRequest):
        target_name("https://h/a/..")
