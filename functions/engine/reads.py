"""The read side of the API as domain code: roots, list, info, fetch, chunk, download, plan.

Pairs with :mod:`functions.engine.writes`: every method takes the
:class:`~functions.engine.spaces.Location` that :func:`~functions.engine.spaces.locate`
made of the user's path (access already checked), and the caller's
:class:`~functions.engine.spaces.Principal`, which re-authorises what a lazy
expression reads and names the caller's ``@personal`` in answers and errors.
Nothing here knows about HTTP: the FastAPI layer parses parameters, calls these
methods and turns :mod:`functions.engine.errors` into status codes.  ``download`` and
``plan`` are in :mod:`functions.engine.downloads` (a mixin of :class:`ReadService`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from catclient import wire
from functions.engine import answers, describe, history, hotchunks, ranges, spaces
from functions.engine.answers import AnswerLimits, Stream
from functions.engine.containerreads import ContainerReads, Member, container_chunk_refused
from functions.engine.containers import CONTAINER_SUFFIXES, may_be_in_container
from functions.engine.downloads import PLAN_HINT, Downloads
from functions.engine.errors import BadRequest, DatasetNotFound, TooLarge
from functions.engine.fetchrules import FetchParams
from functions.engine.hdf5 import groups
from functions.engine.lazydata import LazyDatasets, MayRead
from functions.engine.model import Kind, Manifest
from functions.engine.region import CacheStats, Region
from functions.engine.selections import apply_filter
from functions.engine.spaces import PERSONAL, PUBLIC, SHARED, Location, Principal

#: Largest selection assembled in memory for one fetch (bytes, uncompressed).  A
#: Lambda has at most 10 GB; beyond this the answer could not be sent anyway.
MAX_SELECTION_BYTES = 1 << 30
#: What to do instead of a read that would decompress too much
WORK_HINT = (
    "ask for smaller slices, read chunk by chunk via /api/chunk, or use catclient "
    "(its read plans fetch the chunks straight from S3 and select on the client)"
)
#: Bytes of decoded chunks kept for tiny reads (:mod:`functions.engine.hotchunks`)
DECODED_BYTES = 64 << 20
#: Longest lifetime given to presigned URLs, seconds (see ``ReadService.__init__``)
MAX_PRESIGN_SECONDS = 3600

#: What to do instead of a read that is too big for any answer of this server
_PLAN_HINT = PLAN_HINT


class ReadService(Downloads):
    """Answers the read endpoints from a :class:`Region`.

    Parameters
    ----------
    region : Region
        Where heads, manifests and chunks come from.
    response_limit : int
        Largest buffered body in bytes (0 = unlimited).
    stream_limit : int
        Largest streamed body in bytes (0 = this process cannot stream): answers
        between the two limits are streamed (:class:`~functions.engine.answers.Stream`),
        bigger ones raise :class:`TooLarge` (:class:`~functions.engine.answers.AnswerLimits`).
    presign_ttl : int
        Seconds presigned plan URLs stay valid.
    lazy : LazyDatasets, optional
        Evaluates lazy-expression datasets (without it they cannot be read).
    max_read_nbytes : int
        Decompressed bytes one read may touch or assemble (0 = only
        :data:`MAX_SELECTION_BYTES` on what is assembled); larger reads raise :class:`TooLarge`.

    """

    def __init__(
        self,
        region: Region,
        *,
        response_limit: int = 0,
        stream_limit: int = 0,
        presign_ttl: int = 300,
        lazy: LazyDatasets | None = None,
        max_read_nbytes: int = 256 << 20,
        decoded_bytes: int = DECODED_BYTES,
    ) -> None:
        self.region = region
        # tiny reads inside one chunk, from the chunk decoded once (functions/engine/hotchunks.py)
        self.decoded = hotchunks.DecodedChunks(decoded_bytes)
        self.limits = AnswerLimits(response_limit, stream_limit)
        self.max_read_nbytes = max_read_nbytes
        # A URL signed with a role's temporary credentials dies with them whatever its
        # X-Amz-Expires says; an hour stays well inside a Lambda role session
        self.presign_ttl = min(presign_ttl, MAX_PRESIGN_SECONDS)
        self.lazy = lazy
        # members of stored .h5/.b2z files, read in place (functions/engine/containerreads.py)
        self.containers = ContainerReads(region, max_read_nbytes=max_read_nbytes, sized=self._sized)

    def _missing_member(self, loc: Location) -> Member | None:
        """The container member *loc* names when no dataset has that path, else None."""
        if not may_be_in_container(loc.rel):
            return None  # no container in its name: no catalog read on the way of every read
        try:
            if not loc.rel or loc.rel in self._entries(loc.root):
                return None
        except DatasetNotFound:
            return None
        return self._member(loc)

    def _member(self, loc: Location) -> Member | None:
        if not may_be_in_container(loc.rel):
            return None
        try:
            return self.containers.member(loc)
        except DatasetNotFound:
            return None

    @property
    def response_limit(self) -> int:
        """Largest buffered answer, bytes (``limits.buffered``)."""
        return self.limits.buffered

    # ------------------------------------------------------------------ as the caller

    @contextmanager
    def _as_user(self, loc: Location, who: Principal) -> Iterator[None]:
        """Errors raised inside name what the user asked for, never a storage root."""
        try:
            with spaces.speaking_as(who):
                yield
        except history.VersionGone as exc:
            raise DatasetNotFound(f"{loc.path}: {exc.reason}") from None
        except DatasetNotFound:
            # The domain may name a root or an object key: name the user's path instead
            raise DatasetNotFound(loc.path) from None

    @staticmethod
    def _may_read(who: Principal) -> MayRead:
        return lambda storage_root: spaces.may_read(storage_root, who)

    # ------------------------------------------------------------------ listing

    def roots(self, who: Principal, subscribed: set[str] | None = None) -> dict:
        """``{name: {"name", "subscribed"}}`` of the roots *who* sees.

        Published roots and ``@public``; for a logged-in user also ``@personal``
        and ``@shared``.  Storage names of personal spaces are never listed.
        """
        subscribed = self.region.subscriptions() if subscribed is None else subscribed
        names = spaces.visible_roots(self.region.roots(), authenticated=who.authenticated)
        return {name: {"name": name, "subscribed": name in subscribed} for name in names}

    def _entries(self, root: str) -> dict[str, dict]:
        return self.region.catalog(root).datasets

    def list(self, loc: Location, who: Principal) -> list[str]:
        """Files below *loc* relative to it, sorted; ``[basename]`` for a file; ``[]`` for an empty space."""
        try:
            with self._as_user(loc, who):
                entries = self._entries(loc.root)
        except DatasetNotFound:
            if loc.user_space:
                return []
            raise
        if loc.rel in entries:
            if (member := self._member(loc)) is not None:  # a container lists its members
                with self._as_user(loc, who):
                    return self.containers.list(member)
            return [posixpath.basename(loc.rel)]
        prefix = loc.rel.rstrip("/") + "/" if loc.rel else ""
        below = sorted(p[len(prefix) :] for p in entries if p.startswith(prefix))
        if not below and (member := self._member(loc)) is not None:
            with self._as_user(loc, who):
                return self.containers.list(member)
        return below

    def info(self, loc: Location, who: Principal) -> dict:
        """Caterva2's metadata JSON for a dataset, file, directory or root, as *who* may see it."""
        with self._as_user(loc, who):
            try:
                out = self._info(loc, self._may_read(who))
            except DatasetNotFound:
                if loc.user_space and not loc.rel:
                    return {"kind": "group", "mtime": None, "size": 0, "nfiles": 0}
                raise
        target = out.get("schunk", out)
        if "urlpath" in target:
            target["urlpath"] = loc.path
        if "operands" in out:  # a lazy expression: operands as this caller may see them
            out["operands"] = {alias: spaces.shown(path, who) for alias, path in out["operands"].items()}
        return out

    def _info(self, loc: Location, may_read: MayRead) -> dict:
        if loc.rel:
            try:
                manifest = history.manifest_of(self.region, loc.root, loc.rel, loc.version)
            except DatasetNotFound:
                if loc.version is not None:
                    raise
                manifest = None
            if manifest is not None and (table := self.containers.table(loc, manifest)) is not None:
                return self.containers.table_info(table, manifest)
            if manifest is not None and manifest.kind == Kind.FILE and (member := self._member(loc)):
                return self.containers.info(member)  # a container file shows as its root group
            if manifest is not None:
                if manifest.kind == Kind.LAZY and self.lazy is not None:
                    # Authorised like a read: its expression and operands say what it reads
                    self.lazy.flatten(manifest, may_read)
                out = describe.info_json(manifest)
                if manifest.kind == Kind.LAZY and self.lazy is not None:
                    out["mtime"] = self.lazy.effective_mtime(manifest)
                return out
        entries = self._entries(loc.root)
        prefix = loc.rel.rstrip("/") + "/" if loc.rel else ""
        inside = [e for p, e in entries.items() if p.startswith(prefix)]
        if loc.rel and not inside:
            if (member := self._member(loc)) is not None:
                return self.containers.info(member)
            raise DatasetNotFound(loc.path)
        out = {
            "kind": "group",
            "mtime": max((e["mtime"] for e in inside), default=None),
            "size": sum(int(e.get("nbytes", 0)) for e in inside),
            "nfiles": len(inside),
        }
        if groups.attrs_path(loc.rel.rstrip("/")) in entries:  # an unfolded HDF5 group or file
            out["attrs"] = groups.group_attrs(self.region, loc.root, loc.rel.rstrip("/"))
        return out

    # ------------------------------------------------------------------ subscriptions

    def set_subscribed(self, loc: Location, on: bool) -> dict:
        """Subscribe this region to a root (or stop): ``{"name", "subscribed"}``.

        Only published roots and ``@public`` can be subscribed: a region-wide
        subscription to a private space would be shared by every user of the region.
        """
        if loc.rel:
            raise BadRequest("subscribe takes a root name, not a path")
        if loc.space in (PERSONAL, SHARED):
            raise BadRequest(f"{loc.space} cannot be subscribed; only published roots and {PUBLIC} can")
        try:
            self.region.catalog(loc.root)
        except DatasetNotFound:
            raise DatasetNotFound(loc.path) from None
        roots = self.region.set_subscribed(loc.root, on)
        return {"name": loc.space, "subscribed": loc.root in roots}

    # ------------------------------------------------------------------ data

    def manifest(self, loc: Location) -> Manifest:
        """Current manifest of a dataset (404 for directories and unknown paths)."""
        if not loc.rel:
            raise BadRequest(f"{loc.space!r} is a root, not a dataset")
        return history.manifest_of(self.region, loc.root, loc.rel, loc.version)

    def _sized(self, body: bytes, what: str, hint: str) -> bytes | Stream:
        """*body* as it may be sent: buffered, streamed from memory, or refused (413)."""
        return Stream([body], len(body)) if self.limits.admit(len(body), what, hint) else body

    def _lazy(self, m: Manifest) -> LazyDatasets:
        if self.lazy is None:
            raise BadRequest(f"{m.path} is a lazy expression and this server cannot compute")
        return self.lazy

    def chunk(self, loc: Location, nchunk: int, stats: CacheStats, who: Principal) -> bytes | Stream:
        """One stored chunk, exactly as ``schunk.get_chunk(nchunk)`` returns it (computed for expressions)."""
        with self._as_user(loc, who):
            if (member := self._missing_member(loc)) is not None:
                return self.containers.chunk(member, nchunk)
            if (refused := container_chunk_refused(loc)) is not None:
                raise BadRequest(refused)
            m = self.manifest(loc)
            if (table := self.containers.table(loc, m)) is not None:
                table.close()
                raise BadRequest(f"{loc.path} is a table (CTable): fetch rows with /api/fetch and slice_")
            n = m.geometry.nchunks if m.kind == Kind.LAZY else len(m.refs)
            if not 0 <= nchunk < n:
                raise BadRequest(f"nchunk {nchunk} is out of range: {loc.rel} has {n} chunk(s) (0..{n - 1})")
            if m.kind == Kind.LAZY:
                body = self._lazy(m).chunk(m, nchunk, self._may_read(who))
            else:
                body = self.region.chunk(m, nchunk, stats)
            return self._sized(body, f"chunk {nchunk} of {loc.rel}", _PLAN_HINT)

    def fetch(
        self, loc: Location, params: FetchParams, stats: CacheStats, who: Principal, *, files: bool = False
    ) -> bytes | Stream:
        """A cframe of the selection (whole datasets are re-framed without recompression).

        Plain files are refused unless *files* (``/api/fetch`` serves datasets, as
        Caterva2's does: a file is read through ``/api/download`` or ``/api/chunk``).
        """
        with self._as_user(loc, who):
            if (member := self._missing_member(loc)) is not None:
                return self.containers.fetch(
                    member, params.slice_, field=params.field, filter=params.filter, indices=params.indices
                )
            m = self.manifest(loc)
            if (table := self.containers.table(loc, m)) is not None:  # a CTable is a dataset of rows
                if params.filter or params.indices:
                    table.close()
                    raise BadRequest(f"{loc.path} is a table: fetch rows with slice_, one column with field")
                return self.containers.table_fetch(table, params.slice_, loc.path, params.field)
            if m.kind == Kind.FILE and loc.rel.lower().endswith(CONTAINER_SUFFIXES):
                return self._container_whole(loc, m, params, stats)
            if m.kind == Kind.FILE and not files:
                raise BadRequest(
                    f"{loc.path} is a file, not a dataset: download it with /api/download/{loc.path}"
                )
            n_d = m.kind in (Kind.NDARRAY, Kind.LAZY)
            params = params.checked(tuple(m.geometry.shape) if n_d else None)
            if m.kind == Kind.LAZY:
                return self._fetch_lazy(m, params, self._may_read(who))
            if m.kind != Kind.NDARRAY and (params.field or params.filter or params.indices):
                raise BadRequest(f"field, filter and indices apply to n-d arrays; {loc.rel} is a {m.kind}")
            return self._fetch_stored(m, params, stats)

    def _container_whole(self, loc: Location, m: Manifest, params: FetchParams, stats: CacheStats):
        """A container fetched: the file as uploaded, whole (its members are paths of their own)."""
        if params.key_given:
            raise BadRequest(
                f"{loc.path} is a container, served whole as the file it is: there is nothing to slice "
                f"(fetch one of its members, {loc.path}/<key>; list them with /api/list/{loc.path})"
            )
        return self._download_stored(m, posixpath.basename(loc.rel), False, stats).body

    def fetch_answer(
        self,
        loc: Location,
        params: FetchParams,
        stats: CacheStats,
        who: Principal,
        *,
        range_header: str | None = None,
        if_range: str | None = None,
    ) -> ranges.Answer:
        """What ``/api/fetch`` answers: a kept frame as stored (whole, or the byte ranges
        asked for), anything else made per request (``Accept-Ranges: none``, ranges refused).
        """
        with self._as_user(loc, who):
            member = self._missing_member(loc)
            if member is not None and not params.key_given and (window := self.containers.window(member)):
                frame, fetch = window  # a .b2z leaf: its frame as it lies in the container
                etag = ranges.validator_of(member.manifest)
                return ranges.frame_answer(
                    frame, etag, loc.path, range_header, if_range, fetch, self.limits, _PLAN_HINT
                )
            m = None if member is not None else self.manifest(loc)
            if m is not None and not params.key_given and describe.accept_ranges(m) == "bytes":
                # kept in the LRU unless streamed (a big frame read once would evict the rest):
                # a small frame served again needs no storage, stalled origin or not
                small = m.content.cbytes <= self.limits.buffered
                fetch = self._objects(stats, keep=bool(range_header) or small)
                return ranges.exact_answer(m, range_header, if_range, fetch, self.limits, _PLAN_HINT)
        if range_header:
            raise ranges.refuse_ranges("a slice, a computed result or a rebuilt frame")
        body = self.fetch(loc, params, stats, who)
        return ranges.Answer(body, headers={"Accept-Ranges": "none"})

    def info_answer(self, loc: Location, who: Principal) -> tuple[dict, dict[str, str]]:
        """:meth:`info` and its headers: a kept frame's ``ETag``, the one its ranges carry; else a
        weak one naming the version (a chunk write that leaves the size alone still moves it).
        """
        with self._as_user(loc, who):
            member = self._missing_member(loc)
            if member is not None:  # found once, described from it (what info would do again)
                out = self.containers.info(member)
        if member is not None:  # a member's bytes are its container's: so is its validator
            if out.get("accept_ranges") == "bytes":
                return out, {"ETag": ranges.validator_of(member.manifest)}
            return out, {"ETag": f'W/"v{member.manifest.version}-{member.manifest.mtime}"'}
        out = self.info(loc, who)
        if out.get("accept_ranges") == "bytes":
            with self._as_user(loc, who):
                m = self.manifest(loc)
            # A write may land between the two reads: the strong tag only of the version described
            etag = ranges.etag_of(m) if m.version == out.get("version") else None
            if etag is not None:
                return out, {"ETag": etag}
        # A version is committed once per path (a delete leaves a tombstone version)
        if "version" not in out or "mtime" not in out:
            return out, {}
        return out, {"ETag": f'W/"v{out["version"]}-{out["mtime"]}"'}

    def _objects(self, stats: CacheStats, *, keep: bool):
        """Stored objects by digest, for a kept frame's pieces (``keep=False``: a whole frame, read once)."""
        return lambda digests: self.region.objects(digests, stats, keep=keep)

    def _fetch_lazy(self, m: Manifest, params: FetchParams, may_read: MayRead) -> bytes:
        if params.field or params.filter:
            raise BadRequest(
                f"field and filter need a structured dtype; {m.path} is a computed {m.geometry.dtype}"
            )
        try:
            key = params.key(len(m.geometry.shape))
        except wire.SliceError as exc:
            raise BadRequest(str(exc)) from None
        body = self._lazy(m).frame(m, key, may_read)
        return self._sized(body, "the computed selection", "ask for a smaller slice, or read chunk-wise")

    def _fetch_stored(self, m: Manifest, params: FetchParams, stats: CacheStats) -> bytes | Stream:
        """The selection through the one pipeline client and server share (``wire.read_frame``)."""
        geo = m.geometry
        whole_hint = "ask for slices, or read chunk-wise via /api/chunk"
        hint = "ask for a smaller slice, or read chunk-wise" if params.key_given else whole_hint
        sizes = [r.size for r in m.refs]
        special = _inline_chunks(m)

        def fetch(indices):
            return self.region.chunks(m, indices, stats)

        try:
            key = wire.parse_key(geo, params.slice_, params.indices)
            post = self._post_step(m, params)
            tiny = self._from_decoded(m, key, stats) if post is None else None
            if tiny is not None and (not self.response_limit or len(tiny) <= self.response_limit):
                return tiny  # else the general path says what an answer over the limit gets
            if self._streams(geo, key, post, sizes, m.path, hint):

                def once(indices):  # read once for this answer: not kept in the chunk LRU
                    return self.region.chunks(m, indices, stats, keep=False)

                limits = self._read_limits(self.limits.streamed, hint, m.path)
                return self._stream_selection(geo, key, once, post, sizes, limits, special)
            limits = self._read_limits(self.response_limit or None, hint, m.path)
            return wire.read_frame(
                geo, key, fetch, limits=limits, chunk_sizes=sizes, post=post, special=special
            )
        except wire.SelectionTooLarge as exc:
            raise TooLarge(str(exc)) from None
        except (wire.SliceError, IndexError, TypeError) as exc:
            raise BadRequest(str(exc)) from None

    def _from_decoded(self, m: Manifest, key: tuple, stats: CacheStats) -> bytes | None:
        """A tiny selection inside one chunk of an n-d array, from that chunk decoded once; else None."""
        geo = m.geometry
        if m.kind != Kind.NDARRAY or not self.decoded.max_bytes or not key:
            return None
        itemsize = wire.dtype_from_str(geo.dtype).itemsize
        if wire.selected_nbytes(key, tuple(geo.shape), itemsize) > hotchunks.MAX_SELECTION_BYTES:
            return None
        found = hotchunks.single_chunk(geo, key)
        if found is None:
            return None
        nchunk, local = found
        decoded = self.decoded.get(
            m.refs[nchunk].identity, geo, lambda: self.region.chunks(m, [nchunk], stats)[nchunk]
        )
        return wire.to_cframe(np.array(decoded[local]))  # a copy, C-ordered; 0-d stays 0-d

    def _streams(self, geo, key, post, sizes: list[int], name: str, hint: str) -> bool:
        """Whether a selection's answer may outgrow the buffered limit (then it is made on disk, streamed)."""
        if not (self.limits.streamed and self.limits.buffered):
            return False
        if key == () and post is None:  # framed as stored: the stored sizes are the answer's size
            return self.limits.admit(sum(sizes) + answers.FRAME_SLACK, name, hint)
        return wire.Selection.of(geo, key).nbytes + answers.FRAME_SLACK > self.limits.buffered

    def _read_limits(self, response: int | None, hint: str, name: str) -> wire.Limits:
        return wire.Limits(
            response=response,
            box=self.max_read_nbytes or MAX_SELECTION_BYTES,
            hint=hint,
            name=name,
            work=self.max_read_nbytes or None,
            work_hint=WORK_HINT,
        )

    def _stream_selection(self, geo, key, fetch, post, sizes, limits, special) -> bytes | Stream:
        if key == () and post is None:  # as stored: no chunk is decompressed
            return answers.frame_file(geo, fetch)
        stream = answers.array_file(
            lambda path: wire.write_frame(
                geo, key, fetch, path, limits=limits, chunk_sizes=sizes, post=post, special=special
            )
        )
        if stream.length > self.limits.buffered:
            return stream
        return b"".join(stream)  # it came out small (compressible, or filtered): one body

    def _post_step(self, m: Manifest, params: FetchParams):
        """The filter and field of a fetch, as a step on the selected array (None: nothing to do)."""
        if not (params.field or params.filter):
            return None
        dtype = wire.dtype_from_str(m.geometry.dtype) if m.kind == Kind.NDARRAY else None
        if dtype is None or not dtype.fields:
            raise BadRequest(f"field and filter need a structured dtype; {m.path} is {m.geometry.dtype}")
        if params.field and params.field not in dtype.fields:
            raise BadRequest(f"no field {params.field!r} in {m.path}; fields: {', '.join(dtype.fields)}")

        def step(result: np.ndarray) -> np.ndarray:
            if params.filter:
                result = apply_filter(result, params.filter)
            return np.ascontiguousarray(result[params.field]) if params.field else result

        return step


# ---------------------------------------------------------------------- helpers


def _inline_chunks(m: Manifest) -> set[int]:
    """Chunks held inline in the manifest: Blosc2 special chunks, filled on read, never decompressed."""
    return {i for i, ref in enumerate(m.refs) if ref.inline is not None}
