"""Container members over HTTP: an .h5 and a .b2z (TreeStore, DictStore) browsed in place.

Published as plain files into a root of the session stack, then read through
caterva2.Client and raw HTTP; every member is compared with the local object.
"""

from __future__ import annotations

import time
import uuid

import blosc2
import caterva2 as cat2
import h5py
import httpx
import numpy as np
import pytest

from functions.engine.content import load_bytes
from tests.test_containers import DATA

ROOT = f"cont-{uuid.uuid4().hex[:8]}"
#: The local files the published containers were made from, by name
LOCAL: dict = {}


def _visible(stack, *names: str) -> None:
    """Wait until the first region lists *names* (its catalog copy lives for the head TTL)."""
    deadline = time.monotonic() + 10
    while not set(names) <= set(httpx.get(f"{stack.api_url}/api/list/{ROOT}").json()):
        assert time.monotonic() < deadline, names
        time.sleep(0.2)


@pytest.fixture(scope="module")
def published(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("containers")
    with h5py.File(tmp / "t.h5", "w") as f:
        for key, value in DATA.items():
            f.create_dataset(key, data=value)
    tree = blosc2.TreeStore(str(tmp / "tree.b2z"), mode="w")
    flat = blosc2.DictStore(str(tmp / "flat.b2z"), mode="w")
    for key, value in DATA.items():
        tree[key] = value
        flat[key] = value
    tree.close()
    flat.close()
    namesake = blosc2.DictStore(str(tmp / "namesake.b2z"), mode="w")  # a key that is also a prefix
    namesake["/grp"] = blosc2.asarray(np.arange(5))
    namesake["/grp/a"] = blosc2.asarray(np.arange(9))
    namesake.close()
    publisher = stack.regions[0].services.publisher
    for name in ("t.h5", "tree.b2z", "flat.b2z", "namesake.b2z"):
        LOCAL[name] = tmp / name
        publisher.publish(ROOT, name, load_bytes(name, (tmp / name).read_bytes()))
    _visible(stack, "t.h5", "tree.b2z", "flat.b2z", "namesake.b2z")
    return ("t.h5", "tree.b2z", "flat.b2z")


@pytest.mark.parametrize("name", ["t.h5", "tree.b2z", "flat.b2z"])
def test_members_list_describe_and_fetch_like_the_local_object(stack, published, name):
    with cat2.Client(stack.api_url) as client:
        # the container itself lists (deep) and describes itself as its root group
        assert client.get_list(f"{ROOT}/{name}") == sorted(k.lstrip("/") for k in DATA)
        whole = client.get_info(f"{ROOT}/{name}")
        assert whole["kind"] == "group" and whole["nfiles"] == len(DATA) and whole["size"] > 0
        assert isinstance(client.get(ROOT)[name], cat2.client.Group)
        assert client.get_list(f"{ROOT}/{name}/g") == ["a", "b"]
        assert client.get_list(f"{ROOT}/{name}/g/a") == ["a"]
        assert client.get_list(f"{ROOT}/{name}/does/not/exist") == []
        group = client.get_info(f"{ROOT}/{name}/g")
        assert group["kind"] == "group" and group["nfiles"] == 2
        for key, want in DATA.items():
            info = client.get_info(f"{ROOT}/{name}{key}")
            assert tuple(info["shape"]) == want.shape, key
            got = client.get_slice(f"{ROOT}/{name}{key}", as_blosc2=True)
            assert np.array_equal(got[:], want), key
        part = client.fetch(f"{ROOT}/{name}/big/noise", slice_=(slice(10, 20), slice(5, 9)))
        assert np.array_equal(part, DATA["/big/noise"][10:20, 5:9])


def test_members_refuse_what_does_not_apply(stack, published):
    api = f"{stack.api_url}/api"
    assert httpx.get(f"{api}/info/{ROOT}/t.h5/does/not/exist").status_code == 404
    # a NUL never reaches blosc2: no member has such a key (404); outside a container, 400
    assert httpx.get(f"{api}/info/{ROOT}/tree.b2z/g/%00x").status_code == 404
    assert httpx.get(f"{api}/info/{ROOT}/g/%00x").status_code == 400
    resp = httpx.get(f"{api}/fetch/{ROOT}/tree.b2z/g/a", params={"filter": "x > 1"})
    assert resp.status_code == 400 and "structured dtype" in resp.json()["detail"]
    for name in ("t.h5", "tree.b2z"):
        resp = httpx.get(f"{api}/fetch/{ROOT}/{name}/s/people", params={"field": "z"})
        assert resp.status_code == 400 and "fields: x, y" in resp.json()["detail"], name
        resp = httpx.get(f"{api}/fetch/{ROOT}/{name}/g/a", params={"indices": "[[1, 2]]"})
        assert resp.status_code == 400 and "slice_" in resp.json()["detail"], name
    for path in ("t.h5/g/a", "t.h5"):  # HDF5 holds no Blosc2 chunks: fetch with slice_ instead
        resp = httpx.get(f"{api}/chunk/{ROOT}/{path}", params={"nchunk": 0})
        assert resp.status_code == 400 and "slice_" in resp.json()["detail"], path
    resp = httpx.get(f"{api}/fetch/{ROOT}/tree.b2z/g", params={"slice_": "0"})
    assert resp.status_code == 400  # a group is not an array


def test_a_filter_and_a_field_select_rows_of_a_structured_member(stack, published):
    people = DATA["/s/people"]
    api = f"{stack.api_url}/api"
    with cat2.Client(stack.api_url) as client:
        got = client.get_slice(f"{ROOT}/tree.b2z/s/people", "x > 1")
        assert np.array_equal(got[:], people[people["x"] > 1])
    resp = httpx.get(f"{api}/fetch/{ROOT}/tree.b2z/s/people", params={"filter": "y < 3", "field": "x"})
    assert resp.status_code == 200, resp.text
    assert np.array_equal(blosc2.ndarray_from_cframe(resp.content)[:], people[people["y"] < 3]["x"])
    # HDF5 members take a field, not a filter (as Caterva2 answers: unfold the file to filter)
    resp = httpx.get(f"{api}/fetch/{ROOT}/t.h5/s/people", params={"field": "y"})
    assert resp.status_code == 200 and np.array_equal(blosc2.ndarray_from_cframe(resp.content)[:], people["y"])
    resp = httpx.get(f"{api}/fetch/{ROOT}/t.h5/s/people", params={"filter": "x > 1"})
    assert resp.status_code == 400 and "not supported" in resp.json()["detail"]


def test_a_container_is_fetched_whole_as_uploaded_and_has_nothing_to_slice(stack, published):
    for name in ("tree.b2z", "t.h5"):
        url = f"{stack.api_url}/api/fetch/{ROOT}/{name}"
        resp = httpx.get(url)
        assert resp.status_code == 200 and resp.content == LOCAL[name].read_bytes(), name
        for params in ({"slice_": "0:1"}, {"indices": "[[1, 2]]"}, {"filter": "x > 1"}):
            refused = httpx.get(url, params=params)
            assert refused.status_code == 400 and "nothing to slice" in refused.json()["detail"], params


def test_a_dictstore_key_that_is_also_a_prefix_lists_what_is_below_it(stack, published):
    with cat2.Client(stack.api_url) as client:
        assert client.get_list(f"{ROOT}/namesake.b2z") == ["grp", "grp/a"]
        assert client.get_list(f"{ROOT}/namesake.b2z/grp") == ["a"]
        assert np.array_equal(client.fetch(f"{ROOT}/namesake.b2z/grp/a"), np.arange(9))
        assert np.array_equal(client.fetch(f"{ROOT}/namesake.b2z/grp"), np.arange(5))


def _window(name: str, key: str) -> bytes:
    """The bytes of a leaf's frame as the local container holds them (blosc2 says where)."""
    store = blosc2.DictStore(str(LOCAL[name]), mode="r")
    offset, length = store.member_window(key)
    store.close()
    return LOCAL[name].read_bytes()[offset : offset + length]


@pytest.mark.parametrize("name", ["tree.b2z", "flat.b2z"])
def test_a_b2z_leaf_is_its_window_in_the_container_with_ranges(stack, published, name):
    api = f"{stack.api_url}/api"
    url = f"{api}/fetch/{ROOT}/{name}/big/noise"
    frame = _window(name, "/big/noise")
    info = httpx.get(f"{api}/info/{ROOT}/{name}/big/noise")
    assert info.json()["accept_ranges"] == "bytes"
    etag = info.headers["etag"]
    assert etag and not etag.startswith("W/")
    whole = httpx.get(url)
    assert whole.status_code == 200 and whole.content == frame and whole.headers["etag"] == etag
    assert whole.headers["accept-ranges"] == "bytes"
    np.testing.assert_array_equal(blosc2.ndarray_from_cframe(whole.content)[:], DATA["/big/noise"])
    one = httpx.get(url, headers={"Range": "bytes=0-31"})
    assert one.status_code == 206 and one.content == frame[:32] and one.content[2:9] == b"b2frame"
    assert one.headers["content-range"] == f"bytes 0-31/{len(frame)}" and one.headers["etag"] == etag
    clamped = httpx.get(url, headers={"Range": f"bytes=100-{len(frame) + 999}"})
    assert clamped.status_code == 206 and clamped.content == frame[100:]
    beyond = httpx.get(url, headers={"Range": f"bytes={len(frame)}-{len(frame) + 9}"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(frame)}"
    multi = httpx.get(url, headers={"Range": "bytes=0-15, 40-55"})
    assert multi.status_code == 206 and multi.headers["content-type"].startswith("multipart/byteranges")
    assert frame[:16] in multi.content and frame[40:56] in multi.content
    # a slice is made per request: no ranges of it
    sliced = httpx.get(url, params={"slice_": "0:2"}, headers={"Range": "bytes=0-31"})
    assert sliced.status_code == 416
    # HDF5 members are converted, never windows
    h5 = httpx.get(f"{api}/info/{ROOT}/t.h5/big/noise")
    assert h5.json()["accept_ranges"] == "none" and h5.headers["etag"].startswith("W/")


def test_blosc2_proxy_and_c2array_read_a_leaf(stack, published):
    remote = blosc2.C2Array(f"{ROOT}/tree.b2z/big/noise", urlbase=stack.api_url)
    assert remote.chunks == blosc2.asarray(DATA["/big/noise"]).chunks
    np.testing.assert_array_equal(remote[5:9, 10:20], DATA["/big/noise"][5:9, 10:20])
    proxy = blosc2.Proxy(remote, mode="w")
    np.testing.assert_array_equal(proxy[:], DATA["/big/noise"])


def test_a_b2z_leaf_serves_its_stored_chunk(stack, published):
    want = blosc2.asarray(DATA["/big/noise"])  # the TreeStore kept what blosc2 made of it
    resp = httpx.get(f"{stack.api_url}/api/chunk/{ROOT}/tree.b2z/big/noise", params={"nchunk": 0})
    assert resp.status_code == 200
    chunk = np.frombuffer(blosc2.decompress2(resp.content), dtype=want.dtype)
    assert chunk.size == int(np.prod(want.chunks))
    assert np.array_equal(chunk.reshape(want.chunks)[: want.shape[0]], DATA["/big/noise"][: want.chunks[0]])


def test_a_broken_container_answers_400_not_500(stack, published):
    publisher = stack.regions[0].services.publisher
    for name in ("junk.h5", "junk.b2z"):
        publisher.publish(ROOT, name, load_bytes(name, b"not a container at all" * 100))
    _visible(stack, "junk.h5", "junk.b2z")
    for name in ("junk.h5", "junk.b2z"):
        resp = httpx.get(f"{stack.api_url}/api/info/{ROOT}/{name}/g/a")
        assert resp.status_code == 400 and "not a readable" in resp.json()["detail"], name


@pytest.fixture(scope="module")
def table(stack, tmp_path_factory):
    from dataclasses import dataclass

    @dataclass
    class Row:
        x: int = blosc2.field(blosc2.int32())
        y: str = blosc2.field(blosc2.string(max_length=20))

    path = tmp_path_factory.mktemp("ctable") / "t.b2z"
    t = blosc2.CTable(Row, urlpath=str(path), mode="w", compact=True)
    for i in range(5):
        t.append((i, f"v{i}"))
    t.close()
    stack.regions[0].services.publisher.publish(ROOT, "table.b2z", load_bytes("table.b2z", path.read_bytes()))
    _visible(stack, "table.b2z")
    return [(i, f"v{i}") for i in range(5)]


def test_a_ctable_is_one_dataset_with_rows(stack, published, table):
    with cat2.Client(stack.api_url) as client:
        info = client.get_info(f"{ROOT}/table.b2z")
        assert info["kind"] == "ctable" and info["nrows"] == 5 and info["columns"] == ["x", "y"]
        assert info["dtypes"]["x"] == "int32" and info["cbytes"] > 0
        assert client.get_list(f"{ROOT}/table.b2z") == ["table.b2z"]  # not a tree of its storage
        assert isinstance(client.get(ROOT)["table.b2z"], cat2.client.Table)
        whole = client.get_slice(f"{ROOT}/table.b2z", as_blosc2=True)
        assert isinstance(whole, blosc2.CTable) and [tuple(r) for r in whole[:]] == table
        part = client.get_slice(f"{ROOT}/table.b2z", slice(1, 3), as_blosc2=True)
        assert [tuple(r) for r in part[:]] == table[1:3]
        last = client.get_slice(f"{ROOT}/table.b2z", -1, as_blosc2=True)
        assert [tuple(r) for r in last[:]] == table[-1:]
        tail = client.get_slice(f"{ROOT}/table.b2z", slice(-2, None), as_blosc2=True)
        assert [tuple(r) for r in tail[:]] == table[-2:]
    api = f"{stack.api_url}/api"
    resp = httpx.get(f"{api}/chunk/{ROOT}/table.b2z", params={"nchunk": 0})
    assert resp.status_code == 400 and "table" in resp.json()["detail"]
    assert httpx.get(f"{api}/fetch/{ROOT}/table.b2z", params={"slice_": "7"}).status_code == 400
    assert httpx.get(f"{api}/fetch/{ROOT}/table.b2z", params={"slice_": "0:4:2"}).status_code == 400
    # one column of some rows, as an array; its name is checked
    col = httpx.get(f"{api}/fetch/{ROOT}/table.b2z", params={"slice_": "1:4", "field": "x"})
    assert col.status_code == 200 and blosc2.ndarray_from_cframe(col.content)[:].tolist() == [1, 2, 3]
    bad = httpx.get(f"{api}/fetch/{ROOT}/table.b2z", params={"field": "z"})
    assert bad.status_code == 400 and "columns: x, y" in bad.json()["detail"]
    assert httpx.get(f"{api}/fetch/{ROOT}/table.b2z", params={"filter": "x > 1"}).status_code == 400
    info = httpx.get(f"{api}/info/{ROOT}/table.b2z").json()
    assert [c["name"] for c in info["schema_dict"]["columns"]] == ["x", "y"] and info["blocks"]


def test_catclient_hands_out_a_table_object(stack, published, table):
    import catclient
    from catclient.tables import Table

    with catclient.Client(stack.api_url) as client:
        t = client.get(f"{ROOT}/table.b2z")
        assert isinstance(t, Table) and len(t) == 5 and t.columns == ["x", "y"] and t.ncols == 2
        assert t.dtypes["x"] == np.dtype("int32") and t.schema["columns"][1]["kind"] == "string"
        assert t.rows() == table and t.head(2) == table[:2]
        assert [tuple(r) for r in t[-2:]] == table[-2:] and [tuple(r) for r in t[-1]] == table[-1:]
        assert t["x"].tolist() == [0, 1, 2, 3, 4]
        assert t.column("y", slice(1, 3)).tolist() == ["v1", "v2"]
        with pytest.raises(catclient.errors.BadRequest, match="columns: x, y"):
            t.column("z")
        records = client.fetch(f"{ROOT}/table.b2z", slice(1, 3))  # rows as numpy records
        assert records.dtype.names == ("x", "y") and records.tolist() == table[1:3]
        assert isinstance(client.get_slice(f"{ROOT}/table.b2z"), blosc2.CTable)
        with pytest.raises(catclient.errors.BadRequest, match="is a table"):
            client.get_slice(f"{ROOT}/table.b2z", filter="x > 1")


@pytest.mark.parametrize("name", ["t.h5", "tree.b2z"])
def test_the_web_ui_opens_containers_as_directories_and_members_as_datasets(stack, published, table, name):
    web = f"{stack.api_url}/roots/{ROOT}"
    page = httpx.get(f"{web}/{name}")
    assert page.status_code == 200
    assert f"/roots/{ROOT}/{name}/g/a" in page.text and f"/roots/{ROOT}/{name}/big/noise" in page.text
    member = httpx.get(f"{web}/{name}/g/a")
    assert member.status_code == 200 and "int32" in member.text, member.text[-1500:]  # the dataset page
    assert ">5<" in member.text or "5</td>" in member.text  # g/a holds 0..5
    assert httpx.get(f"{web}/{name}/does/not/exist").status_code == 404
    assert httpx.get(f"{web}/table.b2z").status_code == 200  # a CTable page never 500s
    # The root's own tree (and the home page's) opens containers like directories
    for page in (httpx.get(web), httpx.get(f"{stack.api_url}/")):
        assert page.status_code == 200
        assert f'<li class="dir" data-path="{ROOT}/{name}">' in page.text
        assert f'data-path="{ROOT}/{name}/g/a"' in page.text
        assert f'<li class="file" data-path="{ROOT}/table.b2z">' in page.text  # a table is one dataset
