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
