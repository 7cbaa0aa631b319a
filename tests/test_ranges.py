"""Byte-identical downloads and byte ranges of stored frames, over real HTTP (docs/wire.md, "Byte ranges").

The data goes in through every door a frame has: ``/api/upload`` (Caterva2's client),
``cat-publish`` of a directory, and the publisher directly for a frame past the buffered
answer limit; it comes back through ``/api/download``, ``/api/fetch`` and ranges of it,
and through blosc2's own ``C2Array``/``Proxy``, which read the frame by ranges.
"""

from __future__ import annotations

import dataclasses
import uuid

import blosc2
import caterva2 as cat2
import httpx
import numpy as np
import pytest

from functions import admin
from functions.engine import frames
from functions.engine.content import load_frame, load_object
from infra.publish import main as cat_publish

RUN = uuid.uuid4().hex[:8]
ROOT = f"ranges-{RUN}"


@dataclasses.dataclass
class User:
    name: str
    password: str
    headers: dict


@pytest.fixture(scope="module")
def user(stack) -> User:
    name, password = f"ranger-{RUN}", admin.generate_password()
    argv = ["--pool-id", stack.resources["user_pool_id"], "--endpoint-url", stack.endpoint_url]
    assert admin.main([*argv, "users", "add", name, "--password", password]) == 0
    resp = httpx.post(f"{stack.api_url}/auth/jwt/login", data={"username": name, "password": password})
    return User(name, password, {"Cookie": f"c2subauth={resp.cookies['c2subauth']}"})


def _frame(seed: int = 0, n: int = 20_000) -> bytes:
    """A frame as a client writes it: several chunks, vlmeta, the writer's nthreads in the header."""
    a = blosc2.asarray(np.arange(n, dtype=np.int64) * (seed + 1), chunks=(2_000,), blocks=(500,))
    a.vlmeta["note"] = f"seed {seed}"
    return a.to_cframe()


def _upload(stack, user: User, path: str, data: bytes) -> None:
    files = {"file": (path.rsplit("/", 1)[-1], data)}
    resp = httpx.post(f"{stack.api_url}/api/upload/{path}", files=files, headers=user.headers)
    assert resp.status_code == 200, resp.text


def _get(url: str, user: User | None = None, **headers) -> httpx.Response:
    return httpx.get(url, headers={**(user.headers if user else {}), **headers})


@pytest.fixture(scope="module")
def uploaded(stack, user) -> tuple[str, bytes]:
    data = _frame(1)
    path = f"@personal/r-{RUN}/up.b2nd"
    _upload(stack, user, path, data)
    return path, data


@pytest.fixture(scope="module")
def published(stack, tmp_path_factory) -> dict[str, bytes]:
    """Files published with cat-publish (a directory), as their bytes on disk."""
    src = tmp_path_factory.mktemp("pub")
    (src / "sub").mkdir()
    # 3.2 MB of doubles in chunks of 10 blocks: big enough for blosc2's Proxy to read blocks by ranges
    array = np.linspace(0, 1, 400_000).reshape(400, 1000)
    blosc2.asarray(array, chunks=(100, 1000), blocks=(10, 1000), urlpath=str(src / "sub/a.b2nd"))
    schunk = blosc2.SChunk(chunksize=4_000, data=b"hello frame " * 4_000, urlpath=str(src / "b.b2frame"))
    schunk.vlmeta["who"] = "me"
    argv = [str(src), "--root", ROOT, "--bucket", stack.resources["plan"].origin_bucket]
    env = httpx.URL(stack.endpoint_url)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AWS_ENDPOINT_URL", str(env))
        assert cat_publish([*argv, "--topic-arn", stack.resources["topic_arn"]]) == 0
    return {"sub/a.b2nd": (src / "sub/a.b2nd").read_bytes(), "b.b2frame": (src / "b.b2frame").read_bytes()}


# ---------------------------------------------------------------------- exact bytes


def test_a_download_is_the_uploaded_file(stack, user, uploaded):
    path, data = uploaded
    resp = _get(f"{stack.api_url}/api/download/{path}", user)
    assert resp.status_code == 200
    assert resp.content == data  # the header's nthreads and the frame's length included
    assert resp.headers["accept-ranges"] == "none"
    whole = _get(f"{stack.api_url}/api/fetch/{path}", user)
    assert whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"


def test_caterva2_client_downloads_the_uploaded_file(stack, user, uploaded, tmp_path):
    path, data = uploaded
    with cat2.Client(stack.api_url, (user.name, user.password)) as client:
        local = client.download(path, tmp_path / "got.b2nd")
    assert local.read_bytes() == data


def test_a_download_is_the_published_file(stack, published):
    for name, data in published.items():
        for region in stack.regions:  # a region reads the origin through its own cache bucket
            resp = httpx.get(f"{region.url}/api/download/{ROOT}/{name}")
            assert resp.status_code == 200
            assert resp.content == data, name


def test_republishing_the_same_file_changes_nothing(stack, published):
    pub = stack.regions[0].services.publisher
    result = pub.publish(ROOT, "b.b2frame", load_frame(published["b.b2frame"], "b.b2frame"))
    assert result.status == "unchanged"


# ---------------------------------------------------------------------- ranges


def test_a_range_is_206_with_content_range(stack, user, uploaded):
    path, data = uploaded
    url = f"{stack.api_url}/api/fetch/{path}"
    resp = _get(url, user, Range="bytes=0-31")
    assert resp.status_code == 206
    assert resp.headers["content-range"] == f"bytes 0-31/{len(data)}"
    assert resp.headers["accept-ranges"] == "bytes"
    assert resp.content == data[:32] and resp.content[2:10] == b"b2frame\x00"
    for spec, want in [
        ("bytes=100-163", data[100:164]),
        (f"bytes={len(data) - 10}-", data[-10:]),
        ("bytes=-7", data[-7:]),
        (f"bytes=5-{len(data) + 100}", data[5:]),  # past the end: cut to it
    ]:
        resp = _get(url, user, Range=spec)
        assert resp.status_code == 206 and resp.content == want, spec


def test_every_range_reads_the_frame(stack, published):
    data = published["sub/a.b2nd"]
    url = f"{stack.api_url}/api/fetch/{ROOT}/sub/a.b2nd"
    step = max(1, len(data) // 37)
    for start in range(0, len(data), step):  # across piece boundaries: header, chunks, offsets, trailer
        stop = min(len(data), start + step + 3)
        resp = httpx.get(url, headers={"Range": f"bytes={start}-{stop - 1}"})
        assert resp.content == data[start:stop], start


def _parts(resp: httpx.Response) -> list[tuple[str, bytes]]:
    boundary = resp.headers["content-type"].split("boundary=")[1].encode()
    out = []
    for part in resp.content.split(b"--" + boundary)[1:-1]:
        head, _, body = part.partition(b"\r\n\r\n")
        assert body.endswith(b"\r\n")
        ranges = [h for h in head.split(b"\r\n") if h.lower().startswith(b"content-range:")]
        out.append((ranges[0].split(b":", 1)[1].strip().decode(), body[:-2]))
    assert resp.content.endswith(b"--" + boundary + b"--\r\n")
    return out


def test_several_ranges_come_back_multipart(stack, user, uploaded):
    path, data = uploaded
    resp = _get(f"{stack.api_url}/api/fetch/{path}", user, Range="bytes=0-9, 2000-2099, -5")
    assert resp.status_code == 206
    assert resp.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(resp.headers["content-length"]) == len(resp.content)
    n = len(data)
    assert _parts(resp) == [
        (f"bytes 0-9/{n}", data[:10]),
        (f"bytes 2000-2099/{n}", data[2000:2100]),
        (f"bytes {n - 5}-{n - 1}/{n}", data[-5:]),
    ]


@pytest.mark.parametrize("spec", ["bytes=999999999-", "bytes=9-3", "items=0-3", "bytes=x-y", "bytes=" + "0-1," * 300])
def test_a_range_that_cannot_be_served_is_416(stack, user, uploaded, spec):
    path, data = uploaded
    resp = _get(f"{stack.api_url}/api/fetch/{path}", user, Range=spec)
    assert resp.status_code == 416
    assert resp.headers["content-range"] == f"bytes */{len(data)}"
    assert "detail" in resp.json()


def test_what_is_made_per_request_refuses_ranges(stack, user, uploaded):
    path, _ = uploaded
    url = f"{stack.api_url}/api/fetch/{path}"
    sliced = _get(url + "?slice_=0:10", user, Range="bytes=0-31")
    assert sliced.status_code == 416 and sliced.headers["accept-ranges"] == "none"
    assert "per request" in sliced.json()["detail"]
    plain = _get(url + "?slice_=0:10", user)
    assert plain.status_code == 200 and plain.headers["accept-ranges"] == "none"
    dl = _get(f"{stack.api_url}/api/download/{path}", user, Range="bytes=0-31")
    assert dl.status_code == 416 and dl.headers["accept-ranges"] == "none"


def test_a_lazy_expression_refuses_ranges(stack, user, uploaded):
    path, data = uploaded
    body = {"name": f"plus-{RUN}", "expression": "a + 1", "operands": {"a": path}}
    resp = httpx.post(f"{stack.api_url}/api/lazyexpr/", json=body, headers=user.headers)
    assert resp.status_code == 200, resp.text
    expr = resp.json()
    url = f"{stack.api_url}/api/fetch/{expr}"
    assert _get(url, user, Range="bytes=0-31").status_code == 416
    whole = _get(url, user)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "none"
    want = blosc2.ndarray_from_cframe(data)[:] + 1
    np.testing.assert_array_equal(blosc2.ndarray_from_cframe(whole.content)[:], want)
    info = _get(f"{stack.api_url}/api/info/{expr}", user)
    # no strong validator: at most a weak one naming the version (ranges need a strong one)
    assert info.json()["accept_ranges"] == "none" and info.headers.get("etag", "W/").startswith("W/")


# ---------------------------------------------------------------------- validators and info


def test_the_etag_is_stable_and_changes_with_a_new_version(stack, user):
    path = f"@personal/r-{RUN}/versions.b2nd"
    _upload(stack, user, path, _frame(2))
    url = f"{stack.api_url}/api/fetch/{path}"
    first = _get(url, user, Range="bytes=0-9").headers["etag"]
    assert first.startswith('"') and first == _get(url, user).headers["etag"]
    assert _get(f"{stack.api_url}/api/info/{path}", user).headers["etag"] == first
    newer = _frame(3)
    _upload(stack, user, path, newer)
    second = _get(url, user, Range="bytes=0-9").headers["etag"]
    assert second != first
    # If-Range with the old validator: the whole new frame, not a range of it
    resp = _get(url, user, Range="bytes=0-9", **{"If-Range": first})
    assert resp.status_code == 200 and resp.content == newer
    assert _get(url, user, Range="bytes=0-9", **{"If-Range": second}).status_code == 206


def test_the_etag_is_the_same_in_every_region(stack, published):
    tags = {httpx.get(f"{r.url}/api/fetch/{ROOT}/b.b2frame", headers={"Range": "bytes=0-0"}).headers["etag"]
            for r in stack.regions}
    assert len(tags) == 1


def test_info_says_what_serves_ranges(stack, user, uploaded, tmp_path):
    path, _ = uploaded
    info = _get(f"{stack.api_url}/api/info/{path}", user)
    assert info.json()["accept_ranges"] == "bytes"
    assert "accept-ranges" not in info.headers  # a field of the dataset, not a claim about api/info
    assert httpx.get(f"{stack.api_url}/api/info/{ROOT}/b.b2frame").json()["accept_ranges"] == "bytes"
    # A plain file is stored converted: it serves no ranges, and says so
    _upload(stack, user, f"@personal/r-{RUN}/notes.txt", b"plain text\n" * 100)
    notes = _get(f"{stack.api_url}/api/info/@personal/r-{RUN}/notes.txt", user)
    assert notes.json()["accept_ranges"] == "none" and notes.headers.get("etag", "W/").startswith("W/")


def test_content_without_a_kept_frame_is_rebuilt_and_refuses_ranges(stack):
    """Manifests written before frames were kept (and arrays made on the server) read as before."""
    arr = np.arange(1000, dtype=np.int32)
    stack.regions[0].services.publisher.publish(ROOT, "made.b2nd", load_object(blosc2.asarray(arr)))
    url = f"{stack.api_url}/api/fetch/{ROOT}/made.b2nd"
    assert httpx.get(f"{stack.api_url}/api/info/{ROOT}/made.b2nd").json()["accept_ranges"] == "none"
    resp = httpx.get(url, headers={"Range": "bytes=0-31"})
    assert resp.status_code == 416 and resp.headers["accept-ranges"] == "none"
    whole = httpx.get(url)
    assert whole.headers["accept-ranges"] == "none"
    np.testing.assert_array_equal(blosc2.ndarray_from_cframe(whole.content)[:], arr)
    dl = httpx.get(f"{stack.api_url}/api/download/{ROOT}/made.b2nd")
    np.testing.assert_array_equal(blosc2.ndarray_from_cframe(dl.content)[:], arr)


# ---------------------------------------------------------------------- frames the manifest does not hold as they are


def test_a_chunk_stored_once_for_equal_data_still_downloads_exactly(stack):
    """Equal data in two chunks, compressed differently: stored once for reads, kept for the file."""
    data = np.arange(4000, dtype=np.int64) % 2000
    a = blosc2.asarray(data, chunks=(2000,), blocks=(500,))
    other = blosc2.compress2(data[2000:].tobytes(), typesize=8, clevel=9, codec=blosc2.Codec.ZSTD, blocksize=4000)
    a.schunk.update_chunk(1, other)
    frame = a.to_cframe()
    loaded = load_frame(frame, "dup.b2nd")
    assert loaded.content.refs[0] == loaded.content.refs[1]  # one object for both chunks
    assert len(loaded.blobs) == 1  # ... and the frame's own bytes for the second
    stack.regions[0].services.publisher.publish(ROOT, "dup.b2nd", loaded)
    for region in stack.regions:
        assert httpx.get(f"{region.url}/api/download/{ROOT}/dup.b2nd").content == frame
    np.testing.assert_array_equal(
        blosc2.ndarray_from_cframe(httpx.get(f"{stack.api_url}/api/fetch/{ROOT}/dup.b2nd?slice_=1990:2010").content)[:],
        data[1990:2010],
    )


def test_a_frame_that_cannot_be_split_is_not_kept():
    assert frames.split_frame(b"\x00" * 200, [], []) is None
    frame = bytearray(_frame())
    frame[16:24] = (len(frame) + 1).to_bytes(8, "big")  # a frame length that is not its own
    assert frames.split_frame(bytes(frame), [None] * 10, [None] * 10) is None


# ---------------------------------------------------------------------- big frames: streamed, bounded


def test_a_big_frame_downloads_exactly_and_ranges_past_the_buffered_limit(stack, tmp_path):
    rng = np.random.default_rng(3)
    a = blosc2.asarray(rng.integers(0, 2**62, 900_000), chunks=(100_000,), urlpath=str(tmp_path / "big.b2nd"))
    del a
    data = (tmp_path / "big.b2nd").read_bytes()
    assert len(data) > stack.regions[0].services.read.limits.buffered  # 7 MB: over Lambda's 4.5 MB
    stack.regions[0].services.publisher.publish_file(ROOT, "big.b2nd", tmp_path / "big.b2nd")
    url = f"{stack.api_url}/api/download/{ROOT}/big.b2nd"
    with httpx.stream("GET", url) as resp:
        assert resp.headers["content-length"] == str(len(data))
        assert "transfer-encoding" not in resp.headers
        got = resp.read()
    assert got == data
    part = httpx.get(f"{stack.api_url}/api/fetch/{ROOT}/big.b2nd", headers={"Range": "bytes=1000-5999999"})
    assert part.status_code == 206 and part.content == data[1000:6_000_000]


# ---------------------------------------------------------------------- blosc2's clients


def test_c2array_reads_the_fill_from_the_frame_offsets(stack, user):
    chunks = (1000,)
    a = blosc2.uninit((5000,), dtype=np.int32, chunks=chunks, blocks=(250,))
    for n in (1, 3):
        a[n * 1000 : (n + 1) * 1000] = n
    path = f"@personal/r-{RUN}/filled.b2nd"
    _upload(stack, user, path, a.to_cframe())
    remote = blosc2.C2Array(path, urlbase=stack.api_url, auth_token=user.headers["Cookie"])
    assert list(remote.written_chunks()) == [False, True, False, True, False]


def test_a_proxy_reads_blocks_by_ranges(stack, published, tmp_path):
    remote = blosc2.C2Array(f"{ROOT}/sub/a.b2nd", urlbase=stack.api_url)
    assert remote.block_source() is not None  # api/info said "bytes" and the frame opened by ranges
    want = np.linspace(0, 1, 400_000).reshape(400, 1000)
    proxy = blosc2.Proxy(remote, urlpath=str(tmp_path / "cache.b2nd"))
    before = remote.traffic.nbytes
    np.testing.assert_array_equal(proxy[12:15, 7:9], want[12:15, 7:9])
    assert remote.traffic.nbytes - before < len(published["sub/a.b2nd"]) // 2  # blocks, not the frame
    np.testing.assert_array_equal(proxy[:], want)


def test_an_unfolded_hdf5_dataset_does_not_claim_ranges(stack, user, tmp_path):
    """Arrays the server made (here from an HDF5 file) have no uploaded frame: "none", and 416."""
    import h5py

    local = tmp_path / "run.h5"
    with h5py.File(local, "w") as f:
        f["a"] = np.arange(100, dtype=np.int32)
        f.create_group("g")["b"] = np.ones((10, 10))
    _upload(stack, user, f"@personal/r-{RUN}/run.h5", local.read_bytes())
    resp = httpx.post(f"{stack.api_url}/api/unfold/@personal/r-{RUN}/run.h5", headers=user.headers, timeout=120)
    assert resp.status_code == 200, resp.text
    for name in ("a.b2nd", "g/b.b2nd"):
        path = f"@personal/r-{RUN}/run/{name}"
        assert _get(f"{stack.api_url}/api/info/{path}", user).json()["accept_ranges"] == "none"
        ranged = _get(f"{stack.api_url}/api/fetch/{path}", user, Range="bytes=0-31")
        assert ranged.status_code == 416 and ranged.headers["accept-ranges"] == "none"
