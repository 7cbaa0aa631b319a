"""Exact frames and byte ranges of them (RFC 9110 section 14), sent a few pieces at a time.

A dataset whose frame was kept (:mod:`functions.engine.frames`) is served as that frame:
``/api/fetch`` of the whole dataset and ``/api/download`` send the bytes that were
uploaded or published, and ``/api/fetch`` with a ``Range`` answers 206 with only the
bytes asked for (``multipart/byteranges`` for several ranges).  A range maps to the
pieces it overlaps: no frame is assembled, and memory holds :data:`WINDOW` pieces
(stored chunks) at a time, whatever the frame's size.  Everything else -- slices, lazy
results, rebuilt frames, plain files -- is made per request, serves no ranges, and
says so (``Accept-Ranges: none``; a ``Range`` is refused with 416).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from functions.engine.answers import WINDOW, AnswerLimits, Stream
from functions.engine.errors import RangeNotSatisfiable
from functions.engine.frames import FrameLayout
from functions.engine.model import Manifest

__all__ = [
    "MAX_RANGES",
    "Answer",
    "etag_of",
    "exact_answer",
    "frame_answer",
    "parse_ranges",
    "refuse_ranges",
    "validator_of",
]

#: Ranges one request may name; blosc2's C2Array sends up to 64 in one header
MAX_RANGES = 256
#: Media type of a frame answer
OCTETS = "application/octet-stream"
_SPEC = re.compile(r"^\s*(\d*)\s*-\s*(\d*)\s*$")

#: ``fetch(digests) -> {digest: bytes}`` of stored objects
Fetch = Callable[[list[str]], dict[str, bytes]]


@dataclass(frozen=True)
class Answer:
    """A data answer with its status and the headers that say what it is."""

    body: bytes | Stream
    status: int = 200
    media_type: str = OCTETS
    headers: dict[str, str] = field(default_factory=dict)


def etag_of(m: Manifest) -> str | None:
    """The strong validator of a kept frame (None without one): equal for equal bytes.

    The content hash covers the frame's pieces (and everything else a reader sees), so
    it is the same in every region and every request, and another version has another.
    """
    return None if m.content.frame is None else validator_of(m)


def refuse_ranges(what: str) -> RangeNotSatisfiable:
    """The 416 of an answer made per request (*what* says which), with ``Accept-Ranges: none``."""
    return RangeNotSatisfiable(
        f"{what} is made per request and serves no byte ranges; ask without a Range header "
        "(byte ranges are served by /api/fetch of a stored dataset, whose api/info says "
        '"accept_ranges": "bytes")'
    )


def parse_ranges(header: str, size: int) -> list[tuple[int, int]]:
    """``bytes=...`` as ``(start, stop)`` pairs within a frame of *size* bytes, in the order asked.

    Raises
    ------
    RangeNotSatisfiable
        A unit other than bytes, a malformed spec, more than :data:`MAX_RANGES`, or no
        range that overlaps the frame (those that do not are dropped, as RFC 9110 says).
    """
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        message = f"only byte ranges are served (Range: bytes=...), not {header[:40]!r}"
        raise RangeNotSatisfiable(message, size)
    items = specs.split(",")
    if len(items) > MAX_RANGES:
        raise RangeNotSatisfiable(f"{len(items)} ranges in one request; at most {MAX_RANGES}", size)
    out = []
    for item in items:
        match = _SPEC.match(item)
        if not match or match.groups() == ("", ""):
            raise RangeNotSatisfiable(f"malformed byte range {item.strip()[:40]!r}", size)
        first, last = match.groups()
        if not first:  # a suffix: the last N bytes
            start, stop = max(0, size - int(last)), size
        else:
            start = int(first)
            stop = min(size, int(last) + 1) if last else size
            if last and int(last) < start:
                raise RangeNotSatisfiable(f"byte range {item.strip()!r} ends before it starts", size)
        if start < stop:
            out.append((start, stop))
    if not out:
        raise RangeNotSatisfiable(f"no range of {header[:60]!r} overlaps the {size} bytes of the frame", size)
    return out


def _slices(frame: FrameLayout, spans: list[tuple[int, int]], fetch: Fetch) -> Iterator[bytes]:
    """The bytes of *spans*, a window of stored pieces fetched at a time."""
    wanted = [(i, lo, hi) for start, stop in spans for i, lo, hi in frame.overlapping(start, stop)]
    for at in range(0, len(wanted), WINDOW):
        window = wanted[at : at + WINDOW]
        got = fetch([frame.pieces[i].digest for i, _, _ in window if frame.pieces[i].digest])
        for i, lo, hi in window:
            piece = frame.pieces[i]
            data = piece.inline if piece.inline is not None else got[piece.digest]
            yield data[lo:hi]


def _body(pieces: Iterator[bytes], length: int, streamed: bool) -> bytes | Stream:
    return Stream(pieces, length) if streamed else b"".join(pieces)


def _multipart(frame: FrameLayout, spans, fetch: Fetch, boundary: str) -> tuple[list, int, Callable]:
    """Parts of a ``multipart/byteranges`` body, its length, and a maker of its pieces."""
    heads = [
        (
            f"--{boundary}\r\nContent-Type: {OCTETS}\r\n"
            f"Content-Range: bytes {start}-{stop - 1}/{frame.size}\r\n\r\n"
        ).encode()
        for start, stop in spans
    ]
    tail = f"--{boundary}--\r\n".encode()
    parts = zip(heads, spans, strict=True)
    length = sum(len(h) + (stop - start) + 2 for h, (start, stop) in parts) + len(tail)  # 2: CRLF

    def pieces() -> Iterator[bytes]:
        for head, span in zip(heads, spans, strict=True):
            yield head
            yield from _slices(frame, [span], fetch)
            yield b"\r\n"
        yield tail

    return heads, length, pieces


def validator_of(m: Manifest) -> str:
    """A strong validator of *m*'s bytes whether or not it keeps a frame (a container's, for
    the windows of its members): equal in every region for one version.
    """
    return f'"{m.content.content_hash[:32]}"'


def exact_answer(
    m: Manifest,
    range_header: str | None,
    if_range: str | None,
    fetch: Fetch,
    limits: AnswerLimits,
    hint: str,
) -> Answer:
    """The kept frame of *m*, whole (200) or the ranges asked for (206).

    Parameters
    ----------
    m : Manifest
        A dataset with a kept frame (``m.content.frame``).
    range_header, if_range : str or None
        The request's ``Range`` and ``If-Range``: a range is served only while
        ``If-Range`` (when given) is this frame's ETag; otherwise the whole frame.
    fetch : callable
        Stored objects by digest.
    limits : AnswerLimits
        The size rule of answers; a body past it is streamed, or refused (413).
    hint : str
        What to do instead of an answer too big to send.
    """
    return frame_answer(m.content.frame, etag_of(m), m.path, range_header, if_range, fetch, limits, hint)


def frame_answer(
    frame: FrameLayout,
    etag: str,
    path: str,
    range_header: str | None,
    if_range: str | None,
    fetch: Fetch,
    limits: AnswerLimits,
    hint: str,
) -> Answer:
    """:func:`exact_answer` of any bytes laid out as *frame* (a kept frame, or a member's window
    in its container), with validator *etag*; *path* names it in refusals.
    """
    headers = {"Accept-Ranges": "bytes", "ETag": etag}
    if range_header and (if_range is None or if_range.strip() == etag):
        spans = parse_ranges(range_header, frame.size)
        if len(spans) == 1:
            (start, stop), length = spans[0], spans[0][1] - spans[0][0]
            streamed = limits.admit(length, f"bytes {start}-{stop - 1} of {path}", hint)
            headers["Content-Range"] = f"bytes {start}-{stop - 1}/{frame.size}"
            return Answer(_body(_slices(frame, spans, fetch), length, streamed), 206, OCTETS, headers)
        boundary = secrets.token_hex(16)
        _, length, pieces = _multipart(frame, spans, fetch, boundary)
        streamed = limits.admit(length, f"{len(spans)} ranges of {path}", hint)
        media = f"multipart/byteranges; boundary={boundary}"
        return Answer(_body(pieces(), length, streamed), 206, media, headers)
    streamed = limits.admit(frame.size, path, hint)
    return Answer(_body(_slices(frame, [(0, frame.size)], fetch), frame.size, streamed), 200, OCTETS, headers)
