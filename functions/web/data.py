"""Every call the web UI makes into the domain services, in one place.

The pages and frames use only these functions, so a change in the engine's
read API (names, how a path is located) is absorbed here.  Each function takes
the process's :class:`~functions.services.Services` and the caller
(:class:`~functions.engine.spaces.Principal`) and goes through
:class:`~functions.engine.spaces.ScopedReads`, the same scoped read service the
JSON API uses: the UI can reach exactly what the API lets the caller reach.
"""

from __future__ import annotations

import blosc2
import numpy as np

from functions.engine.paths import split_path
from functions.engine.reader import CacheStats
from functions.engine.service import FetchParams
from functions.engine.spaces import PERSONAL, PUBLIC, SHARED, Principal, ScopedReads, resolve
from functions.services import Services

#: Spaces a signed-in user may write to (published roots are read-only through the API)
WRITABLE_SPACES = (PERSONAL, SHARED, PUBLIC)


def _reads(services: Services, who: Principal) -> ScopedReads:
    return ScopedReads(services.read, who)


def roots(services: Services, who: Principal) -> dict[str, dict]:
    """``{name: {"name", "subscribed"}}`` of the roots *who* sees."""
    return _reads(services, who).roots()


def list_tree(services: Services, who: Principal, root: str, rel: str = "") -> list[str]:
    """Every file below ``root/rel``, relative to it, sorted."""
    return _reads(services, who).list(root, rel)


def info(services: Services, who: Principal, path: str) -> dict:
    """Caterva2's metadata JSON of a dataset, file, directory or root."""
    root, rel = split_path(path)
    return _reads(services, who).info(root, rel)


def values(
    services: Services,
    who: Principal,
    path: str,
    slice_: str | None = None,
    *,
    filter: str | None = None,
    field: str | None = None,
) -> np.ndarray:
    """A selection of an n-d dataset (stored or lazy) as numpy, as ``/api/fetch`` would answer it."""
    root, rel = split_path(path, allow_root_only=False)
    body = _reads(services, who).fetch(root, rel, FetchParams(slice_, field, filter), CacheStats())
    return blosc2.ndarray_from_cframe(body)[()]


def plane(services: Services, who: Principal, path: str, key: str) -> np.ndarray:
    """One image plane (*key* fixes the leading indices): reads only the chunks it touches."""
    return np.asarray(values(services, who, path, key))


def file_head(services: Services, who: Principal, path: str, nbytes: int) -> tuple[bytes, int]:
    """The first *nbytes* of a plain file or SChunk, and its whole size in bytes."""
    meta = info(services, who, path)
    size = int(meta.get("nbytes", 0))
    if not size:
        return b"", 0
    root, rel = split_path(path, allow_root_only=False)
    params = FetchParams(slice_=f"0:{min(nbytes, size)}")
    body = _reads(services, who).fetch(root, rel, params, CacheStats())
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
