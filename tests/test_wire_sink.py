"""ArraySink: chunks decoded into the numpy answer one by one, in any order, from any thread."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import blosc2
import numpy as np
import pytest

from catclient import wire

CASES = [
    # shape, chunks, blocks: rows whole in blocks (decoded in place), or blocks in both dimensions
    ((1000,), (128,), (32,)),
    ((100, 40), (25, 40), (5, 40)),
    ((103, 40), (25, 40), (10, 40)),  # blocks do not divide the chunk; a short last chunk
    ((100, 40), (25, 16), (5, 8)),
    ((17, 30, 22), (5, 8, 9), (2, 3, 4)),
    ((17, 30, 22), (5, 30, 22), (2, 30, 22)),
]
KEYS = [
    (),
    (slice(7, 61),),
    (3,),
    (slice(2, 90, 2),),
    (slice(-80, -3), slice(1, 14)),
    (slice(5, 16), 4, slice(None)),
    (slice(0, 0),),
]


def _stored(shape, chunks, blocks, dtype="f8", data=None):
    if data is None:
        data = np.random.default_rng(1).normal(size=shape).astype(dtype)
    arr = blosc2.asarray(data, chunks=chunks, blocks=blocks)
    geo = wire.Geometry(
        kind="ndarray", shape=arr.shape, chunks=arr.chunks, blocks=arr.blocks, dtype=wire.dtype_to_str(arr.dtype),
        cparams=wire.cparams_to_dict(arr.schunk.cparams), chunksize=arr.schunk.chunksize,
        typesize=arr.schunk.typesize, nbytes=arr.schunk.nbytes, nchunks=arr.schunk.nchunks, vlmeta={},
    )
    return data, geo, {i: arr.schunk.get_chunk(i) for i in range(arr.schunk.nchunks)}


@pytest.mark.parametrize(("shape", "chunks", "blocks"), CASES)
def test_every_key_matches_numpy_whatever_the_order_of_the_chunks(shape, chunks, blocks):
    data, geo, stored = _stored(shape, chunks, blocks)
    for key in KEYS:
        key = key[: len(shape)]
        sink = wire.ArraySink.of(geo, key)
        assert sink is not None
        touched = wire.key_plan(key, shape, chunks)[2] if key else list(stored)
        order = list(touched)
        random.Random(0).shuffle(order)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(sink.put, order, [stored[i] for i in order]))
        np.testing.assert_array_equal(sink.result(), data[key], err_msg=f"{shape} {chunks} {blocks} {key}")
        assert sink.decoded <= len(touched)


def test_rows_whole_in_blocks_are_decoded_in_place():
    data, geo, stored = _stored((100, 40), (25, 40), (5, 40))
    sink = wire.ArraySink.of(geo, ())
    assert sink.rowwise
    for i, chunk in stored.items():
        sink.put(i, chunk)
    np.testing.assert_array_equal(sink.result(), data)
    assert not hasattr(sink._local, "buf")  # no scratch buffer was ever needed


def test_special_chunks_zeros_and_a_structured_dtype():
    zeros = np.zeros((50, 7), dtype="i4")
    _, geo, stored = _stored((50, 7), (10, 7), (5, 7), data=zeros)
    sink = wire.ArraySink.of(geo, (slice(3, 47),))
    for i, chunk in stored.items():
        sink.put(i, chunk)
    np.testing.assert_array_equal(sink.result(), zeros[3:47])
    rec = np.zeros(30, dtype=[("a", "<i4"), ("b", "<f8")])
    rec["a"] = np.arange(30)
    _, geo, stored = _stored((30,), (8,), (4,), data=rec)
    sink = wire.ArraySink.of(geo, (slice(5, 29),))
    for i, chunk in stored.items():
        sink.put(i, chunk)
    np.testing.assert_array_equal(sink.result()["a"], np.arange(5, 29))


def test_reads_it_does_not_do_and_a_chunk_of_the_wrong_size():
    _, geo, stored = _stored((100, 40), (25, 40), (5, 40))
    assert wire.ArraySink.of(geo, (np.array([1, 5]), slice(None))) is None  # index arrays
    assert wire.ArraySink.of(geo, (slice(0, 100, 30),)) is None  # a long step: chunk by chunk
    _, other, _ = _stored((100, 40), (20, 40), (5, 40))
    sink = wire.ArraySink.of(other, ())
    with pytest.raises(ValueError, match="decompress"):
        sink.put(0, stored[0])  # 25 rows where 20 are expected
