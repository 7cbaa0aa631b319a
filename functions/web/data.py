"""Every call the web UI makes into the domain services, in one place.

The pages and frames use only these functions, so a change in the engine's
read API (names, how a path is located) is absorbed here.  Each function takes
the process's :class:`~functions.services.Services` and the caller
(:class:`~functions.engine.spaces.Principal`) and goes through
:func:`~functions.engine.spaces.resolve` and the read service exactly as the JSON
API does: the UI can reach exactly what the API lets the caller reach.
"""

from __future__ import annotations

import posixpath

import blosc2
import numpy as np

from functions.engine.answers import Stream
from functions.engine.containers import CONTAINER_SUFFIXES
from functions.engine.errors import BadRequest, DatasetNotFound, NotFound
from functions.engine.reads import FetchParams
from functions.engine.region import CacheStats
from functions.engine.spaces import PERSONAL, PUBLIC, SHARED, Location, Principal, resolve
from functions.services import Services

#: Spaces a signed-in user may write to (published roots are read-only through the API)
WRITABLE_SPACES = (PERSONAL, SHARED, PUBLIC)


def roots(services: Services, who: Principal) -> dict[str, dict]:
    """``{name: {"name", "subscribed"}}`` of the roots *who* sees."""
    return services.read.roots(who)


def list_tree(services: Services, who: Principal, root: str, rel: str = "") -> list[str]:
    """Every file below ``root/rel``, relative to it, sorted."""
    return services.read.list(resolve(f"{root}/{rel}" if rel else root, who), who)


#: Containers of one listing opened to show their members in its tree (each is a read of
#: the container's directory: the rest show as files and open on their own page)
EXPANDED_CONTAINERS = 16


def list_tree_expanded(services: Services, who: Principal, root: str, rel: str = "") -> list[str]:
    """:func:`list_tree`, with the members of the first :data:`EXPANDED_CONTAINERS` containers
    (``.h5``/``.b2z``) below it listed beneath them, so the tree opens them like directories.
    """
    files = list_tree(services, who, root, rel)
    out, opened = [], 0
    for name in files:
        out.append(name)
        if opened >= EXPANDED_CONTAINERS or not name.lower().endswith(CONTAINER_SUFFIXES):
            continue
        opened += 1
        inside = f"{rel}/{name}" if rel else name
        try:
            members = list_tree(services, who, root, inside)
        except (BadRequest, DatasetNotFound, NotFound):
            continue  # unreadable: it shows as the file it is, and its page says why
        if members != [posixpath.basename(name)]:  # a CTable lists as itself: one dataset
            out.extend(f"{name}/{m}" for m in members)
    return out


def _at(loc: Location, version: int | None) -> Location:
    """*loc* pinned to *version* (None: the current one)."""
    return loc if version is None else Location(loc.space, loc.root, loc.rel, version)


def info(services: Services, who: Principal, path: str, version: int | None = None) -> dict:
    """Caterva2's metadata JSON of a dataset, file, directory or root (at *version*)."""
    return services.read.info(_at(resolve(path, who), version), who)


def history(services: Services, who: Principal, path: str, limit: int) -> dict:
    """The kept versions of a dataset, newest first (``/api/history``)."""
    return services.timetravel.history(resolve(path, who, allow_root_only=False), who, limit=limit)


def estimate(services: Services, who: Principal, path: str, slice_: str | None, version: int | None) -> dict:
    """What reading *slice_* would do and cost (``/api/estimate``)."""
    loc = _at(resolve(path, who, allow_root_only=False), version)
    return services.timetravel.estimate(loc, slice_, who)


def values(
    services: Services,
    who: Principal,
    path: str,
    slice_: str | None = None,
    *,
    filter: str | None = None,
    field: str | None = None,
    version: int | None = None,
) -> np.ndarray:
    """A selection of an n-d dataset (stored or lazy) as numpy, as ``/api/fetch`` would answer it."""
    loc = _at(resolve(path, who, allow_root_only=False), version)
    body = _whole(services.read.fetch(loc, FetchParams(slice_, field, filter), CacheStats(), who))
    return blosc2.ndarray_from_cframe(body)[()]


def _whole(body) -> bytes:
    """A fetch's answer as bytes: pages are bounded by their own limit, so a streamed one is joined."""
    return b"".join(body) if isinstance(body, Stream) else body


def plane(services: Services, who: Principal, path: str, key: str, version: int | None = None) -> np.ndarray:
    """One image plane (*key* fixes the leading indices): reads only the chunks it touches."""
    return np.asarray(values(services, who, path, key, version=version))


def file_head(services: Services, who: Principal, path: str, nbytes: int) -> tuple[bytes, int]:
    """The first *nbytes* of a plain file or SChunk, and its whole size in bytes."""
    meta = info(services, who, path)
    size = int(meta.get("nbytes", 0))
    if not size:
        return b"", 0
    loc = resolve(path, who, allow_root_only=False)
    params = FetchParams(slice_=f"0:{min(nbytes, size)}")
    body = _whole(services.read.fetch(loc, params, CacheStats(), who, files=True))
    return bytes(blosc2.schunk_from_cframe(body)[:]), size


def writable(who: Principal, path: str) -> bool:
    """Whether *who* may write at *path* (the check every write endpoint makes)."""
    if not who.authenticated:
        return False
    try:
        resolve(path, who, write=True)
    except (PermissionError, LookupError, ValueError):
        return False
    return True
