"""catclient.wire: slice syntax and chunk selection, checked against numpy."""

from __future__ import annotations

import random

import blosc2
import numpy as np
import pytest

from catclient import wire


def _geometry(arr: blosc2.NDArray) -> wire.Geometry:
    return wire.Geometry(
        kind="ndarray",
        shape=arr.shape,
        chunks=arr.chunks,
        blocks=arr.blocks,
        dtype=wire.dtype_to_str(arr.dtype),
        cparams=wire.cparams_to_dict(arr.schunk.cparams),
        chunksize=arr.schunk.chunksize,
        typesize=arr.schunk.typesize,
        nbytes=arr.schunk.nbytes,
        nchunks=arr.schunk.nchunks,
        vlmeta={},
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("", ()),
        ("2:4, 3:6", (slice(2, 4), slice(3, 6))),
        ("5", (5,)),
        (":, -1", (slice(None), -1)),
        ("::2", (slice(None, None, 2),)),
        ("[1,2,3]", (1, 2, 3)),
        ("1:10:-1", (slice(1, 10, -1),)),
    ],
)
def test_parse_slice(text, key):
    assert wire.parse_slice(text) == key


@pytest.mark.parametrize("text", ["a:b", "1:2:3:4", "1,,2", "::0", "1.5", "x"])
def test_parse_slice_rejects(text):
    with pytest.raises(wire.SliceError, match="slice_ is not a slice"):
        wire.parse_slice(text)


def test_parse_slice_too_many_entries():
    with pytest.raises(wire.SliceError, match="2 entries for 1"):
        wire.parse_slice("1,2", ndim=1)


def test_select_matches_numpy_with_only_touched_chunks():
    """Random keys (ints, slices with any step, index arrays) read only the chunks they touch."""
    a = np.arange(10 * 20 * 7).reshape(10, 20, 7)
    src = blosc2.asarray(a, chunks=(3, 6, 4), blocks=(2, 3, 2))
    geo = _geometry(src)
    every = {i: src.schunk.get_chunk(i) for i in range(src.schunk.nchunks)}
    rng = random.Random(7)

    def entry(n):
        kind = rng.choice(["int", "slice", "array", "all"])
        if kind == "int":
            return rng.randrange(-n, n)
        if kind == "slice":
            return slice(
                rng.choice([None, rng.randrange(-n, n)]),
                rng.choice([None, rng.randrange(-n, n + 3)]),
                rng.choice([None, 1, 2, 5, -1, -3]),
            )
        if kind == "array":
            return np.array([rng.randrange(-n, n) for _ in range(3)])
        return slice(None)

    checked = 0
    for _ in range(1500):
        key = tuple(entry(n) for n in a.shape[: rng.randrange(0, 4)])
        if sum(isinstance(k, np.ndarray) for k in key) > 1:
            continue  # numpy's broadcasting of several index arrays is covered by the server tests
        want = a[key]
        _, _, touched = wire.key_plan(key, a.shape, src.chunks)
        got = wire.select_ndarray(geo, {i: every[i] for i in touched}, key)
        assert got.shape == want.shape and np.array_equal(got, want), key
        checked += 1
    assert checked > 1000


def test_touched_chunks_are_exact():
    # (10, 20) in (5, 5) chunks: grid (2, 4); rows 2:4 x cols 3:6 touch chunks (0,0) and (0,1)
    assert wire.touched_chunks((10, 20), (5, 5), (slice(2, 4), slice(3, 6))) == [0, 1]
    assert wire.touched_chunks((10, 20), (5, 5), (slice(0, 0),)) == []
    assert wire.touched_chunks((10, 20), (5, 5), (slice(None), slice(None, None, 10))) == [0, 2, 4, 6]


def test_schunk_selection_with_steps():
    data = b"Hello world!" * 100
    sc = blosc2.SChunk(chunksize=100, data=data)
    geo = wire.Geometry(
        "schunk",
        None,
        None,
        None,
        None,
        wire.cparams_to_dict(sc.cparams),
        sc.chunksize,
        sc.typesize,
        sc.nbytes,
        sc.nchunks,
        {},
    )
    for text in ["", "150:260", "150:260:7", "5", "-3:", "::-5", "1190:1300", "5::250", "1199:3:-333", "::-1", "7:8:100"]:
        items = wire.schunk_item_range(wire.parse_slice(text), geo.nitems)
        touched = wire.schunk_touched_chunks(items, geo.items_per_chunk)
        got = wire.select_schunk(geo, {i: sc.get_chunk(i) for i in touched}, items)
        key = wire.parse_slice(text)
        want = (
            data[key[0]]
            if key and isinstance(key[0], slice)
            else (data[key[0] : key[0] + 1] if key else data)
        )
        assert got == want, text


def test_dtype_round_trip():
    for dt in [
        np.dtype("int64"),
        np.dtype("<U6"),
        np.dtype("S6"),
        np.dtype("complex128"),
        np.dtype([("a", "<i4"), ("b", "<f8"), ("c", "S8"), ("d", "?")]),
    ]:
        assert wire.dtype_from_str(wire.dtype_to_str(dt)) == dt


def test_dtype_from_str_never_evaluates_code():
    with pytest.raises((ValueError, SyntaxError, TypeError)):
        wire.dtype_from_str("[__import__('os').system('true')]")


# --------------------------------------------------------------------------- the selection pipeline


def _schunk_geometry(sc: blosc2.SChunk, kind: str = "schunk") -> wire.Geometry:
    return wire.Geometry(kind, None, None, None, None, wire.cparams_to_dict(sc.cparams), sc.chunksize,
                         sc.typesize, sc.nbytes, sc.nchunks, {})


class Store:
    """A chunk source for the pipeline that records what was asked of it."""

    def __init__(self, schunk) -> None:
        self.chunks = {i: schunk.get_chunk(i) for i in range(schunk.nchunks)}
        self.sizes = [len(c) for c in self.chunks.values()]
        self.asked: list[list[int]] = []

    def fetch(self, indices):
        self.asked.append(list(indices))
        return {i: self.chunks[i] for i in indices}


def _noise(shape=(200, 200), chunks=(50, 50)):
    """Random float64 (incompressible: compressed size ~ raw size) and its store."""
    a = np.random.default_rng(3).random(shape)
    arr = blosc2.asarray(a, chunks=chunks, blocks=(25, 25))
    return a, _geometry(arr), Store(arr.schunk)


@pytest.mark.parametrize("key", [
    (slice(2, 4), slice(3, 6)),
    (slice(None), slice(None, None, 10)),
    (7,),
    (np.array([1, 9, 3]), slice(5, 16, 4)),
    (slice(0, 0),),
])
def test_pipeline_touches_what_key_plan_says_and_matches_numpy(key):
    a = np.arange(10 * 20).reshape(10, 20).astype(np.int32)
    arr = blosc2.asarray(a, chunks=(5, 5), blocks=(5, 5))
    geo, store = _geometry(arr), Store(arr.schunk)
    selection = wire.Selection.of(geo, key)
    assert list(selection.touched) == wire.key_plan(key, a.shape, arr.chunks)[2] == wire.plan_chunks(geo, key)
    frame = wire.read_frame(geo, key, store.fetch)
    assert store.asked == [list(selection.touched)]  # one fetch, of exactly the touched chunks
    got = blosc2.ndarray_from_cframe(frame)[()]
    assert got.shape == a[key].shape and np.array_equal(got, a[key])
    assert selection.nbytes == a[key].nbytes


def test_pipeline_whole_array_is_framed_as_stored():
    a = np.arange(10 * 20).reshape(10, 20).astype(np.int32)
    arr = blosc2.asarray(a, chunks=(5, 5), blocks=(5, 5))
    geo, store = _geometry(arr), Store(arr.schunk)
    out = blosc2.ndarray_from_cframe(wire.read_frame(geo, (), store.fetch))
    assert store.asked == [list(range(arr.schunk.nchunks))]
    assert np.array_equal(out[()], a)
    # Not recompressed: every chunk is byte for byte the stored one
    assert all(out.schunk.get_chunk(i) == store.chunks[i] for i in range(out.schunk.nchunks))


def test_pipeline_zero_dimensional():
    arr = blosc2.asarray(np.array(42.5))
    geo, store = _geometry(arr), Store(arr.schunk)
    assert wire.plan_chunks(geo, ()) == [0]
    assert blosc2.ndarray_from_cframe(wire.read_frame(geo, (), store.fetch))[()] == 42.5
    with pytest.raises(wire.SliceError):
        wire.Selection.of(geo, (0,))


def test_pipeline_refuses_a_clear_excess_before_fetching():
    _, geo, store = _noise()
    key = (slice(0, 100), slice(None))  # 160 kB of noise: ~140 kB compressed
    limits = wire.Limits(response=50_000, hint="read it in pieces")
    with pytest.raises(wire.SelectionTooLarge, match=r"estimated.*response limit of 50\.0 KB: read it in pieces"):
        wire.read_frame(geo, key, store.fetch, limits=limits, chunk_sizes=store.sizes)
    assert store.asked == []
    # Under twice the limit the estimate lets it through; the exact check on the answer refuses it
    with pytest.raises(wire.SelectionTooLarge, match=r"^the selection is .*response limit of 100\.0 KB") as info:
        wire.read_frame(geo, key, store.fetch, limits=wire.Limits(response=100_000), chunk_sizes=store.sizes)
    assert len(store.asked) == 1 and info.value.nbytes > info.value.limit == 100_000
    assert isinstance(info.value, ValueError) and not isinstance(info.value, wire.SliceError)


def test_pipeline_estimates_a_strided_selection_by_what_it_selects():
    a, geo, store = _noise()
    key = (slice(None, None, 10), slice(None))  # every chunk touched, a tenth of the rows selected
    selection = wire.Selection.of(geo, key)
    assert len(selection.touched) == 16 and selection.nbytes == a[key].nbytes
    assert selection.estimate_cbytes(store.sizes) < 1.2 * a[key].nbytes
    frame = wire.read_frame(geo, key, store.fetch, limits=wire.Limits(response=40_000), chunk_sizes=store.sizes)
    assert np.array_equal(blosc2.ndarray_from_cframe(frame)[()], a[key])


def test_pipeline_post_steps_skip_the_estimate():
    a, geo, store = _noise()
    key = (slice(0, 100), slice(None))
    limits = wire.Limits(response=50_000)
    frame = wire.read_frame(geo, key, store.fetch, limits=limits, chunk_sizes=store.sizes,
                            post=lambda r: r[r[:, 0] > 0.99])  # a filter keeps ~1 row in 100
    assert np.array_equal(blosc2.ndarray_from_cframe(frame)[()], a[:100][a[:100, 0] > 0.99])


def test_pipeline_bounds_the_box_before_fetching():
    _, geo, store = _noise()
    limits = wire.Limits(box=100_000, hint="ask for smaller slices")
    for key in [(slice(0, 100),), (np.array([0, 199]), slice(None))]:  # 160 kB; 2 rows whose box is 320 kB
        with pytest.raises(wire.SelectionTooLarge, match=r"spans .* one read may assemble: ask for smaller"):
            wire.read_frame(geo, key, store.fetch, limits=limits)
    assert store.asked == []
    # The whole array is re-framed, never assembled: only the response limit applies to it
    assert wire.read_frame(geo, (), store.fetch, limits=limits)
    stored = sum(store.sizes)  # checked exactly (no estimate): framed as stored
    wire.Selection.of(geo, ()).check(wire.Limits(response=stored, name="ds.b2nd"), store.sizes)
    with pytest.raises(wire.SelectionTooLarge, match=rf"^ds\.b2nd is {wire.human_bytes(stored)}, over"):
        wire.Selection.of(geo, ()).check(wire.Limits(response=stored - 1, name="ds.b2nd"), store.sizes)


def test_pipeline_schunk_path():
    data = b"Hello world!" * 100
    sc = blosc2.SChunk(chunksize=100, data=data)
    geo, store = _schunk_geometry(sc), Store(sc)
    for text in ["150:260", "150:260:7", "5", "::-5", "7:8:100"]:
        key = wire.parse_key(geo, text)
        selection = wire.Selection.of(geo, key)
        assert list(selection.touched) == wire.schunk_touched_chunks(selection.items, geo.items_per_chunk)
        store.asked.clear()
        got = blosc2.schunk_from_cframe(wire.read_frame(geo, key, store.fetch))[:]
        want = data[key[0]] if isinstance(key[0], slice) else data[key[0] : key[0] + 1]
        assert got == want and store.asked == [list(selection.touched)], text
    whole = blosc2.schunk_from_cframe(wire.read_frame(geo, (), store.fetch))
    assert whole[:] == data and all(whole.get_chunk(i) == store.chunks[i] for i in range(sc.nchunks))
    with pytest.raises(TypeError, match="n-d arrays"):
        wire.read_frame(geo, (), store.fetch, post=lambda r: r)


def test_pipeline_keys_and_their_errors():
    a, geo, store = _noise()
    assert wire.parse_key(geo, "1:3, 4") == (slice(1, 3), 4)
    fancy = wire.parse_key(geo, "0:9", "[[1, 2], null]")  # indices win over slice_
    assert np.array_equal(fancy[0], [1, 2]) and fancy[1] == slice(None)
    with pytest.raises(wire.SliceError, match="indices apply to n-d arrays"):
        wire.parse_key(_schunk_geometry(blosc2.SChunk(data=b"x" * 10)), None, "[1]")
    for key in [(500,), (slice(None), np.array([0, 300])), (1, 2, 3)]:
        with pytest.raises(wire.SliceError):
            wire.read_frame(geo, key, store.fetch)
    with pytest.raises(wire.SliceError):
        wire.parse_key(geo, "1:x")
    with pytest.raises(LookupError, match="no bytes for chunk"):
        wire.read_frame(geo, (slice(0, 60),), lambda idx: {})


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (4_500_000, "4.5 MB"), (999_999, "1.0 MB"),
    (1_234_567_890, "1.2 GB"), (5 * 10**12, "5.0 TB"), (7 * 10**15, "7000.0 TB"),
])
def test_human_bytes(n, text):
    assert wire.human_bytes(n) == text
