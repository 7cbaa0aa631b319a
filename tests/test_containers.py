"""Containers as directories (functions.engine.containers): HDF5 files and Blosc2 TreeStore/DictStore zips.

Every member is compared with the local object: h5py for HDF5, blosc2 for .b2z.
"""

from __future__ import annotations

import blosc2
import h5py
import numpy as np
import pytest

from catclient import wire
from functions.engine.containers import B2ZContainer, H5Container, split_container_path
from functions.engine.errors import NotFound

DATA = {
    "/g/a": np.arange(6, dtype="i4").reshape(2, 3),
    "/g/b": np.arange(4, dtype="i4"),
    "/h/c": np.arange(10, dtype="i4"),
    "/s/people": np.array([(3, 2.0), (1, 1.0), (2, 3.0)], dtype=[("x", "i4"), ("y", "f8")]),
    "/big/noise": np.random.default_rng(0).random((300, 200)),
}


def _h5(path):
    with h5py.File(path, "w") as f:
        for key, value in DATA.items():
            f.create_dataset(key, data=value, chunks=True if value.ndim == 2 and value.size > 100 else None)
    return H5Container(str(path))


def _tree(path):
    t = blosc2.TreeStore(str(path), mode="w")
    for key, value in DATA.items():
        t[key] = value
    t.close()
    return B2ZContainer(str(path))


def _dict(path):
    s = blosc2.DictStore(str(path), mode="w")
    for key, value in DATA.items():
        s[key] = value
    s.close()
    return B2ZContainer(str(path))


@pytest.fixture(params=["h5", "treestore", "dictstore"])
def container(request, tmp_path):
    make = {"h5": _h5, "treestore": _tree, "dictstore": _dict}[request.param]
    with make(tmp_path / f"c.{'h5' if request.param == 'h5' else 'b2z'}") as c:
        yield c


def test_every_member_reads_as_the_local_object(container):
    assert container.leaves() == sorted(DATA)
    for key, want in DATA.items():
        assert np.array_equal(container.read(key), want), key
        assert np.array_equal(container.read(key, (slice(1, 3),)), want[1:3]), key
        info = container.info(key, mtime="t")
        assert tuple(info["shape"]) == want.shape and info["mtime"] == "t", key
        assert wire.dtype_from_str(info["dtype"]) == want.dtype, key


def test_groups_list_their_leaves_like_directories(container):
    assert container.list("/") == ["big/noise", "g/a", "g/b", "h/c", "s/people"]
    assert container.list("/g") == ["a", "b"]
    assert container.list("/g/a") == ["a"]  # a leaf lists as itself
    assert container.list("/does/not/exist") == []
    info = container.info("/g")
    assert info["kind"] == "group" and info["nfiles"] == 2 and info["size"] > 0
    assert container.info("/")["nfiles"] == len(DATA)


def test_leaves_weigh_their_own_bytes(container):
    sizes = {key: container.leaf_size(key) for key in DATA}
    assert all(s > 0 for s in sizes.values())
    assert sizes["/big/noise"] > 100 * sizes["/g/b"]  # not the container's size for all


def test_unknown_members_are_not_found(container):
    with pytest.raises(NotFound):
        container.info("/g/zz")
    with pytest.raises(NotFound):
        container.read("/g")  # a group holds no values


def test_a_path_splits_at_a_stored_container_file():
    files = {"sub/tree.h5", "t.b2z"}
    assert split_container_path("sub/tree.h5/g/a", files.__contains__) == ("sub/tree.h5", "/g/a")
    assert split_container_path("t.b2z/x", files.__contains__) == ("t.b2z", "/x")
    assert split_container_path("t.b2z", files.__contains__) == ("t.b2z", None)
    # a directory named like a container is a directory
    assert split_container_path("dir.h5/x.b2nd", files.__contains__) == ("dir.h5/x.b2nd", None)
    for bad in ("t.b2z/g/../a", "t.b2z/g//a", "t.b2z/a\x00b"):
        with pytest.raises(NotFound):
            split_container_path(bad, files.__contains__)


def test_stored_leaves_of_a_zip_have_byte_ranges(tmp_path):
    with _tree(tmp_path / "r.b2z") as c:
        where = c.member_range("/big/noise")
        assert where is not None
        offset, length = where
        raw = (tmp_path / "r.b2z").read_bytes()[offset : offset + length]
        assert np.array_equal(blosc2.ndarray_from_cframe(raw)[:], DATA["/big/noise"])


def test_a_stored_hdf5_file_is_read_in_h5pys_own_thread(tmp_path):
    # h5py holds its global lock while it reads a file object; a pool worker that collects an
    # h5py object meanwhile needs that lock, so waiting on the pool inside a read deadlocks
    # (seen once in the conformance run). Reads of a stored file never hand off to the pool.
    from functions.adapters.memory import MemoryStore
    from functions.engine.containerreads import ContainerReads, Member
    from functions.engine.content import load_bytes
    from functions.engine.publish import Publisher
    from functions.engine.region import Region
    from functions.engine.spaces import ANONYMOUS, resolve

    _h5(tmp_path / "t.h5").close()
    origin = MemoryStore("origin")
    data = (tmp_path / "t.h5").read_bytes()
    data += b"\0" * (3 << 20)  # several 1 MiB chunks, so HDF5 reads ahead across them
    Publisher(origin).publish("r", "t.h5", load_bytes("t.h5", data))
    region = Region(origin, None)

    class NoPool:
        def map(self, *args, **kwargs):
            raise AssertionError("a stored HDF5 file was read through the chunk pool")

    region._pool = NoPool()
    reads = ContainerReads(region, max_read_nbytes=0, sized=lambda body, what, hint: body)
    member = Member(resolve("r/t.h5", ANONYMOUS), region.dataset("r", "t.h5"), "/big/noise")
    assert reads.info(member)["shape"] == list(DATA["/big/noise"].shape)
    got = blosc2.ndarray_from_cframe(reads.fetch(member, "10:20, 5:9"))[:]
    np.testing.assert_array_equal(got, DATA["/big/noise"][10:20, 5:9])
