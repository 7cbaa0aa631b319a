"""catclient's write, login and error-mapping code against an in-memory fake of the wire.

These tests pin the client side to docs/wire.md with a fake that
speaks exactly that protocol (httpx.MockTransport, no sockets).  ``test_catclient.py`` runs the
same calls over real HTTP against the stack and skips while the server lacks them.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import PurePosixPath

import blosc2
import httpx
import numpy as np
import pytest

import catclient
from catclient import wire

FAKE_URL = "http://fake.test"


def _multipart_file(request: httpx.Request) -> tuple[str, bytes]:
    """(filename, bytes) of the ``file`` field of a multipart body."""
    boundary = re.search(r"boundary=([^;]+)", request.headers["content-type"]).group(1).encode()
    for part in request.content.split(b"--" + boundary):
        head, _, body = part.partition(b"\r\n\r\n")
        if b'name="file"' in head:
            filename = re.search(rb'filename="([^"]*)"', head).group(1).decode()
            return filename, body[: -len(b"\r\n")] if body.endswith(b"\r\n") else body
    raise AssertionError("no file field in the multipart body")


def _info(path: str, data: bytes) -> dict:
    if path.endswith(".b2nd"):
        arr = blosc2.ndarray_from_cframe(data, copy=True)
        sc = arr.schunk
        return {
            "shape": list(arr.shape), "chunks": list(arr.chunks), "blocks": list(arr.blocks),
            "dtype": wire.dtype_to_str(arr.dtype),
            "schunk": {"cbytes": sc.cbytes, "nbytes": sc.nbytes, "chunksize": sc.chunksize,
                       "nchunks": sc.nchunks, "cparams": wire.cparams_to_dict(sc.cparams), "vlmeta": {}},
            "mtime": "2026-11-21T08:00:00Z",
        }
    return {"cbytes": len(data), "nbytes": len(data), "chunksize": len(data), "nchunks": 1,
            "cparams": {"typesize": 1}, "vlmeta": {}, "mtime": "2026-11-21T08:00:00Z"}


class FakeServer:
    """The write half of docs/wire.md (plus info/list/fetch of what was written), in memory."""

    USER, PASSWORD, TOKEN = "alice@example.com", "secret", "tok-123"

    def __init__(self, payload_limit: int | None = None) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[httpx.Request] = []
        self.lazy: dict[str, dict] = {}
        self.payload_limit = payload_limit  # None: no /api/limits (and no limit)
        self.staged: dict[str, bytes] = {}

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def _authorized(self, request: httpx.Request) -> bool:
        return (request.headers.get("cookie") == f"c2subauth={self.TOKEN}"
                or request.headers.get("authorization") == f"Bearer {self.TOKEN}")

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = urllib.parse.unquote(request.url.path)
        if request.url.host == "s3.fake":  # presigned PUTs of large uploads
            return self._s3_put(request, path)
        if path == "/auth/jwt/login":
            return self._login(request)
        m = re.match(r"^/api/([\w-]+)/?(.*)$", path)
        if not m:
            return httpx.Response(404, json={"detail": "Not Found"})
        endpoint, rest = m.groups()
        if endpoint in ("upload", "remove", "move", "copy", "append", "lazyexpr", "upload-url", "upload-commit"):
            if not self._authorized(request):
                return httpx.Response(401, json={"detail": "Unauthorized"})
            return getattr(self, "_" + endpoint.replace("-", "_"))(request, rest)
        return self._read(request, endpoint, rest)

    def _s3_put(self, request: httpx.Request, path: str) -> httpx.Response:
        assert "authorization" not in request.headers and "cookie" not in request.headers
        assert "transfer-encoding" not in request.headers  # S3 wants a length
        body = request.read()
        assert int(request.headers["content-length"]) == len(body)
        self.staged[path.rsplit("/", 1)[-1]] = body
        return httpx.Response(200)

    def _login(self, request: httpx.Request) -> httpx.Response:
        form = urllib.parse.parse_qs(request.content.decode())
        if form.get("username") == [self.USER] and form.get("password") == [self.PASSWORD]:
            return httpx.Response(204, headers={
                "set-cookie": f"c2subauth={self.TOKEN}; HttpOnly; Path=/; SameSite=lax"})
        return httpx.Response(400, json={"detail": "LOGIN_BAD_CREDENTIALS"})

    def _read(self, request: httpx.Request, endpoint: str, rest: str) -> httpx.Response:
        if endpoint == "roots":
            roots = {"@public": {"name": "@public"}}
            if self._authorized(request):
                roots |= {"@personal": {"name": "@personal"}, "@shared": {"name": "@shared"}}
            return httpx.Response(200, json=roots)
        if endpoint == "info":
            return self._info(rest)
        if endpoint == "limits" and self.payload_limit is not None:
            return httpx.Response(200, json={"payload_limit": self.payload_limit})
        if endpoint == "fetch" and rest in self.files:
            return httpx.Response(200, content=self.files[rest])
        return httpx.Response(404, json={"detail": "Not Found"})

    def _info(self, rest: str) -> httpx.Response:
        if rest in self.files:
            return httpx.Response(200, json=_info(rest, self.files[rest]))
        if rest in self.lazy:
            return httpx.Response(200, json=self.lazy[rest])
        inside = [p for p in self.files if p.startswith(rest.rstrip("/") + "/")]
        if inside:
            group = {"kind": "group", "nfiles": len(inside), "size": 0, "mtime": None}
            return httpx.Response(200, json=group)
        return httpx.Response(404, json={"detail": f"not found: {rest}"})

    def _upload(self, request, rest):
        if self.payload_limit is not None and int(request.headers["content-length"]) > self.payload_limit:
            return httpx.Response(413, json={"detail": "over the payload limit: use POST /api/upload-url/..."})
        filename, data = _multipart_file(request)
        target = rest + filename if rest.endswith("/") or not rest.rsplit("/", 1)[-1] else rest
        self.files[target] = data
        return httpx.Response(200, json=target)

    def _upload_url(self, request, rest):
        assert int(request.url.params["size"]) >= 0  # the size is signed into the URL
        key = f"k{len(self.staged)}"
        commit = f"/api/upload-commit/{urllib.parse.quote(rest)}?staged={key}"
        return httpx.Response(200, json={"url": f"http://s3.fake/staging/{key}?X-Amz-Signature=x", "method": "PUT",
                                         "staged": key, "commit": commit, "expires_in": 300, "path": rest})

    def _upload_commit(self, request, rest):
        self.files[rest] = self.staged.pop(request.url.params["staged"])
        return httpx.Response(200, json=rest)

    def _remove(self, request, rest):
        gone = [p for p in self.files if p == rest or p.startswith(rest + "/")]
        if not gone:
            return httpx.Response(404, json={"detail": f"not found: {rest}"})
        for p in gone:
            del self.files[p]
        return httpx.Response(200, json=rest)

    def _move(self, request, rest, keep=False):
        body = json.loads(request.content)
        if body["src"] not in self.files:
            return httpx.Response(404, json={"detail": f"not found: {body['src']}"})
        data = self.files[body["src"]] if keep else self.files.pop(body["src"])
        self.files[body["dst"]] = data
        return httpx.Response(200, json=body["dst"])

    def _copy(self, request, rest):
        return self._move(request, rest, keep=True)

    def _append(self, request, rest):
        _, data = _multipart_file(request)
        old = blosc2.ndarray_from_cframe(self.files[rest], copy=True)[:]
        new = np.concatenate([old, blosc2.ndarray_from_cframe(data, copy=True)[:]])
        self.files[rest] = blosc2.asarray(new).to_cframe()
        return httpx.Response(200, json=list(new.shape))

    def _lazyexpr(self, request, rest):
        body = json.loads(request.content)
        assert set(body) == {"name", "expression", "operands"}
        path = f"@personal/{body['name']}.b2nd"
        self.lazy[path] = {"shape": [10], "dtype": "float64", "expression": body["expression"],
                           "operands": body["operands"], "mtime": "2026-11-21T08:00:00Z"}
        return httpx.Response(200, json=path)


@pytest.fixture
def fake():
    return FakeServer()


def test_login_cookie_and_bearer(fake):
    with catclient.Client(FAKE_URL, (fake.USER, fake.PASSWORD), transport=fake.transport()) as c:
        assert c.token == fake.TOKEN and c.cookie == f"c2subauth={fake.TOKEN}"
        assert "@personal" in c.get_roots()
        last = fake.requests[-1]
        assert last.headers["cookie"] == f"c2subauth={fake.TOKEN}" and "authorization" not in last.headers
        assert not c._http.cookies  # the session never sits in the jar (it would reach S3 too)
        login = fake.requests[0]
        assert login.method == "POST" and login.headers["content-type"] == "application/x-www-form-urlencoded"
    with pytest.raises(catclient.Unauthorized, match="LOGIN_BAD_CREDENTIALS"):
        catclient.Client(FAKE_URL, (fake.USER, "wrong"), transport=fake.transport())
    with catclient.Client(FAKE_URL, fake.TOKEN, transport=fake.transport()) as c:
        assert "@personal" in c.get_roots()
        assert fake.requests[-1].headers["authorization"] == f"Bearer {fake.TOKEN}"
    with pytest.raises(catclient.BadRequest):
        catclient.Client(FAKE_URL, ("only-user",), transport=fake.transport())


def test_anonymous_writes_refused(fake, tmp_path):
    with catclient.Client(FAKE_URL, transport=fake.transport()) as c:
        with pytest.raises(catclient.Unauthorized):
            c.upload(np.arange(3), "@personal/x.b2nd")
        with pytest.raises(catclient.Unauthorized):
            c.remove("@personal/x.b2nd")
    assert not fake.files


def test_upload_variants(fake, tmp_path):
    local = tmp_path / "arr.b2nd"
    data = np.arange(12, dtype=np.int16).reshape(3, 4)
    blosc2.asarray(data, urlpath=str(local), mode="w")
    text = tmp_path / "notes.txt"
    text.write_bytes(b"some notes")
    with catclient.Client(FAKE_URL, fake.TOKEN, transport=fake.transport()) as c:
        ds = c.upload(local, "@personal/dir/arr.b2nd")
        assert isinstance(ds, catclient.Dataset) and ds.shape == (3, 4) and np.array_equal(ds[:], data)
        assert fake.files["@personal/dir/arr.b2nd"] == local.read_bytes()  # the frame travels as is
        upload = [r for r in fake.requests if "/api/upload/" in r.url.path][-1]
        assert upload.url.raw_path.startswith(b"/api/upload/%40personal/dir/arr.b2nd")
        f = c.get("@personal").upload(text)
        assert type(f) is catclient.File and f.path == PurePosixPath("@personal/notes.txt")
        assert fake.files["@personal/notes.txt"] == b"some notes"
        assert c.upload(text, "@personal/docs/").path == PurePosixPath("@personal/docs/notes.txt")
        arr = c.upload(np.ones((2, 2)), "@personal/ones.b2nd")
        assert np.array_equal(arr[:], np.ones((2, 2)))
        c.upload(b"raw bytes", "@personal/raw.bin")
        assert fake.files["@personal/raw.bin"] == b"raw bytes"
        c.upload(b"framed", "@personal/framed.b2frame")
        assert blosc2.schunk_from_cframe(fake.files["@personal/framed.b2frame"])[:] == b"framed"
        with pytest.raises(catclient.NotFound, match="no such local file"):
            c.upload(tmp_path / "missing.b2nd", "@personal/x.b2nd")
        with pytest.raises(catclient.BadRequest):
            c.upload(object(), "@personal/x.b2nd")
        with pytest.raises(catclient.BadRequest):
            c.get("@personal").upload(np.ones(3))


def test_remove_move_copy_append_lazyexpr(fake):
    with catclient.Client(FAKE_URL, fake.TOKEN, transport=fake.transport()) as c:
        c.upload(np.arange(10.0), "@personal/a.b2nd")
        copied = c.copy("@personal/a.b2nd", "@personal/b.b2nd")
        assert copied.path == PurePosixPath("@personal/b.b2nd")
        req = fake.requests[-2]  # the copy, before the info that builds the object
        assert req.url.path == "/api/copy/" and json.loads(req.content) == {
            "src": "@personal/a.b2nd", "dst": "@personal/b.b2nd"}
        moved = c.move(copied, "@personal/sub/c.b2nd")
        assert moved.path == PurePosixPath("@personal/sub/c.b2nd") and "@personal/b.b2nd" not in fake.files
        assert isinstance(c.get("@personal/sub"), catclient.Group)
        assert c.append("@personal/a.b2nd", np.arange(5.0)) == (15,)
        ds = c.get("@personal/a.b2nd")
        assert ds.append([1.0, 2.0]) == (17,) and ds.shape == (17,)
        path = c.lazyexpr("plusone", "x + 1", {"x": ds})
        assert path == PurePosixPath("@personal/plusone.b2nd")
        assert json.loads(fake.requests[-1].content)["operands"] == {"x": "@personal/a.b2nd"}
        assert c.get_info(path)["expression"] == "x + 1"
        assert c.remove("@personal/sub") == PurePosixPath("@personal/sub")
        assert ds.remove() == PurePosixPath("@personal/a.b2nd") and not fake.files
        with pytest.raises(catclient.NotFound):
            c.remove("@personal/a.b2nd")


def _answering(status: int, **kw) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, **kw))


@pytest.mark.parametrize("status,body,exc", [
    (400, {"detail": "slice_ is not a slice"}, catclient.BadRequest),
    (422, {"detail": [{"msg": "field required", "loc": ["query", "nchunk"]}]}, catclient.BadRequest),
    (401, {"detail": "Unauthorized"}, catclient.Unauthorized),
    (403, None, catclient.Unauthorized),
    (404, {"detail": "not found: example/x"}, catclient.NotFound),
    (405, {"detail": "Method Not Allowed"}, catclient.NotSupported),
    (413, {"detail": "too large"}, catclient.TooLarge),
    (500, None, catclient.ServerError),
    (502, None, catclient.ServerUnavailable),
    (503, {"detail": "origin unreachable"}, catclient.ServerUnavailable),
    (418, {"detail": "teapot"}, catclient.CatClientError),
    (429, {"detail": "too many failed logins"}, catclient.CatClientError),
])
def test_error_mapping(status, body, exc):
    kw = {"json": body} if body is not None else {"text": ""}
    with catclient.Client(FAKE_URL, transport=_answering(status, **kw)) as c:
        with pytest.raises(exc) as info:
            c.get_info("example/x")
    err = info.value
    assert err.status == status and str(err)
    if body and isinstance(body["detail"], str) and status not in (405,):
        assert err.detail == body["detail"] and body["detail"] in str(err)


def test_missing_routes_are_not_supported():
    # FastAPI's answer to an unknown route: for optional endpoints that means "not offered"
    with catclient.Client(FAKE_URL, "t", transport=_answering(404, json={"detail": "Not Found"})) as c:
        for call in (lambda: c.remove("@personal/x"), lambda: c.subscribe("example"),
                     lambda: c.lazyexpr("n", "x", {"x": "a/b"}), lambda: c.login("u", "p")):
            with pytest.raises(catclient.NotSupported):
                call()
        assert c.plan("example/x.b2nd") is None
        # ... but on a read it is plain "not found"
        with pytest.raises(catclient.NotFound) as info:
            c.get_info("example/x")
        assert not isinstance(info.value, catclient.NotSupported)


def test_garbage_answers_are_server_errors():
    with catclient.Client(FAKE_URL, transport=_answering(200, text="<html>")) as c:
        with pytest.raises(catclient.ServerError):
            c.get_info("example/x")
    meta = {"shape": [3], "dtype": "int64"}  # a lazy expression: no chunks to fall back on

    def lazy(request):
        if "/info/" in request.url.path:
            return httpx.Response(200, json=meta)
        return httpx.Response(200, content=b"xx")

    transport = httpx.MockTransport(lazy)
    with catclient.Client(FAKE_URL, transport=transport) as c:
        with pytest.raises(catclient.ServerError, match="not a Blosc2 frame"):
            c.fetch("example/x.b2nd")

    def timeout(request):
        raise httpx.ReadTimeout("slow", request=request)

    with catclient.Client(FAKE_URL, transport=httpx.MockTransport(timeout)) as c:
        with pytest.raises(catclient.ServerUnavailable, match="timed out"):
            c.get_roots()


def test_long_fancy_keys_go_by_post():
    arr = np.arange(5000)
    seen = []

    def handler(request):
        seen.append(request)
        if "/info/" in request.url.path:
            return httpx.Response(200, json={"shape": [5000], "dtype": "int64"})
        params = json.loads(request.content) if request.method == "POST" else dict(request.url.params)
        idx = json.loads(params["indices"])[0]
        return httpx.Response(200, content=blosc2.asarray(arr[idx]).to_cframe())

    with catclient.Client(FAKE_URL, transport=httpx.MockTransport(handler)) as c:
        idx = list(range(0, 5000, 3))
        assert np.array_equal(c.fetch("example/big.b2nd", slice_=(idx,)), arr[idx])
        assert seen[-1].method == "POST" and seen[-1].url.path == "/api/fetch/example/big.b2nd"
        assert np.array_equal(c.fetch("example/big.b2nd", slice_=([1, 2],)), [1, 2])
        assert seen[-1].method == "GET"


def test_progress_bars_do_not_break_transfers(fake, tmp_path, capsys):
    local = tmp_path / "f.txt"
    local.write_bytes(b"x" * 100_000)
    with catclient.Client(FAKE_URL, fake.TOKEN, transport=fake.transport(), progress=True) as c:
        c.upload(local, "@personal/f.txt")
    assert fake.files["@personal/f.txt"] == local.read_bytes()


def test_large_upload_presigned(tmp_path):
    fake = FakeServer(payload_limit=2_000_000)
    local = tmp_path / "big.bin"
    local.write_bytes(np.random.default_rng(0).bytes(3_000_000))
    with catclient.Client(FAKE_URL, fake.TOKEN, transport=fake.transport()) as c:
        f = c.upload(local, "@personal/big.bin")
        assert f.path == PurePosixPath("@personal/big.bin") and fake.files["@personal/big.bin"] == local.read_bytes()
        assert not any(r.url.path.startswith("/api/upload/") for r in fake.requests)  # never through the API
        c.upload(np.zeros(400_000), "@personal/zeros.b2nd")  # in-memory: 3.2 MB of frame
        assert np.array_equal(c.get("@personal/zeros.b2nd")[:], np.zeros(400_000))
        small = c.upload(b"small", "@personal/small.txt")
        assert small.path.name == "small.txt" and fake.files["@personal/small.txt"] == b"small"
    assert [r.url.path for r in fake.requests].count("/api/limits") == 1  # asked once per client


def test_large_upload_after_413(tmp_path):
    """A server that does not publish its limits: its 413 points to the presigned flow."""
    fake = FakeServer(payload_limit=2_000_000)

    def no_limits(request):
        if request.url.path == "/api/limits":
            return httpx.Response(404, json={"detail": "Not Found"})
        if request.url.path.startswith("/api/upload/"):
            request.read()
            if int(request.headers["content-length"]) > fake.payload_limit:
                return httpx.Response(413, json={"detail": "too big: use POST /api/upload-url/{path}"})
        return fake(request)

    local = tmp_path / "big.bin"
    local.write_bytes(b"y" * 3_000_000)
    with catclient.Client(FAKE_URL, fake.TOKEN, transport=httpx.MockTransport(no_limits)) as c:
        assert c.upload(local, "@personal/big.bin").path.name == "big.bin"
    assert fake.files["@personal/big.bin"] == local.read_bytes()
