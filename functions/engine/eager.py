"""Publishing a new dataset with its uploads overlapped with its hashing.

A publish hashes every chunk (the content address, and the hash of its
decompressed bytes that lets an unchanged chunk of a re-publish be reused),
then uploads the chunks the previous version lacks.  A dataset with no
previous version can reuse nothing: each chunk's upload starts as soon as it
is hashed, while the rest of the file is still being read and hashed.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from functions.engine.content import Loaded, load_path
from functions.engine.ports import BlobStore


class EagerUploads:
    """Chunk uploads started as :func:`load_path` hashes them (its ``on_chunk``).

    Parameters
    ----------
    store : BlobStore
        The origin bucket.
    pool : ThreadPoolExecutor
        Where the uploads run (the publisher's).
    upload : callable
        ``upload(store, digest, data) -> bytes uploaded`` (:func:`functions.engine.publish.store_chunk`).

    """

    def __init__(self, store: BlobStore, pool: ThreadPoolExecutor, upload) -> None:
        self.store, self.pool, self.upload = store, pool, upload
        self._futures: dict[str, Future] = {}
        self._lock = threading.Lock()

    def submit(self, digest: str, data: bytes) -> None:
        """Start uploading one chunk (once per digest: equal chunks are one object)."""
        with self._lock:
            if digest in self._futures:
                return
            self._futures[digest] = self.pool.submit(self.upload, self.store, digest, data)

    def wait(self) -> tuple[set[str], int, int]:
        """Wait for every upload: (digests stored, chunks uploaded, bytes uploaded).

        Raises
        ------
        Exception
            The first upload's error (the publish then fails as a sequential one would).

        """
        sizes = {digest: future.result() for digest, future in self._futures.items()}
        return set(sizes), sum(1 for s in sizes.values() if s), sum(sizes.values())


def load_uploading(store: BlobStore, pool: ThreadPoolExecutor, upload, local: Path, limits,
                   ) -> tuple[Loaded, tuple[set[str], int, int]]:
    """:func:`load_path` of *local* with every chunk uploaded as it is hashed; the uploads' figures.

    On a load error (an invalid file), the uploads already started are waited
    for, then the error raised: what they stored is garbage no version names,
    which the collector removes.
    """
    eager = EagerUploads(store, pool, upload)
    try:
        loaded = load_path(local, limits, on_chunk=eager.submit)
    except BaseException:
        for future in list(eager._futures.values()):
            future.exception()
        raise
    return loaded, eager.wait()
