"""Publishing a dataset whose chunks arrive one at a time (a converted HDF5 dataset, a big file).

:meth:`Publisher.publish` takes every chunk's bytes at once; a 1 GB dataset
must not sit in memory whole.  Here each chunk is hashed and uploaded as it is
made (a few in flight), only its reference is kept, and the publisher commits
a :class:`Loaded` whose chunks are all stored already.  A chunk whose
decompressed bytes equal the previous version's chunk at the same index is not
uploaded at all, so re-publishing an unchanged dataset uploads nothing and a
changed one uploads only the chunks that changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from functions.engine.content import _LAYOUT, Loaded
from functions.engine.hdf5.convert import decompressed_hash
from functions.engine.model import ChunkRef, Content, Manifest
from functions.engine.publish import Publisher, PublishResult, store_chunk

#: Uploads in flight at once: S3 latency, not bandwidth, bounds small PUTs; the
#: bytes held are at most this many compressed chunks (4 MiB each at most).
IN_FLIGHT = 8


@dataclass
class Streamed:
    """The chunks of one dataset as uploaded: references by index and what moved."""

    refs: list[ChunkRef | None]
    uploaded_chunks: int = 0
    uploaded_bytes: int = 0


def _previous(publisher: Publisher, root: str, path: str, geometry: dict) -> list[ChunkRef]:
    """The current version's chunk references when its layout is *geometry*'s (else none)."""
    head, _ = publisher.read_head(root, path)
    if head is None or head.deleted:
        return []
    manifest: Manifest = publisher.read_manifest(head.manifest)
    old = manifest.content.geometry
    if any(old.get(k) != geometry.get(k) for k in _LAYOUT):
        return []
    return list(manifest.refs)


def upload_chunks(
    publisher: Publisher, chunks: Iterable[tuple[int, bytes]], nchunks: int, previous: list[ChunkRef]
) -> Streamed:
    """Store the chunks not stored yet, keeping only references; equal chunks go up once."""
    out = Streamed([None] * nchunks)
    known = {r.digest for r in previous if r.digest}
    pending: list[Future] = []

    def put(digest: str, data: bytes) -> int:
        return store_chunk(publisher.store, digest, data)  # 0 when stored already

    def settle(limit: int) -> None:
        while len(pending) > limit:
            size = pending.pop(0).result()
            out.uploaded_chunks += bool(size)
            out.uploaded_bytes += size

    with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="h5-upload") as pool:
        for i, data in chunks:
            ref = ChunkRef.of(data, decompressed_hash(data))
            old = previous[i] if i < len(previous) else None
            if old is not None and ref.dhash and ref.dhash == old.dhash:
                ref = old  # same values as now: the stored chunk stands in, nothing moves
            elif ref.digest and ref.digest not in known:
                known.add(ref.digest)
                pending.append(pool.submit(put, ref.digest, data))
                settle(IN_FLIGHT)
            out.refs[i] = ref
        settle(0)
    return out


def publish_stream(
    publisher: Publisher,
    root: str,
    path: str,
    base: Content,
    chunks: Iterable[tuple[int, bytes]],
    *,
    before_commit: Callable[[Content], None] | None = None,
) -> PublishResult:
    """Publish *base*'s geometry and vlmeta with the chunks *chunks* yields (index, bytes).

    Parameters
    ----------
    publisher : Publisher
        Commits the version (and owns the store the chunks go to).
    root, path : str
        Where the dataset goes.
    base : Content
        Kind, geometry (``nchunks`` included) and vlmeta; its refs and cbytes
        are those of an empty template (their overhead is carried over).
    chunks : iterable of (int, bytes)
        Every chunk index once, in any order.
    before_commit : callable, optional
        Called with the final content before the commit (quota and size checks:
        raise to publish nothing).

    """
    nchunks = int(base.geometry["nchunks"])
    streamed = upload_chunks(publisher, chunks, nchunks, _previous(publisher, root, path, base.geometry))
    if any(r is None for r in streamed.refs):
        raise ValueError(f"{root}/{path}: the converter left chunks out")
    overhead = base.cbytes - sum(r.size for r in base.refs)
    refs = tuple(streamed.refs)
    content = Content(base.kind, base.geometry, base.vlmeta, overhead + sum(r.size for r in refs), refs)
    if before_commit is not None:
        before_commit(content)
    result = publisher.publish(root, path, Loaded(content, [None] * nchunks))
    result.uploaded_chunks, result.uploaded_bytes = streamed.uploaded_chunks, streamed.uploaded_bytes
    return result
