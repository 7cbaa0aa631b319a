"""A stored frame's exact bytes, kept as pieces: the chunks it shares with the manifest, and the rest.

A ``.b2nd``/``.b2frame`` upload or publish is split, once, into the byte runs of its
contiguous frame (c-blosc2's ``README_CFRAME_FORMAT.rst``): every chunk the frame
stores, and the runs between them -- the header (with the metalayers), any hole an
updated chunk left, and the tail (the offsets chunk and the trailer with the
vlmeta).  A chunk run is the chunk object the manifest already references (the same
bytes, the same content address); a short non-chunk run is kept inline, a long one
as an object of its own.  Laid end to end the pieces *are* the uploaded file, so a
download sends exactly what was uploaded, and a byte range maps to the few pieces it
overlaps without assembling the frame (:mod:`functions.engine.ranges`).

Nothing here is trusted for reading data: chunk data is read through the manifest's
refs as before.  The pieces only say which bytes a download and a range read send.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import blosc2
import numpy as np

from functions.engine.model import ChunkRef, Manifest, dumps

#: Non-chunk runs up to this many bytes are kept inline in the manifest (base64):
#: a header, an offsets chunk of a few thousand chunks and a small trailer cost no
#: extra GET; longer runs (a big vlmeta, a hole) are objects of their own
INLINE_RUN_MAX = 16 << 10

_MAGIC = b"b2frame\x00"
#: Byte positions of the fixed-width msgpack fields of a frame header (the format's table)
_HEADER_LEN = slice(11, 15)  # int32, after the 0xd2 marker at 10
_FRAME_LEN = slice(16, 24)  # uint64, after the 0xcf marker at 15
_CBYTES = slice(39, 47)  # int64, after the 0xd3 marker at 38
_MARKERS = {10: 0xD2, 15: 0xCF, 38: 0xD3}
#: A Blosc2 chunk header: its compressed size is the int32 at bytes 12..16
_CHUNK_CBYTES = slice(12, 16)
_CHUNK_HEADER = 32


@dataclass(frozen=True)
class FrameLayout:
    """A frame as the pieces that, laid end to end, are its exact bytes.

    Attributes
    ----------
    pieces : tuple of ChunkRef
        In file order: inline runs and stored objects (chunks or long runs).
    """

    pieces: tuple[ChunkRef, ...]
    _starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts, at = [], 0
        for piece in self.pieces:
            starts.append(at)
            at += piece.size
        object.__setattr__(self, "_starts", tuple(starts))

    @property
    def size(self) -> int:
        """The frame's length, bytes."""
        return (self._starts[-1] + self.pieces[-1].size) if self.pieces else 0

    @property
    def identity(self) -> str:
        """A hash of the exact bytes' makeup: equal for equal frames (the strong validator)."""
        body = dumps([p.identity for p in self.pieces])
        return hashlib.blake2b(body, digest_size=16).hexdigest()

    @property
    def digests(self) -> set[str]:
        """The objects the pieces reference (for uploads and garbage collection)."""
        return {p.digest for p in self.pieces if p.digest}

    def overlapping(self, start: int, stop: int) -> list[tuple[int, int, int]]:
        """The pieces bytes ``start:stop`` overlap, as ``(piece index, from, to)`` within each piece."""
        out = []
        i = max(0, bisect_right(self._starts, start) - 1)
        while i < len(self.pieces) and self._starts[i] < stop:
            base = self._starts[i]
            lo, hi = max(start, base) - base, min(stop, base + self.pieces[i].size) - base
            if hi > lo:
                out.append((i, lo, hi))
            i += 1
        return out

    def to_json(self) -> dict:
        """Compact JSON form (a manifest's optional ``frame`` field)."""
        return {"size": self.size, "pieces": [p.to_json() for p in self.pieces]}

    @classmethod
    def from_json(cls, d: Mapping) -> FrameLayout:
        """Inverse of :meth:`to_json`; raises ``ValueError`` when the pieces do not add up."""
        layout = cls(tuple(ChunkRef.from_json(p) for p in d["pieces"]))
        if layout.size != int(d["size"]):
            raise ValueError(f"frame pieces add up to {layout.size} bytes, not {d['size']}")
        return layout


@dataclass(frozen=True)
class Split:
    """A frame's layout plus the bytes of the objects it references, by digest (for the upload)."""

    layout: FrameLayout
    blobs: dict[str, bytes]


def _int(buf, where: slice, fmt: str) -> int:
    return struct.unpack(fmt, bytes(buf[where]))[0]


def _offsets(buf, nchunks: int) -> tuple[int, int, np.ndarray] | None:
    """``(header_len, index_pos, offsets)`` of the frame *buf*, or None if it is not one."""
    n = len(buf)
    if n < 64 or bytes(buf[2:10]) != _MAGIC or any(buf[i] != m for i, m in _MARKERS.items()):
        return None
    header_len = _int(buf, _HEADER_LEN, ">i")
    if _int(buf, _FRAME_LEN, ">Q") != n or not 0 < header_len <= n:
        return None
    if nchunks == 0:  # no chunks, no offsets chunk: what follows the header is the trailer
        return header_len, header_len, np.empty(0, np.int64)
    index_pos = header_len + _int(buf, _CBYTES, ">q")
    if not header_len <= index_pos <= n - _CHUNK_HEADER:
        return None
    index_cbytes = _int(buf, slice(index_pos + 12, index_pos + 16), "<i")
    if not _CHUNK_HEADER <= index_cbytes <= n - index_pos:
        return None
    offsets = np.frombuffer(blosc2.decompress2(bytes(buf[index_pos : index_pos + index_cbytes])), np.int64)
    return (header_len, index_pos, offsets[:nchunks]) if len(offsets) >= nchunks else None


def _chunk_spans(buf, nchunks: int) -> list[tuple[int, int, int]] | None:
    """``(start, stop, nchunk)`` of every chunk the frame *buf* stores, sorted; None if not a frame."""
    found = _offsets(buf, nchunks)
    if found is None:
        return None
    header_len, index_pos, offsets = found
    spans: dict[int, tuple[int, int, int]] = {}
    for i, off in enumerate(offsets.tolist()):
        if off < 0:  # a special chunk encoded in the offsets: no bytes of its own
            continue
        start = header_len + int(off)
        if start + _CHUNK_HEADER > index_pos:
            return None
        stop = start + _int(buf, slice(start + 12, start + 16), "<i")
        if not start + _CHUNK_HEADER <= stop <= index_pos:
            return None
        if spans.setdefault(start, (start, stop, i))[1] != stop:  # two chunks at one place, unequal
            return None
    ordered = sorted(spans.values())
    if any(b[0] < a[1] for a, b in zip(ordered, ordered[1:], strict=False)):
        return None  # chunks that overlap without being the same: not a frame blosc2 writes
    return ordered


def _run(data: bytes, blobs: dict[str, bytes]) -> ChunkRef:
    if len(data) <= INLINE_RUN_MAX:
        return ChunkRef(size=len(data), inline=data)
    ref = ChunkRef.of(data)
    blobs.setdefault(ref.digest, data)
    return ref


def _chunk_piece(data: bytes, loaded: bytes | None, ref: ChunkRef, blobs: dict[str, bytes]) -> ChunkRef:
    if loaded is not None and ref.size == len(data) and loaded == data:
        return ref  # the manifest's own chunk: its object holds these bytes already
    # Not the bytes the manifest stores for this chunk (equal data stored once, or
    # the previous version's object kept): the frame's own bytes, by their hash
    ref = ChunkRef.of(data)
    if ref.digest:
        blobs.setdefault(ref.digest, data)
    return ref


def split_frame(buf, chunks: Sequence[bytes], refs: Sequence[ChunkRef]) -> Split | None:
    """The pieces of the contiguous frame *buf*, or None when it cannot be split exactly.

    Parameters
    ----------
    buf : bytes, memoryview or mmap
        The whole frame, as uploaded or as the published file holds it.
    chunks, refs : sequences
        The loaded chunks and their manifest references: a frame run equal to a loaded
        chunk is that chunk's object (one copy stored for both); *blobs* of the answer
        holds only the bytes of objects besides those.
    """
    try:
        spans = _chunk_spans(buf, len(refs))
    except (RuntimeError, ValueError, struct.error):  # an offsets chunk blosc2 cannot decompress
        return None
    if spans is None:
        return None
    pieces: list[ChunkRef] = []
    blobs: dict[str, bytes] = {}
    at = 0
    for start, stop, i in spans:
        if start > at:
            pieces.append(_run(bytes(buf[at:start]), blobs))
        pieces.append(_chunk_piece(bytes(buf[start:stop]), chunks[i], refs[i], blobs))
        at = stop
    if at < len(buf):
        pieces.append(_run(bytes(buf[at:]), blobs))
    return Split(FrameLayout(tuple(pieces)), blobs)


def split_file(path: Path, chunks: Sequence[bytes], refs: Sequence[ChunkRef]) -> Split | None:
    """:func:`split_frame` of a local frame file, mapped rather than read whole."""
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return None
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return split_frame(buf, chunks, refs)


def referenced(manifest: Manifest) -> set[str]:
    """Objects a manifest references: its chunks' and its kept frame's pieces'."""
    frame = manifest.content.frame
    return {r.digest for r in manifest.refs if r.digest} | (frame.digests if frame else set())
