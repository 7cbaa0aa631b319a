"""Size limits of a read, checked before anything is fetched: the answer, the work, the box.

Used by the selection pipeline (:mod:`catclient.wire.selection`) on both sides: the
server refuses what it could not send or should not decompress, a client what it
could not hold.
"""

from __future__ import annotations

from dataclasses import dataclass

from catclient.wire.units import human_bytes

#: Largest selection one read assembles in memory (bytes, uncompressed).  A
#: Lambda has at most 10 GB; beyond this the answer could not be sent anyway.
MAX_SELECTION_BYTES = 1 << 30

class SelectionTooLarge(ValueError):
    """A selection, or its answer, exceeds a size bound; the message says what to do instead.

    Parameters
    ----------
    message : str
        What was too large, the bound, and the caller's hint.
    nbytes : int
        The size found (or estimated).
    limit : int
        The bound it exceeds.

    """

    def __init__(self, message: str, *, nbytes: int, limit: int) -> None:
        super().__init__(message)
        self.nbytes = nbytes
        self.limit = limit


@dataclass(frozen=True)
class Limits:
    """Size bounds of one read (None or 0: unbounded).

    Attributes
    ----------
    response : int or None
        Bytes the framed (compressed) answer may have, e.g. what a Lambda can return.
    box : int or None
        Uncompressed bytes one read may assemble in memory (its bounding box).
    hint : str
        What to do instead, ending every refusal's message.
    name : str
        What a whole dataset is called in messages (e.g. its path).
    estimate_factor : float
        Before fetching, refuse selections whose estimated compressed size is
        over this many times ``response`` (the exact check comes after framing).
    work : int or None
        Decompressed bytes one read may *touch*: the full size of every chunk it
        must decompress, however little of each it returns (special chunks,
        which are filled rather than decompressed, count nothing).
    work_hint : str
        What to do instead when ``work`` is exceeded.

    """

    response: int | None = None
    box: int | None = MAX_SELECTION_BYTES
    hint: str = "ask for a smaller slice, or read chunk-wise"
    name: str = "the dataset"
    estimate_factor: float = 2.0
    work: int | None = None
    work_hint: str = "ask for smaller slices, or read chunk-wise"

    def check_response(self, nbytes: float, what: str) -> None:
        """Raise :class:`SelectionTooLarge` if *nbytes* is over the response limit."""
        if self.response and nbytes > self.response:
            raise SelectionTooLarge(
                f"{what} is {human_bytes(int(nbytes))}, over this server's response limit of "
                f"{human_bytes(self.response)}: {self.hint}",
                nbytes=int(nbytes),
                limit=self.response,
            )

    def check_work(self, nbytes: int, nchunks: int) -> None:
        """Raise :class:`SelectionTooLarge` if decompressing *nbytes* (*nchunks* chunks) is over ``work``."""
        if self.work and nbytes > self.work:
            raise SelectionTooLarge(
                f"this read would decompress {human_bytes(nbytes)} ({nchunks} chunk(s) touched), over the "
                f"{human_bytes(self.work)} one request may decompress: {self.work_hint}",
                nbytes=nbytes,
                limit=self.work,
            )

    def check_box(self, nbytes: int) -> None:
        """Raise :class:`SelectionTooLarge` if *nbytes* is more than one read may assemble."""
        if self.box and nbytes > self.box:
            raise SelectionTooLarge(
                f"the selection spans {human_bytes(nbytes)}, over the {human_bytes(self.box)} "
                f"one read may assemble: {self.hint}",
                nbytes=nbytes,
                limit=self.box,
            )
