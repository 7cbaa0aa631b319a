"""Manifests, heads, catalogs and change events, and their JSON forms."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from catclient.wire import INLINE_CHUNK_MAX, Geometry
from functions.engine.layout import chunk_hash

if TYPE_CHECKING:
    from functions.engine.frames import FrameLayout


def utcnow_iso() -> str:
    """Now as ISO-8601 UTC with a ``Z``, microseconds included (mtime must change on change)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dumps(obj) -> bytes:
    """Canonical compact JSON (sorted keys), so equal content hashes equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ChunkRef:
    """Where one chunk's bytes are: an object (by hash) or inline (special chunks)."""

    size: int
    digest: str | None = None
    inline: bytes | None = None
    #: Hash of the decompressed bytes.  Blosc2's multithreaded compressor lays
    #: blocks out in completion order, so equal data can compress to different
    #: bytes; this lets a re-publish recognise an unchanged chunk anyway.
    dhash: str | None = None

    @classmethod
    def of(cls, data: bytes, dhash: str | None = None) -> ChunkRef:
        """Reference *data*, inlining Blosc2 special chunks (a header only)."""
        if len(data) <= INLINE_CHUNK_MAX:
            return cls(size=len(data), inline=bytes(data))
        return cls(size=len(data), digest=chunk_hash(data), dhash=dhash)

    @property
    def identity(self) -> str:
        """Something equal for equal bytes (hash, or the inline bytes themselves)."""
        return self.digest or ("i:" + base64.b64encode(self.inline).decode())

    def to_json(self) -> dict:
        """Compact JSON form."""
        if self.inline is not None:
            return {"n": self.size, "i": base64.b64encode(self.inline).decode()}
        out = {"n": self.size, "h": self.digest}
        if self.dhash:
            out["d"] = self.dhash
        return out

    @classmethod
    def from_json(cls, d: Mapping) -> ChunkRef:
        """Inverse of :meth:`to_json`."""
        if "i" in d:
            return cls(size=int(d["n"]), inline=base64.b64decode(d["i"]))
        return cls(size=int(d["n"]), digest=str(d["h"]), dhash=d.get("d"))


class Kind(StrEnum):
    """What a dataset is; the value is what manifests, heads and answers say (``"ndarray"``, ...)."""

    NDARRAY = "ndarray"  #: a Blosc2 NDArray (``.b2nd``)
    SCHUNK = "schunk"  #: a Blosc2 SChunk (``.b2frame``)
    FILE = "file"  #: any other file, stored as an SChunk of its bytes
    LAZY = "lazyexpr"  #: a lazy expression: a definition, computed on read


@dataclass(frozen=True)
class Content:
    """A dataset's content independent of where and when it is published."""

    kind: str  # a Kind value
    geometry: dict  # Geometry JSON without vlmeta
    vlmeta: dict
    cbytes: int
    refs: tuple[ChunkRef, ...]
    #: The exact bytes of the uploaded or published frame, as pieces
    #: (:class:`functions.engine.frames.FrameLayout`); None: rebuilt on download
    frame: FrameLayout | None = None

    @property
    def content_hash(self) -> str:
        """Hash of everything a reader can observe; equal hash = nothing to publish.

        The frame's bytes are observable (downloads, ranges): a frame that differs only
        in its header (another writer's nthreads) is another version.  Content without
        a kept frame hashes as it always did.
        """
        body = {
            "kind": self.kind,
            "geometry": self.geometry,
            "vlmeta": self.vlmeta,
            "refs": [r.identity for r in self.refs],
        }
        if self.frame is not None:
            body["frame"] = self.frame.identity
        return hashlib.blake2b(dumps(body), digest_size=32).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """One immutable version of a dataset."""

    root: str
    path: str
    version: int
    mtime: str
    content: Content
    #: Key of the manifest this version replaced (None: the first version, or after a
    #: delete).  The head's conditional write made it the committed predecessor, so the
    #: chain from a head is the dataset's committed history (orphans of lost races are
    #: never on it).  Absent from manifests written before it existed.
    previous: str | None = None
    #: Who committed it, when known (a user name; None for tools and drops)
    author: str | None = None

    @property
    def kind(self) -> str:
        """Ndarray / schunk / file."""
        return self.content.kind

    @property
    def refs(self) -> tuple[ChunkRef, ...]:
        """Chunk references in chunk order."""
        return self.content.refs

    @property
    def geometry(self) -> Geometry:
        """The shape part, as client and server share it."""
        return Geometry.from_json({**self.content.geometry, "vlmeta": self.content.vlmeta})

    def to_bytes(self) -> bytes:
        """JSON bytes as stored."""
        c = self.content
        extra = {k: v for k, v in (("previous", self.previous), ("author", self.author)) if v}
        if c.frame is not None:
            extra["frame"] = c.frame.to_json()
        return dumps(
            {
                **extra,
                "format": 1,
                "root": self.root,
                "path": self.path,
                "version": self.version,
                "mtime": self.mtime,
                "kind": c.kind,
                "geometry": c.geometry,
                "vlmeta": c.vlmeta,
                "cbytes": c.cbytes,
                "content_hash": c.content_hash,
                "refs": [r.to_json() for r in c.refs],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        """Parse a stored manifest."""
        from functions.engine.frames import FrameLayout  # frames builds on this module's ChunkRef

        d = json.loads(data)
        content = Content(
            kind=d["kind"],
            geometry=d["geometry"],
            vlmeta=d["vlmeta"],
            cbytes=int(d["cbytes"]),
            refs=tuple(ChunkRef.from_json(r) for r in d["refs"]),
            frame=FrameLayout.from_json(d["frame"]) if d.get("frame") else None,
        )
        return cls(
            root=d["root"],
            path=d["path"],
            version=int(d["version"]),
            mtime=d["mtime"],
            content=content,
            previous=d.get("previous"),
            author=d.get("author"),
        )


@dataclass(frozen=True)
class Head:
    """The current version of a dataset (or a tombstone after a delete)."""

    root: str
    path: str
    version: int
    mtime: str
    kind: str
    manifest: str | None
    content_hash: str | None
    nbytes: int = 0
    cbytes: int = 0
    deleted: bool = False

    def to_json(self) -> dict:
        """JSON form (also the catalog entry)."""
        return asdict(self)

    @classmethod
    def from_json(cls, d: Mapping) -> Head:
        """Inverse of :meth:`to_json`."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class Catalog:
    """Which datasets a root has, with their heads' summaries."""

    root: str
    version: int = 0
    datasets: dict[str, dict] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """JSON bytes as stored."""
        return dumps({"root": self.root, "version": self.version, "datasets": self.datasets})

    @classmethod
    def from_bytes(cls, data: bytes) -> Catalog:
        """Parse a stored catalog."""
        d = json.loads(data)
        return cls(root=d["root"], version=int(d["version"]), datasets=dict(d["datasets"]))


@dataclass(frozen=True)
class ChangeEvent:
    """One committed dataset version, as carried by SNS (docs/ARCHITECTURE.md, "Change event")."""

    type: str  # "published" | "deleted"
    root: str
    path: str
    version: int
    previous_version: int
    mtime: str
    manifest: str | None
    changed_chunks: tuple[int, ...] = ()
    nchunks: int = 0
    #: Position of this change in its root's feed (``functions.engine.feed``): the
    #: catalog version that committed it, and the opaque cursor a subscriber continues
    #: from after applying it (0 and "" when the feed did not record it)
    seq: int = 0
    cursor: str = ""

    def to_json(self) -> dict:
        """The message body."""
        d = asdict(self)
        d["changed_chunks"] = list(self.changed_chunks)
        return d

    @classmethod
    def from_json(cls, d: Mapping) -> ChangeEvent:
        """Parse a message body; raises ``KeyError``/``ValueError`` on malformed input."""
        kind = d["type"]
        if kind not in ("published", "deleted"):
            raise ValueError(f"unknown event type {kind!r}")
        return cls(
            type=kind,
            root=str(d["root"]),
            path=str(d["path"]),
            version=int(d["version"]),
            previous_version=int(d.get("previous_version", 0)),
            mtime=str(d.get("mtime", "")),
            manifest=d.get("manifest"),
            changed_chunks=tuple(int(i) for i in d.get("changed_chunks", ())),
            nchunks=int(d.get("nchunks", 0)),
            seq=int(d.get("seq", 0)),
            cursor=str(d.get("cursor", "")),
        )
