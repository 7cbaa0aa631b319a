"""Blosc2 chunk and block shapes for an HDF5 dataset: deterministic, so a re-publish dedups.

The same dataset always gets the same shapes (no dependence on the machine's
cache sizes or core count, unlike Blosc2's automatic choice), so an unchanged
file re-publishes to the same chunks and a changed dataset to only its changed
chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Largest uncompressed chunk, bytes.  A chunk travels whole in one ``/api/chunk``
#: answer, and Lambda returns at most ~4.5 MB of binary: an incompressible 4 MiB
#: chunk still fits.
MAX_CHUNK_BYTES = 4 << 20
#: Size aimed at when HDF5 gives no chunking (contiguous, compact) or a tiny one, bytes:
#: few enough S3 objects per GB (~500) while a random read still fetches little.
TARGET_CHUNK_BYTES = 2 << 20
#: HDF5 chunks at least this big are kept as they are (bytes); smaller ones are grown
#: by whole multiples (many tiny S3 objects cost more in requests than they save).
MIN_CHUNK_BYTES = 256 << 10
#: A dataset of at most this many HDF5 chunks keeps them however small: the requests
#: saved by growing are few, and clients that compare geometry with the HDF5 file
#: (Caterva2's own tests do) see the same chunks.
KEEP_SMALL_CHUNKS = 64
#: Block (the unit Blosc2 decompresses for a single element), bytes: about an L2 cache.
TARGET_BLOCK_BYTES = 128 << 10
#: Largest HDF5 chunk read whole to cut it into Blosc2 chunks, bytes; beyond, the
#: Blosc2 chunks are read one by one (bounded memory, HDF5's chunk cache helps).
MAX_READ_BYTES = 64 << 20


def _count(shape, chunks) -> int:
    """How many chunks of *chunks* tile *shape*."""
    return math.prod(-(-s // c) for s, c in zip(shape, chunks, strict=True))


@dataclass(frozen=True)
class Plan:
    """How one dataset becomes Blosc2 chunks.

    ``read`` is the region read from HDF5 at once: a whole number of ``chunks``
    along every axis, aligned with the HDF5 chunks when those are cut in pieces.
    """

    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    blocks: tuple[int, ...]
    read: tuple[int, ...]

    @property
    def nchunks(self) -> int:
        """Number of Blosc2 chunks (0 for an array without elements)."""
        return math.prod(math.ceil(s / c) for s, c in zip(self.shape, self.chunks, strict=True))


def _nbytes(shape, itemsize: int) -> int:
    return math.prod(shape) * itemsize


def _halve_largest(shape: list[int], limit: int, itemsize: int) -> list[int]:
    """Halve (rounding up) the longest axis until the shape fits *limit* bytes: near-cubic pieces."""
    shape = list(shape)
    while _nbytes(shape, itemsize) > limit and max(shape, default=1) > 1:
        i = max(range(len(shape)), key=lambda k: (shape[k], -k))
        shape[i] = math.ceil(shape[i] / 2)
    return shape


def _smallest_factor(n: int) -> int | None:
    for p in range(2, math.isqrt(n) + 1):
        if n % p == 0:
            return p
    return n if n > 1 else None


def _split_exactly(h5chunks: list[int], itemsize: int) -> list[int]:
    """Divide a too-big HDF5 chunk into Blosc2 chunks that tile it exactly."""
    c = list(h5chunks)
    while _nbytes(c, itemsize) > MAX_CHUNK_BYTES:
        options = [(c[i], -i) for i in range(len(c)) if _smallest_factor(c[i])]
        if not options:
            break  # only ones: cannot shrink (an itemsize over 4 MiB)
        i = -max(options)[1]
        c[i] //= _smallest_factor(c[i])
    return c


def _grow(h5chunks: list[int], shape: tuple[int, ...], itemsize: int) -> list[int]:
    """Grow a small HDF5 chunk by whole multiples (shortest axis first) up to the target size."""
    c = list(h5chunks)
    while True:
        growable = [i for i in range(len(c)) if c[i] < shape[i]]
        if not growable:
            return c
        i = min(growable, key=lambda k: (c[k], -k))
        grown = min(c[i] * 2, shape[i])
        if _nbytes([*c[:i], grown, *c[i + 1 :]], itemsize) > TARGET_CHUNK_BYTES:
            return c
        c[i] = grown


def plan_chunks(shape: tuple[int, ...], itemsize: int, h5chunks: tuple[int, ...] | None) -> Plan:
    """The Blosc2 chunking of a dataset of *shape* (HDF5 chunk shape *h5chunks*, None if contiguous).

    Parameters
    ----------
    shape : tuple of int
        The dataset's shape (``()`` for a scalar; axes may be 0).
    itemsize : int
        Bytes per element.
    h5chunks : tuple of int, optional
        HDF5's chunk shape, followed when sensible: kept between
        ``MIN_CHUNK_BYTES`` and ``MAX_CHUNK_BYTES``, grown by whole multiples
        below, cut into exact divisors above.

    """
    shape = tuple(int(s) for s in shape)
    if not shape:
        return Plan((), (), (), ())
    bounded = [max(1, s) for s in shape]  # Blosc2 refuses 0-length chunks, even for empty axes
    itemsize = max(1, itemsize)
    read = None
    if h5chunks is None:
        chunks = _halve_largest(bounded, TARGET_CHUNK_BYTES, itemsize)
    else:
        h5 = [max(1, min(int(h), b)) for h, b in zip(h5chunks, bounded, strict=True)]
        size = _nbytes(h5, itemsize)
        if size > MAX_CHUNK_BYTES:
            chunks = _split_exactly(h5, itemsize)
            read = h5 if size <= MAX_READ_BYTES else None
        elif size < MIN_CHUNK_BYTES and _count(bounded, h5) > KEEP_SMALL_CHUNKS:
            chunks = _grow(h5, tuple(bounded), itemsize)
        else:
            chunks = h5
    blocks = _halve_largest(chunks, TARGET_BLOCK_BYTES, itemsize)
    return Plan(shape, tuple(chunks), tuple(blocks), tuple(read or chunks))
