"""Decoding chunks straight into a numpy answer, one chunk at a time, as they arrive.

:func:`select_ndarray` needs every chunk before it decodes anything (it builds
an NDArray of them, then slices it): one serial pass after the last download.
:class:`ArraySink` instead takes each chunk when it arrives (from any thread,
typically the download worker that fetched it) and decompresses it into its
place in the answer, so decoding overlaps the transfers and no intermediate
NDArray or frame is built.

A stored b2nd chunk holds its blocks in C order, each block in C order, padded
to whole blocks.  When the blocks span the chunk in every dimension but the
first (Blosc2's usual choice for row-chunked arrays) the decompressed bytes of
a chunk are its rows in C order: a chunk whose rows fall inside the answer, and
whose trailing dimensions are whole in it, is decompressed *into* the answer's
memory without any copy.  Any other chunk is decompressed into a scratch buffer
and its part copied.

Blosc2 holds the GIL while it decompresses unless told otherwise; the first
sink tells it to release it (``blosc2.set_releasegil(True)``, which Blosc2
documents for large chunks decompressed from a thread pool), so that the
download workers decode in parallel.  It stays so for the process.
"""

from __future__ import annotations

import math
import threading

import blosc2
import numpy as np

from catclient.wire.assemble import chunkwise
from catclient.wire.geometry import Geometry, dtype_from_str
from catclient.wire.slices import Key, chunk_grid, key_plan

_GIL = {"released": False}


def _release_gil() -> None:
    if not _GIL["released"]:
        blosc2.set_releasegil(True)
        _GIL["released"] = True


class ArraySink:
    """The numpy answer to a key over an n-d array, filled chunk by chunk (see the module doc).

    Build it with :meth:`of`, which says whether a key can be read this way.
    :meth:`put` may be called from several threads at once, once per touched
    chunk; :meth:`result` once all touched chunks are in.

    Parameters
    ----------
    geo : Geometry
        The dataset (an n-d array of at least one dimension).
    key : tuple
        Ints and slices (no index arrays); ``()`` is everything.
    serial : bool
        Chunks are put one after another by one thread: Blosc2's own threads
        decompress each (by default, several chunks are put from several threads,
        one Blosc2 thread each).

    """

    def __init__(self, geo: Geometry, key: Key, *, serial: bool = False) -> None:
        self.geo = geo
        self.dtype = dtype_from_str(geo.dtype)
        if key:
            box, self.relative, touched = key_plan(key, geo.shape, geo.chunks)
            self.box = tuple((s.start, s.stop) for s in box)
        else:
            self.box, self.relative, touched = tuple((0, n) for n in geo.shape), (), range(geo.nchunks)
        # Several chunks: one Blosc2 thread each, the parallelism is the callers' threads
        # (Blosc2 releases the GIL while it decompresses: see the module doc); one chunk:
        # Blosc2's own threads
        self._dparams = {"nthreads": 1} if len(touched) > 1 and not serial else {}
        _release_gil()
        self.out = np.empty(tuple(hi - lo for lo, hi in self.box), dtype=self.dtype)
        self.grid = chunk_grid(geo.shape, geo.chunks)
        chunks, blocks = tuple(geo.chunks), tuple(geo.blocks or geo.chunks)
        self.nblocks = tuple(-(-c // b) for c, b in zip(chunks, blocks, strict=True))
        self.blocks = blocks
        # Padded chunk (whole blocks): the layout of a decompressed chunk
        self.ext = tuple(n * b for n, b in zip(self.nblocks, blocks, strict=True))
        # Rows in C order: blocks whole along every dimension but the first
        self.rowwise = all(n == 1 for n in self.nblocks[1:])
        self._local = threading.local()
        self._lock = threading.Lock()
        self.decoded = 0

    @classmethod
    def of(cls, geo: Geometry, key: Key, *, serial: bool = False) -> ArraySink | None:
        """A sink for *key*, or None when that read is better done otherwise.

        None for SChunks and files, 0-d arrays, index arrays, and keys read
        chunk by chunk because their box is much larger than what they select
        (a long step: :func:`catclient.wire.assemble.chunkwise`).
        """
        if geo.kind != "ndarray" or not geo.shape or not geo.chunks:
            return None
        if any(isinstance(entry, np.ndarray) for entry in key):
            return None
        if key and chunkwise(key, geo.shape):
            return None
        return cls(geo, key, serial=serial)

    def put(self, nchunk: int, data: bytes) -> None:
        """Decompress stored chunk *nchunk* (as ``schunk.get_chunk`` gives it) into the answer.

        Raises
        ------
        ValueError
            If *data* does not decompress to a chunk of this array's size.

        """
        coords = np.unravel_index(nchunk, self.grid)
        # Chunk bounds in the array, clipped to the box: what of this chunk the answer holds
        lo = [int(c) * n for c, n in zip(coords, self.geo.chunks, strict=True)]
        part = [
            (max(a, blo), min(a + n, s, bhi))
            for a, n, s, (blo, bhi) in zip(lo, self.geo.chunks, self.geo.shape, self.box, strict=True)
        ]
        if any(hi <= start for start, hi in part):
            return  # outside the box (a fetch of more than the key touches)
        dst = tuple(slice(a - blo, b - blo) for (a, b), (blo, _) in zip(part, self.box, strict=True))
        if self._into_answer(part, lo, dst):
            target = self.out[dst]
            self._decompress(data, target.reshape(-1).view(np.uint8), full=False)
        else:
            chunk = self._chunk_view(data)
            src = tuple(slice(start - a, hi - a) for (start, hi), a in zip(part, lo, strict=True))
            self.out[dst] = chunk[src]
        with self._lock:
            self.decoded += 1

    def _into_answer(self, part, lo, dst) -> bool:
        """Whether the chunk's decompressed bytes are exactly (a prefix of) a contiguous run of the answer."""
        if not self.rowwise:
            return False
        # Every dimension but the first taken whole, both in the chunk and in the answer
        for d in range(1, len(part)):
            if part[d] != (lo[d], lo[d] + self.geo.chunks[d]) or self.out.shape[d] != self.geo.chunks[d]:
                return False
        # The rows the answer takes start at the chunk's first row, and are whole blocks or the chunk's end
        start, hi = part[0]
        return start == lo[0] and self.out[dst].flags.c_contiguous

    def _decompress(self, data: bytes, dst: np.ndarray, *, full: bool) -> None:
        need = math.prod(self.ext) * self.dtype.itemsize
        # The header says what the chunk decompresses to: checked before anything is written
        nbytes = blosc2.get_cbuffer_sizes(data)[0]
        if nbytes != need:
            raise ValueError(f"a chunk would decompress to {nbytes} bytes, not {need} (its array's chunks)")
        # The answer's run may be shorter than the padded chunk (the box or the array ends
        # inside it): decompress the whole chunk to scratch then, never past dst's end
        if not full and dst.nbytes < need:
            scratch = self._scratch()
            blosc2.decompress2(data, dst=scratch, **self._dparams)
            dst[:] = scratch[: dst.nbytes]
            return
        blosc2.decompress2(data, dst=dst, **self._dparams)

    def _scratch(self) -> np.ndarray:
        buf = getattr(self._local, "buf", None)
        if buf is None:
            buf = self._local.buf = np.empty(math.prod(self.ext) * self.dtype.itemsize, dtype=np.uint8)
        return buf

    def _chunk_view(self, data: bytes) -> np.ndarray:
        """The chunk decompressed, as an array of the padded chunk's shape (blocks put in place)."""
        scratch = self._scratch()
        self._decompress(data, scratch, full=True)
        flat = scratch.view(self.dtype)
        if self.rowwise:
            return flat.reshape(self.ext)
        ndim = len(self.ext)
        by_block = flat.reshape(self.nblocks + self.blocks)
        # (nb0, nb1, ..., b0, b1, ...) -> (nb0, b0, nb1, b1, ...) -> the chunk in C order
        order = [i for d in range(ndim) for i in (d, ndim + d)]
        return by_block.transpose(order).reshape(self.ext)

    def result(self) -> np.ndarray:
        """The answer (``array[key]``), once every touched chunk has been put."""
        return self.out[self.relative] if self.relative else self.out
