"""Tiny reads inside one chunk, answered from the chunk decoded once (functions/engine/hotchunks.py).

Every answer of the fast path is compared with the general selection pipeline's
(``wire.read_frame``) and with numpy, over edge chunks, padded blocks and structured dtypes.
"""

from __future__ import annotations

import blosc2
import numpy as np
import pytest

from catclient import wire
from functions.adapters.memory import MemoryStore
from functions.engine.content import load_object
from functions.engine.fetchrules import FetchParams
from functions.engine.hotchunks import DecodedChunks, single_chunk
from functions.engine.publish import Publisher
from functions.engine.reads import ReadService
from functions.engine.region import CacheStats, Region
from functions.engine.spaces import ANONYMOUS, resolve

CUBE = np.arange(10 * 13 * 7, dtype=np.uint16).reshape(10, 13, 7)
PEOPLE = np.array([(i, i / 2) for i in range(50)], dtype=[("x", "i4"), ("y", "f8")])


@pytest.fixture(scope="module")
def service():
    origin = MemoryStore("origin")
    publisher = Publisher(origin)
    # chunks that do not divide the shape (edge chunks) and blocks that do not divide the chunks
    publisher.publish("t", "cube.b2nd", load_object(blosc2.asarray(CUBE, chunks=(4, 5, 7), blocks=(3, 2, 7))))
    publisher.publish("t", "people.b2nd", load_object(blosc2.asarray(PEOPLE, chunks=(16,), blocks=(5,))))
    return ReadService(Region(origin, None))


def _fetch(service, path, slice_):
    body = service.fetch(resolve(path, ANONYMOUS), FetchParams(slice_=slice_), CacheStats(), ANONYMOUS)
    return blosc2.ndarray_from_cframe(bytes(body))[()]


@pytest.mark.parametrize(
    "slice_, key",
    [
        ("5, 10:12, 3", (5, slice(10, 12), 3)),
        ("9, 12, 6", (9, 12, 6)),  # the last edge chunk, one element
        ("-1, -3:, 0:7", (-1, slice(-3, None), slice(0, 7))),
        ("4:8, 5:10", (slice(4, 8), slice(5, 10))),  # exactly one whole chunk
        ("0", (0,)),  # one plane across chunks: the general path
        ("3:5, 4:6, 1", (slice(3, 5), slice(4, 6), 1)),  # crosses a chunk boundary: the general path
    ],
)
def test_tiny_reads_answer_what_the_general_path_and_numpy_answer(service, slice_, key):
    got = _fetch(service, "t/cube.b2nd", slice_)
    np.testing.assert_array_equal(got, CUBE[key])
    assert np.asarray(got).shape == CUBE[key].shape and np.asarray(got).dtype == CUBE.dtype
    again = _fetch(service, "t/cube.b2nd", slice_)  # from the decoded chunk now, where it applies
    np.testing.assert_array_equal(again, CUBE[key])


def test_structured_records_come_back_whole(service):
    np.testing.assert_array_equal(_fetch(service, "t/people.b2nd", "17:20"), PEOPLE[17:20])
    np.testing.assert_array_equal(_fetch(service, "t/people.b2nd", "49"), PEOPLE[49])


def test_single_chunk_names_the_chunk_and_the_key_inside_it():
    geo = wire.Geometry.from_json(
        {"kind": "ndarray", "shape": [10, 13, 7], "chunks": [4, 5, 7], "blocks": [3, 2, 7], "dtype": "uint16",
         "chunksize": 4 * 6 * 7 * 2, "typesize": 2, "cparams": {}, "nchunks": 9, "nbytes": CUBE.nbytes}
    )
    assert single_chunk(geo, (5, slice(10, 12), 3)) == (1 * 3 + 2, (1, slice(0, 2), 3))
    assert single_chunk(geo, (slice(3, 5),)) is None  # two chunks along the first axis
    assert single_chunk(geo, (slice(0, 4, 2),)) is None  # steps take the general path
    assert single_chunk(geo, (np.array([1, 2]),)) is None


def test_the_decoded_chunks_stay_within_their_bound():
    cache = DecodedChunks(max_bytes=3 * 4 * 5 * 7 * 2 + 1)  # room for three chunks of the cube
    a = blosc2.asarray(CUBE, chunks=(4, 5, 7), blocks=(3, 2, 7))
    geo = wire.Geometry.from_json(
        {"kind": "ndarray", "shape": [10, 13, 7], "chunks": [4, 5, 7], "blocks": [3, 2, 7], "dtype": "uint16",
         "chunksize": a.schunk.chunksize, "typesize": 2, "cparams": {}, "nchunks": 9, "nbytes": CUBE.nbytes}
    )
    loads = []
    for n in (0, 1, 2, 0, 3, 1):
        decoded = cache.get(f"c{n}", geo, lambda n=n: loads.append(n) or a.schunk.get_chunk(n))
        coords = np.unravel_index(n, (3, 3, 1))
        want = CUBE[coords[0] * 4 : coords[0] * 4 + 4, coords[1] * 5 : coords[1] * 5 + 5]
        np.testing.assert_array_equal(decoded[: want.shape[0], : want.shape[1]], want)
        assert not decoded.flags.writeable
    assert loads == [0, 1, 2, 3, 1]  # 0 was kept (used again), 1 was the least recent when 3 came
    assert cache._bytes <= cache.max_bytes


@pytest.mark.parametrize(
    "value",
    [
        np.array(5.0),
        np.array([7, 9], dtype=np.uint16),
        np.arange(6, dtype="i8").reshape(2, 3, 1),
        np.array([(1, 2.0), (3, 4.5)], dtype=[("a", "i4"), ("b", "f8")]),
        np.array(["ab", "c"]),
        np.array([True]),
        np.zeros((0, 3)),
        np.arange(40000, dtype="f8"),  # over the tiny bound: to_cframe
    ],
    ids=["0-d", "u2", "3-d", "records", "unicode", "bool", "empty", "large"],
)
def test_tiny_frames_decode_as_to_cframes_do(value):
    tiny_cframe = wire.to_cframe  # small answers are framed from a kept template

    for _ in range(2):  # the second time from the kept template
        got = blosc2.ndarray_from_cframe(tiny_cframe(value))[()]
        assert got.shape == value.shape and got.dtype == value.dtype
        np.testing.assert_array_equal(got, value)
    first = tiny_cframe(np.array([1, 2], dtype=np.uint16))
    tiny_cframe(np.array([3, 4], dtype=np.uint16))  # the same template written again
    assert blosc2.ndarray_from_cframe(first)[:].tolist() == [1, 2]  # an answer is its own bytes
