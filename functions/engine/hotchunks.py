"""Small reads inside one chunk, answered from that chunk decoded once: a bounded LRU of
decompressed chunks, keyed by their content address.

A tiny slice (``ds[5, 10:12, 3]``) read again and again -- a web page, a notebook polling a
value -- otherwise rebuilds a whole-dataset ``blosc2`` array around its chunk and decodes the
blocks it needs on every request (about 0.6 ms of the 1 ms such a read costs in process).
Here the chunk is decoded into numpy the first time (its blocks in C order, padding
included) and the selection is a numpy view of it.  Chunks are immutable (the key is their
hash), so nothing is ever invalidated; the cache only forgets, least recently used first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

import blosc2
import numpy as np

from catclient import wire

__all__ = ["MAX_CHUNK_BYTES", "MAX_SELECTION_BYTES", "DecodedChunks", "single_chunk"]

#: Largest selection answered from a decoded chunk (bytes): tiny reads only; the rest take
#: the usual path (blocks decoded as needed, nothing kept)
MAX_SELECTION_BYTES = 64 << 10
#: Largest chunk kept decoded (bytes, uncompressed)
MAX_CHUNK_BYTES = 8 << 20


def single_chunk(geo: wire.Geometry, key: tuple) -> tuple[int, tuple] | None:
    """``(nchunk, key within that chunk)`` when *key* (ints and unit-step slices) lies in one
    chunk of an n-d array, else None.
    """
    shape, chunks = tuple(geo.shape), tuple(geo.chunks)
    if not shape or len(key) > len(shape) or any(not isinstance(k, int | slice) for k in key):
        return None
    full, _ = wire.normalize_key(key, shape)
    coords, local = [], []
    for entry, n in zip(full, chunks, strict=True):
        if isinstance(entry, slice):
            if entry.step != 1 or entry.stop <= entry.start:
                return None
            first, last = entry.start // n, (entry.stop - 1) // n
            if first != last:
                return None
            coords.append(first)
            local.append(slice(entry.start - first * n, entry.stop - first * n))
        else:
            coords.append(entry // n)
            local.append(entry - (entry // n) * n)
    grid = [-(-s // c) for s, c in zip(shape, chunks, strict=True)]
    return int(np.ravel_multi_index(coords, grid)), tuple(local)


class DecodedChunks:
    """Decompressed chunks as numpy arrays of their chunk shape, at most *max_bytes* of them.

    Parameters
    ----------
    max_bytes : int
        Bytes of decoded chunks kept (0: none; every read then decodes its chunk anew).

    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._held: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, digest: str, geo: wire.Geometry, load: Callable[[], bytes]) -> np.ndarray:
        """The chunk *digest* of an array of geometry *geo* decoded (*load* gives its bytes)."""
        with self._lock:
            found = self._held.get(digest)
            if found is not None:
                self._held.move_to_end(digest)
                return found
        decoded = _decode(geo, load())
        decoded.flags.writeable = False  # shared between requests
        if self.max_bytes and decoded.nbytes <= min(MAX_CHUNK_BYTES, self.max_bytes):
            with self._lock:
                if digest not in self._held:
                    self._held[digest] = decoded
                    self._bytes += decoded.nbytes
                while self._bytes > self.max_bytes:
                    _, old = self._held.popitem(last=False)
                    self._bytes -= old.nbytes
        return decoded


def _decode(geo: wire.Geometry, chunk: bytes) -> np.ndarray:
    """One chunk as a C-order array of the chunk's shape (a b2nd chunk is stored block by block)."""
    one = blosc2.uninit(
        tuple(geo.chunks),
        dtype=wire.dtype_from_str(geo.dtype),
        chunks=tuple(geo.chunks),
        blocks=tuple(geo.blocks),
    )
    one.schunk.update_chunk(0, chunk)
    return np.asarray(one[()])
