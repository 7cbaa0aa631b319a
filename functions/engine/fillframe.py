"""The kept frame of a laid-out array as chunk writes fill it, moved as blosc2 moves a frame file.

A laid-out array (a ``blosc2.uninit`` frame, uploaded) keeps its frame's exact bytes
(:mod:`functions.engine.frames`): the header, no chunk bytes, the offsets chunk (every
slot *uninitialised*) and the trailer.  blosc2, writing chunk *n* of such a file in
place, appends the chunk after the chunks stored so far, writes the offsets chunk
again after it with slot *n* pointing at the new chunk, and moves two header fields,
the frame's length and its compressed size; the trailer is left as it was.  A chunk
of zeros or NaNs stores no bytes at all: its offset says what it is.

:func:`with_written` does the same to the pieces of a kept frame, so the frame a
reader sees over byte ranges (``C2Array.written_chunks()``, ``blosc2.Proxy``) tells
which slots a fill has reached, as the reference server's file does -- without a
chunk read or a frame assembled.  Only the header and the tail (offsets chunk and
trailer) are rewritten, and they are kept inline in the manifest: about 11 bytes per
chunk of offsets, beside the ~100 bytes per chunk the manifest's refs already take.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

import blosc2
import numpy as np

from functions.engine import validation
from functions.engine.frames import _CBYTES, _FRAME_LEN, _HEADER_LEN, FrameLayout
from functions.engine.model import ChunkRef

__all__ = ["with_written"]

#: Specials a frame keeps in a slot's offset instead of in its bytes: the flag bit and
#: the special's code in the offset's top byte (c-blosc2's frame.c)
_IN_OFFSET = (validation.SPECIAL_ZERO, validation.SPECIAL_NAN, validation.SPECIAL_UNINIT)


def _offset_of_special(special: int) -> int:
    return int(np.int64(np.uint64((0x80 | special) << 56).view(np.int64)))


def _cut(frame: FrameLayout, start: int, stop: int) -> bytes | None:
    """Bytes ``start:stop`` of *frame*, when inline pieces hold them all."""
    out = []
    for i, lo, hi in frame.overlapping(start, stop):
        piece = frame.pieces[i]
        if piece.inline is None:
            return None  # a stored object: not read here (the frame is then not kept)
        out.append(piece.inline[lo:hi])
    data = b"".join(out)
    return data if len(data) == stop - start else None


def _between(frame: FrameLayout, start: int, stop: int) -> list[ChunkRef] | None:
    """The pieces of *frame* within ``start:stop`` (inline ones cut to it), in order."""
    out = []
    for i, lo, hi in frame.overlapping(start, stop):
        piece = frame.pieces[i]
        if lo == 0 and hi == piece.size:
            out.append(piece)
        elif piece.inline is not None:
            out.append(ChunkRef(size=hi - lo, inline=piece.inline[lo:hi]))
        else:
            return None
    return out


def _offsets_chunk(offsets: np.ndarray) -> bytes:
    # Any valid chunk of int64 reads back: blosc2 decompresses it by its own header
    return blosc2.compress2(offsets.astype("<i8").tobytes(), typesize=8, clevel=5, codec=blosc2.Codec.ZSTD)


def _special(ref: ChunkRef) -> int:
    """The special kind of a written chunk (specials are a header only, so their refs are inline)."""
    if ref.inline is None:
        return validation.SPECIAL_NONE
    try:
        return validation.chunk_header(ref.inline).special
    except ValueError:
        return validation.SPECIAL_NONE


def with_written(
    frame: FrameLayout | None, nchunks: int, updates: Mapping[int, ChunkRef]
) -> FrameLayout | None:
    """*frame* after chunks *updates* (slot -> ref) were written into it, or None if it can't say.

    Parameters
    ----------
    frame : FrameLayout or None
        The array's kept frame before the writes (None: nothing to move).
    nchunks : int
        The array's number of chunks (the offsets chunk holds that many).
    updates : mapping
        The slots written, each to the ref of its chunk.

    Returns
    -------
    FrameLayout or None
        None when the frame's header or tail is not inline or not a frame blosc2
        writes (the array then serves no ranges, as any rebuilt answer).
    """
    if frame is None or not frame.pieces:
        return None
    try:
        head = _cut(frame, 0, 64)
        if head is None or head[2:10] != b"b2frame\x00":
            return None
        header_len = struct.unpack(">i", head[_HEADER_LEN])[0]
        cbytes = struct.unpack(">q", head[_CBYTES])[0]
        header = _cut(frame, 0, header_len)
        index_pos = header_len + cbytes
        index_head = _cut(frame, index_pos, index_pos + 16)
        if header is None or index_head is None:
            return None
        index_len = struct.unpack("<i", index_head[12:16])[0]
        index = _cut(frame, index_pos, index_pos + index_len)
        trailer = _cut(frame, index_pos + index_len, frame.size)
        stored = _between(frame, header_len, index_pos)
        if index is None or trailer is None or stored is None:
            return None
        offsets = np.frombuffer(blosc2.decompress2(index), np.int64).copy()
    except (RuntimeError, ValueError, struct.error):
        return None
    if len(offsets) != nchunks:
        return None
    appended = []
    for n in sorted(updates):
        ref = updates[n]
        special = _special(ref)
        if special in _IN_OFFSET:
            offsets[n] = _offset_of_special(special)
            continue
        offsets[n] = cbytes
        cbytes += ref.size
        appended.append(ref)
    tail = _offsets_chunk(offsets) + trailer
    size = header_len + cbytes + len(tail)
    header = bytearray(header)
    header[_FRAME_LEN] = struct.pack(">Q", size)
    header[_CBYTES] = struct.pack(">q", cbytes)
    pieces = (
        ChunkRef(size=header_len, inline=bytes(header)),
        *stored,
        *appended,
        ChunkRef(len(tail), inline=tail),
    )
    return FrameLayout(tuple(pieces))
