"""A stored plain file (an uploaded ``.h5``) as a seekable binary file object, read chunk by chunk.

h5py opens any object with ``read``/``readinto``/``seek``/``tell``; this one
fetches only the 1 MiB chunks HDF5 touches and keeps a few decompressed, so
unfolding a stored file needs neither all its bytes in memory nor a local copy.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable, Iterable

import blosc2

#: Decompressed chunks kept (1 MiB each for plain files): HDF5 revisits its
#: B-tree and heap blocks near the start of the file while it reads data.
KEEP_CHUNKS = 16
#: Chunks fetched at once when reading forward (parallel GETs).
READ_AHEAD = 4


class StoredFile(io.RawIOBase):
    """Read-only, seekable view of a stored plain file.

    Parameters
    ----------
    size : int
        The file's length, bytes.
    chunksize : int
        Bytes per stored chunk (all but the last are full).
    fetch : callable
        ``fetch(indices) -> {index: compressed chunk bytes}``.

    """

    def __init__(self, size: int, chunksize: int, fetch: Callable[[Iterable[int]], dict[int, bytes]]) -> None:
        super().__init__()
        self.size, self.chunksize, self._fetch = size, chunksize, fetch
        self._pos = 0
        self._kept: OrderedDict[int, bytes] = OrderedDict()
        self.fetched = 0  # chunks fetched so far (tests and logs)

    def readable(self) -> bool:  # noqa: D102
        return True

    def seekable(self) -> bool:  # noqa: D102
        return True

    def tell(self) -> int:  # noqa: D102
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:  # noqa: D102
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _chunk(self, i: int) -> bytes:
        if i in self._kept:
            self._kept.move_to_end(i)
            return self._kept[i]
        last = (self.size - 1) // self.chunksize
        wanted = [j for j in range(i, min(i + READ_AHEAD, last + 1)) if j not in self._kept]
        for j, data in sorted(self._fetch(wanted).items()):
            self._kept[j] = blosc2.decompress2(data)
            self.fetched += 1
        while len(self._kept) > KEEP_CHUNKS:
            self._kept.popitem(last=False)
        return self._kept[i]

    def readinto(self, buffer) -> int:  # noqa: D102
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self.size:
            i, offset = divmod(self._pos, self.chunksize)
            data = self._chunk(i)
            n = min(len(view) - done, len(data) - offset)
            view[done : done + n] = data[offset : offset + n]
            done += n
            self._pos += n
        return done
