"""Hostile Blosc2 frames for tests: decompression bombs and frames whose metadata lies.

Each is built from a valid frame (``blosc2.asarray(...).to_cframe()``), then
patched: the ``b2nd`` metalayer's shape (msgpack int64 after a one-entry array
marker), one byte of the header, or one chunk's bytes repeated many times.
"""

from __future__ import annotations

import struct

import blosc2
import numpy as np

MiB = 1 << 20


def small_frame() -> bytes:
    """1000 float64 in one chunk of 10 blocks: the base that the lies are patched into."""
    return blosc2.asarray(np.arange(1000.0), chunks=(1000,), blocks=(100,)).to_cframe()


def with_shape(frame: bytes, shape: int, old: int = 1000) -> bytes:
    """*frame* (1-d, shape *old*) claiming shape *shape* in its ``b2nd`` metalayer."""
    marker = b"\x91\xd3" + struct.pack(">q", old)
    assert frame.count(marker) == 1, "the shape is stored once, as an int64 in a one-entry array"
    return frame.replace(marker, b"\x91\xd3" + struct.pack(">q", shape))


def flipped(frame: bytes, offset: int) -> bytes:
    """*frame* with the byte at *offset* inverted."""
    return frame[:offset] + bytes([frame[offset] ^ 0xFF]) + frame[offset + 1 :]


def chunk_offset(frame: bytes) -> int:
    """Where the first (only) chunk of :func:`small_frame` starts in the frame."""
    arr = blosc2.ndarray_from_cframe(frame)
    chunk = arr.schunk.get_chunk(0)
    return frame.index(chunk[:32])


def repeated_chunks(nchunks: int, chunk_nbytes: int, value: float = 1.0) -> blosc2.NDArray:
    """An in-memory float64 NDArray of *nchunks* equal, highly compressible data chunks.

    The one chunk is compressed once and put *nchunks* times, so the array costs a
    few KB however much it decompresses to (``nchunks * chunk_nbytes``).  Data
    chunks, not special ones: Blosc2 must decompress them to read them.
    """
    items = chunk_nbytes // 8
    data = np.full(items, value)
    data[0] = value + 1  # not a single repeated value: Blosc2 would store a special chunk
    one = blosc2.asarray(data, chunks=(items,), blocks=(min(items, 1 << 17),))
    chunk = one.schunk.get_chunk(0)
    arr = blosc2.uninit((nchunks * items,), dtype=np.float64, chunks=(items,), blocks=one.blocks)
    for i in range(nchunks):
        arr.schunk.update_chunk(i, chunk)
    return arr


def bomb(nchunks: int = 16, chunk_nbytes: int = 256 * MiB) -> bytes:
    """The issue's bomb: 16 chunks of 256 MiB (4 GiB decompressed) in a frame of a few KB."""
    return repeated_chunks(nchunks, chunk_nbytes).to_cframe()


def zeros_frame(nchunks: int, chunk_nbytes: int) -> bytes:
    """A frame of special zero chunks: large decompressed, nothing to decompress."""
    items = chunk_nbytes // 8
    return blosc2.zeros((nchunks * items,), dtype=np.float64, chunks=(items,)).to_cframe()
