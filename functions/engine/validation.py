"""Checking a Blosc2 frame at the door, before a byte of it is decompressed.

Every door that stores a frame (API upload, ingest drop, ``cat-publish``) loads
it through :mod:`functions.engine.content`, which calls these checks first:

1. :func:`check_frame_header` reads the sizes a cframe's own header claims
   (before blosc2 even opens it): a frame that claims more decompressed bytes
   or chunks than allowed is refused (413) without being opened;
2. :func:`check_layout` checks that the metalayers agree with the super-chunk:
   shape, chunks, blocks and dtype give the chunk count and chunk size the
   frame has (400 otherwise);
3. :func:`check_chunks` parses every chunk's header (its first 32 bytes) and
   checks its sizes against the layout and the limits (per chunk and per
   upload, decompressed), so a decompression bomb is refused from headers alone.

Special chunks (zeros, NaNs, a repeated value, uninitialised) are recognised
from their header: they hold no data and never need decompressing.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import blosc2

from catclient.wire import cparams_from_dict, dtype_from_str, human_bytes
from functions.engine.errors import FrameTooLarge, InvalidFrame, NotBlosc2

#: Decompressed bytes one chunk may hold (a chunk is decompressed whole to be read or hashed)
DEFAULT_MAX_CHUNK_NBYTES = 256 << 20
#: Decompressed bytes of one upload, ingest drop or published file
DEFAULT_MAX_UPLOAD_NBYTES = 2 << 30
#: Chunks one dataset may have: its manifest lists every one (about 100 bytes of JSON each)
MAX_NCHUNKS = 1 << 20

#: Blosc2 special chunk kinds (bits 4-6 of header byte 31 in an extended header)
SPECIAL_NONE, SPECIAL_ZERO, SPECIAL_NAN, SPECIAL_VALUE, SPECIAL_UNINIT = 0, 1, 2, 3, 4
_EXTENDED = 0x05  # header flags with both shuffle bits set: Blosc2's extended 32-byte header
CHUNK_HEADER_BYTES = 32


@dataclass(frozen=True)
class FrameLimits:
    """Decompressed-size bounds of what one door accepts (0: unbounded).

    Attributes
    ----------
    chunk_nbytes : int
        Largest decompressed chunk, bytes (``CAT_MAX_CHUNK_NBYTES``).
    total_nbytes : int
        Largest decompressed total of one dataset, bytes (``CAT_MAX_UPLOAD_NBYTES``).
    """

    chunk_nbytes: int = DEFAULT_MAX_CHUNK_NBYTES
    total_nbytes: int = DEFAULT_MAX_UPLOAD_NBYTES

    def check(self, name: str, *, chunk: int, total: int, nchunks: int) -> None:
        """Raise :class:`FrameTooLarge` if a chunk, the total or the chunk count is over its bound."""
        if self.chunk_nbytes and chunk > self.chunk_nbytes:
            raise FrameTooLarge(
                f"{name} has chunks of {human_bytes(chunk)} decompressed, over this server's limit of "
                f"{human_bytes(self.chunk_nbytes)} per chunk (CAT_MAX_CHUNK_NBYTES): store it with smaller "
                f"chunks"
            )
        if self.total_nbytes and total > self.total_nbytes:
            raise FrameTooLarge(
                f"{name} holds {human_bytes(total)} decompressed, over this server's limit of "
                f"{human_bytes(self.total_nbytes)} per upload (CAT_MAX_UPLOAD_NBYTES): split it into "
                f"several datasets"
            )
        if nchunks > MAX_NCHUNKS:
            raise FrameTooLarge(
                f"{name} has {nchunks} chunks, over the limit of {MAX_NCHUNKS} per dataset: "
                f"store it with larger chunks"
            )


UNLIMITED = FrameLimits(0, 0)


@dataclass(frozen=True)
class ChunkHeader:
    """What a Blosc2 chunk's header says about it (sizes in bytes)."""

    nbytes: int
    cbytes: int
    blocksize: int
    typesize: int
    special: int

    @property
    def needs_decompression(self) -> bool:
        """Whether reading the chunk decompresses data (special chunks are filled, not decompressed)."""
        return self.special == SPECIAL_NONE


def chunk_header(chunk: bytes) -> ChunkHeader:
    """Parse a chunk's header (no decompression).

    Raises
    ------
    ValueError
        If the bytes do not start with a Blosc2 chunk header that fits them.
    """
    if len(chunk) < CHUNK_HEADER_BYTES:
        raise ValueError(f"{len(chunk)} bytes is shorter than a chunk header")
    nbytes, cbytes, blocksize = blosc2.get_cbuffer_sizes(chunk)
    flags = chunk[2]
    special = (chunk[31] >> 4) & 0x7 if flags & _EXTENDED == _EXTENDED else SPECIAL_NONE
    if special > SPECIAL_UNINIT:
        raise ValueError(f"unknown special chunk type {special}")
    if cbytes != len(chunk):
        raise ValueError(f"the header says {cbytes} compressed bytes, the chunk has {len(chunk)}")
    if nbytes < 0 or blocksize < 0 or (nbytes > 0 and not 0 < blocksize <= nbytes):
        raise ValueError(f"inconsistent sizes in the header (nbytes {nbytes}, blocksize {blocksize})")
    return ChunkHeader(nbytes, cbytes, blocksize, chunk[3], special)


# ---------------------------------------------------------------------- the frame's own header

_FRAME_MAGIC = b"\xa8b2frame\x00"


def check_frame_header(data: bytes | memoryview, name: str, limits: FrameLimits) -> None:
    """Refuse a cframe whose header claims more than *limits* allow, before blosc2 opens it.

    Opening a frame reads its chunk offsets, an index as long as the chunk
    count: a claim of billions of chunks must not get that far.  The header's
    fixed layout (Blosc2 frame format 2): ``nbytes`` (int64) at byte 30,
    ``chunksize`` (int32) at byte 58 (each after its msgpack type byte).

    Raises
    ------
    NotBlosc2
        If the bytes do not start like a Blosc2 frame.
    InvalidFrame
        If the claimed sizes cannot be.
    FrameTooLarge
        If the claimed sizes are over *limits*.
    """
    head = bytes(data[:64])
    if len(head) < 64 or head[1:10] != _FRAME_MAGIC or head[29] != 0xD3 or head[57] != 0xD2:
        raise NotBlosc2(f"{name} is not a valid Blosc2 frame: it does not start with a frame header")
    (nbytes,) = struct.unpack(">q", head[30:38])
    (chunksize,) = struct.unpack(">i", head[58:62])
    if nbytes < 0 or chunksize < 0 or (nbytes and not chunksize):
        raise InvalidFrame(f"{name}: the frame header claims {nbytes} bytes in chunks of {chunksize}")
    nchunks = math.ceil(nbytes / chunksize) if chunksize else 0
    limits.check(name, chunk=chunksize, total=nbytes, nchunks=nchunks)


# ---------------------------------------------------------------------- layout (metalayers)


def _ext_chunks(chunks: Sequence[int], blocks: Sequence[int]) -> list[int]:
    """Chunk shape padded to whole blocks, as Blosc2 stores an NDArray chunk."""
    return [math.ceil(c / b) * b if b else c for c, b in zip(chunks, blocks, strict=True)]


def _check_dims(name: str, shape, chunks, blocks) -> None:
    if not (len(shape) == len(chunks) == len(blocks)):
        raise InvalidFrame(
            f"{name}: shape {tuple(shape)}, chunks {tuple(chunks)} and blocks {tuple(blocks)} "
            f"have different numbers of dimensions"
        )
    for s, c, b in zip(shape, chunks, blocks, strict=True):
        if s < 0 or c < 0 or b < 0 or b > c or (s > 0 and not (c and b)):
            raise InvalidFrame(
                f"{name}: shape {tuple(shape)}, chunks {tuple(chunks)} and blocks {tuple(blocks)} "
                f"do not fit together (chunks and blocks must be positive, blocks within chunks)"
            )


def check_layout(name: str, schunk, geometry: dict, limits: FrameLimits) -> int | None:
    """Check an NDArray's metalayers against its super-chunk; return the chunk size (None: an SChunk).

    Raises
    ------
    InvalidFrame
        The chunk count or chunk size the metalayers imply is not the frame's.
    FrameTooLarge
        The layout is over *limits*.
    """
    nchunks = int(schunk.nchunks)
    if geometry.get("shape") is None:  # an SChunk or a file: no metalayers to agree with
        limits.check(name, chunk=int(schunk.chunksize), total=int(schunk.nbytes), nchunks=nchunks)
        return None
    shape, chunks, blocks = geometry["shape"], geometry["chunks"], geometry["blocks"]
    _check_dims(name, shape, chunks, blocks)
    try:
        itemsize = dtype_from_str(geometry["dtype"]).itemsize
    except (TypeError, ValueError) as exc:
        raise InvalidFrame(f"{name}: unusable dtype {geometry['dtype']!r}: {exc}") from None
    if itemsize <= 0:
        raise InvalidFrame(f"{name}: dtype {geometry['dtype']!r} has no size")
    expected = math.prod(math.ceil(s / c) if c else 0 for s, c in zip(shape, chunks, strict=True))
    if expected != nchunks:
        raise InvalidFrame(
            f"{name}: shape {tuple(shape)} in chunks of {tuple(chunks)} needs {expected} chunk(s), "
            f"the frame has {nchunks}"
        )
    chunksize = math.prod(_ext_chunks(chunks, blocks)) * itemsize if nchunks else 0
    if nchunks and int(schunk.chunksize) != chunksize:
        raise InvalidFrame(
            f"{name}: chunks of {tuple(chunks)} {geometry['dtype']} are {chunksize} bytes, "
            f"the frame says {int(schunk.chunksize)}"
        )
    limits.check(name, chunk=chunksize, total=nchunks * chunksize, nchunks=nchunks)
    return chunksize


# ---------------------------------------------------------------------- chunks


def _check_chunk_sizes(name: str, i: int, h: ChunkHeader, chunksize: int, last: bool, ndarray: bool) -> None:
    if ndarray:
        ok = h.nbytes == chunksize
    else:  # an SChunk: full chunks, but for a shorter last one
        ok = h.nbytes == chunksize or (last and 0 < h.nbytes < chunksize)
    if not ok:
        raise InvalidFrame(f"{name}: chunk {i} holds {h.nbytes} bytes, the frame's chunks hold {chunksize}")


def check_chunks(
    name: str,
    chunks: Sequence[bytes],
    chunksize: int,
    limits: FrameLimits,
    *,
    ndarray: bool,
    blocksize: int | None = None,
) -> list[ChunkHeader]:
    """Parse and check every chunk's header; return them (nothing is decompressed).

    Parameters
    ----------
    name : str
        What the dataset is called in messages.
    chunks : sequence of bytes
        The chunks as stored (``schunk.get_chunk(i)``).
    chunksize : int
        Decompressed bytes of a full chunk.
    limits : FrameLimits
        Per-chunk and total bounds (decompressed).
    ndarray : bool
        Whether every chunk must be full (an NDArray) or only all but the last (an SChunk).
    blocksize : int, optional
        Bytes of one block (an NDArray's ``prod(blocks) * itemsize``), checked on data chunks.

    Raises
    ------
    InvalidFrame
        A header that does not parse or disagrees with the layout.
    FrameTooLarge
        Decompressed sizes over *limits*.
    """
    headers = []
    total = 0
    for i, chunk in enumerate(chunks):
        try:
            h = chunk_header(chunk)
        except (ValueError, RuntimeError) as exc:
            raise InvalidFrame(f"{name}: chunk {i} has no valid Blosc2 header: {exc}") from None
        _check_chunk_sizes(name, i, h, chunksize, i == len(chunks) - 1, ndarray)
        if blocksize is not None and h.needs_decompression and h.blocksize != min(blocksize, h.nbytes):
            raise InvalidFrame(f"{name}: chunk {i} has blocks of {h.blocksize} bytes, its layout {blocksize}")
        total += h.nbytes
        limits.check(name, chunk=h.nbytes, total=total, nchunks=len(chunks))
        headers.append(h)
    return headers


def check_cparams(name: str, cparams: dict, typesize: int, blocksize: int | None) -> None:
    """The compression parameters a reader rebuilds the dataset with must make a super-chunk.

    They come from the frame's header (codec, filters, typesize, blocksize):
    a corrupted byte there would otherwise be stored and break every read.

    Parameters
    ----------
    name : str
        What the dataset is called in messages.
    cparams : dict
        The parameters as stored in the manifest (``cparams_to_dict``).
    typesize : int
        The typesize the layout implies (an NDArray's itemsize, an SChunk's own).
    blocksize : int, optional
        The block size the layout implies (NDArrays).
    """
    if int(cparams.get("typesize", -1)) != typesize:
        found = cparams.get("typesize")
        raise InvalidFrame(f"{name}: the frame's typesize is {found}, its data's {typesize}")
    frame_blocksize = int(cparams.get("blocksize", -1))
    if frame_blocksize < 0 or (blocksize is not None and frame_blocksize not in (0, blocksize)):
        raise InvalidFrame(f"{name}: the frame's blocksize is {frame_blocksize}, its layout's {blocksize}")
    try:
        blosc2.SChunk(chunksize=max(1, typesize), cparams=cparams_from_dict(cparams))
    except Exception as exc:  # noqa: BLE001 - an unknown codec/filter raises ValueError, OverflowError, ...
        raise InvalidFrame(f"{name}: unusable compression parameters in the frame: {exc}") from None


def check_total(name: str, headers: Sequence[ChunkHeader], nbytes: int) -> None:
    """The super-chunk's own ``nbytes`` must be the sum of its chunks' (it counts an SChunk's items)."""
    if sum(h.nbytes for h in headers) != nbytes:
        raise InvalidFrame(
            f"{name}: the frame says {nbytes} bytes, its chunks hold {sum(h.nbytes for h in headers)}"
        )
