"""The read routes on container members: ``list``, ``info``, ``fetch`` and ``chunk`` of ``x.h5/g/a``.

:class:`ContainerReads` finds whether a path lies inside a stored container file
(:func:`~functions.engine.containers.split_container_path` over the root's catalog), opens
the container at its current version and answers from it:

- an HDF5 file is read through :class:`~functions.engine.hdf5.storedfile.StoredFile`:
  only the stored chunks HDF5 touches are fetched (never the whole file);
- a ``.b2z`` zip is opened by blosc2 from a local copy, made once per version and kept in
  a small bounded cache of temporary files (a zip's directory sits at its end).

Every selection is bounded before it is read (``max_read_nbytes``, the read budget) and its
answer goes through the same answer limits as any fetch.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import blosc2
import numpy as np

from catclient import wire
from catclient.wire import dtype_to_str
from functions.engine.containers import (
    B2Z_SUFFIXES,
    CONTAINER_SUFFIXES,
    H5_SUFFIXES,
    B2ZContainer,
    Container,
    H5Container,
    split_container_path,
)
from functions.engine.errors import BadRequest, NotFound, TooLarge
from functions.engine.frames import FrameLayout
from functions.engine.model import ChunkRef, Kind, Manifest
from functions.engine.region import CacheStats, Region
from functions.engine.selections import apply_filter
from functions.engine.spaces import Location

#: Local copies of .b2z containers kept (one per version); each is at most a stored file.
KEEP_COPIES = 4
#: Container versions remembered as not holding a CTable (a key each: a few bytes).
KNOWN_NOT_TABLES = 4096
#: Bytes of a leaf's window read per piece (a range answer holds a few pieces at a time).
WINDOW_PIECE = 1 << 20
#: What a chunk request on an HDF5 member (or on the container) says instead.
_CHUNK_HINT = (
    "HDF5 data is compressed by HDF5, not stored as Blosc2 chunks: "
    "ask /api/fetch with a slice_ for exactly the region wanted"
)


@dataclass(frozen=True)
class Member:
    """A path inside a container: the container's location and manifest, and the inner key."""

    container: Location
    manifest: Manifest
    inner: str


class ContainerReads:
    """Answers reads of container members from a :class:`Region`.

    Parameters
    ----------
    region : Region
        Where catalogs, manifests and chunks come from.
    max_read_nbytes : int
        Largest selection one fetch may read, bytes (0 = unbounded).
    sized : callable
        ``sized(body, what, hint)``: the answer limits every fetch goes through.

    """

    def __init__(self, region: Region, *, max_read_nbytes: int, sized: Callable) -> None:
        self.region, self.max_read_nbytes, self._sized = region, max_read_nbytes, sized
        self._copies: OrderedDict[tuple, str] = OrderedDict()
        # Versions of .b2z files known not to hold a CTable: every read of a member asks
        # (a CTable is one dataset, not a tree), and asking means opening the zip
        self._not_tables: OrderedDict[tuple, None] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ finding

    def member(self, loc: Location) -> Member | None:
        """The container member *loc* names (``/`` for a container file itself), or None."""
        if not loc.rel:
            return None
        entries = self.region.catalog(loc.root).datasets
        if loc.rel.lower().endswith(CONTAINER_SUFFIXES) and loc.rel in entries:
            head, inner = loc.rel, "/"
        else:
            head, inner = split_container_path(loc.rel, lambda rel: rel in entries)
        if inner is None:
            return None
        manifest = self.region.dataset(loc.root, head)
        if manifest.kind != Kind.FILE:
            return None  # a dataset named like a container (x.b2z as a .b2nd upload) has no members
        if (table := self.table(loc.at(head), manifest)) is not None:
            _close(table)
            return None  # a CTable is one dataset (rows and columns), not a tree of members
        return Member(loc.at(head), manifest, inner)

    def _open(self, m: Member) -> Container:
        geo = m.manifest.geometry
        if m.container.rel.lower().endswith(H5_SUFFIXES):
            from functions.engine.hdf5.storedfile import StoredFile

            stored = StoredFile(
                int(geo.nbytes),
                int(geo.chunksize),
                lambda idx: self.region.chunks(m.manifest, idx, CacheStats(), serial=True),
            )
            try:
                return H5Container(stored)
            except OSError as exc:
                raise BadRequest(f"{m.container.path} is not a readable HDF5 file: {exc}") from None
        try:
            return B2ZContainer(self._local_copy(m))
        except Exception as exc:  # noqa: BLE001 - a corrupt zip is the uploader's, answered 400
            raise BadRequest(f"{m.container.path} is not a readable Blosc2 store: {exc}") from None

    def _local_copy(self, m: Member) -> str:
        key = (m.manifest.root, m.manifest.path, m.manifest.version)
        with self._lock:
            if key in self._copies:
                self._copies.move_to_end(key)
                return self._copies[key]
        fd, path = tempfile.mkstemp(suffix=".b2z", prefix="cat-container-")
        with os.fdopen(fd, "wb") as out:
            n = len(m.manifest.refs)
            for start in range(0, n, 8):  # 8 chunks (8 MiB) at a time, written as they come
                got = self.region.chunks(m.manifest, range(start, min(n, start + 8)), CacheStats())
                for i in range(start, min(n, start + 8)):
                    out.write(blosc2.decompress2(got[i]))
        with self._lock:
            self._copies[key] = path
            while len(self._copies) > KEEP_COPIES:
                _, old = self._copies.popitem(last=False)
                _remove(old)
        return path

    # ------------------------------------------------------------------ answers

    def list(self, m: Member) -> list[str]:
        """Leaves below the member relative to it; a leaf lists as its name; [] for nothing."""
        with self._open(m) as c:
            return c.list(m.inner)

    def info(self, m: Member) -> dict:
        """The member's metadata (a group's ``kind/nfiles/size``, a leaf's array metadata, and
        ``accept_ranges``: ``"bytes"`` for a leaf served from its window in the container).
        """
        with self._open(m) as c:
            out = c.info(m.inner, mtime=m.manifest.mtime)
            if out.get("kind") != "group":
                window = c.member_range(m.inner) if isinstance(c, B2ZContainer) else None
                out["accept_ranges"] = "bytes" if window is not None else "none"
            return out

    def fetch(self, m: Member, slice_: str | None, *, field=None, filter=None, indices=None):
        """A cframe of the member's selection: ``slice_``, then ``filter`` and ``field`` over a
        structured leaf's fields (coordinates answer 400: ask with a slice).
        """
        what = f"{m.container.path}{m.inner}"
        if indices:
            raise BadRequest(f"indices are not served on container members ({what}): ask with a slice_")
        with self._open(m) as c:
            if not c.is_leaf(m.inner):
                raise BadRequest(f"{what} is a group: list it, or fetch one of its arrays")
            arr = c.leaf(m.inner)
            if filter and isinstance(c, H5Container):
                raise BadRequest(
                    f"filter is not supported on HDF5 members ({what}), as Caterva2 answers: unfold the "
                    "file (/api/unfold) to filter its datasets, or fetch the rows and filter them locally"
                )
            if field or filter:
                _check_fields(np.dtype(arr.dtype), field, what)
            try:
                key = wire.parse_slice(slice_, len(arr.shape))
            except wire.SliceError as exc:
                raise BadRequest(str(exc)) from None
            self._check_budget(key, arr.shape, np.dtype(arr.dtype).itemsize)
            values = np.asarray(arr[key] if key else arr[()])
        if filter:
            values = apply_filter(values, filter)
        if field:
            values = values[field]
        body = blosc2.asarray(np.ascontiguousarray(values)).to_cframe()
        return self._sized(body, f"the selection of {m.inner}", "ask for a smaller slice")

    def window(self, m: Member) -> tuple[FrameLayout, Callable] | None:
        """A ``.b2z`` leaf's frame as it lies in the container (a stored zip member): its layout
        over the container's bytes, :data:`WINDOW_PIECE` bytes a piece, and the reader of those
        pieces; None where the leaf is not stored whole and uncompressed (it is then rebuilt).
        """
        if not m.container.rel.lower().endswith(B2Z_SUFFIXES):
            return None
        with self._open(m) as c:
            if not c.is_leaf(m.inner):
                return None
            where = c.member_range(m.inner)
        if where is None:
            return None
        offset, length = where
        pieces = tuple(
            ChunkRef(size=min(WINDOW_PIECE, length - at), digest=str(offset + at))
            for at in range(0, length, WINDOW_PIECE)
        )
        sizes = {p.digest: p.size for p in pieces}

        def fetch(digests: list[str]) -> dict[str, bytes]:
            path = self._local_copy(m)  # again: an evicted copy is made anew
            with open(path, "rb") as f:
                return {d: os.pread(f.fileno(), sizes[d], int(d)) for d in digests}

        return FrameLayout(pieces), fetch

    def chunk(self, m: Member, nchunk: int):
        """A stored Blosc2 chunk of a ``.b2z`` leaf; HDF5 members hold none (400)."""
        if m.container.rel.lower().endswith(H5_SUFFIXES):
            raise BadRequest(_CHUNK_HINT)
        with self._open(m) as c:
            if not c.is_leaf(m.inner):
                raise NotFound(f"no array {m.inner!r} in {m.container.path}")
            leaf = c.leaf(m.inner)  # kept alive while its schunk is used (blosc2 frees it with the array)
            nchunks = leaf.schunk.nchunks
            if not 0 <= nchunk < nchunks:
                raise BadRequest(f"nchunk {nchunk} is out of range: {m.inner} has {nchunks} chunk(s)")
            body = leaf.schunk.get_chunk(nchunk)
        return self._sized(body, f"chunk {nchunk} of {m.inner}", "read it through /api/fetch with a slice_")

    # ------------------------------------------------------------------ CTables

    def table(self, loc: Location, manifest: Manifest):
        """The CTable a stored ``.b2z`` file holds, or None (a TreeStore/DictStore, or no zip)."""
        if manifest.kind != Kind.FILE or not loc.rel.lower().endswith(B2Z_SUFFIXES):
            return None
        key = (manifest.root, manifest.path, manifest.version)
        with self._lock:
            if key in self._not_tables:
                return None
        path = self._local_copy(Member(loc, manifest, "/"))
        try:
            opened = blosc2.open(path, mode="r")
        except Exception:  # noqa: BLE001 - not a Blosc2 store at all: a plain file
            opened = None
        if isinstance(opened, blosc2.CTable):
            return opened
        if opened is not None:
            _close(opened)
        with self._lock:
            self._not_tables[key] = None
            while len(self._not_tables) > KNOWN_NOT_TABLES:
                self._not_tables.popitem(last=False)
        return None

    @staticmethod
    def table_info(table, manifest: Manifest) -> dict:
        """Caterva2's ``info`` of a CTable: ``kind``, ``nrows``, columns and their dtypes, sizes."""
        try:
            return ContainerReads._table_info(table, manifest)
        finally:
            _close(table)

    @staticmethod
    def _table_info(table, manifest: Manifest) -> dict:
        columns = list(table.col_names)
        dtypes = {}
        for name in columns:
            with contextlib.suppress(Exception):  # a computed or object column has no plain dtype
                dtypes[name] = dtype_to_str(np.dtype(table[name].dtype))
        return {
            "kind": "ctable",
            "nrows": len(table),
            "ncols": len(columns),
            "columns": columns,
            "dtypes": dtypes,
            "cbytes": int(table.cbytes),
            "nbytes": int(table.nbytes),
            "cratio": table.nbytes / table.cbytes if table.cbytes else 0.0,
            "chunks": list(table.chunks) if table.chunks else [],
            "blocks": list(table.blocks) if table.blocks else [],
            "schema_dict": _schema_of(table),
            "vlmeta": _vlmeta_of(table),
            "size": int(manifest.geometry.nbytes),
            "mtime": manifest.mtime,
        }

    def table_fetch(self, table, slice_: str | None, path: str, field: str | None = None):
        """A CTable cframe of the rows *slice_* names (one index, negative ones too, or a slice);
        with *field*, those rows of that one column as an NDArray cframe.
        """
        try:
            return self._table_fetch(table, slice_, path, field)
        finally:
            _close(table)

    def _table_fetch(self, table, slice_: str | None, path: str, field: str | None):
        if field is not None and field not in table.col_names:
            raise BadRequest(f"no column {field!r} in {path}; columns: {', '.join(table.col_names)}")
        n = len(table)
        try:
            key = wire.parse_slice(slice_, 1)
        except wire.SliceError as exc:
            raise BadRequest(str(exc)) from None
        rows = key[0] if key else slice(None)
        if isinstance(rows, int | np.integer):
            index = int(rows) + (n if rows < 0 else 0)
            if not 0 <= index < n:
                raise BadRequest(f"row {rows} is out of range: {path} has {n} row(s)")
            rows = slice(index, index + 1)
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise BadRequest(f"a table is fetched by rows: one index or a start:stop slice ({path})")
        start, stop, _ = rows.indices(n)
        if field is not None:
            column = np.asarray(table[field][start : max(start, stop)])
            if column.dtype == object:
                raise BadRequest(f"column {field!r} of {path} holds objects: fetch its rows as a table")
            body = blosc2.asarray(np.ascontiguousarray(column)).to_cframe()
            return self._sized(body, f"rows {start}:{stop} of {field} in {path}", "ask for fewer rows")
        body = table[start : max(start, stop)].to_cframe()
        return self._sized(body, f"rows {start}:{stop} of {path}", "ask for fewer rows")

    def _check_budget(self, key: tuple, shape, itemsize: int) -> None:
        if not self.max_read_nbytes:
            return
        nbytes = wire.selected_nbytes(key, shape, itemsize) if key else math.prod(shape) * itemsize
        if nbytes > self.max_read_nbytes:
            budget = wire.human_bytes(self.max_read_nbytes)
            raise TooLarge(
                f"this selection spans {wire.human_bytes(nbytes)}, over the {budget} one read "
                "may take: ask for a smaller slice"
            )

    def close(self) -> None:
        """Remove the local copies."""
        with self._lock:
            while self._copies:
                _remove(self._copies.popitem()[1])


def _schema_of(table) -> dict:
    with contextlib.suppress(Exception):  # a table of another blosc2 may not say
        return dict(table.schema_dict())
    return {}


def _vlmeta_of(table) -> dict:
    with contextlib.suppress(Exception):
        plain = str | int | float | bool | list | dict  # JSON as it is: anything else is left out
        return {str(k): v for k, v in table.vlmeta.items() if isinstance(v, plain)}
    return {}


def _check_fields(dtype: np.dtype, field: str | None, what: str) -> None:
    if not dtype.fields:
        raise BadRequest(
            f"field and filter need a structured dtype; {what} is {dtype_to_str(dtype)} (no fields)"
        )
    if field and field not in dtype.fields:
        raise BadRequest(f"no field {field!r} in {what}; fields: {', '.join(dtype.fields)}")


def container_chunk_refused(loc: Location) -> str | None:
    """The 400 detail for ``/api/chunk`` of a container file itself (.h5: no Blosc2 chunks), else None."""
    return _CHUNK_HINT if loc.rel.lower().endswith(H5_SUFFIXES) else None


def _close(opened) -> None:
    close = getattr(opened, "close", None)
    if close is not None:
        with contextlib.suppress(Exception):
            close()


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
