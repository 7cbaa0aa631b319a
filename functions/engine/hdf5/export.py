"""Blosc2 arrays (a local root directory, or a published root) → one HDF5 file, chunk by chunk.

The inverse of :mod:`.unfold`: ``a/b.b2nd`` becomes dataset ``/a/b`` with the
array's shape, dtype, chunking and attributes; ``!_attrs_.json`` files give
their directories' attributes back to the groups.  Arrays that came from HDF5
get their original dtype (byte order, enum), layout, filters and fill value
back from the ``_hdf5`` bookkeeping, so h5 → import → export → h5 keeps them.
Plain files become opaque ``uint8`` datasets (or are skipped, and reported).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import h5py
import numpy as np

from functions.engine.hdf5 import attrs as h5attrs
from functions.engine.hdf5.attrs import ATTRS_NAME, META_KEY

#: Filter of arrays that did not come from HDF5: gzip (every HDF5 reader has it) with shuffle.
DEFAULT_COMPRESSION, DEFAULT_LEVEL = "gzip", 4
#: Bytes of a plain file copied at a time.
FILE_PIECE = 1 << 20
#: Attribute marking a dataset that holds a plain file's bytes.
FILE_ATTR = "_caterva_file"


@dataclass
class Source:
    """One dataset or file to export, however it is read.

    ``read(box)`` returns the values of a region of an array (a tuple of
    slices); ``read_bytes(start, stop)`` a byte range of a file.
    """

    rel: str
    kind: str  # "ndarray" | "file"
    shape: tuple[int, ...] | None = None
    dtype: np.dtype | None = None
    chunks: tuple[int, ...] | None = None
    vlmeta: dict = field(default_factory=dict)
    size: int = 0
    read: Callable[[tuple], np.ndarray] | None = None
    read_bytes: Callable[[int, int], bytes] | None = None


@dataclass
class ExportReport:
    """What an export wrote and skipped."""

    datasets: int = 0
    files: int = 0
    groups: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _group(f: h5py.File, rel_dir: str) -> h5py.Group:
    return f.require_group("/" + rel_dir) if rel_dir else f


def _set_attrs(obj, values: dict, where: str, report: ExportReport) -> None:
    for name, value in values.items():
        if isinstance(value, dict | list) and not isinstance(value, np.ndarray):
            try:
                value = np.asarray(value)
                if value.dtype.kind == "O":
                    raise ValueError
            except ValueError:
                value = json.dumps(value)  # nested JSON (vlmeta of non-HDF5 arrays) as text
        try:
            obj.attrs[name] = value
        except (TypeError, ValueError, OSError) as exc:
            report.skipped.append((f"{where}@{name}", f"attribute not writable to HDF5: {exc}"))


def _boxes(shape, step) -> Iterable[tuple[slice, ...]]:
    ranges = [range(0, s, c) for s, c in zip(shape, step, strict=True)]
    for starts in itertools.product(*ranges):
        yield tuple(slice(a, min(a + c, s)) for a, c, s in zip(starts, step, shape, strict=True))


def _creation(src: Source, meta: dict) -> dict:
    """h5py ``create_dataset`` options: the HDF5 origin's when known, else Blosc2's chunking + gzip."""
    shape = src.shape
    if not shape or 0 in shape and not meta.get("maxshape"):
        return {}
    opts: dict = {}
    if meta.get("maxshape"):
        opts["maxshape"] = tuple(None if m < 0 else m for m in meta["maxshape"])
    if meta.get("layout") == "contiguous" and "maxshape" not in opts:
        return opts
    chunks = meta.get("chunks") or src.chunks
    if "maxshape" not in opts:  # HDF5 refuses chunks longer than a fixed-size axis
        chunks = [max(1, min(c, s)) for c, s in zip(chunks, shape, strict=True)]
    opts["chunks"] = tuple(chunks)
    if META_KEY in src.vlmeta or meta:
        if meta.get("compression") in ("gzip", "lzf", "szip"):
            opts["compression"] = meta["compression"]
            if "compression_opts" in meta:
                opts["compression_opts"] = meta["compression_opts"]
        opts["shuffle"] = bool(meta.get("shuffle"))
        opts.update(_plugin(meta.get("filters") or []))
    else:
        opts.update(compression=DEFAULT_COMPRESSION, compression_opts=DEFAULT_LEVEL, shuffle=True)
    return opts


#: HDF5 filter ids of Blosc (32001) and Blosc2 (32026), written back through hdf5plugin
_BLOSC_IDS = {"32001": "Blosc", "32026": "Blosc2"}


def _plugin(filters: list[str]) -> dict:
    """h5py options re-applying a Blosc/Blosc2 filter of the HDF5 origin (when hdf5plugin is there)."""
    try:
        import hdf5plugin
    except ImportError:  # pragma: no cover - an optional dependency
        return {}
    for fid in filters:
        if fid in _BLOSC_IDS:
            return dict(getattr(hdf5plugin, _BLOSC_IDS[fid])())
    return {}


def _h5dtype(src: Source, meta: dict) -> np.dtype:
    dtype = np.dtype(meta["dtype"]) if meta.get("dtype") and not src.dtype.fields else src.dtype
    if meta.get("enum"):
        return h5py.enum_dtype(meta["enum"], basetype=dtype)
    return dtype


def _write_array(f: h5py.File, src: Source, report: ExportReport) -> None:
    name = "/" + src.rel[: -len(".b2nd")]
    meta = dict(src.vlmeta.get(META_KEY) or {})
    dtype = _h5dtype(src, meta)
    _group(f, posixpath.dirname(name).lstrip("/"))
    if meta.get("null"):
        dset = f.create_dataset(name, data=h5py.Empty(dtype))
    else:
        # A subarray element (``_hdf5.subarray``) was stored as trailing axes: fold them back
        inner = tuple(slice(0, n) for n in meta.get("subarray") or ())
        keep = len(src.shape) - len(inner)
        chunks = src.chunks[:keep] if src.chunks else None
        outer = dataclasses.replace(src, shape=src.shape[:keep], chunks=chunks)
        if inner:
            dtype = np.dtype((dtype, tuple(b.stop for b in inner)))
        opts = _creation(outer, meta)
        if "fillvalue" in meta and not inner:
            opts["fillvalue"] = np.array(h5attrs._unplain(meta["fillvalue"], src.dtype), dtype=src.dtype)[()]
        dset = f.create_dataset(name, shape=outer.shape, dtype=dtype, **opts)
        if not outer.shape:
            dset[()] = src.read(inner)
        elif 0 not in outer.shape:
            for box in _boxes(outer.shape, outer.chunks):
                dset[box] = src.read(box + inner)
    _set_attrs(dset, h5attrs.decode_all(src.vlmeta), name, report)
    report.datasets += 1


def _write_file(f: h5py.File, src: Source, report: ExportReport) -> None:
    name = "/" + src.rel
    _group(f, posixpath.dirname(src.rel))
    dset = f.create_dataset(name, shape=(src.size,), dtype="u1",
                            chunks=(min(FILE_PIECE, src.size),) if src.size else None)
    for start in range(0, src.size, FILE_PIECE):
        piece = src.read_bytes(start, min(start + FILE_PIECE, src.size))
        dset[start : start + len(piece)] = np.frombuffer(piece, dtype="u1")
    dset.attrs[FILE_ATTR] = True
    report.files += 1


def export(sources: Iterable[Source], target, *, files: bool = True) -> ExportReport:
    """Write *sources* into the new HDF5 file *target* (a path).

    Parameters
    ----------
    sources : iterable of Source
        Arrays (``.b2nd``), attribute files (``!_attrs_.json``) and plain files.
    target : str or Path
        The HDF5 file to create (replaced if it exists).
    files : bool
        Write plain files as opaque ``uint8`` datasets; if False they are skipped and reported.

    """
    report = ExportReport()
    sources = sorted(sources, key=lambda s: s.rel)
    names = {s.rel for s in sources}
    with h5py.File(target, "w") as f:
        for src in sources:
            try:
                _export_one(f, src, names, files, report)
            except (TypeError, ValueError, OSError, KeyError) as exc:
                report.skipped.append((src.rel, f"cannot be written to HDF5: {exc}"))
    return report


def _export_one(f: h5py.File, src: Source, names: set, files: bool, report: ExportReport) -> None:
    if posixpath.basename(src.rel) == ATTRS_NAME:
        meta = json.loads(src.read_bytes(0, src.size))
        where = posixpath.dirname(src.rel)
        _set_attrs(_group(f, where), h5attrs.decode_all(meta), "/" + where, report)
        report.groups += 1
    elif src.kind == "ndarray" and src.rel.endswith(".b2nd"):
        _write_array(f, src, report)
    elif src.rel.lower().endswith((".h5", ".hdf5")) and any(
        n.startswith(src.rel.rsplit(".", 1)[0] + "/") for n in names
    ):
        report.skipped.append((src.rel, "an HDF5 file whose unfolded tree is exported beside it"))
    elif not files:
        report.skipped.append((src.rel, f"a {src.kind}, not an array (pass files=True to keep its bytes)"))
    else:
        _write_file(f, src, report)
