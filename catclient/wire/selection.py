"""One selection pipeline for client and server: key, touched chunks, fetch, select, frame.

Every read of a stored dataset goes the same way, whoever runs it:

1. :func:`parse_key` reads the ``slice_`` / ``indices`` parameters into a key;
2. :meth:`Selection.of` plans it: the chunks it touches and the bytes it spans;
3. :meth:`Selection.check` refuses, before anything is fetched, what is sure
   to be too large (:class:`SelectionTooLarge`);
4. :meth:`Selection.gather` gets the touched chunks through a callable of the
   caller's (a cache bucket, S3 through presigned URLs, ``/api/chunk`` ...);
5. :meth:`Selection.result` selects (numpy for arrays, bytes for SChunks) and
   :meth:`Selection.frame` frames the answer.

:func:`read_frame` runs all five and checks the framed answer's size;
:func:`plan_chunks` is step 2 alone (what a read plan lists).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from catclient.wire.assemble import (
    assemble_ndarray,
    assemble_schunk,
    chunkwise,
    items_schunk,
    select_ndarray,
    select_schunk,
    to_ndarray,
)
from catclient.wire.geometry import Geometry, dtype_from_str
from catclient.wire.limits import Limits
from catclient.wire.slices import (
    Key,
    SliceError,
    key_plan,
    normalize_key,
    parse_indices,
    parse_slice,
    schunk_item_range,
    schunk_touched_chunks,
)

#: ``fetch(indices) -> {nchunk: stored chunk bytes}``: how a pipeline gets chunks.
Fetch = Callable[[Sequence[int]], Mapping[int, bytes]]

#: A step applied to a selected array before it is framed (a filter, a field).
PostStep = Callable[[np.ndarray], np.ndarray]


def parse_key(geo: Geometry, slice_: str | None = None, indices: str | list | None = None) -> Key:
    """The key of a ``slice_`` or ``indices`` parameter (``indices`` wins when given).

    Parameters
    ----------
    geo : Geometry
        The dataset read (its kind and number of dimensions).
    slice_ : str, optional
        Caterva2's ``slice_`` syntax, e.g. ``"2:4, 3:6"``.
    indices : str or list, optional
        Fancy indices, one entry per dimension (see :func:`parse_indices`); n-d arrays only.

    Returns
    -------
    tuple

    Raises
    ------
    SliceError
        If a parameter is malformed, or ``indices`` is given for an SChunk.

    """
    fancy = parse_indices(indices)
    if fancy is not None:
        if geo.kind != "ndarray":
            raise SliceError(f"indices apply to n-d arrays, not to a {geo.kind}")
        return fancy
    return parse_slice(slice_, len(geo.shape) if geo.kind == "ndarray" else 1)


def selected_nbytes(key: Key, shape: Sequence[int], itemsize: int) -> int:
    """Uncompressed bytes *key* selects from an array (an upper bound for several index arrays).

    Raises
    ------
    SliceError
        If *key* does not fit *shape*.

    """
    if len(shape) == 0:
        return itemsize
    full, _ = normalize_key(key, shape)
    n = 1
    for entry in full:
        if isinstance(entry, slice):
            n *= len(range(entry.start, entry.stop, entry.step))
        elif isinstance(entry, np.ndarray):
            n *= entry.size
    return n * itemsize


def _is_fancy(key: Key) -> bool:
    return any(isinstance(entry, np.ndarray) for entry in key)


@dataclass(frozen=True)
class Selection:
    """A planned read of a stored dataset: the chunks it touches and the bytes it spans.

    Build it with :meth:`of`.

    Attributes
    ----------
    geo : Geometry
        The dataset.
    key : tuple
        The selection as given (ints, slices, index arrays); ``()`` is everything.
    touched : tuple of int
        Flat indices of the chunks needed, ascending.
    nbytes : int
        Uncompressed bytes selected (an upper bound for several index arrays).
    span : int
        Uncompressed bytes assembled to answer: the bounding box of an array
        selection (or, read chunk by chunk, the answer plus one chunk), the
        selected items of an SChunk.
    items : slice or None
        For SChunks and files, the normalised item range.
    box : tuple of slice or None
        For keyed array selections, the bounding box (a key without index
        arrays that touches the same chunks).

    """

    geo: Geometry
    key: Key
    touched: tuple[int, ...]
    nbytes: int
    span: int
    items: slice | None = None
    box: tuple | None = None

    @classmethod
    def of(cls, geo: Geometry, key: Key) -> Selection:
        """Plan reading *key* from the dataset *geo*.

        Raises
        ------
        SliceError
            If *key* does not fit the dataset.

        """
        try:
            return cls._of_array(geo, key) if geo.kind == "ndarray" else cls._of_items(geo, key)
        except SliceError:
            raise
        except (IndexError, TypeError, ValueError) as exc:
            raise SliceError(f"the key {key!r} cannot index this dataset: {exc}") from None

    @classmethod
    def _of_array(cls, geo: Geometry, key: Key) -> Selection:
        itemsize = dtype_from_str(geo.dtype).itemsize
        if len(geo.shape) == 0:
            if key:
                raise SliceError("a 0-dimensional dataset takes an empty slice_")
            return cls(geo, (), (0,), itemsize, itemsize)
        nbytes = selected_nbytes(key, geo.shape, itemsize)
        if not key:  # everything: all chunks, no per-chunk planning
            return cls(geo, (), tuple(range(geo.nchunks)), nbytes, nbytes)
        box, _, touched = key_plan(key, geo.shape, geo.chunks)
        if chunkwise(key, geo.shape):  # read chunk by chunk: the answer plus one chunk at a time
            span = nbytes + math.prod(geo.chunks) * itemsize
        else:
            span = math.prod(s.stop - s.start for s in box) * itemsize
        return cls(geo, key, tuple(touched), nbytes, span, box=box)

    @classmethod
    def _of_items(cls, geo: Geometry, key: Key) -> Selection:
        items = schunk_item_range(key, geo.nitems)
        nbytes = len(range(items.start, items.stop, items.step)) * geo.typesize
        if not key:
            return cls(geo, (), tuple(range(geo.nchunks)), nbytes, nbytes, items)
        touched = schunk_touched_chunks(items, geo.items_per_chunk)
        return cls(geo, key, tuple(touched), nbytes, nbytes, items)

    @property
    def whole(self) -> bool:
        """Whether the whole dataset is selected (it is then framed without recompression)."""
        return not self.key

    @property
    def fancy(self) -> bool:
        """Whether the key holds index arrays."""
        return _is_fancy(self.key)

    def _chunk_raw(self) -> int:
        """Uncompressed bytes of one full chunk."""
        if self.geo.kind == "ndarray":
            return math.prod(self.geo.chunks or ()) * dtype_from_str(self.geo.dtype).itemsize
        return self.geo.chunksize

    def stored_cbytes(self, chunk_sizes: Mapping[int, int] | Sequence[int]) -> int:
        """Compressed bytes of the touched chunks, from each chunk's stored size."""
        return sum(int(chunk_sizes[i]) for i in self.touched)

    def touched_nbytes(self, special: Collection[int] = ()) -> int:
        """Decompressed bytes of the touched chunks that must be decompressed (not in *special*).

        A whole dataset framed as stored decompresses nothing; otherwise every
        touched chunk is decompressed whole, whatever part of it is selected.
        """
        return sum(1 for i in self.touched if i not in special) * self._chunk_raw()

    def estimate_cbytes(self, chunk_sizes: Mapping[int, int] | Sequence[int]) -> float:
        """The answer's compressed size, guessed before fetching.

        The touched chunks' stored size, scaled to the part of them selected:
        good to a factor of about two, so only use it to refuse a clear excess.
        """
        raw = len(self.touched) * self._chunk_raw()
        return self.stored_cbytes(chunk_sizes) * self.nbytes / max(1, raw)

    def check(self, limits: Limits, chunk_sizes: Mapping[int, int] | Sequence[int] | None = None, *,
              exact: bool = True, special: Collection[int] = ()) -> None:
        """Refuse, before fetching, a read that is sure to break *limits*.

        Parameters
        ----------
        limits : Limits
            The bounds.
        chunk_sizes : mapping or sequence of int, optional
            Stored (compressed) size of each chunk, by flat index; without it
            only the bounding box is checked.
        exact : bool
            False when a later step (a filter, a field) shrinks the answer:
            then its size cannot be estimated and only the box is checked.
        special : collection of int
            Touched chunks that are filled, not decompressed (Blosc2 special
            chunks: zeros, NaNs, uninitialised): they cost no ``limits.work``.

        Raises
        ------
        SelectionTooLarge

        """
        if self.whole and exact:
            # Framed as stored: the stored sizes are the answer's size, and nothing is decompressed
            if chunk_sizes is not None:
                limits.check_response(self.stored_cbytes(chunk_sizes), limits.name)
            return
        limits.check_work(self.touched_nbytes(special), len(self.touched))
        limits.check_box(self.span)
        if chunk_sizes is not None and exact and not self.fancy and limits.response:
            estimate = self.estimate_cbytes(chunk_sizes)
            if estimate > limits.estimate_factor * limits.response:
                limits.check_response(estimate, "the selection (compressed, estimated)")

    def gather(self, fetch: Fetch) -> dict[int, bytes]:
        """The bytes of every touched chunk, from ``fetch(indices) -> {nchunk: bytes}``.

        Raises
        ------
        LookupError
            If *fetch* left out a touched chunk.

        """
        chunks = dict(fetch(list(self.touched)))
        missing = [i for i in self.touched if i not in chunks]
        if missing:
            raise LookupError(f"no bytes for chunk(s) {missing[:5]} of the {len(self.touched)} touched")
        return chunks

    def assemble(self, chunks: Mapping[int, bytes], *, urlpath: str | None = None):
        """The whole dataset as stored (``blosc2.NDArray`` or ``blosc2.SChunk``, with its vlmeta)."""
        if self.geo.kind == "ndarray":
            return assemble_ndarray(self.geo, chunks, urlpath=urlpath)
        return assemble_schunk(self.geo, [chunks[i] for i in range(self.geo.nchunks)], urlpath=urlpath)

    def result(self, chunks: Mapping[int, bytes]) -> np.ndarray | bytes:
        """The selection itself: a numpy array (n-d arrays) or the selected bytes (SChunks, files).

        Raises
        ------
        SliceError
            If the key does not fit the dataset.

        """
        try:
            if self.geo.kind == "ndarray":
                return select_ndarray(self.geo, chunks, self.key)
            if self.whole:
                return self.assemble(chunks)[:] if self.geo.nbytes else b""
            return select_schunk(self.geo, chunks, self.items)
        except IndexError as exc:
            raise SliceError(str(exc)) from None

    def frame(self, chunks: Mapping[int, bytes], post: PostStep | None = None) -> bytes:
        """The answer as a cframe: whole datasets as stored, selections compressed for transport.

        Parameters
        ----------
        chunks : mapping of int to bytes
            At least the touched chunks (see :meth:`gather`).
        post : callable, optional
            Applied to the selected array before framing (n-d arrays only).

        Returns
        -------
        bytes
            What ``blosc2.ndarray_from_cframe`` / ``blosc2.schunk_from_cframe`` read.

        """
        return self.framed(chunks, post).to_cframe()

    def framed(self, chunks: Mapping[int, bytes], post: PostStep | None = None, *,
               urlpath: str | None = None):
        """The answer as a Blosc2 object (what :meth:`frame` serialises); a frame file with *urlpath*."""
        if post is not None and self.geo.kind != "ndarray":
            raise TypeError(f"post-steps apply to n-d arrays, not to a {self.geo.kind}")
        if self.whole and post is None:
            return self.assemble(chunks, urlpath=urlpath)
        result = self.result(chunks)
        if self.geo.kind != "ndarray":
            return items_schunk(result, self.geo.typesize, urlpath=urlpath)
        return to_ndarray(post(result) if post is not None else result, urlpath=urlpath)


def write_frame(
    geo: Geometry,
    key: Key,
    fetch: Fetch,
    urlpath: str,
    *,
    limits: Limits | None = None,
    chunk_sizes: Mapping[int, int] | Sequence[int] | None = None,
    post: PostStep | None = None,
    special: Collection[int] = (),
) -> int:
    """:func:`read_frame`, with the answer written as a frame file at *urlpath*; returns its size.

    For answers too big to hold twice (a server streams the file): the selected
    values are in memory once, their compressed frame only on disk.
    """
    limits = limits or Limits()
    selection = Selection.of(geo, key)
    selection.check(limits, chunk_sizes, exact=post is None, special=special)
    framed = selection.framed(selection.gather(fetch), post, urlpath=urlpath)
    del framed  # blosc2 flushes and closes the file with the object
    size = os.path.getsize(urlpath)
    limits.check_response(size, limits.name if selection.whole and post is None else "the selection")
    return size


def plan_chunks(geo: Geometry, key: Key) -> list[int]:
    """The chunks a read of *key* touches (what a read plan lists), ascending.

    Raises
    ------
    SliceError
        If *key* does not fit the dataset.

    """
    return list(Selection.of(geo, key).touched)


def read_frame(
    geo: Geometry,
    key: Key,
    fetch: Fetch,
    *,
    limits: Limits | None = None,
    chunk_sizes: Mapping[int, int] | Sequence[int] | None = None,
    post: PostStep | None = None,
    special: Collection[int] = (),
) -> bytes:
    """The whole pipeline: plan *key*, check, fetch the touched chunks, select, frame, check.

    Parameters
    ----------
    geo : Geometry
        The dataset.
    key : tuple
        The selection (see :func:`parse_key`); ``()`` frames the whole dataset
        without recompressing it.
    fetch : callable
        ``fetch(indices) -> {nchunk: bytes}`` of stored chunks.
    limits : Limits, optional
        Size bounds; default: only :data:`MAX_SELECTION_BYTES` on the box.
    chunk_sizes : mapping or sequence of int, optional
        Stored size of each chunk, for refusing an answer over ``limits.response``
        before fetching.
    post : callable, optional
        A step on the selected array before framing (a filter, a field).
    special : collection of int
        Chunks that need no decompression (see :meth:`Selection.check`).

    Returns
    -------
    bytes
        The answer as a cframe.

    Raises
    ------
    SliceError
        If *key* does not fit the dataset.
    SelectionTooLarge
        If the selection or its answer breaks *limits*.

    """
    limits = limits or Limits()
    selection = Selection.of(geo, key)
    selection.check(limits, chunk_sizes, exact=post is None, special=special)
    body = selection.frame(selection.gather(fetch), post)
    limits.check_response(len(body), limits.name if selection.whole and post is None else "the selection")
    return body
