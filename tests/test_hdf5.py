"""HDF5 conversion in the engine: every kind element for element, chunking, dedup, skipped objects."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from catclient import wire
from functions.adapters.memory import MemoryStore
from functions.engine import layout
from functions.engine.content import load_plain
from functions.engine.errors import BadRequest
from functions.engine.hdf5 import attrs as h5attrs
from functions.engine.hdf5 import chunking, convert
from functions.engine.hdf5.storedfile import StoredFile
from functions.engine.hdf5.unfold import publish_hdf5_file, publish_hdf5_root, unfold
from functions.engine.model import Manifest
from functions.engine.publish import Publisher
from tests.hdf5_files import SKIPPED, datasets, make_undefined_fill, make_varied, same


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    return make_varied(tmp_path_factory.mktemp("h5") / "varied.h5")


def _manifest(pub: Publisher, root: str, rel: str) -> Manifest:
    head, _ = pub.read_head(root, rel)
    return pub.read_manifest(head.manifest)


def _array(pub: Publisher, root: str, rel: str):
    m = _manifest(pub, root, rel)
    chunks = {i: (r.inline if r.inline is not None else pub.store.get(layout.chunk_key(r.digest)).data)
              for i, r in enumerate(m.refs)}
    return wire.assemble_ndarray(m.geometry, chunks, with_vlmeta=False)[()], m


def test_every_dataset_converts_element_for_element(varied):
    pub = Publisher(MemoryStore())
    report = publish_hdf5_root(pub, "h5", varied)
    want = datasets(varied)
    assert report.arrays == len(want) and len(want) > 30
    for rel, values in want.items():
        got, m = _array(pub, "h5", rel)
        assert same(got, values), rel
        assert tuple(m.geometry.shape) == values.shape, rel


def test_datasets_without_a_fill_value_convert(tmp_path):
    # PyTables files declare no fill value; reading one raises in h5py, which aborted a publish
    path = make_undefined_fill(tmp_path / "nofill.h5")
    with h5py.File(path) as f, pytest.raises(RuntimeError):
        f["ints"].fillvalue  # noqa: B018 - the state this test is about
    pub = Publisher(MemoryStore())
    report = publish_hdf5_root(pub, "h5", path)
    want = datasets(path)
    assert report.arrays == 2
    for rel, values in want.items():
        got, _ = _array(pub, "h5", rel)
        assert same(got, values), rel


def test_subarray_dtypes_become_trailing_axes(tmp_path):
    # ("<f8", (4,)) elements: Blosc2 refuses the dtype, numpy reads (10,) of them as (10, 4) floats
    path = tmp_path / "sub.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("plain", dtype=np.dtype(("float64", (4,))), shape=(10,))
        f["plain"][...] = np.arange(40.0).reshape(10, 4)
        f.create_dataset("chunked", shape=(300,), dtype=np.dtype((">i2", (2, 10))), chunks=(7,))
        f["chunked"][...] = np.arange(6000, dtype=">i2").reshape(300, 2, 10)
        f.create_dataset("big", shape=(8192,), dtype=np.dtype(("u4", (256,))), chunks=(8192,))
        f["big"][...] = np.arange(1 << 21, dtype="u4").reshape(8192, 256)  # one 8 MiB HDF5 chunk: cut
    pub = Publisher(MemoryStore())
    report = publish_hdf5_root(pub, "h5", path)
    want = datasets(path)
    assert report.arrays == 3 and not report.skipped
    assert want["chunked.b2nd"].shape == (300, 2, 10)  # how h5py itself reads them
    for rel, values in want.items():
        got, m = _array(pub, "h5", rel)
        assert same(got, values), rel
        assert m.geometry.vlmeta["_hdf5"]["subarray"] == list(values.shape[1:]), rel
    assert _manifest(pub, "h5", "big.b2nd").geometry.chunks[0] < 8192


def test_dtypes_shapes_and_chunks_follow_hdf5(varied):
    pub = Publisher(MemoryStore())
    publish_hdf5_root(pub, "h5", varied)
    geo = _manifest(pub, "h5", "layout/chunked3d.b2nd").geometry
    assert tuple(geo.chunks) == (16, 64, 64) and geo.dtype == "float32"  # 256 KiB HDF5 chunks kept as they are
    # bigger than one chunk in every dimension
    assert all(s > c for s, c in zip(geo.shape, geo.chunks, strict=True))
    tiny = _manifest(pub, "h5", "layout/tinychunks.b2nd").geometry
    assert tuple(tiny.chunks) == (5000,)  # 6-byte HDF5 chunks grown (whole multiples, up to the dataset)
    cont = _manifest(pub, "h5", "layout/contiguous2d.b2nd").geometry
    assert math.prod(cont.chunks) * 8 <= chunking.TARGET_CHUNK_BYTES and all(
        s > c for s, c in zip(cont.shape, cont.chunks, strict=True))
    rec = _manifest(pub, "h5", "text/records.b2nd").geometry
    assert wire.dtype_from_str(rec.dtype).names == ("id", "x", "name", "v")
    assert tuple(_manifest(pub, "h5", "shapes/scalar.b2nd").geometry.shape) == ()
    assert tuple(_manifest(pub, "h5", "shapes/empty.b2nd").geometry.shape) == (0, 5)
    assert _manifest(pub, "h5", "numbers/bigendian.b2nd").content.vlmeta["_hdf5"]["dtype"] == ">f8"


def test_attributes_become_vlmeta_and_group_files(varied):
    pub = Publisher(MemoryStore())
    publish_hdf5_root(pub, "h5", varied)
    vl = _manifest(pub, "h5", "layout/chunked3d.b2nd").content.vlmeta
    assert vl["units"] == "mV" and vl["calibration"] == [1.5, 2.5]
    assert vl["_hdf5"]["compression"] == "gzip" and vl["_hdf5"]["shuffle"] is True
    assert _manifest(pub, "h5", "shapes/filled.b2nd").content.vlmeta["_hdf5"]["fillvalue"] == -7
    top = _manifest(pub, "h5", "!_attrs_.json")
    data = b"".join(pub.store.get(layout.chunk_key(r.digest)).data for r in top.refs)
    import blosc2
    attrs = json.loads(blosc2.decompress2(data))
    assert attrs["title"] == "varied test file" and attrs["vector"] == [0.0, 1.0, 2.0, 3.0]
    back = h5attrs.decode_all(attrs)
    assert back["version"].dtype == np.int32 and back["scale"].dtype == np.float32
    assert back["z"] == 1 - 2j and back["label"] == b"fixed" and list(back["names"]) == ["a", "bc"]
    catalog, _ = pub.read_catalog("h5")
    assert "a/empty_group/!_attrs_.json" in catalog.datasets  # an empty group stays a directory


@pytest.mark.parametrize("value", [
    np.float32(1.25), np.arange(3, dtype="u2"), np.array([[1 + 2j, 3j]]), np.bytes_(b"abc"), "text",
    np.array([(1, 2.5)], dtype=[("a", "i4"), ("b", "f8")]), np.bool_(False), np.int64(-5),
    np.array([b"x", b"yz"]), h5py.Empty("i4"),
])
def test_attribute_round_trip_keeps_dtypes(value):
    encoded, dtype = h5attrs.encode(value)
    json.dumps(encoded)
    back = h5attrs.decode(json.loads(json.dumps(encoded)), dtype)
    if isinstance(value, h5py.Empty):
        assert isinstance(back, h5py.Empty) and back.dtype == value.dtype
    elif isinstance(value, str):
        assert back == value
    else:
        assert np.asarray(back).dtype == np.asarray(value).dtype and np.array_equal(back, value)


def test_skipped_objects_are_reported_and_the_rest_published(varied):
    pub = Publisher(MemoryStore())
    report = publish_hdf5_root(pub, "h5", varied)
    reasons = dict(report.skipped)
    for path, word in SKIPPED.items():
        assert word in reasons[path], (path, reasons.get(path))
    assert "references" in reasons["/skip@ref_attr"]
    catalog, _ = pub.read_catalog("h5")
    assert "skip/ok.b2nd" in catalog.datasets and not any(p.startswith("skip/vlen") for p in catalog.datasets)
    assert json.loads(json.dumps(report.to_json()))["skipped"]


def test_republish_uploads_nothing_and_a_change_only_its_chunks(tmp_path):
    path = tmp_path / "x.h5"
    data = np.random.default_rng(1).standard_normal((64, 256, 256)).astype("f4")
    with h5py.File(path, "w") as f:
        f.create_dataset("vol", data=data, chunks=(16, 128, 128))  # 1 MiB chunks: 4 x 2 x 2 = 16
        f.create_dataset("flat", data=np.arange(2_000_000, dtype="f8"))
    pub = Publisher(MemoryStore())
    first = publish_hdf5_root(pub, "r", path)
    assert {r.path: r.uploaded_chunks for r in first.results}["vol.b2nd"] == 16
    again = publish_hdf5_root(pub, "r", path)
    assert {r.status for r in again.results} == {"unchanged"} and sum(r.uploaded_bytes for r in again.results) == 0
    with h5py.File(path, "r+") as f:
        f["vol"][20:30, 0:10, 200:210] += 1  # inside chunk (1, 0, 1) only
    third = {r.path: r for r in publish_hdf5_root(pub, "r", path).results}
    assert third["vol.b2nd"].status == "published" and third["vol.b2nd"].uploaded_chunks == 1
    assert third["vol.b2nd"].changed_chunks == [1 * 4 + 0 * 2 + 1]
    assert third["flat.b2nd"].status == "unchanged"


def test_no_arrays_is_a_bad_request(tmp_path):
    path = tmp_path / "none.h5"
    with h5py.File(path, "w") as f:
        f.create_group("g").attrs["x"] = 1
        f.create_dataset("s", data=["a"], dtype=h5py.string_dtype())
    with convert.open_file(path) as f, pytest.raises(BadRequest, match="no arrays"):
        unfold(f, Publisher(MemoryStore()), "r", "")


def test_directory_file_and_its_tree(varied):
    pub = Publisher(MemoryStore())
    result, report = publish_hdf5_file(pub, "d", "sub/varied.h5", varied)
    assert result.status == "published" and report.directory == "sub/varied"
    catalog, _ = pub.read_catalog("d")
    assert "sub/varied.h5" in catalog.datasets and "sub/varied/layout/chunked3d.b2nd" in catalog.datasets


def test_stored_file_reads_only_the_chunks_hdf5_touches(varied):
    loaded = load_plain(varied.read_bytes())
    geo = loaded.content.geometry
    stored = StoredFile(geo["nbytes"], geo["chunksize"], lambda idx: {i: loaded.chunks[i] for i in idx})
    with stored, h5py.File(stored, "r") as f:
        assert np.array_equal(f["a/b/c/leaf"][()], np.arange(12).reshape(3, 4))
    assert 0 < stored.fetched < geo["nchunks"]


@pytest.mark.parametrize("shape,itemsize,h5chunks", [
    ((10_000, 10_000), 8, None), ((3, 5), 4, (1, 1)), ((100, 4096, 4096), 2, (100, 4096, 4096)),
    ((7,), 1, (7,)), ((0, 3), 4, None), ((), 8, None), ((1000, 1000), 8, (997, 1)),
])
def test_chunk_plans_are_bounded_and_deterministic(shape, itemsize, h5chunks):
    plan = chunking.plan_chunks(shape, itemsize, h5chunks)
    assert plan == chunking.plan_chunks(shape, itemsize, h5chunks)
    if shape:
        assert math.prod(plan.chunks) * itemsize <= chunking.MAX_CHUNK_BYTES
        assert all(r % c == 0 or r >= s for r, c, s in zip(plan.read, plan.chunks, shape, strict=True))
        assert math.prod(plan.blocks) * itemsize <= max(chunking.TARGET_BLOCK_BYTES, itemsize)


def test_small_chunks_are_kept_in_small_datasets_and_grown_in_big_ones():
    # (4, 10, 10) uint8 chunks of a 10x10x10 array: 3 chunks, kept as HDF5 has them
    assert chunking.plan_chunks((10, 10, 10), 1, (4, 10, 10)).chunks == (4, 10, 10)
    # the same 400-byte chunks over 100 MB would be 250,000 S3 objects: grown past 256 KiB
    big = chunking.plan_chunks((1_000_000, 10, 10), 1, (4, 10, 10))
    assert math.prod(big.chunks) >= chunking.MIN_CHUNK_BYTES and big.chunks[0] % 4 == 0


def test_conversion_streams_a_few_chunks_at_a_time(tmp_path):
    """Chunks are uploaded as they are made: never more than IN_FLIGHT made and not yet stored."""
    from functions.engine.hdf5 import stream

    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("v", data=np.random.default_rng(3).random((64, 512, 512)), chunks=(8, 256, 256))
    made, stored, worst = [0], [0], [0]
    real = convert.iter_chunks

    def counting(item):
        for out in real(item):
            made[0] += 1
            worst[0] = max(worst[0], made[0] - stored[0])
            yield out

    class Counting(MemoryStore):
        def put(self, key, data, **kw):
            if key.startswith("c/"):
                stored[0] += 1
            return super().put(key, data, **kw)

    pub = Publisher(Counting())
    orig, convert.iter_chunks = convert.iter_chunks, counting
    try:
        publish_hdf5_root(pub, "s", path)
    finally:
        convert.iter_chunks = orig
    assert made[0] == 32 and stored[0] == 33  # and the file's attribute file
    assert worst[0] <= stream.IN_FLIGHT + 1


def test_ingest_of_hdf5_drops(varied, tmp_path):
    from functions.engine.ingest import ingest_object

    drop, pub = MemoryStore("drop"), Publisher(MemoryStore())
    drop.put("lab/runs/v.h5", varied.read_bytes())
    drop.put("lab/runs/junk.h5", b"not HDF5")
    outcome = ingest_object(pub, drop, "lab/runs/v.h5")
    assert outcome.ok and outcome.result.path == "runs/v.h5"
    assert outcome.unfolded["arrays"] == len(datasets(varied)) and outcome.unfolded["skipped"]
    junk = ingest_object(pub, drop, "lab/runs/junk.h5")
    assert junk.ok and "signature" in junk.unfolded["error"]  # stored as a file, not unfolded
    catalog, _ = pub.read_catalog("lab")
    assert {"runs/v.h5", "runs/junk.h5", "runs/v/layout/chunked3d.b2nd"} <= set(catalog.datasets)
    got, _ = _array(pub, "lab", "runs/v/a/b/c/leaf.b2nd")
    assert np.array_equal(got, np.arange(12).reshape(3, 4))


def test_directory_with_a_broken_hdf5_file_reports_it(tmp_path):
    (tmp_path / "bad.h5").write_bytes(b"no signature")
    (tmp_path / "ok.txt").write_text("fine")
    pub, errors = Publisher(MemoryStore()), []
    results = pub.publish_directory("d", tmp_path, on_error=lambda p, e: errors.append(p))
    assert errors == ["bad.h5"] and {r.path for r in results} == {"ok.txt"}
    catalog, _ = pub.read_catalog("d")
    assert set(catalog.datasets) == {"bad.h5", "ok.txt"}  # the file itself is kept, as a file


def test_handlers_do_not_load_h5py_until_something_converts():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = ("import sys, functions.handlers.api, functions.handlers.ingest, functions.api.app\n"
            "print('h5py' in sys.modules or 'hdf5plugin' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False"
