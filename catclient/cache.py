"""A persistent on-disk cache of compressed chunks, keyed by content hash.

Chunks in S3 are content-addressed (their key is the SHA-256 of their bytes,
see :mod:`catclient.wire.digest`), so a cached chunk never goes stale: the same
hash always means the same bytes.  A second session, or another process, re-reads nothing it already has.

Layout under the cache directory::

    ab/abcdef...            one chunk per file, named by its hash
    index.sqlite            hash -> (size, last access), for the size bound

Files are written to a temporary name and renamed into place, so a reader never
sees half a chunk even when several processes share the directory.  The index
only drives eviction (least recently used first); a file without an index row,
or a row without a file, is harmless.  Every read is checked against its hash,
so a damaged file is dropped instead of served.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from catclient.wire.digest import chunk_digest as chunk_digest
from catclient.wire.digest import chunk_matches

log = logging.getLogger(__name__)

#: Default bound of a cache directory: 2 GB.
DEFAULT_CACHE_BYTES = 2_000_000_000

#: After going over the bound, evict down to this fraction of it, so that a
#: steady stream of new chunks does not trigger an eviction on every write.
LOW_WATERMARK = 0.9

_HASH = re.compile(r"^[0-9a-f]{64}$")


class ChunkCache:
    """An LRU-bounded directory of chunks keyed by their content address (64 hex digits).

    Parameters
    ----------
    directory : str or Path
        Where chunks live; created if missing.  Several processes may share it.
    max_bytes : int
        Bound on the total size of cached chunks; least recently used chunks
        are evicted beyond it.

    Examples
    --------
    >>> cache = ChunkCache("/tmp/catclient-cache", max_bytes=100_000_000)
    >>> cache.put(chunk_digest(b"x"), b"x")
    >>> cache.get(chunk_digest(b"x"))
    b'x'

    """

    def __init__(self, directory: str | os.PathLike, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        # One connection shared by this process's threads (guarded by the lock);
        # other processes coordinate through SQLite's own file locking
        self._db = sqlite3.connect(
            self.directory / "index.sqlite", timeout=30, check_same_thread=False, isolation_level=None
        )
        with self._lock:
            self._sql("PRAGMA journal_mode=WAL")  # readers do not block the writer
            self._sql(
                "CREATE TABLE IF NOT EXISTS chunks "
                "(hash TEXT PRIMARY KEY, size INTEGER NOT NULL, atime REAL NOT NULL)"
            )
            self._sql("CREATE INDEX IF NOT EXISTS chunks_atime ON chunks (atime)")

    # ------------------------------------------------------------------ helpers

    def _sql(self, statement: str, args: Iterable = (), *, many: bool = False) -> list:
        """Run SQL; index trouble (a locked or damaged index) must not break reads."""
        try:
            cur = self._db.executemany(statement, args) if many else self._db.execute(statement, tuple(args))
            return cur.fetchall()
        except sqlite3.Error as exc:
            log.warning("chunk cache index: %s (%s)", exc, statement.split()[0])
            return []

    def path_of(self, digest: str) -> Path:
        """File of a chunk (refuses anything that is not a hex digest: no path tricks)."""
        if not _HASH.match(digest):
            raise ValueError(f"not a 64-hex-digit content address: {digest!r}")
        return self.directory / digest[:2] / digest

    # ------------------------------------------------------------------ reads

    def get(self, digest: str) -> bytes | None:
        """The chunk with this hash, or None if it is not cached (or was damaged)."""
        return self.get_many([digest]).get(digest)

    def get_many(self, digests: Iterable[str]) -> dict[str, bytes]:
        """The cached ones among *digests*, marking them recently used."""
        found: dict[str, bytes] = {}
        damaged = []
        for digest in dict.fromkeys(digests):
            path = self.path_of(digest)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("chunk cache: cannot read %s: %s", path, exc)
                continue
            if not chunk_matches(data, digest):
                damaged.append(digest)
                continue
            found[digest] = data
        for digest in damaged:
            log.warning("chunk cache: %s does not match its hash; dropped", digest)
            self.discard(digest)
        if found:
            now = time.time()
            with self._lock:
                self._sql(
                    "INSERT INTO chunks (hash, size, atime) VALUES (?, ?, ?) "
                    "ON CONFLICT(hash) DO UPDATE SET atime = excluded.atime",
                    [(d, len(v), now) for d, v in found.items()],
                    many=True,
                )
        return found

    def __contains__(self, digest: str) -> bool:
        return self.path_of(digest).exists()

    # ------------------------------------------------------------------ writes

    def put(self, digest: str, data: bytes, *, verified: bool = False) -> None:
        """Store one chunk (see :meth:`put_many`)."""
        self.put_many({digest: data}, verified=verified)

    def put_many(self, chunks: Mapping[str, bytes], *, verified: bool = False) -> None:
        """Store chunks, then evict least recently used ones beyond the bound.

        Parameters
        ----------
        chunks : mapping of str to bytes
            Hash -> bytes.
        verified : bool
            The caller already checked each hash; otherwise it is checked here,
            since a wrong entry would be served forever.

        Raises
        ------
        ValueError
            If a chunk's bytes do not match its hash.

        """
        if not chunks:
            return
        rows = []
        for digest, data in chunks.items():
            path = self.path_of(digest)
            if not verified and not chunk_matches(data, digest):
                raise ValueError(f"chunk bytes do not match hash {digest}")
            if not path.exists():
                self._write_atomic(path, data)
            rows.append((digest, len(data), time.time()))
        with self._lock:
            self._sql(
                "INSERT INTO chunks (hash, size, atime) VALUES (?, ?, ?) "
                "ON CONFLICT(hash) DO UPDATE SET atime = excluded.atime, size = excluded.size",
                rows,
                many=True,
            )
        self.evict()

    def _write_atomic(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Same directory as the target, so the rename is atomic (same filesystem)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("chunk cache: cannot write %s: %s", path, exc)
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def discard(self, digest: str) -> None:
        """Forget one chunk (file and index row)."""
        try:
            self.path_of(digest).unlink()
        except FileNotFoundError:
            pass
        with self._lock:
            self._sql("DELETE FROM chunks WHERE hash = ?", (digest,))

    def evict(self) -> int:
        """Drop least recently used chunks until the total is under the bound; returns bytes freed."""
        total = self.size
        if total <= self.max_bytes:
            return 0
        target = int(self.max_bytes * LOW_WATERMARK)
        with self._lock:
            rows = self._sql("SELECT hash, size FROM chunks ORDER BY atime ASC")
        freed = 0
        gone = []
        for digest, size in rows:
            if total - freed <= target:
                break
            try:
                self.path_of(digest).unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("chunk cache: cannot evict %s: %s", digest, exc)
                continue
            gone.append((digest,))
            freed += size
        with self._lock:
            self._sql("DELETE FROM chunks WHERE hash = ?", gone, many=True)
        return freed

    def clear(self) -> None:
        """Empty the cache."""
        with self._lock:
            rows = self._sql("SELECT hash FROM chunks")
        for (digest,) in rows:
            self.discard(digest)
        for sub in self.directory.glob("??"):
            for path in sub.iterdir():
                if _HASH.match(path.name):
                    path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ figures

    @property
    def size(self) -> int:
        """Total bytes of the indexed chunks."""
        with self._lock:
            rows = self._sql("SELECT COALESCE(SUM(size), 0) FROM chunks")
        return int(rows[0][0]) if rows else 0

    def __len__(self) -> int:
        with self._lock:
            rows = self._sql("SELECT COUNT(*) FROM chunks")
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        """Close the index (the files stay)."""
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"<ChunkCache {self.directory} max_bytes={self.max_bytes}>"
