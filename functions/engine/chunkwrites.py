"""Filling a laid-out array a chunk at a time, and publishing it once it is full.

An array is *laid out* by uploading a ``blosc2.uninit`` frame: every chunk of it
is a special "uninitialised" chunk, a 32-byte header the manifest holds inline,
so the layout costs a few hundred bytes whatever the array's size.  Those chunks
are the array's *slots*.  ``POST /api/chunk/{path}?nchunk=N`` writes one slot:

1. the chunk is checked against the array's geometry (decompressed size,
   blocksize, typesize) and stored under its content address, as every chunk is;
2. the writer **claims** the slot by creating its marker,
   ``w/<root>/<path>/<fill_nonce>/<N>`` (holding the chunk's reference), with a
   conditional create (``If-None-Match``).  Of writers racing for one slot exactly
   one creates it; the others are refused (409).  The very first write of an
   array, which has no nonce yet, instead commits over the version it read (the
   head's compare-and-swap decides between first writers the same way);
3. the claimed slots are **folded** into the manifest: the writer commits every
   claimed slot the manifest does not hold yet, over the version it read, until
   the manifest holds its own.  A writer whose head write loses usually finds its
   slot committed by the winner (a group commit), so many writers cost far fewer
   commits than chunks.

The fill's state lives in the array's own vlmeta, where every reader sees it:
``fill_nonce`` (written by the first chunk, never again), ``fill_state``
(``filling`` → ``publishing`` once every slot is written → ``published``) and,
after a publish, ``published_url``.  Which slots are written is the manifest
itself (an uninitialised chunk is an unwritten slot; a chunk of zeros is not).

The nonce names the markers, so a new layout uploaded at the same path starts from
no claims.  A known limit: a frame re-uploaded at its own path while carrying the
``fill_nonce`` of an unfinished fill there (a download of it, say) would have that
fill's claims folded into its unwritten slots; a publish removes the claims.

*Publishing* copies the finished array out as one contiguous frame object,
``p/<storage root>/<path>`` of the origin bucket (``published_url``, an
``s3://`` URL): what a byte-range reader of an object store wants.  The storage
root of ``@personal`` carries the user's id, so two users' arrays of one name
never meet.  An S3 PUT is atomic (a reader sees the whole frame or nothing), so
overlapping publishes write the same bytes and need no staging name or lock.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from catclient import wire
from catclient.wire import human_bytes
from functions.engine import fillframe, frames, layout, validation
from functions.engine.content import Loaded, decompressed_hash
from functions.engine.errors import (
    BadRequest,
    Conflict,
    DatasetNotFound,
    NotFound,
    PreconditionFailed,
    QuotaExceeded,
    TooLarge,
)
from functions.engine.model import ChunkRef, Content, Kind, Manifest, dumps
from functions.engine.publish import Publisher, PublishResult, store_chunk
from functions.engine.region import CacheStats, Region
from functions.engine.spaces import Location

FILL_NONCE, FILL_STATE, PUBLISHED_URL = "fill_nonce", "fill_state", "published_url"
FILLING, PUBLISHING, PUBLISHED = "filling", "publishing", "published"
#: Prefix of published frames in the origin bucket (the garbage collector scans only c/ and m/)
PUBLISHED_PREFIX = "p/"
#: Commit attempts of one chunk write.  Each lost attempt means another writer's
#: chunk went in first, so this bounds the writers one slot's write can wait behind
#: (every attempt costs a head read and a manifest write, a few tens of ms).
MAX_WRITE_ATTEMPTS = 64
#: Backoff between attempts, seconds (full jitter, capped): racing writers spread out.
BACKOFF_BASE, BACKOFF_CAP = 0.004, 0.25


@dataclass(frozen=True)
class Progress:
    """What a chunk write answers: the slot, how many are written out of how many, the state."""

    nchunk: int
    written: int
    nchunks: int
    state: str
    #: Whether this write completed the fill and so owes the array its publish
    publish: bool = False

    def to_json(self) -> dict:
        """The wire form (``publish`` is the server's own business)."""
        return {"nchunk": self.nchunk, "written": self.written, "nchunks": self.nchunks, "state": self.state}


def is_unwritten(ref: ChunkRef) -> bool:
    """Whether a slot holds nothing yet: an inline, special *uninitialised* chunk."""
    if ref.inline is None:
        return False
    try:
        return validation.chunk_header(ref.inline).special == validation.SPECIAL_UNINIT
    except ValueError:
        return False


def written_count(refs: tuple[ChunkRef, ...]) -> int:
    """How many slots of *refs* hold a chunk."""
    return sum(1 for ref in refs if not is_unwritten(ref))


def _header_typesize(typesize: int) -> int:
    """The typesize a chunk header records for an array's typesize (one byte: larger ones say 1)."""
    return typesize if typesize <= 255 else 1


def check_chunk(chunk: bytes, geo: wire.Geometry, shown: str) -> validation.ChunkHeader:
    """Refuse a chunk the array cannot read; return its header.

    The sizes, the blocksize and the typesize must be the array's own: a chunk
    compressed against another typesize decompresses to the right number of bytes
    with every one in the wrong place (the shuffle runs on a stride of it), which
    no reader would notice, so it is refused here.
    """
    try:
        header = validation.chunk_header(chunk)
    except (ValueError, RuntimeError) as exc:
        raise BadRequest(f"the body is not a Blosc2 chunk: {exc}") from None
    itemsize = wire.dtype_from_str(geo.dtype).itemsize
    blocksize = math.prod(geo.blocks) * itemsize if geo.blocks else geo.chunksize
    if header.nbytes != geo.chunksize:
        raise BadRequest(
            f"the chunk holds {header.nbytes} bytes where the chunks of {shown} hold {geo.chunksize} "
            f"(chunks {list(geo.chunks)} of {geo.dtype}, padded to whole blocks)"
        )
    if header.special == validation.SPECIAL_UNINIT:
        raise BadRequest("the chunk is an uninitialised one, which writes nothing: send the data")
    if header.needs_decompression and header.blocksize != min(blocksize, header.nbytes):
        raise BadRequest(
            f"the chunk is split into blocks of {header.blocksize} bytes where those of {shown} are "
            f"{blocksize}: compress it with blocksize={blocksize} (the array's blocks)"
        )
    if header.typesize != _header_typesize(geo.typesize):
        raise BadRequest(
            f"the chunk was compressed with a typesize of {header.typesize} where that of {shown} is "
            f"{geo.typesize}: compress it with typesize={geo.typesize} (the array's itemsize)"
        )
    return header


def _backoff(attempt: int) -> None:
    if attempt:
        time.sleep(random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt)))


class ChunkWrites:
    """Chunk writes into laid-out arrays, and their publish.

    Parameters
    ----------
    publisher : Publisher
        Commits the new versions (and stores the chunks and published frames).
    region : Region
        Reads the chunks a publish assembles.
    settle : callable
        Makes this region see a committed write at once (``WriteService.settle``).
    user_quota_bytes : int
        Compressed bytes a user may keep in ``@personal`` (0 = unlimited); a laid-out
        array was charged only its layout, so each chunk is charged as it lands.
    published_base : str
        What a published key is appended to in ``published_url`` (``s3://<origin>/``).
    max_publish_bytes : int
        Largest compressed array a publish assembles (it is held in memory to be
        PUT in one request); 0 = no bound.
    """

    def __init__(
        self,
        publisher: Publisher,
        region: Region,
        settle: Callable[[PublishResult], None],
        *,
        user_quota_bytes: int = 0,
        published_base: str = "s3://origin/",
        max_publish_bytes: int = 0,
    ) -> None:
        self.publisher = publisher
        self.region = region
        self.settle = settle
        self.user_quota_bytes = user_quota_bytes
        self.published_base = published_base
        self.max_publish_bytes = max_publish_bytes

    # ------------------------------------------------------------------ reads

    def _current(self, loc: Location) -> tuple[Manifest, int]:
        """The array's committed manifest and version, from the origin (never a stale view)."""
        if not loc.rel.endswith(".b2nd"):
            raise BadRequest(f"{loc.path} is not a .b2nd array: chunks are written into stored NDArrays")
        head, _ = self.publisher.read_head(loc.root, loc.rel)
        if head is None or head.deleted:
            raise DatasetNotFound(f"{loc.path} (lay it out first: upload a blosc2.uninit array there)")
        manifest = self.publisher.read_manifest(head.manifest)
        if manifest.kind != Kind.NDARRAY:
            raise BadRequest(f"{loc.path} is a {manifest.kind}, not an NDArray: it has no slots to write")
        return manifest, head.version

    def _check_quota(self, loc: Location, adding: int) -> None:
        if not loc.personal or not self.user_quota_bytes:
            return
        catalog, _ = self.publisher.read_catalog(loc.root)
        used = sum(int(e.get("cbytes", 0)) for e in (catalog.datasets if catalog else {}).values())
        if used + adding > self.user_quota_bytes:
            raise QuotaExceeded(
                f"this chunk would put {human_bytes(used + adding)} in your @personal space, over your "
                f"quota of {human_bytes(self.user_quota_bytes)}; remove something first"
            )

    # ------------------------------------------------------------------ write

    def write(self, loc: Location, nchunk: int, chunk: bytes) -> Progress:
        """Write *chunk* into slot *nchunk* of the array at *loc*, if nothing was written there.

        Raises
        ------
        BadRequest
            Not an NDArray, no body, or a chunk of another geometry (400).
        NotFound
            No array at *loc*, or no slot *nchunk* in it (404).
        Conflict
            The slot already holds a chunk (409); the array is untouched.
        """
        if not chunk:
            raise BadRequest("no chunk was sent: the body is the compressed chunk")
        manifest, version = self._current(loc)
        nchunks = len(manifest.refs)
        if not 0 <= nchunk < nchunks:
            raise NotFound(f"chunk {nchunk} of {loc.path}: it has {nchunks} chunk(s) (0..{nchunks - 1})")
        header = check_chunk(chunk, manifest.geometry, loc.path)
        try:
            # Decompressed once here (bounded: the array's chunksize passed the frame limits
            # when it was laid out), so a header over data that does not decompress is refused
            ref = ChunkRef.of(chunk, decompressed_hash(chunk, header))
        except (RuntimeError, ValueError) as exc:
            raise BadRequest(f"the chunk does not decompress: {exc}") from None
        self._check_quota(loc, len(chunk))
        _refuse_written(manifest, nchunk, loc)
        if ref.digest:  # stored before anything names it
            store_chunk(self.publisher.store, ref.digest, chunk)
        nonce = manifest.content.vlmeta.get(FILL_NONCE)
        if nonce is None:
            progress = self._first_write(loc, nchunk, ref, manifest, version)
            if progress is not None:
                return progress
            manifest, _ = self._current(loc)  # another first write gave the array its nonce
            _refuse_written(manifest, nchunk, loc)
            nonce = manifest.content.vlmeta.get(FILL_NONCE)
            if nonce is None:  # replaced meanwhile by an array never written to
                raise Conflict(f"{loc.path} was replaced by another array during the write; write it again")
        self._claim(loc, nonce, nchunk, ref)
        return self._fold(loc, nonce, nchunk, ref)

    def _first_write(
        self, loc: Location, nchunk: int, ref: ChunkRef, manifest: Manifest, version: int
    ) -> Progress | None:
        """The write that gives the array its nonce, committed over the version read; None if
        another first write won meanwhile (the caller then claims its slot like any other).
        """
        for attempt in range(MAX_WRITE_ATTEMPTS):
            _backoff(attempt)
            if attempt:
                manifest, version = self._current(loc)
                # The slot first: the winner may have written this very slot, with these very bytes
                _refuse_written(manifest, nchunk, loc)
                if FILL_NONCE in manifest.content.vlmeta:
                    return None
            progress = self._commit(loc, manifest, version, {nchunk: ref}, nchunk)
            if progress is not None:
                return progress
        raise Conflict(f"{loc.path} kept changing under the write of chunk {nchunk}; retry")

    def _claim(self, loc: Location, nonce: str, nchunk: int, ref: ChunkRef) -> None:
        """Win slot *nchunk* with a conditional create of its marker; 409 when another writer has it."""
        key = layout.fill_marker_key(loc.root, loc.rel, nonce, nchunk)
        try:
            body = dumps(ref.to_json())
            self.publisher.store.put(key, body, if_none_match=True, content_type="application/json")
        except PreconditionFailed:
            raise Conflict(f"chunk {nchunk} of {loc.path} was already written") from None

    def _fold(self, loc: Location, nonce: str, nchunk: int, ref: ChunkRef) -> Progress:
        """Commit every claimed slot the manifest does not hold yet, until it holds this one.

        A group commit: whichever writer's conditional write of the head wins takes
        the claims of the writers racing it along, so they find their slot in when
        they look again instead of each paying a commit of its own.
        """
        for attempt in range(MAX_WRITE_ATTEMPTS):
            _backoff(attempt)
            manifest, version = self._current(loc)
            if manifest.content.vlmeta.get(FILL_NONCE) != nonce:
                raise Conflict(f"{loc.path} was replaced by another array during the write; write it again")
            held = manifest.refs[nchunk]
            if held.identity == ref.identity:
                return _progress(manifest.content, nchunk, publish=False)  # folded in by another writer
            if not is_unwritten(held):
                raise Conflict(f"chunk {nchunk} of {loc.path} was already written")
            pending = {nchunk: ref, **self._pending(loc, nonce, manifest)}
            progress = self._commit(loc, manifest, version, pending, nchunk)
            if progress is not None:
                return progress
        raise Conflict(f"{loc.path} kept changing under the write of chunk {nchunk}; retry")

    def _pending(self, loc: Location, nonce: str, manifest: Manifest) -> dict[int, ChunkRef]:
        """Claimed slots *manifest* does not hold yet (markers of slots it holds are not read)."""
        prefix = layout.fill_marker_key(loc.root, loc.rel, nonce, 0).rpartition("/")[0] + "/"
        out = {}
        for key in self.publisher.store.list(prefix):
            tail = key[len(prefix) :]
            if not tail.isdigit() or int(tail) >= len(manifest.refs):
                continue
            n = int(tail)
            if is_unwritten(manifest.refs[n]):
                try:
                    out[n] = ChunkRef.from_json(json.loads(self.publisher.store.get(key).data))
                except NotFound:
                    continue  # removed once the array was published
        return out

    def _commit(
        self, loc: Location, manifest: Manifest, version: int, updates: dict[int, ChunkRef], nchunk: int
    ) -> Progress | None:
        """Commit *updates* over *version*; the progress of slot *nchunk*, or None if the head moved."""
        content, publish = _with_chunks(manifest.content, updates)
        try:
            result = self.publisher.publish(
                loc.root, loc.rel, Loaded(content, [None] * len(content.refs)), expect_version=version
            )
        except Conflict:
            return None  # another write committed first: look again
        self.settle(result)
        return _progress(content, nchunk, publish=publish)

    # ------------------------------------------------------------------ publish

    def published_key(self, loc: Location) -> str:
        """Where *loc*'s published frame goes in the origin bucket (its storage root keeps users apart)."""
        return f"{PUBLISHED_PREFIX}{loc.root}/{loc.rel}"

    def publish(self, loc: Location) -> str:
        """Copy the filled array at *loc* out as one frame; record and return where it went.

        Runs by itself after the write that fills the last slot, and as
        ``POST /api/publish`` (a retry after an interrupted one, or again: a
        finished array publishes as often as asked, to the same place).

        Raises
        ------
        BadRequest
            Some slot is still unwritten (400, the detail says how many).
        """
        manifest, _ = self._current(loc)
        missing = len(manifest.refs) - written_count(manifest.refs)
        if missing:
            raise BadRequest(
                f"{loc.path} has {missing} of its {len(manifest.refs)} chunks still unwritten; "
                "it is published once it is filled"
            )
        if self.max_publish_bytes and manifest.content.cbytes > self.max_publish_bytes:
            raise TooLarge(
                f"{loc.path} is {human_bytes(manifest.content.cbytes)} compressed, over the "
                f"{human_bytes(self.max_publish_bytes)} a publish copies in one request"
            )
        key = self.published_key(loc)
        url = self.published_base + key
        data, split = self._frame(manifest, url)
        self.publisher.store.put(key, data)
        self._mark_published(loc, url, split, manifest.refs)
        return url

    def _frame(self, manifest: Manifest, url: str) -> tuple[bytes, frames.Split | None]:
        """The array as one contiguous frame, its vlmeta saying it is published (assembled on disk),
        and its pieces: kept by the array, its downloads and ranges are the published bytes.
        """
        chunks = self.region.chunks(manifest, range(len(manifest.refs)), CacheStats(), keep=False)
        geo = manifest.geometry
        vlmeta = {**geo.vlmeta, FILL_STATE: PUBLISHED, PUBLISHED_URL: url}
        geo = dataclasses.replace(geo, vlmeta=vlmeta)
        with tempfile.TemporaryDirectory(prefix="cat-publish-") as tmp:
            path = Path(tmp) / "frame.b2nd"
            array = wire.assemble_ndarray(geo, chunks, urlpath=str(path))
            del array  # closed before it is read back
            data = path.read_bytes()
        return data, frames.split_frame(data, chunks, manifest.refs)

    def _mark_published(self, loc: Location, url: str, split: frames.Split | None, refs: tuple) -> None:
        """Commit ``fill_state: published`` and ``published_url`` (a no-op when already there),
        with the published frame's pieces (*split*, made of chunks *refs*) as the array's kept frame.
        """
        for attempt in range(MAX_WRITE_ATTEMPTS):
            _backoff(attempt)
            manifest, version = self._current(loc)
            vlmeta = {**manifest.content.vlmeta, FILL_STATE: PUBLISHED, PUBLISHED_URL: url}
            if vlmeta == manifest.content.vlmeta:
                # Recorded by a publish racing this one, which may not have told this
                # region yet: the caller's next read must see it all the same
                head, _ = self.publisher.read_head(loc.root, loc.rel)
                if head is not None and head.version == version:
                    self.region.learn(layout.head_key(loc.root, loc.rel), head.to_json())
                return
            kept = split if split is not None and manifest.refs == refs else None  # else: another array now
            content = _content(manifest.content, vlmeta=vlmeta, frame=kept.layout if kept else None)
            blobs = kept.blobs if kept else {}
            try:
                result = self.publisher.publish(
                    loc.root,
                    loc.rel,
                    Loaded(content, [None] * len(content.refs), blobs),
                    expect_version=version,
                )
            except Conflict:
                continue
            self.settle(result)
            self._forget_claims(loc, vlmeta.get(FILL_NONCE))
            return
        raise Conflict(f"{loc.path} kept changing while its publish was recorded; retry")

    def _forget_claims(self, loc: Location, nonce: str | None) -> None:
        """Remove the slot markers of a published array: every slot is in its manifest now.

        Once, by the publish that recorded ``published``; best effort (a marker left
        behind is a few bytes, and no write can use it: every slot reads as written).
        """
        if not nonce:
            return
        prefix = layout.fill_marker_key(loc.root, loc.rel, nonce, 0).rpartition("/")[0] + "/"
        for key in list(self.publisher.store.list(prefix)):
            try:
                self.publisher.store.delete(key)
            except Exception:  # noqa: BLE001 - litter, not data: the array is published either way
                return


def _refuse_written(manifest: Manifest, nchunk: int, loc: Location) -> None:
    if not is_unwritten(manifest.refs[nchunk]):
        raise Conflict(f"chunk {nchunk} of {loc.path} was already written")


def _with_chunks(content: Content, updates: dict[int, ChunkRef]) -> tuple[Content, bool]:
    """*content* with the slots of *updates* written, its fill state advanced; and whether
    this is the commit that completed the fill (and so owes the array its publish).
    """
    refs = list(content.refs)
    cbytes = content.cbytes
    for n, ref in updates.items():
        cbytes += ref.size - refs[n].size
        refs[n] = ref
    vlmeta = dict(content.vlmeta)
    if FILL_NONCE not in vlmeta:
        # What names *this* array against another that comes to sit at the same
        # path with the same size: written by the first chunk, never again
        vlmeta[FILL_NONCE] = uuid.uuid4().hex
        vlmeta[FILL_STATE] = FILLING
    publish = written_count(refs) == len(refs) and vlmeta.get(FILL_STATE, FILLING) == FILLING
    if publish:
        # Exactly one commit makes this move: it is conditional on the version it
        # read, so of two that both see the array complete one loses and looks again
        vlmeta[FILL_STATE] = PUBLISHING
    frame = fillframe.with_written(content.frame, len(refs), updates)
    return _content(content, vlmeta=vlmeta, cbytes=cbytes, refs=tuple(refs), frame=frame), publish


def _progress(content: Content, nchunk: int, *, publish: bool) -> Progress:
    state = content.vlmeta.get(FILL_STATE, FILLING)
    return Progress(nchunk, written_count(content.refs), len(content.refs), state, publish)


def _content(old: Content, **changed) -> Content:
    """*old* with *changed* fields, built field by field rather than copied.

    Deliberately not ``dataclasses.replace``: anything else a manifest comes to
    carry about the frame it was loaded from describes the uploaded frame, and a
    written slot makes that stale.  The kept frame goes unless *changed* gives the
    one the write made (:func:`functions.engine.fillframe.with_written`).
    """
    fields = {"kind": old.kind, "geometry": old.geometry, "vlmeta": old.vlmeta}
    fields.update(cbytes=old.cbytes, refs=old.refs)
    return Content(**{**fields, **changed})
