"""What the client and the server share: slice syntax, chunk geometry, assembly, selection.

Both sides turn a dataset's stored chunks (exactly the bytes
``schunk.get_chunk(i)`` returns) into a Blosc2 object without recompressing,
then index it.  Keeping that in one package means the server's ``/api/fetch``
and the client's read plans can never disagree about which chunks a slice
touches.  It imports only blosc2, numpy and the standard library, so the server
loads it without the client (no httpx, no sqlite).

Modules: :mod:`~catclient.wire.slices` (keys and touched chunks),
:mod:`~catclient.wire.geometry` (dtypes, cparams, :class:`Geometry`),
:mod:`~catclient.wire.assemble` (chunks into Blosc2 objects, transport frames),
:mod:`~catclient.wire.plans` (inline chunks, chunk refs),
:mod:`~catclient.wire.selection` (the read pipeline), :mod:`~catclient.wire.sink` (chunks
decoded into a numpy answer as they arrive), :mod:`~catclient.wire.units`.
"""

from __future__ import annotations

from catclient.wire.assemble import (
    assemble_ndarray,
    assemble_schunk,
    items_schunk,
    select_ndarray,
    select_schunk,
    to_cframe,
    transport_cparams,
)
from catclient.wire.geometry import Geometry, cparams_from_dict, cparams_to_dict, dtype_from_str, dtype_to_str
from catclient.wire.limits import MAX_SELECTION_BYTES, Limits, SelectionTooLarge
from catclient.wire.plans import INLINE_CHUNK_MAX, decode_inline, encode_inline, iter_chunk_refs
from catclient.wire.selection import (
    Fetch,
    PostStep,
    Selection,
    parse_key,
    plan_chunks,
    read_frame,
    selected_nbytes,
    write_frame,
)
from catclient.wire.sink import ArraySink
from catclient.wire.slices import (
    Key,
    SliceError,
    chunk_grid,
    chunk_ids_along,
    format_slice,
    key_plan,
    normalize_key,
    parse_indices,
    parse_slice,
    schunk_item_range,
    schunk_touched_chunks,
    touched_chunks,
)
from catclient.wire.units import human_bytes

__all__ = [
    "ArraySink",
    "INLINE_CHUNK_MAX",
    "MAX_SELECTION_BYTES",
    "Fetch",
    "Geometry",
    "Key",
    "Limits",
    "PostStep",
    "Selection",
    "SelectionTooLarge",
    "SliceError",
    "assemble_ndarray",
    "assemble_schunk",
    "chunk_grid",
    "chunk_ids_along",
    "cparams_from_dict",
    "cparams_to_dict",
    "decode_inline",
    "dtype_from_str",
    "dtype_to_str",
    "encode_inline",
    "format_slice",
    "human_bytes",
    "items_schunk",
    "iter_chunk_refs",
    "key_plan",
    "normalize_key",
    "parse_indices",
    "parse_key",
    "parse_slice",
    "plan_chunks",
    "read_frame",
    "write_frame",
    "schunk_item_range",
    "schunk_touched_chunks",
    "select_ndarray",
    "select_schunk",
    "selected_nbytes",
    "to_cframe",
    "touched_chunks",
    "transport_cparams",
]
