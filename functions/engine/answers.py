"""How big an answer may be, and answers too big to buffer, made one chunk at a time.

One rule for every data route (``/api/fetch``, ``/api/download``, ``/api/chunk``): an
answer up to ``buffered`` bytes is sent as one body; a bigger one is streamed, up to
``streamed`` bytes, where the process can stream (a Lambda behind a streaming
integration returns up to 200 MB; a buffered Lambda only ~6 MB, ~4.5 MB of binary after
base64); anything bigger is refused with 413 and a hint. ``streamed = 0`` means this
process cannot stream.

A Blosc2 frame cannot be written to a socket as it is made: its header holds its length
and its chunk offsets trail it. So a streamed frame is assembled with blosc2 into a
temporary file, one stored chunk at a time (memory: a few chunks, never the answer), and
the file is sent in pieces and removed. A plain file needs no frame: its chunks are
decompressed and sent one by one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import blosc2

from catclient import wire
from catclient.wire import human_bytes
from functions.engine.errors import TooLarge

__all__ = ["AnswerLimits", "Stream", "frame_file", "array_file", "plain_chunks"]

#: Bytes read from the temporary file per piece sent (a socket write, not a chunk)
PIECE = 1 << 20
#: Bytes a frame holds besides its chunks (header, offsets, metalayers, vlmeta), bounded
#: generously: a size decision made before the frame exists adds this to the chunks' bytes
FRAME_SLACK = 64 << 10
#: Stored chunks fetched at once while a frame is assembled: their bytes are what a
#: streamed answer holds in memory (e.g. 4 x 6.7 MB), and they are fetched in parallel
WINDOW = 4


@dataclass(frozen=True)
class AnswerLimits:
    """The size rule of data answers.

    Attributes
    ----------
    buffered : int
        Largest answer sent as one body, bytes (0 = unbounded, nothing is streamed).
    streamed : int
        Largest streamed answer, bytes (0 = this process cannot stream).
    """

    buffered: int = 0
    streamed: int = 0

    def admit(self, nbytes: int, what: str, hint: str) -> bool:
        """Whether an answer of *nbytes* must be streamed; raises :class:`TooLarge` if it cannot be sent.

        Parameters
        ----------
        nbytes : int
            The answer's size (exact, or a bound known before it is made).
        what : str
            What the answer is, for the message ("the dataset", a path).
        hint : str
            What to do instead, ending the message.
        """
        if not self.buffered or nbytes <= self.buffered:
            return False
        if self.streamed and nbytes <= self.streamed:
            return True
        limit = max(self.buffered, self.streamed)
        kind = "streamed " if self.streamed else ""
        raise TooLarge(
            f"{what} is {human_bytes(nbytes)}, over this server's {kind}response limit of "
            f"{human_bytes(limit)}: {hint}"
        )


class Stream:
    """An answer to send in pieces: an iterator of bytes with a known length.

    Parameters
    ----------
    pieces : iterable of bytes
        The body; consumed once.
    length : int
        Its total size (sent as ``Content-Length``).
    cleanup : callable, optional
        Called once when the body was sent, abandoned or closed (removes a temporary file).
    """

    def __init__(self, pieces: Iterable[bytes], length: int, cleanup: Callable[[], None] | None = None):
        self._pieces = pieces
        self.length = length
        self._cleanup = cleanup

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._pieces
        finally:
            self.close()

    def close(self) -> None:
        """Release what the stream holds (idempotent)."""
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup()


def _file_stream(path: str) -> Stream:
    def pieces() -> Iterator[bytes]:
        with open(path, "rb") as f:
            while piece := f.read(PIECE):
                yield piece

    def remove() -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    return Stream(pieces(), os.path.getsize(path), remove)


def _temp_path(tmpdir: str | None) -> str:
    fd, path = tempfile.mkstemp(prefix="cat-answer-", suffix=".b2frame", dir=tmpdir)
    os.close(fd)
    os.unlink(path)  # blosc2 creates the file itself
    return path


def _windows(nchunks: int, fetch: Callable[[list[int]], dict[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    for start in range(0, nchunks, WINDOW):
        batch = fetch(list(range(start, min(start + WINDOW, nchunks))))
        for i in sorted(batch):
            yield i, batch[i]


def frame_file(
    geo: wire.Geometry, fetch: Callable[[list[int]], dict[int, bytes]], *, tmpdir: str | None = None
) -> Stream:
    """The stored dataset *geo* as the frame a buffered answer would hold, streamed from a file.

    Parameters
    ----------
    geo : Geometry
        An n-d array or SChunk (its chunks are put in place without recompression).
    fetch : callable
        ``fetch(indices) -> {nchunk: bytes}`` of stored chunks; called a window at a time.
    tmpdir : str, optional
        Where the temporary file goes (default: the system's, ``/tmp`` on Lambda).
    """
    path = _temp_path(tmpdir)
    try:
        chunks = _windows(geo.nchunks, fetch)
        if geo.kind == "ndarray":
            wire.assemble_ndarray(geo, chunks, urlpath=path)
        else:
            wire.assemble_schunk(geo, (data for _, data in chunks), urlpath=path)
    except BaseException:
        if os.path.exists(path):
            os.unlink(path)
        raise
    return _file_stream(path)


def array_file(frame_of: Callable[[str], None], *, tmpdir: str | None = None) -> Stream:
    """A frame written by ``frame_of(urlpath)`` (e.g. a selection compressed to a file), streamed."""
    path = _temp_path(tmpdir)
    try:
        frame_of(path)
    except BaseException:
        if os.path.exists(path):
            os.unlink(path)
        raise
    return _file_stream(path)


def plain_chunks(nbytes: int, nchunks: int, fetch: Callable[[list[int]], dict[int, bytes]]) -> Stream:
    """A plain file's bytes, decompressed and sent chunk by chunk (no frame, no temporary file).

    Parameters
    ----------
    nbytes : int
        The file's size.
    nchunks : int
        Its number of chunks.
    fetch : callable
        ``fetch(indices) -> {nchunk: bytes}`` of stored chunks.
    """
    return Stream((blosc2.decompress2(data) for _, data in _windows(nchunks, fetch)), nbytes)
