"""Walking an HDF5 file and turning its datasets into Blosc2 chunks, one chunk at a time.

Memory stays bounded by one read region (a Blosc2 chunk, or one HDF5 chunk when
that is cut into several: :mod:`.chunking`) plus the chunks in flight, whatever
the file's size.  What Blosc2 cannot hold (variable-length strings, references,
soft and external links, ...) is skipped and reported, never an exception.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import blosc2
import h5py
import numpy as np

from catclient.wire import INLINE_CHUNK_MAX, dtype_to_str
from functions.engine.content import data_hash
from functions.engine.hdf5 import attrs as h5attrs
from functions.engine.hdf5.chunking import Plan, plan_chunks

try:  # Blosc, Blosc2, LZ4, Zstd, ... filters of HDF5 files written with them
    import hdf5plugin  # noqa: F401
except ImportError:  # pragma: no cover - an optional dependency
    hdf5plugin = None

#: HDF5's chunk cache per open file, bytes: holds the HDF5 chunks a read region
#: crosses (h5py's default of 1 MiB would decompress a big chunk once per piece).
CHUNK_CACHE_BYTES = 64 << 20
#: How Blosc2 compresses converted data: Zstd level 1 with byte shuffle (Blosc2's own
#: default codec; level 1 keeps conversion fast, hundreds of MB/s per core).
CODEC, CLEVEL = blosc2.Codec.ZSTD, 1
_THREADS = max(1, min(4, os.cpu_count() or 1))


@dataclass
class Item:
    """One HDF5 dataset to convert."""

    h5path: str  # "/arrays/3d"
    rel: str  # "arrays/3d.b2nd"
    dset: h5py.Dataset
    plan: Plan
    dtype: np.dtype  # what the Blosc2 array holds (native byte order, enums as their base)
    vlmeta: dict  # attributes (JSON) + "_hdf5" bookkeeping
    #: Trailing axes that come from a subarray dtype (``("<f8", (4,))`` -> 1): HDF5 reads
    #: them as part of each element, the Blosc2 array holds them as axes of its own.
    inner: int = 0


@dataclass
class Group:
    """One HDF5 group (the file itself is ``/``): a directory, with its attribute file."""

    h5path: str
    rel: str  # "" for the file, "arrays" for /arrays
    attrs: dict


@dataclass
class Walk:
    """What an HDF5 file holds, in the file's (name) order."""

    datasets: list[Item] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def open_file(source) -> h5py.File:
    """Open a path or a binary file object for reading, with a chunk cache sized for conversion."""
    return h5py.File(source, "r", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=10007)


def walk(f: h5py.File) -> Walk:
    """Every dataset and group of *f* (links followed once), and what was skipped and why."""
    out = Walk()
    out.groups.append(Group("/", "", h5attrs.encode_all(f.attrs, "/", out.skipped)))
    seen: set = set()
    _walk_group(f, out, seen)
    return out


def _walk_group(group: h5py.Group, out: Walk, seen: set) -> None:
    for name in group:
        path = f"{group.name.rstrip('/')}/{name}"
        link = group.get(name, getlink=True)
        if isinstance(link, h5py.SoftLink):
            _soft_link(group, name, path, link, out)
            continue
        if isinstance(link, h5py.ExternalLink):
            out.skipped.append((path, f"external link to {link.filename}:{link.path}"))
            continue
        try:
            obj = group[name]
        except Exception as exc:  # noqa: BLE001 - a damaged object must not stop the walk
            out.skipped.append((path, f"unreadable: {exc}"))
            continue
        if isinstance(obj, h5py.Group):
            token = (h5py.h5o.get_info(obj.id).fileno, h5py.h5o.get_info(obj.id).addr)
            if token in seen:
                out.skipped.append((path, "another hard link to a group already converted"))
                continue
            seen.add(token)
            out.groups.append(Group(path, path.lstrip("/"), h5attrs.encode_all(obj.attrs, path, out.skipped)))
            _walk_group(obj, out, seen)
        elif isinstance(obj, h5py.Dataset):
            item = _item(obj, path, out.skipped)
            if item is not None:
                out.datasets.append(item)
        else:
            out.skipped.append((path, f"a {type(obj).__name__} (named datatype), not data"))


def _soft_link(group: h5py.Group, name: str, path: str, link: h5py.SoftLink, out: Walk) -> None:
    """A soft link to a dataset is that dataset under the link's name, as HDF5 readers see it.

    Chunks are content-addressed, so the second name stores no data twice. Links to groups
    stay skipped: following them could loop (``/a/up -> /a``) or repeat a whole subtree.
    """
    target = group.get(name)  # None when the link dangles
    if isinstance(target, h5py.Dataset):
        item = _item(target, path, out.skipped)
        if item is not None:
            out.datasets.append(item)
    elif target is None:
        out.skipped.append((path, f"soft link to {link.path}, which does not exist"))
    else:
        out.skipped.append((path, f"soft link to the group {link.path}"))


def _unsupported(dtype: np.dtype) -> str | None:
    """Why Blosc2 cannot hold *dtype*, or None."""
    if h5py.check_string_dtype(dtype) is not None and dtype.kind == "O":
        return "variable-length strings"
    if h5py.check_ref_dtype(dtype) is not None:
        return "object or region references"
    if h5py.check_vlen_dtype(dtype) is not None:
        return "variable-length sequences"
    if dtype.fields:
        for name, (sub, *_rest) in dtype.fields.items():
            reason = _unsupported(sub.base)
            if reason:
                return f"{reason} (in field {name!r})"
    if dtype.kind == "O":
        return "Python objects"
    return None


def _native(dtype: np.dtype) -> np.dtype:
    """*dtype* in native byte order with enums as their base integers (what Blosc2 stores)."""
    if h5py.check_enum_dtype(dtype) is not None:
        dtype = np.dtype(dtype.str)
    if dtype.fields:
        return np.dtype([(n, _native(dtype.fields[n][0])) for n in dtype.names])
    if dtype.subdtype is not None:
        return np.dtype((_native(dtype.subdtype[0]), dtype.subdtype[1]))
    return dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype


def _layout(dset: h5py.Dataset) -> dict:
    """The HDF5 storage of *dset* (chunks, filters, fill value): what an export writes back."""
    out = {"layout": "chunked" if dset.chunks else "contiguous"}
    if dset.chunks:
        out["chunks"] = list(dset.chunks)
    plugins = sorted(k for k in dset._filters if k.isdigit())  # registered filters (hdf5plugin's) by id
    if plugins:
        out["filters"] = plugins
    if dset.compression and str(dset.compression) != "unknown":
        out["compression"] = str(dset.compression)
        if isinstance(dset.compression_opts, int):
            out["compression_opts"] = int(dset.compression_opts)
    if dset.shuffle:
        out["shuffle"] = True
    if dset.maxshape != dset.shape:
        out["maxshape"] = [m if m is not None else -1 for m in dset.maxshape]
    try:
        fill, _ = h5attrs.encode(np.asarray(dset.fillvalue)[()])
    # RuntimeError: h5py cannot read a fill value the file declares undefined
    # (H5D_FILL_VALUE_UNDEFINED, e.g. variable-length strings written by other tools)
    except (h5attrs.Unrepresentable, TypeError, ValueError, RuntimeError):
        fill = None
    if fill not in (None, 0, 0.0, "", False):
        out["fillvalue"] = fill
    return out


def _subarray(dset: h5py.Dataset) -> tuple[np.dtype, tuple[int, ...]]:
    """The element dtype and the axes a subarray dtype adds (``()`` for any other dtype).

    Blosc2 refuses subarray dtypes, while numpy reads ``shape (10,)`` of
    ``("<f8", (4,))`` as a ``(10, 4)`` float64 array: that is what is stored.
    """
    if dset.dtype.subdtype is None or dset.shape is None:
        return dset.dtype, ()
    base, sub = dset.dtype.subdtype
    return base, tuple(int(n) for n in sub)


def _item(dset: h5py.Dataset, path: str, skipped: list) -> Item | None:
    base, sub = _subarray(dset)
    reason = _unsupported(base)
    ndim = (dset.ndim if dset.shape is not None else 1) + len(sub)
    if reason is None and ndim > getattr(blosc2, "MAX_DIM", 8):
        reason = f"{ndim} dimensions (Blosc2 holds at most {blosc2.MAX_DIM})"
    if reason is not None:
        skipped.append((path, reason))
        return None
    dtype = _native(base)
    # H5S_NULL (no value at all): a 0-d array, as Caterva2 serves it; _hdf5.null says so
    shape = () if dset.shape is None else dset.shape + sub
    meta = _layout(dset)
    meta["dtype"] = dtype_to_str(base) if base != dtype else None
    if sub:
        meta["subarray"] = list(sub)  # the HDF5 element's own shape, now the trailing axes
    if dset.shape is None:
        meta["null"] = True
    enum = h5py.check_enum_dtype(dset.dtype)
    if enum is not None:
        meta["enum"] = {k: int(v) for k, v in enum.items()}
    vlmeta = h5attrs.encode_all(dset.attrs, path, skipped)
    vlmeta[h5attrs.META_KEY].update({k: v for k, v in meta.items() if v is not None})
    h5chunks = None if dset.shape is None or dset.chunks is None else dset.chunks + sub
    plan = plan_chunks(shape, dtype.itemsize, h5chunks)
    return Item(path, path.lstrip("/") + ".b2nd", dset, plan, dtype, vlmeta, inner=len(sub))


# ---------------------------------------------------------------------- chunks


def cparams(dtype: np.dtype, nthreads: int = _THREADS) -> blosc2.CParams:
    """How converted arrays are compressed."""
    return blosc2.CParams(
        codec=CODEC,
        clevel=CLEVEL,
        filters=[blosc2.Filter.SHUFFLE],
        typesize=dtype.itemsize,
        nthreads=nthreads,
    )


def template(item: Item) -> blosc2.NDArray:
    """An uninitialised array with *item*'s geometry (costs no data memory)."""
    return blosc2.uninit(
        item.plan.shape,
        dtype=item.dtype,
        chunks=item.plan.chunks or None,
        blocks=item.plan.blocks or None,
        cparams=cparams(item.dtype),
    )


def _boxes(shape, step) -> Iterator[tuple[slice, ...]]:
    """Regions of *step* tiling *shape* in C order (clipped at the edges)."""
    ranges = [range(0, s, c) for s, c in zip(shape, step, strict=True)]
    for starts in itertools.product(*ranges):
        yield tuple(slice(a, min(a + c, s)) for a, c, s in zip(starts, step, shape, strict=True))


def _read(item: Item, box: tuple[slice, ...]) -> np.ndarray:
    dset = item.dset
    if dset.shape is None:
        return np.zeros((), item.dtype)
    if item.inner:  # HDF5 selects whole elements: read them, then cut the inner axes
        outer = box[: len(box) - item.inner]
        whole = dset[outer] if outer else dset[()]
        return np.ascontiguousarray(whole[(slice(None),) * len(outer) + box[len(outer):]], dtype=item.dtype)
    out = np.empty(tuple(b.stop - b.start for b in box), dtype=dset.dtype)
    if out.size:
        dset.read_direct(out, source_sel=box if box else np.s_[()])
    return out.astype(item.dtype, copy=False)


def _compress(item: Item, piece: np.ndarray) -> bytes:
    """One Blosc2 chunk of *item* holding *piece* (padded with zeros to the full chunk shape)."""
    chunks = item.plan.chunks
    if piece.shape != chunks:
        full = np.zeros(chunks, dtype=item.dtype)
        full[tuple(slice(0, n) for n in piece.shape)] = piece
        piece = full
    one = blosc2.asarray(np.ascontiguousarray(piece), chunks=chunks or None, blocks=item.plan.blocks or None,
                         cparams=cparams(item.dtype))
    return one.schunk.get_chunk(0)  # keep `one` alive until the bytes are copied out


def decompressed_hash(chunk: bytes) -> str | None:
    """What a manifest records to recognise an unchanged chunk (None for inlined special chunks)."""
    if len(chunk) <= INLINE_CHUNK_MAX:
        return None
    return data_hash(blosc2.decompress2(chunk))


def iter_chunks(item: Item) -> Iterator[tuple[int, bytes]]:
    """``(nchunk, chunk bytes)`` of every Blosc2 chunk of *item*, reading HDF5 one region at a time.

    Chunks come in the order of the read regions, not always by index (an HDF5
    chunk cut into pieces yields its pieces together); every index comes once.
    """
    plan = item.plan
    if not plan.shape:
        yield 0, _compress(item, _read(item, ()))
        return
    if plan.nchunks == 0:
        return
    grid = [math.ceil(s / c) for s, c in zip(plan.shape, plan.chunks, strict=True)]
    for region in _boxes(plan.shape, plan.read):
        data = _read(item, region)
        for box in _boxes(data.shape, plan.chunks):
            coords = [(r.start + b.start) // c for r, b, c in zip(region, box, plan.chunks, strict=True)]
            yield int(np.ravel_multi_index(coords, grid)), _compress(item, data[box])
