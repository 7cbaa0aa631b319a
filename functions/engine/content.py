"""Turning Blosc2 objects and plain files into chunks plus geometry, without recompressing."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import math
import os
import posixpath
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import blosc2
import numpy as np

from catclient.wire import INLINE_CHUNK_MAX, cparams_to_dict, dtype_from_str, dtype_to_str
from functions.engine import frames, validation
from functions.engine.errors import InvalidFrame, NotBlosc2
from functions.engine.model import ChunkRef, Content, Kind

#: Plain files are stored as an SChunk of this many bytes per chunk: 1 MiB keeps a
#: range read of a file cheap while a GET still costs more in latency than bytes.
FILE_CHUNKSIZE = 1 << 20

BLOSC2_SUFFIXES = (".b2nd", ".b2frame")


@dataclass(frozen=True)
class Loaded:
    """A dataset's content plus the chunk bytes (by index) it references."""

    content: Content
    chunks: list[bytes]
    #: Bytes of objects the kept frame references besides the chunks (by digest)
    blobs: dict[str, bytes] = dataclasses.field(default_factory=dict)


def _jsonable(value):
    """Vlmeta values (msgpack-decoded) as JSON; bytes become text where they are text."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"__bytes__": base64.b64encode(value).decode()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _vlmeta(schunk) -> dict:
    try:
        return {str(k): _jsonable(v) for k, v in schunk.vlmeta.getall().items()}
    except Exception:  # noqa: BLE001 - vlmeta of foreign frames may not decode; data still does
        return {}


def _cparams(schunk) -> dict:
    d = cparams_to_dict(schunk.cparams)
    # Threads are a reader's choice, not content: pinning them keeps the content
    # hash equal for the same data published from machines with different cores
    d["nthreads"] = 1
    return d


#: Chunks bigger than this are hashed piece by piece (bytes): a hash never holds a
#: whole large chunk decompressed, and the threads that hash hold one piece each.
HASH_PIECE = 4 << 20


def data_hash(data) -> str:
    """128 bits of SHA-256 of *data*, hex: what a manifest records of a chunk's decompressed bytes.

    SHA-256 for the speed of hardware hashing (see :func:`functions.engine.layout.chunk_hash`):
    a publish hashes every decompressed byte (200 MB: 0.15 s against blake2b's 0.42 s here).
    """
    return hashlib.sha256(data).hexdigest()[:32]


def decompressed_hash(chunk: bytes, header: validation.ChunkHeader | None = None) -> str:
    """128-bit hash of a chunk's decompressed bytes (decompression runs at GB/s).

    A chunk over :data:`HASH_PIECE` is decompressed a piece at a time (Blosc2
    decompresses only the blocks a piece needs), so memory stays at one piece
    whatever the chunk's size.  A special chunk (zeros, NaNs, a value,
    uninitialised) is hashed from its bytes: it holds no data to decompress.
    """
    header = header or validation.chunk_header(chunk)
    if not header.needs_decompression:
        return data_hash(b"special:" + bytes(chunk))
    if header.nbytes <= HASH_PIECE:
        return data_hash(blosc2.decompress2(chunk))
    # A super-chunk of its own per call: blosc2 contexts are not shared between threads
    typesize = max(1, header.typesize)
    one = blosc2.SChunk(chunksize=header.nbytes, cparams=blosc2.CParams(typesize=typesize))
    one.insert_chunk(0, bytes(chunk))
    items = header.nbytes // typesize
    step = max(1, HASH_PIECE // typesize)
    buffer = bytearray(step * typesize)
    digest = hashlib.sha256()  # data_hash, a piece at a time
    for start in range(0, items, step):
        n = min(step, items - start)
        piece = memoryview(buffer)[: n * typesize]
        one.get_slice(start, start + n, out=piece)
        digest.update(piece)
    return digest.hexdigest()[:32]


def _describe(item: tuple[int, bytes, validation.ChunkHeader], name: str) -> ChunkRef:
    i, chunk, header = item
    if len(chunk) <= INLINE_CHUNK_MAX:
        return ChunkRef.of(chunk)
    try:
        return ChunkRef.of(chunk, decompressed_hash(chunk, header))
    except (RuntimeError, ValueError) as exc:  # a header that parses over data that does not
        raise InvalidFrame(f"{name}: chunk {i} does not decompress: {exc}") from None


def _hash_workers(chunksize: int) -> int:
    """Threads for hashing: each holds one chunk (or one piece of a big one) decompressed."""
    held = min(max(1, chunksize), HASH_PIECE)
    return max(1, min(8, (os.cpu_count() or 1) * 2, (32 << 20) // held))


def _read_chunks(schunk, name: str) -> list[bytes]:
    try:
        return [schunk.get_chunk(i) for i in range(schunk.nchunks)]
    except (RuntimeError, ValueError) as exc:
        raise InvalidFrame(f"{name}: a chunk cannot be read from the frame: {exc}") from None


def _checked_chunks(schunk, geometry: dict, name: str, limits: validation.FrameLimits):
    """The chunks and their parsed headers, after every check of :mod:`~functions.engine.validation`."""
    chunksize = validation.check_layout(name, schunk, geometry, limits)
    ndarray = chunksize is not None
    blocksize = None
    if ndarray and geometry["shape"]:
        blocksize = math.prod(geometry["blocks"]) * dtype_from_str(geometry["dtype"]).itemsize
    chunks = _read_chunks(schunk, name)
    headers = validation.check_chunks(
        name, chunks, int(schunk.chunksize), limits, ndarray=ndarray, blocksize=blocksize
    )
    validation.check_total(name, headers, int(schunk.nbytes))
    typesize = dtype_from_str(geometry["dtype"]).itemsize if ndarray else int(schunk.typesize)
    validation.check_cparams(name, _cparams(schunk), typesize, blocksize)
    return chunks, headers


def _loaded(kind: str, schunk, geometry: dict, name: str, limits: validation.FrameLimits,
            on_chunk: Callable[[str, bytes], None] | None = None) -> Loaded:
    chunks, headers = _checked_chunks(schunk, geometry, name, limits)
    refs = []
    first_of: dict[str, int] = {}  # equal data in one dataset is stored once, however it compressed
    # Hashing and decompressing release the GIL: threads halve the time of a 200 MB publish
    with ThreadPoolExecutor(max_workers=_hash_workers(int(schunk.chunksize))) as pool:
        work = zip(range(len(chunks)), chunks, headers, strict=True)
        def describe(item):
            ref = _describe(item, name)
            if on_chunk is not None and ref.digest:
                on_chunk(ref.digest, item[1])  # e.g. its upload starts while the rest is hashed
            return ref

        described = list(pool.map(describe, work))
    for i, ref in enumerate(described):
        if ref.dhash in first_of:
            j = first_of[ref.dhash]
            ref, chunks[i] = refs[j], chunks[j]
        elif ref.dhash:
            first_of[ref.dhash] = i
        refs.append(ref)
    refs = tuple(refs)
    geometry = {
        **geometry,
        "kind": kind,
        "cparams": _cparams(schunk),
        "chunksize": int(schunk.chunksize),
        "typesize": int(schunk.typesize),
        "nbytes": int(schunk.nbytes),
        "nchunks": int(schunk.nchunks),
    }
    content = Content(
        kind=kind, geometry=geometry, vlmeta=_vlmeta(schunk), cbytes=int(schunk.cbytes), refs=refs
    )
    return Loaded(content, chunks)


def _geometry(obj: blosc2.NDArray, name: str) -> dict:
    try:
        return {
            "shape": [int(n) for n in obj.shape],
            "chunks": [int(n) for n in obj.chunks],
            "blocks": [int(n) for n in obj.blocks],
            "dtype": dtype_to_str(obj.dtype),
        }
    except Exception as exc:  # noqa: BLE001 - metalayers blosc2 opened but cannot describe
        raise InvalidFrame(f"{name}: unusable array metadata: {exc}") from None


def load_object(
    obj, kind: str | None = None, *, name: str = "the dataset", limits: validation.FrameLimits | None = None,
    on_chunk: Callable[[str, bytes], None] | None = None,
) -> Loaded:
    """Content of an open ``blosc2.NDArray`` or ``blosc2.SChunk``, checked before anything is decompressed.

    Parameters
    ----------
    obj : blosc2.NDArray or blosc2.SChunk
        What to load.
    kind : str, optional
        The kind of an SChunk (default ``schunk``; plain files are ``file``).
    name : str
        What the dataset is called in error messages.
    limits : FrameLimits, optional
        Decompressed-size bounds (default: :class:`~functions.engine.validation.FrameLimits`'s).
    on_chunk : callable, optional
        Called as ``on_chunk(digest, stored bytes)`` for each stored (non-inline)
        chunk as soon as it is checked and hashed, from the hashing threads.

    Raises
    ------
    InvalidFrame
        Metadata, chunk count, chunk sizes or chunk headers that disagree (400).
    FrameTooLarge
        Decompressed sizes over *limits* (413).
    """
    limits = limits or validation.FrameLimits()
    if isinstance(obj, blosc2.NDArray):
        return _loaded(Kind.NDARRAY, obj.schunk, _geometry(obj, name), name, limits, on_chunk)
    if isinstance(obj, blosc2.SChunk):
        no_geometry = {"shape": None, "chunks": None, "blocks": None, "dtype": None}
        return _loaded(kind or Kind.SCHUNK, obj, no_geometry, name, limits, on_chunk)
    raise NotBlosc2(f"not a Blosc2 NDArray or SChunk: {type(obj).__name__}")


def _open_cframe(data: bytes, name: str, limits: validation.FrameLimits, ndarray: bool):
    validation.check_frame_header(data, name, limits)
    try:
        if ndarray:
            return blosc2.ndarray_from_cframe(bytes(data), copy=True)
        return blosc2.schunk_from_cframe(bytes(data), copy=True)
    except Exception as exc:  # noqa: BLE001 - blosc2 raises RuntimeError/ValueError/etc. on junk
        raise NotBlosc2(f"{name} is not a valid Blosc2 frame: {exc}") from None


def open_frame(data: bytes, name: str, limits: validation.FrameLimits | None = None, *, ndarray: bool = True):
    """Open cframe bytes as an NDArray (or SChunk) after every check, decompressing nothing.

    Raises
    ------
    NotBlosc2
        Not a frame (or not an NDArray when *ndarray*); :class:`InvalidFrame` when inconsistent.
    FrameTooLarge
        Decompressed sizes over *limits*.
    """
    limits = limits or validation.FrameLimits()
    obj = _open_cframe(data, name, limits, ndarray)
    if ndarray and not isinstance(obj, blosc2.NDArray):
        raise NotBlosc2(f"{name} is a Blosc2 frame but not an NDArray")
    if isinstance(obj, blosc2.NDArray):
        _checked_chunks(obj.schunk, _geometry(obj, name), name, limits)
    else:
        _checked_chunks(obj, {"shape": None}, name, limits)
    return obj


def load_frame(data: bytes, name: str, limits: validation.FrameLimits | None = None) -> Loaded:
    """Content of a ``.b2nd``/``.b2frame`` given as cframe bytes (an upload).

    The frame's header is checked against *limits* before blosc2 opens it.
    """
    limits = limits or validation.FrameLimits()
    obj = _open_cframe(data, name, limits, name.endswith(".b2nd"))
    loaded = load_object(_require_ndarray(obj, name), name=name, limits=limits)
    return _keep_frame(loaded, frames.split_frame(data, loaded.chunks, loaded.content.refs))


def _keep_frame(loaded: Loaded, split: frames.Split | None) -> Loaded:
    """*loaded* with the frame's exact bytes kept as pieces (unchanged when they cannot be)."""
    if split is None:
        return loaded
    return Loaded(dataclasses.replace(loaded.content, frame=split.layout), loaded.chunks, split.blobs)


def _require_ndarray(obj, name: str):
    """*obj*, unless *name* promises an NDArray (``.b2nd``) that *obj* is not."""
    if name.endswith(".b2nd") and not isinstance(obj, blosc2.NDArray):
        raise NotBlosc2(f"{name} is a Blosc2 frame but not an NDArray")
    return obj


def _plain_schunk():
    cparams = blosc2.CParams(typesize=1, codec=blosc2.Codec.ZSTD, clevel=5)
    return blosc2.SChunk(chunksize=FILE_CHUNKSIZE, cparams=cparams)


def load_plain(data: bytes, limits: validation.FrameLimits | None = None) -> Loaded:
    """A plain file as a compressed SChunk of bytes (typesize 1)."""
    schunk = _plain_schunk()
    view = memoryview(data)
    for start in range(0, len(data), FILE_CHUNKSIZE):
        schunk.append_data(view[start : start + FILE_CHUNKSIZE])
    # Chunks this process made from bytes it read: no bomb to fear, the input's size is the bound
    return load_object(schunk, kind=Kind.FILE, name="the file", limits=limits or validation.UNLIMITED)


def load_plain_file(path: Path, limits: validation.FrameLimits | None = None) -> Loaded:
    """:func:`load_plain` of a local file, read one chunk at a time (never whole in memory)."""
    schunk = _plain_schunk()
    with open(path, "rb") as src:
        while piece := src.read(FILE_CHUNKSIZE):
            schunk.append_data(piece)
    return load_object(schunk, kind=Kind.FILE, name=path.name, limits=limits or validation.UNLIMITED)


def load_bytes(name: str, data: bytes, limits: validation.FrameLimits | None = None) -> Loaded:
    """Content of an uploaded or dropped file named *name*: frames by suffix, anything else plain.

    Raises
    ------
    NotBlosc2
        A ``.b2nd``/``.b2frame`` name whose bytes are not such a frame, or are an
        inconsistent one (:class:`InvalidFrame`).
    FrameTooLarge
        A frame that decompresses to more than *limits* allow.
    """
    if name.endswith(BLOSC2_SUFFIXES):
        try:
            return load_frame(data, posixpath.basename(name), limits)
        except InvalidFrame:
            raise
        except NotBlosc2 as exc:
            suffix = posixpath.splitext(name)[1]
            raise NotBlosc2(f"{exc} (a {suffix} file must be a Blosc2 frame)") from None
    return load_plain(data)


def _frame_head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(64)


def load_path(path: Path, limits: validation.FrameLimits | None = None,
              on_chunk: Callable[[str, bytes], None] | None = None) -> Loaded:
    """Content of a local file: Blosc2 frames chunk by chunk, anything else as a file.

    *on_chunk* (Blosc2 frames only) is :func:`load_object`'s.
    """
    limits = limits or validation.FrameLimits()
    if path.suffix in BLOSC2_SUFFIXES:
        if path.is_file():  # a contiguous frame (a sparse one is a directory blosc2 reads itself)
            validation.check_frame_header(_frame_head(path), path.name, limits)
        try:
            obj = blosc2.open(str(path), mode="r")
        except Exception as exc:  # noqa: BLE001 - see load_frame
            raise NotBlosc2(f"{path.name} is not a valid Blosc2 file: {exc}") from None
        array = _require_ndarray(obj, path.name)
        loaded = load_object(array, name=path.name, limits=limits, on_chunk=on_chunk)
        if path.is_file():
            return _keep_frame(loaded, frames.split_file(path, loaded.chunks, loaded.content.refs))
        return loaded
    return load_plain_file(path)


#: Geometry fields that must match for a stored chunk to stand in for a new one
_LAYOUT = ("kind", "shape", "chunks", "blocks", "dtype", "chunksize", "typesize")


def reuse_unchanged(loaded: Loaded, previous_refs, previous_geometry: dict | None) -> Loaded:
    """Point chunks whose decompressed bytes did not change at the previous version's objects.

    Only when the layout is the same: a chunk is self-describing (codec, filters),
    so an older chunk with equal decompressed bytes reads back identically.
    """
    if not previous_refs or previous_geometry is None:
        return loaded
    if any(previous_geometry.get(k) != loaded.content.geometry.get(k) for k in _LAYOUT):
        return loaded
    refs = list(loaded.content.refs)
    swapped = 0
    for i, ref in enumerate(refs):
        if i >= len(previous_refs):
            break
        old = previous_refs[i]
        if ref.dhash and ref.dhash == old.dhash and ref.digest != old.digest:
            refs[i] = old
            swapped += 1
    if not swapped:
        return loaded
    cbytes = loaded.content.cbytes + sum(r.size for r in refs) - sum(r.size for r in loaded.content.refs)
    content = dataclasses.replace(loaded.content, refs=tuple(refs), cbytes=cbytes)
    # The kept frame's pieces still name the new bytes (what the file holds): uploaded from blobs
    blobs = dict(loaded.blobs)
    if content.frame is not None:
        old, framed = {r.digest for r in refs if r.digest}, content.frame.digests
        for ref, data in zip(loaded.content.refs, loaded.chunks, strict=True):
            if ref.digest and ref.digest not in old and ref.digest in framed:
                blobs.setdefault(ref.digest, data)
    return Loaded(content, loaded.chunks, blobs)
