"""What read plans and manifests carry besides geometry: inline chunks and chunk refs."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping

#: Chunks at most this long are Blosc2 special chunks (zeros, NaNs, uninitialised):
#: a header and nothing else.  They travel inline instead of as objects.
INLINE_CHUNK_MAX = 64


def decode_inline(text: str) -> bytes:
    """Inline chunk bytes as carried in manifests and plans."""
    return base64.b64decode(text)


def encode_inline(data: bytes) -> str:
    """Base64 text for an inline chunk."""
    return base64.b64encode(data).decode("ascii")


def iter_chunk_refs(refs: Iterable[Mapping]) -> Iterable[tuple[int, Mapping]]:
    """(nchunk, ref) pairs of a plan's ``chunk_refs``."""
    for ref in refs:
        yield int(ref["nchunk"]), ref
