"""Writes over real HTTP (the local stack): the real client's round trip, hostile input, races,
visibility across regions, large uploads through presigned S3 PUTs, append, copy and limits.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
import uuid

import blosc2
import caterva2 as cat2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from functions import admin
from functions.api.app import create_app
from functions.engine import layout
from functions.engine.content import load_frame
from functions.services import Services

RUN = uuid.uuid4().hex[:8]


@dataclasses.dataclass
class Writer:
    name: str
    password: str
    headers: dict
    sub: str


def _new_writer(stack, key: str) -> Writer:
    name = f"writer-{key}-{RUN}"
    password = admin.generate_password()
    argv = ["--pool-id", stack.resources["user_pool_id"], "--endpoint-url", stack.endpoint_url]
    assert admin.main([*argv, "users", "add", name, "--password", password]) == 0
    resp = httpx.post(f"{stack.api_url}/auth/jwt/login", data={"username": name, "password": password})
    token = resp.cookies["c2subauth"]
    sub = stack.regions[0].services.auth.verify(token).sub
    return Writer(name, password, {"Cookie": f"c2subauth={token}"}, sub)


@pytest.fixture(scope="module")
def writer(stack) -> Writer:
    return _new_writer(stack, "w")


def post_file(url: str, path: str, data: bytes, headers: dict, name: str = "upload.bin", **kw) -> httpx.Response:
    return httpx.post(f"{url}/api/upload/{path}", files={"file": (name, data)}, headers=headers, **kw)


def arr_frame(arr: np.ndarray, chunks=None) -> bytes:
    return blosc2.asarray(arr, chunks=chunks).to_cframe()


def fetch_array(url: str, path: str, headers: dict) -> np.ndarray:
    resp = httpx.get(f"{url}/api/fetch/{path}", headers=headers)
    resp.raise_for_status()
    return blosc2.ndarray_from_cframe(resp.content)[()]


# --------------------------------------------------------------------------- the real client


def test_caterva2_client_round_trip(api_url, writer, tmp_path):
    data = np.linspace(0, 1, 30 * 40).reshape(30, 40)
    local = tmp_path / "notes.txt"
    local.write_bytes(b"plain text, stored compressed\n" * 100)
    with cat2.Client(api_url, (writer.name, writer.password)) as client:
        ds = client.upload(data, f"@personal/rt-{RUN}/a.b2nd")
        assert str(ds.path) == f"@personal/rt-{RUN}/a.b2nd"
        info = client.get_info(f"@personal/rt-{RUN}/a.b2nd")
        assert info["shape"] == [30, 40] and info["dtype"] == "float64"
        assert info["schunk"]["urlpath"] == f"@personal/rt-{RUN}/a.b2nd"
        assert np.array_equal(client.fetch(f"@personal/rt-{RUN}/a.b2nd"), data)
        assert np.array_equal(client.fetch(f"@personal/rt-{RUN}/a.b2nd", slice_=(slice(3, 9), 7)), data[3:9, 7])
        got = client.download(f"@personal/rt-{RUN}/a.b2nd", tmp_path / "a.b2nd")
        assert np.array_equal(blosc2.open(str(got))[:], data)
        # A plain file into a directory: the file's own name is appended
        f = client.upload(local, f"@personal/rt-{RUN}")
        assert str(f.path) == f"@personal/rt-{RUN}/notes.txt"
        got = client.download(f"@personal/rt-{RUN}/notes.txt", tmp_path / "back.txt")
        assert got.read_bytes() == local.read_bytes()
        assert client.get_list(f"@personal/rt-{RUN}") == ["a.b2nd", "notes.txt"]
        assert str(client.remove(f"@personal/rt-{RUN}")) == f"@personal/rt-{RUN}"
        with pytest.raises(httpx.HTTPStatusError) as err:
            client.get_info(f"@personal/rt-{RUN}/a.b2nd")
        assert err.value.response.status_code == 404
        assert client.get_list(f"@personal/rt-{RUN}") == []


# --------------------------------------------------------------------------- hostile input


def _snapshot(stack, writer) -> dict:
    publisher = stack.regions[0].services.publisher
    out = {}
    for root in (f"@personal.{writer.sub}", "@public", "@shared", "example"):
        catalog, _ = publisher.read_catalog(root)
        out[root] = catalog.version if catalog else None
    out["roots"] = sorted(json.loads(publisher.store.get(layout.ROOTS_KEY).data)["roots"])
    return out


def test_hostile_input_is_refused_and_writes_nothing(stack, api_url, writer):
    h = writer.headers
    base = f"@personal/hostile-{RUN}"
    assert post_file(api_url, f"{base}/base.b2nd", arr_frame(np.arange(10)), h).status_code == 200
    before = _snapshot(stack, writer)
    good = arr_frame(np.arange(4))
    long_name = "a" * 300 + ".b2nd"
    cases = [
        # path traversal and odd names in upload paths and file names
        ("upload", f"{base}/%2E%2E/%2E%2E/escape.b2nd", "evil.b2nd", 400),
        ("upload", f"{base}/..%2Fescape.b2nd", "x.b2nd", 400),
        ("upload", base, "../../escape.b2nd", 400),
        ("upload", base, "..", 400),
        ("upload", base, "a\\b.b2nd", 400),
        ("upload", f"{base}/{long_name}", "x.b2nd", 400),
        ("upload", f"{base}/" + "d/" * 460 + "x.b2nd", "x.b2nd", 400),
        ("upload", f"{base}/" + "é" * 200 + "/" + "é" * 200 + "/" + "é" * 100 + ".b2nd", "x", 400),
        ("upload", f"@personal.{writer.sub}/direct.b2nd", "x.b2nd", 404),
        ("upload", "example/x.b2nd", "x.b2nd", 403),
        ("upload", f"{base}/base.b2nd/below.b2nd", "x.b2nd", 400),
    ]
    for _, path, name, status in cases:
        resp = post_file(api_url, path, good, h, name=name)
        assert resp.status_code == status, (path, name, resp.text)
        assert resp.json()["detail"]
    # Names httpx would percent-encode, sent raw
    for raw in (b"bad\x01name.b2nd", b"../x.b2nd", b"a/b.b2nd"):
        body = (
            b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="' + raw + b'"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + good + b"\r\n--BOUNDARY--\r\n"
        )
        ctype = {"Content-Type": "multipart/form-data; boundary=BOUNDARY"}
        resp = httpx.post(f"{api_url}/api/upload/{base}", content=body, headers={**h, **ctype})
        assert resp.status_code == 400 and "file name" in resp.json()["detail"], (raw, resp.text)
    # A file that claims to be Blosc2 but is not
    for suffix in (".b2nd", ".b2frame"):
        resp = post_file(api_url, f"{base}/fake{suffix}", b"PK\x03\x04 surely not blosc2" * 10, h)
        assert resp.status_code == 400 and "not a valid Blosc2 frame" in resp.json()["detail"]
    resp = post_file(api_url, f"{base}/schunk.b2nd", blosc2.SChunk(data=b"x" * 100).to_cframe(), h)
    assert resp.status_code == 400 and "NDArray" in resp.json()["detail"]
    # Bodies that are not what the endpoint takes
    resp = httpx.post(f"{api_url}/api/upload/{base}/x.b2nd", content=b"raw", headers=h)
    assert resp.status_code == 400 and "'file'" in resp.json()["detail"]
    # move / copy / remove / append with hostile targets
    moves = [
        ("move", {"src": f"{base}/base.b2nd", "dst": "@personal/../../etc/x.b2nd"}, 400),
        ("move", {"src": f"{base}/base.b2nd", "dst": "/abs/x.b2nd"}, 400),
        # A published root is not a space a move can go into (Caterva2 answers 400)
        ("move", {"src": f"{base}/base.b2nd", "dst": "example/x.b2nd"}, 400),
        ("copy", {"src": f"{base}/base.b2nd", "dst": "nowhere/x.b2nd"}, 400),
        ("move", {"src": f"{base}/../x.b2nd", "dst": f"{base}/y.b2nd"}, 400),
        ("move", {"src": f"{base}/base.b2nd", "dst": f"{base}/" + "x" * 3000}, 400),
        ("move", {"src": f"{base}/base.b2nd", "dst": f"@personal.{writer.sub}/x.b2nd"}, 404),
        ("move", {"src": f"{base}/missing.b2nd", "dst": f"{base}/y.b2nd"}, 404),
        ("move", {"src": "@personal", "dst": f"{base}/y"}, 400),
        ("move", {"src": base, "dst": f"{base}/inside"}, 400),
        ("copy", {"src": f"{base}/base.b2nd", "dst": "@shared/../x.b2nd"}, 400),
        ("copy", {"src": f"{base}/base.b2nd", "dst": "@shared/./x.b2nd"}, 400),
        ("copy", {"src": f"{base}/base.b2nd"}, 400),
        ("copy", {"src": f"{base}/base.b2nd", "dst": f"{base}/base.b2nd/under.b2nd"}, 400),
    ]
    for op, body, status in moves:
        resp = httpx.post(f"{api_url}/api/{op}/", json=body, headers=h)
        assert resp.status_code == status, (op, body, resp.text)
    # (httpx would normalise a literal "/.." away, so it is sent percent-encoded)
    removes = [(f"{base}/%2E%2E", 400), (f"{base}/nothing-here", 404), ("@personal/%00x", 400)]
    removes += [("@shared", 400), ("@public/", 400), ("example", 403)]
    for path, status in removes:
        assert httpx.post(f"{api_url}/api/remove/{path}", headers=h).status_code == status, path
    appends = [
        (f"{base}/base.b2nd", b"junk", 400),
        (f"{base}/base.b2nd", arr_frame(np.ones((2, 2))), 400),
        (f"{base}/base.b2nd", arr_frame(np.ones(3, dtype=np.complex128)), 400),
        (f"{base}/missing.b2nd", arr_frame(np.ones(3)), 404),
    ]
    for path, data, status in appends:
        resp = httpx.post(f"{api_url}/api/append/{path}", files={"file": ("a.b2nd", data)}, headers=h)
        assert resp.status_code == status, (path, resp.text)
    assert _snapshot(stack, writer) == before, "a refused request wrote something"
    assert fetch_array(api_url, f"{base}/base.b2nd", h).tolist() == list(range(10))


# --------------------------------------------------------------------------- atomicity


def test_concurrent_uploads_last_commit_wins_and_nothing_torn(stack, api_url, writer):
    path = f"@shared/race-{RUN}/x.b2nd"
    shape, chunks = (64, 64), (16, 16)  # 16 chunks: a torn read would mix values
    values = [float(v) for v in range(1, 7)]
    frames = {v: arr_frame(np.full(shape, v), chunks) for v in values}
    assert post_file(api_url, path, frames[values[0]], writer.headers).status_code == 200
    stop = threading.Event()
    seen, problems = [], []

    def read_loop(url):
        with httpx.Client(headers=writer.headers) as client:
            while not stop.is_set():
                resp = client.get(f"{url}/api/fetch/{path}")
                if resp.status_code != 200:
                    problems.append(resp.text)
                    continue
                arr = blosc2.ndarray_from_cframe(resp.content)[()]
                distinct = np.unique(arr)
                if arr.shape != shape or len(distinct) != 1 or distinct[0] not in values:
                    problems.append(f"torn read: {distinct[:5]}")
                seen.append(float(distinct[0]))

    def write_loop(v):
        with httpx.Client(headers=writer.headers) as client:
            for _ in range(2):
                resp = client.post(f"{api_url}/api/upload/{path}", files={"file": ("x.b2nd", frames[v])})
                if resp.status_code != 200:
                    problems.append(resp.text)

    readers = [threading.Thread(target=read_loop, args=(rt.url,)) for rt in stack.regions]
    writers = [threading.Thread(target=write_loop, args=(v,)) for v in values]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not problems, problems[:3]
    assert len(seen) > 5
    # What is read afterwards is the last committed head, in every region
    publisher = stack.regions[0].services.publisher
    head, _ = publisher.read_head("@shared", f"race-{RUN}/x.b2nd")
    final = np.unique(fetch_array(api_url, path, writer.headers)).tolist()
    assert len(final) == 1
    committed = publisher.read_manifest(head.manifest).content.content_hash
    assert committed == load_frame(frames[final[0]], "x.b2nd").content.content_hash
    deadline = time.monotonic() + 3
    while np.unique(fetch_array(stack.regions[1].url, path, writer.headers)).tolist() != final:
        assert time.monotonic() < deadline, "region 2 never converged on the last version"
        time.sleep(0.05)


# --------------------------------------------------------------------------- visibility


def test_writes_are_visible_at_once_here_and_within_a_second_elsewhere(stack, api_url, writer):
    path = f"@public/vis-{RUN}/x.b2nd"
    other = stack.regions[1].url
    for step, shape in enumerate([(5,), (7, 3), (2, 2, 2)]):
        resp = post_file(api_url, path, arr_frame(np.full(shape, step)), writer.headers)
        assert resp.status_code == 200
        # The writer's region answers the new version on the very next request...
        assert httpx.get(f"{api_url}/api/info/{path}").json()["shape"] == list(shape)
        # ...and the other region within about a second (its cached head was fresh)
        start = time.monotonic()
        while httpx.get(f"{other}/api/info/{path}").json()["shape"] != list(shape):
            assert time.monotonic() - start < 1.0, f"region 2 still stale after 1 s (step {step})"
            time.sleep(0.02)
    assert httpx.post(f"{api_url}/api/remove/{path}", headers=writer.headers).status_code == 200
    assert httpx.get(f"{api_url}/api/info/{path}").status_code == 404
    start = time.monotonic()
    while httpx.get(f"{other}/api/info/{path}").status_code != 404:
        assert time.monotonic() - start < 1.0
        time.sleep(0.02)


# --------------------------------------------------------------------------- large uploads


def test_large_upload_through_presigned_put(stack, api_url, writer):
    limit = stack.regions[0].services.settings.payload_limit
    blob = np.random.default_rng(0).integers(0, 256, limit + 500_000, dtype=np.uint8).tobytes()
    path = f"@personal/big-{RUN}/blob.bin"
    resp = post_file(api_url, path, blob, writer.headers)
    assert resp.status_code == 413 and f"/api/upload-url/{path}" in resp.json()["detail"]
    size = {"size": len(blob)}
    assert httpx.post(f"{api_url}/api/upload-url/{path}", params=size).status_code == 401
    resp = httpx.post(f"{api_url}/api/upload-url/example/x.bin", params=size, headers=writer.headers)
    assert resp.status_code == 403
    plan = httpx.post(f"{api_url}/api/upload-url/{path}", params=size, headers=writer.headers).json()
    assert plan["method"] == "PUT" and plan["max_bytes"] >= len(blob) and plan["path"] == path
    assert plan["size"] == len(blob) and "content-length" in plan["url"]  # the length is signed
    assert httpx.put(plan["url"], content=blob).status_code == 200
    # Another user cannot commit it, and a made-up key is refused
    intruder = _new_writer(stack, "intruder")
    resp = httpx.post(f"{api_url}{plan['commit']}", headers=intruder.headers)
    assert resp.status_code == 403
    resp = httpx.post(f"{api_url}/api/upload-commit/{path}", params={"staged": "../x"}, headers=writer.headers)
    assert resp.status_code == 403
    resp = httpx.post(f"{api_url}{plan['commit']}", headers=writer.headers)
    assert resp.status_code == 200 and resp.json() == path
    info = httpx.get(f"{api_url}/api/info/{path}", headers=writer.headers).json()
    assert info["nbytes"] == len(blob)
    # A plain file is downloaded (or read chunk-wise), not fetched: Caterva2's rule
    part = httpx.get(f"{api_url}/api/fetch/{path}", params={"slice_": "1000:3000"}, headers=writer.headers)
    assert part.status_code == 400 and f"/api/download/{path}" in part.json()["detail"]
    whole = httpx.get(f"{api_url}/api/download/{path}", headers=writer.headers, timeout=60)
    assert whole.content == blob
    # The staged object is gone (a second commit finds nothing), and ingest never published it
    assert httpx.post(f"{api_url}{plan['commit']}", headers=writer.headers).status_code == 404
    time.sleep(0.3)  # the dispatcher delivers the ingest bucket's events within ~0.1 s
    assert not [r for r in httpx.get(f"{api_url}/api/roots").json() if "staging" in r]
    # An array through the same flow
    big = np.arange(limit // 8 + 1000, dtype=np.float64)
    frame = blosc2.asarray(big, cparams=blosc2.CParams(clevel=0)).to_cframe()
    plan = httpx.post(
        f"{api_url}/api/upload-url/@personal/big-{RUN}/arr.b2nd", params={"size": len(frame)}, headers=writer.headers
    ).json()
    assert len(frame) > limit and httpx.put(plan["url"], content=frame).status_code == 200
    assert httpx.post(f"{api_url}{plan['commit']}", headers=writer.headers).status_code == 200
    got = fetch_array(api_url, f"@personal/big-{RUN}/arr.b2nd?slice_=5000:6000", writer.headers)
    assert np.array_equal(got, big[5000:6000])


# --------------------------------------------------------------------------- append, copy, move


def _manifest(stack, writer, rel: str):
    publisher = stack.regions[0].services.publisher
    head, _ = publisher.read_head(f"@personal.{writer.sub}", rel)
    return publisher.read_manifest(head.manifest)


@pytest.mark.parametrize(("rows", "extra"), [(8, 5), (10, 3), (3, 1)])
def test_append_reuses_untouched_chunks(stack, api_url, writer, rows, extra):
    rel = f"app-{RUN}/a{rows}.b2nd"
    base = np.arange(rows * 6, dtype=np.int32).reshape(rows, 6)
    more = -np.arange(extra * 6, dtype=np.int32).reshape(extra, 6)
    assert post_file(api_url, f"@personal/{rel}", arr_frame(base, (4, 3)), writer.headers).status_code == 200
    before = _manifest(stack, writer, rel)
    with cat2.Client(api_url, (writer.name, writer.password)) as client:
        assert client.append(f"@personal/{rel}", more).shape == (rows + extra, 6)
    after = _manifest(stack, writer, rel)
    full_rows = rows // 4
    kept = full_rows * 2  # two chunks per row of chunks (6 columns / 3)
    assert [r.identity for r in after.refs[:kept]] == [r.identity for r in before.refs[:kept]]
    assert np.array_equal(fetch_array(api_url, f"@personal/{rel}", writer.headers), np.concatenate([base, more]))
    info = httpx.get(f"{api_url}/api/info/@personal/{rel}", headers=writer.headers).json()
    fresh = blosc2.asarray(np.concatenate([base, more]), chunks=(4, 3), blocks=tuple(info["blocks"]))
    assert info["schunk"]["nchunks"] == fresh.schunk.nchunks and info["schunk"]["nbytes"] == fresh.schunk.nbytes


def test_copy_shares_chunks_and_move_renames(stack, api_url, writer):
    store = stack.regions[0].services.publisher.store
    chunk_objects = len(list(store.list("c/")))
    h = writer.headers
    resp = httpx.post(f"{api_url}/api/copy/", json={"src": "example/dir1", "dst": f"@personal/cp-{RUN}"}, headers=h)
    assert resp.json() == f"@personal/cp-{RUN}/dir1"
    assert httpx.get(f"{api_url}/api/list/@personal/cp-{RUN}", headers=h).json() == [
        "dir1/ds-2d.b2nd",
        "dir1/ds-3d.b2nd",
    ]
    src = stack.regions[0].services.region.dataset("example", "dir1/ds-2d.b2nd")
    copied = _manifest(stack, writer, f"cp-{RUN}/dir1/ds-2d.b2nd")
    assert [r.identity for r in copied.refs] == [r.identity for r in src.refs]
    assert len(list(store.list("c/"))) == chunk_objects, "a copy must not store chunk bytes"
    body = {"src": f"@personal/cp-{RUN}/dir1/ds-2d.b2nd", "dst": f"@shared/mv-{RUN}/renamed.b2nd"}
    assert httpx.post(f"{api_url}/api/move/", json=body, headers=h).json() == body["dst"]
    assert httpx.get(f"{api_url}/api/info/{body['src']}", headers=h).status_code == 404
    truth = fetch_array(api_url, "example/dir1/ds-2d.b2nd", {})
    assert np.array_equal(fetch_array(api_url, body["dst"], h), truth)
    # Onto itself: nothing happens, nothing is lost
    same = {"src": body["dst"], "dst": body["dst"]}
    assert httpx.post(f"{api_url}/api/move/", json=same, headers=h).status_code == 200
    assert np.array_equal(fetch_array(api_url, body["dst"], h), truth)


# --------------------------------------------------------------------------- limits


def test_quota_and_upload_limit_answer_413(stack):
    """The same stack's services with small limits, served in-process."""
    writer = _new_writer(stack, "quota")
    base = stack.regions[0].services
    settings = base.settings.model_copy(update={"user_quota_bytes": 60_000, "max_upload_bytes": 200_000})
    services = Services(settings, base.region, base.publisher, base.events, auth=base.auth, staging=base.staging)
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 2**62, 5_000, dtype=np.int64)  # ~40 kB that does not compress
    with TestClient(create_app(services)) as client:
        client.headers.update(writer.headers)
        quota_path = f"@personal/quota-{RUN}"

        def put(name, arr):
            return client.post(f"/api/upload/{quota_path}/{name}", files={"file": (name, arr_frame(arr))})

        assert put("a.b2nd", noise).status_code == 200
        # Replacing the same dataset is fine; a second one goes over the quota
        assert put("a.b2nd", noise + 1).status_code == 200
        resp = put("b.b2nd", noise)
        assert resp.status_code == 413 and "quota" in resp.json()["detail"]
        resp = client.post("/api/copy/", json={"src": f"{quota_path}/a.b2nd", "dst": f"{quota_path}/c.b2nd"})
        assert resp.status_code == 413
        # @shared has no per-user quota, but the upload limit holds everywhere
        big = rng.integers(0, 2**62, 30_000, dtype=np.int64)
        resp = client.post(f"/api/upload/@shared/lim-{RUN}/x.b2nd", files={"file": ("x", arr_frame(big))})
        assert resp.status_code == 413 and "limit" in resp.json()["detail"]
        limits = client.get("/api/limits").json()
        assert limits["user_quota_bytes"] == 60_000 and 0 < limits["personal_bytes"] <= 60_000
    assert httpx.get(f"{stack.api_url}/api/list/@shared/lim-{RUN}", headers=writer.headers).json() == []
