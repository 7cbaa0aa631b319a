"""Validation of user-supplied dataset paths (``root/relative/path``)."""

from __future__ import annotations

import re

from functions.engine.errors import BadRequest, NotFound

#: Longest accepted path, characters (S3 keys are ≤ 1024 bytes and ours add prefixes).
MAX_PATH = 900
MAX_SEGMENT = 255
_ROOT = re.compile(r"^@?[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")
#: A container file's segment (``.h5``, ``.hdf5``, ``.b2z``) followed by an inner key
_CONTAINER_SEGMENT = re.compile(r"\.(h5|hdf5|b2z)/", re.IGNORECASE)


def split_path(path: str, *, allow_root_only: bool = True) -> tuple[str, str]:
    """Split and validate ``root/rel``; *rel* is "" for the root itself.

    Raises
    ------
    BadRequest
        For absolute paths, ``..``/``.`` segments, control characters,
        backslashes, overlong names or a malformed root name.

    """
    if path is None or not path.strip("/"):
        raise BadRequest("a path is required: <root>/<path>")
    if path.startswith("/"):
        raise BadRequest(f"absolute paths are not allowed: {path!r}")
    if len(path) > MAX_PATH:
        raise BadRequest(f"path is longer than {MAX_PATH} characters")
    if (bad := _BAD_CHARS.search(path)) is not None:
        if _CONTAINER_SEGMENT.search(path[: bad.start()]):
            # An inner key of a container (x.b2z/g/<NUL>...): no member has such a key, and
            # containers answer for keys they do not hold with 404, as Caterva2's do
            raise NotFound(f"no member with control characters in its key: {path!r}")
        raise BadRequest(f"path contains control characters or backslashes: {path!r}")
    segments = [s for s in path.split("/") if s != ""]
    for seg in segments:
        if seg in ("..", "."):
            raise BadRequest(f"'..' and '.' are not allowed in paths: {path!r}")
        if len(seg) > MAX_SEGMENT:
            raise BadRequest(f"path segment longer than {MAX_SEGMENT} characters")
    root, rel = segments[0], "/".join(segments[1:])
    if not _ROOT.match(root):
        raise BadRequest(f"not a valid root name: {root!r}")
    if not rel and not allow_root_only:
        raise BadRequest(f"{path!r} names a root, not a dataset")
    return root, rel
