"""Attributes of an unfolded HDF5 group (or file), as ``info`` of its directory shows them."""

from __future__ import annotations

import json

from catclient.wire import Geometry, assemble_schunk
from functions.engine.hdf5.attrs import ATTRS_NAME, shown
from functions.engine.region import CacheStats, Region

#: Attribute files bigger than this are not inlined into ``info`` (bytes): an
#: info answer stays small whatever a file's attributes hold.
MAX_SHOWN_BYTES = 1 << 20


def attrs_path(directory: str) -> str:
    """Root-relative path of the attribute file of *directory* ("" = the root)."""
    return f"{directory}/{ATTRS_NAME}" if directory else ATTRS_NAME


def group_attrs(region: Region, root: str, directory: str) -> dict | None:
    """The attributes stored for *directory*, or None when it has none (or they are too big to show)."""
    manifest = region.dataset(root, attrs_path(directory))
    if manifest.geometry.nbytes > MAX_SHOWN_BYTES:
        return None
    chunks = region.chunks(manifest, range(len(manifest.refs)), CacheStats())
    geo: Geometry = manifest.geometry
    data = assemble_schunk(geo, [chunks[i] for i in range(len(manifest.refs))], with_vlmeta=False)[:]
    try:
        return shown(json.loads(bytes(data)))
    except (ValueError, TypeError):
        return None
