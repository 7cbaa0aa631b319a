"""The real clients from PyPI (caterva2.Client, blosc2.C2Array, blosc2.Proxy) against the local stack.

Everything goes over real HTTP: uvicorn serving our API, moto's threaded server
standing in for S3/SNS/SQS.  Ground truth is numpy (infra.example_data.expected).
"""

from __future__ import annotations

import pathlib

import blosc2
import caterva2 as cat2
import httpx
import numpy as np
import pytest

from infra.example_data import expected

TRUTH = expected()
ARRAYS = [p for p in TRUTH if p.endswith(".b2nd")]


@pytest.fixture(scope="module")
def client(api_url):
    with cat2.Client(api_url) as c:
        yield c


def test_roots_and_list(client):
    roots = client.get_roots()
    assert roots["example"]["name"] == "example"
    assert client.get_list("example") == sorted(TRUTH)
    assert client.get_list("example/dir1") == ["ds-2d.b2nd", "ds-3d.b2nd"]
    assert client.get_list("example/dir1/ds-2d.b2nd") == ["ds-2d.b2nd"]


def test_trailing_slash_urlbase_is_accepted(api_url):
    with cat2.Client(api_url + "/") as c:
        assert "example" in c.get_roots()


@pytest.mark.parametrize("path", ARRAYS)
def test_info_of_arrays(client, path):
    info = client.get_info(f"example/{path}")
    truth = TRUTH[path]
    assert tuple(info["shape"]) == truth.shape
    assert info["dtype"] == (repr(truth.dtype.descr) if truth.dtype.fields else str(truth.dtype))
    assert set(info["schunk"]["cparams"]) <= set(blosc2.CParams.__dataclass_fields__)
    assert info["mtime"].endswith("Z")


def test_info_vlmeta_and_groups(client):
    info = client.get_info("example/ds-sc-attr.b2nd")
    assert info["schunk"]["vlmeta"] == {"a": 1, "b": "foo", "c": 123.456}
    assert info["shape"] == [] and info["chunks"] == []
    group = client.get_info("example/dir1")
    assert group["kind"] == "group" and group["nfiles"] == 2


@pytest.mark.parametrize("path", ARRAYS)
def test_fetch_whole_arrays(client, path):
    got = client.fetch(f"example/{path}")
    assert np.array_equal(got, TRUTH[path])


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("dir1/ds-2d.b2nd", (slice(2, 4), slice(3, 6))),
        ("dir1/ds-2d.b2nd", (slice(None), 7)),
        ("dir1/ds-3d.b2nd", (1, slice(0, 3), slice(2, 5))),
        ("dir2/ds-4d.b2nd", (1, 2, 3)),
        ("dir2/ds-4d.b2nd", (slice(0, 2), slice(1, 3), slice(None), slice(3, 5))),
        ("ds-1d.b2nd", (slice(95, 205),)),
        ("ds-1d.b2nd", 5),
        ("ds-1d-b.b2nd", (slice(10, 20),)),
    ],
)
def test_fetch_slices(client, path, key):
    got = client.fetch(f"example/{path}", slice_=key)
    assert np.array_equal(got, TRUTH[path][key])


def test_get_and_numpy_style_slicing(client):
    ds = client.get("example/dir2/ds-4d.b2nd")
    assert ds.shape == (2, 3, 4, 5)
    assert np.array_equal(ds[1, 2, 3], TRUTH["dir2/ds-4d.b2nd"][1, 2, 3])
    sl = ds.slice((slice(0, 1), slice(0, 2)))
    assert isinstance(sl, blosc2.NDArray)
    assert np.array_equal(sl[:], TRUTH["dir2/ds-4d.b2nd"][0:1, 0:2])


def test_files_and_frames(client):
    hello = client.get("example/ds-hello.b2frame")
    assert hello[0:12] == b"Hello world!"
    readme = client.get("example/README.md")
    # /api/fetch serves datasets, as Caterva2's server does: a plain file is downloaded
    with pytest.raises(httpx.HTTPStatusError):
        readme[:]
    assert httpx.get(f"{client.urlbase}/api/download/example/README.md").content == TRUTH["README.md"]


def test_structured_field_and_filter(client):
    truth = TRUTH["ds-1d-fields.b2nd"]
    a = client.get_slice("example/ds-1d-fields.b2nd", field="a", as_blosc2=False)
    assert np.array_equal(a, truth["a"])
    rows = client.get_slice("example/ds-1d-fields.b2nd", key="(a > 990) & d", as_blosc2=False)
    want = truth[(truth["a"] > 990) & truth["d"]]
    assert np.array_equal(rows, want)


def test_indices_gather(client):
    truth = TRUTH["dir1/ds-2d.b2nd"]
    got = client.fetch("example/dir1/ds-2d.b2nd", slice_=([1, 7, 3], slice(2, 9)))
    assert np.array_equal(got, truth[[1, 7, 3], 2:9])


def test_download_round_trips(client, tmp_path):
    for path in ["dir1/ds-2d.b2nd", "ds-hello.b2frame", "README.md", "ds-sc-attr.b2nd"]:
        local = client.download(pathlib.PurePosixPath(f"example/{path}"), tmp_path / pathlib.Path(path).name)
        if path == "README.md":
            assert local.read_bytes() == TRUTH[path]
        elif path.endswith(".b2frame"):
            assert blosc2.open(str(local))[:] == TRUTH[path]
        else:
            obj = blosc2.open(str(local))
            assert np.array_equal(obj[()], TRUTH[path])
    scalar = blosc2.open(str(tmp_path / "ds-sc-attr.b2nd"))  # kept alive: vlmeta refers to it
    assert scalar.schunk.vlmeta["a"] == 1 and scalar.schunk.vlmeta["b"] == "foo"


def test_plain_download_without_blosc2_encoding(api_url):
    r = httpx.get(f"{api_url}/api/download/example/README.md")
    assert r.status_code == 200 and r.content == TRUTH["README.md"]
    assert "attachment" in r.headers["content-disposition"]


def test_get_chunk_matches_stored_chunk(client):
    original = blosc2.open("root-example/dir1/ds-3d.b2nd")
    for n in range(original.schunk.nchunks):
        assert client.get_chunk("example/dir1/ds-3d.b2nd", n) == original.schunk.get_chunk(n)


@pytest.mark.parametrize("path", ["dir1/ds-2d.b2nd", "dir1/ds-3d.b2nd", "dir2/ds-4d.b2nd", "ds-1d.b2nd"])
def test_c2array(api_url, path):
    arr = blosc2.C2Array(f"example/{path}", urlbase=api_url)
    truth = TRUTH[path]
    assert arr.shape == truth.shape and arr.dtype == truth.dtype
    assert np.array_equal(arr[:], truth)
    key = tuple(slice(0, max(1, n // 2)) for n in truth.shape)
    assert np.array_equal(arr[key], truth[key])
    assert np.array_equal(arr.slice(key)[:], truth[key])
    assert arr.get_chunk(0) == blosc2.open(f"root-example/{path}").schunk.get_chunk(0)


def test_c2array_missing_is_file_not_found(api_url):
    with pytest.raises(FileNotFoundError):
        blosc2.C2Array("example/nope.b2nd", urlbase=api_url)


def test_proxy_fills_cache_chunk_by_chunk(api_url, tmp_path):
    """The python-blosc2 proxy tutorial (seed 004): a local cache that fills on demand."""
    source = blosc2.C2Array("example/dir2/ds-4d.b2nd", urlbase=api_url)
    proxy = blosc2.Proxy(source, urlpath=str(tmp_path / "proxy.b2nd"), mode="w")
    truth = TRUTH["dir2/ds-4d.b2nd"]
    opened = source.traffic.requests
    assert np.array_equal(proxy.fetch((slice(0, 1), slice(0, 2)))[0:1, 0:2], truth[0:1, 0:2])
    first = source.traffic.requests - opened
    assert 1 <= first < 16  # only the chunks that slice touches (16 chunks in all)
    assert np.array_equal(proxy.fetch()[:], truth)
    filled = source.traffic.requests
    assert filled - opened <= 16  # every chunk fetched once, never twice
    assert np.array_equal(proxy.fetch()[:], truth)
    assert source.traffic.requests == filled  # a full cache asks for nothing more


def test_seed_proxy_tutorial_runs_unchanged(api_url, tmp_path, monkeypatch):
    """The tutorial's own code, with only the server URL pointed at our stack."""
    monkeypatch.chdir(tmp_path)
    urlbase = api_url
    root = "example"
    dirname = f"{root}/dir2/"
    filename = "ds-4d.b2nd"
    remote_array = blosc2.C2Array(dirname + filename, urlbase=urlbase)
    proxy = blosc2.Proxy(remote_array, urlpath="local_proxy.b2nd", mode="w")
    slice_data = proxy[0:2, 0:2, 0:2, 0:2]
    assert np.array_equal(slice_data, TRUTH["dir2/ds-4d.b2nd"][0:2, 0:2, 0:2, 0:2])
    fetched = proxy.fetch((slice(0, 1), slice(0, 3)))
    assert np.array_equal(fetched[0:1, 0:3], TRUTH["dir2/ds-4d.b2nd"][0:1, 0:3])


@pytest.mark.parametrize("text", ["5::250", "1199:3:-333", "150:260:7", "::-1", "7:8:100"])
def test_file_slices_with_any_step(api_url, text):
    """Steps longer than a chunk skip chunks; the server reads only those it lands in."""
    r = httpx.get(f"{api_url}/api/fetch/example/ds-hello.b2frame", params={"slice_": text})
    assert r.status_code == 200
    start, stop, step = (int(p) if p else None for p in text.split(":"))
    assert blosc2.schunk_from_cframe(r.content)[:] == TRUTH["ds-hello.b2frame"][start:stop:step]


def test_seed_client_tutorial_runs_with_its_own_paths(stack, tmp_path, monkeypatch):
    """Caterva2's client tutorial (seed 000), its @public/examples paths unchanged."""
    monkeypatch.chdir(tmp_path)
    url = stack.api_url
    assert "@public" in cat2.Client(url).get_roots()
    client = cat2.Client(url, (stack.resources["demo_user"], stack.resources["demo_password"]))
    assert {"@public", "@personal", "@shared"} <= set(client.get_roots())
    assert "examples/tomo-guess-test.b2nd" in client.get_list("@public")
    metadata = client.get_info("@public/examples/tomo-guess-test.b2nd")
    assert (metadata["shape"], metadata["chunks"], metadata["blocks"]) == ([10, 100, 100], [10, 100, 100], [2, 100, 100])
    assert client.get("@public/examples/tomo-guess-test.b2nd")[5, 10:12, 3].tolist() == [51003, 51103]
    client.download(pathlib.PurePosixPath("@public/examples/tomo-guess-test.b2nd"), "mylocalfile.b2nd")
    assert client.upload("mylocalfile.b2nd", "@public/uploadedfile.b2nd") is not None
    myroot = client.get("@public")
    ds = myroot["examples/tomo-guess-test.b2nd"]
    assert isinstance(ds.slice((slice(5), slice(10, 12), slice(3))), blosc2.NDArray)
    assert isinstance(myroot["examples/ds-hello.b2frame"][:10], bytes)
    with pytest.raises(httpx.HTTPStatusError):  # a plain file is downloaded, not fetched (as in Caterva2)
        myroot["examples/README.md"].slice(slice(0, 10))
    assert np.array_equal(client.fetch("@public/uploadedfile.b2nd"), client.fetch("@public/examples/tomo-guess-test.b2nd"))
    client.remove("@public/uploadedfile.b2nd")
