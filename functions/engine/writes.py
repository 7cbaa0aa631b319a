"""The write side of the API as domain code: upload, remove, move, copy, append, staged uploads.

Every write goes through the :class:`~functions.engine.publish.Publisher`, the
same engine that publishes roots: chunks to the origin, an immutable manifest,
a conditional write of the head and catalog, a change event.  Readers therefore
see either the old or the new version of a dataset, never a mix, and the other
regions learn of the write from its event.  The writer's own region is brought
up to date before the call returns (:meth:`WriteService.settle`), so the
``GET /api/info`` a client sends right after an upload sees the new version.

Paths arrive already resolved and access-checked (:mod:`functions.engine.spaces`).
"""

from __future__ import annotations

import posixpath
import re
import uuid

from catclient.wire import human_bytes
from functions.engine.appends import appended as _appended
from functions.engine.appends import conform as _conform
from functions.engine.content import Loaded, load_bytes, open_frame
from functions.engine.errors import (
    BadRequest,
    Conflict,
    DatasetNotFound,
    Forbidden,
    InvalidFrame,
    NotBlosc2,
    NotFound,
    QuotaExceeded,
    TooLarge,
)
from functions.engine.model import Content, Kind, Manifest
from functions.engine.ports import Staging
from functions.engine.publish import Publisher, PublishResult
from functions.engine.reads import MAX_PRESIGN_SECONDS
from functions.engine.region import Region
from functions.engine.spaces import Location
from functions.engine.validation import FrameLimits

#: Staged uploads live under this prefix of the staging bucket.  It is not a valid
#: root name (``_``), so the ingest function, which the ingest bucket notifies of
#: every new object, refuses these keys instead of publishing them.
STAGING_PREFIX = "_staging/"
#: Read-modify-write attempts of an append before reporting a conflict.
MAX_APPEND_ATTEMPTS = 4
#: Decompressed bytes one append may bring: its values are held in memory whole
APPEND_NBYTES = 256 << 20
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def _is_dir(entries: dict, rel: str) -> bool:
    prefix = rel + "/" if rel else ""
    return any(p.startswith(prefix) for p in entries)


def _below(entries: dict, rel: str) -> dict[str, str]:
    """``{path: path relative to rel}`` of the datasets in directory *rel*."""
    prefix = rel + "/" if rel else ""
    return {p: p[len(prefix) :] for p in sorted(entries) if p.startswith(prefix)}


def _check_filename(name: str | None, loc: Location) -> str:
    if not name:
        raise BadRequest(f"{loc.path} is a directory: put the file name at the end of the path")
    if name in (".", "..") or _BAD_NAME.search(name) or len(name) > 255:
        raise BadRequest(f"not an acceptable file name: {name!r} (no slashes, '..' or control characters)")
    return name


def _destination(src: Location, dst: Location, dst_entries: dict) -> Location:
    """Caterva2's rule: a destination that is a directory, or has no suffix, receives *src* by name."""
    last = posixpath.basename(dst.rel)
    if dst.rel not in dst_entries and (not dst.rel or _is_dir(dst_entries, dst.rel) or "." not in last):
        name = posixpath.basename(src.rel)
        return dst.at(f"{dst.rel}/{name}" if dst.rel else name)
    return dst


def _check_parents(entries: dict, loc: Location) -> None:
    """Refuse ``a.b2nd/x`` when ``a.b2nd`` is a file: a path cannot be both."""
    parts = loc.rel.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        if parent in entries:
            raise BadRequest(f"{loc.space}/{parent} is a file, so {loc.path} cannot be created below it")


class WriteService:
    """Answers the write endpoints through a :class:`Publisher`.

    Parameters
    ----------
    publisher : Publisher
        Writes into the origin bucket (and emits the change events).
    region : Region
        This API's region, refreshed after each write so the writer sees it at once.
    max_upload_bytes : int
        Largest accepted upload or append, bytes (0 = unlimited).
    user_quota_bytes : int
        Largest total compressed size of one user's ``@personal`` space (0 = unlimited).
        Checked before each write; concurrent writes of one user may overshoot it
        by at most their own size (a soft quota).
    staging : Staging, optional
        Where presigned uploads are put; without it only direct uploads work.
    presign_ttl : int
        Seconds a presigned upload URL stays valid.

    """

    def __init__(
        self,
        publisher: Publisher,
        region: Region,
        *,
        max_upload_bytes: int = 100_000_000,
        user_quota_bytes: int = 1_000_000_000,
        staging: Staging | None = None,
        presign_ttl: int = 300,
    ) -> None:
        self.publisher = publisher
        self.region = region
        self.max_upload_bytes = max_upload_bytes
        self.user_quota_bytes = user_quota_bytes
        self.staging = staging
        # Signed by the function's temporary role credentials: see reads.MAX_PRESIGN_SECONDS
        self.presign_ttl = min(presign_ttl, MAX_PRESIGN_SECONDS)

    # ------------------------------------------------------------------ helpers

    def _entries(self, root: str) -> dict[str, dict]:
        """The root's catalog as the origin has it now (writes never act on a stale view)."""
        catalog, _ = self.publisher.read_catalog(root)
        return dict(catalog.datasets) if catalog else {}

    def check_upload_size(self, nbytes: int) -> None:
        """Raise :class:`TooLarge` for uploads over ``max_upload_bytes``."""
        if self.max_upload_bytes and nbytes > self.max_upload_bytes:
            raise TooLarge(
                f"the upload is {human_bytes(nbytes)}, over this server's limit of "
                f"{human_bytes(self.max_upload_bytes)}"
            )

    def _check_quota(
        self, loc: Location, entries: dict, adding: int, replacing: set[str] = frozenset()
    ) -> None:
        if not loc.personal or not self.user_quota_bytes:
            return
        used = sum(int(e.get("cbytes", 0)) for p, e in entries.items() if p not in replacing)
        if used + adding > self.user_quota_bytes:
            raise QuotaExceeded(
                f"this would put {human_bytes(used + adding)} in your @personal space, over your quota of "
                f"{human_bytes(self.user_quota_bytes)} (in use: {human_bytes(used)}); remove something first"
            )

    def usage(self, loc: Location) -> int:
        """Compressed bytes stored in *loc*'s root (what the quota counts for ``@personal``)."""
        return sum(int(e.get("cbytes", 0)) for e in self._entries(loc.root).values())

    def settle(self, result: PublishResult) -> None:
        """Make this region see a committed write now, not after the event or the head TTL.

        Dropping the process memo is not enough: the region's cache bucket holds a
        copy of the head that stays trusted for ``head_ttl``, and another container
        of this region may read it.  The publisher returned what it wrote (head,
        catalog, roots index), so the region takes those values as they are: no
        read back from the origin.  The real event arriving later changes nothing.
        """
        if result.status not in ("published", "deleted"):
            return
        for key, value in result.written.items():
            self.region.learn(key, value)

    def _current(self, root: str, rel: str, shown: str) -> tuple[Manifest, int]:
        """The committed manifest and version of a dataset, from the origin."""
        head, _ = self.publisher.read_head(root, rel)
        if head is None or head.deleted:
            raise DatasetNotFound(shown)
        return self.publisher.read_manifest(head.manifest), head.version

    # ------------------------------------------------------------------ upload

    def upload(self, loc: Location, filename: str | None, data: bytes) -> str:
        """Store *data* at *loc* (or *loc*/*filename* when *loc* is a directory); return the path.

        ``.b2nd``/``.b2frame`` must be Blosc2 frames and are stored chunk by
        chunk as they are; anything else is stored as a compressed file.
        """
        self.check_upload_size(len(data))
        entries = self._entries(loc.root)
        if not loc.rel or (loc.rel not in entries and _is_dir(entries, loc.rel)):
            name = _check_filename(filename, loc)
            loc = loc.at(f"{loc.rel}/{name}" if loc.rel else name)
            if _is_dir(entries, loc.rel) and loc.rel not in entries:
                raise BadRequest(f"{loc.path} is a directory; upload into it or remove it first")
        _check_parents(entries, loc)
        loaded = load_bytes(loc.rel, data, self.publisher.frame_limits)
        self._check_quota(loc, entries, loaded.content.cbytes, {loc.rel})
        self.settle(self.publisher.publish(loc.root, loc.rel, loaded))
        return loc.path

    # ------------------------------------------------------------------ remove

    def remove(self, loc: Location) -> str:
        """Remove a dataset, or everything below a directory (or all of ``@personal``); return the path."""
        if not loc.rel and not loc.personal:
            # One request must not wipe what every user shares; name a directory inside it
            raise BadRequest(f"{loc.path} is a whole shared space; remove a directory or file inside it")
        entries = self._entries(loc.root)
        targets = [loc.rel] if loc.rel in entries else list(_below(entries, loc.rel))
        if not targets and loc.rel:
            raise DatasetNotFound(loc.path)
        for rel in targets:
            self.settle(self.publisher.delete(loc.root, rel))
        return loc.path

    # ------------------------------------------------------------------ move / copy

    def copy(self, src: Location, dst: Location) -> str:
        """Copy a dataset or directory; chunks are shared, no chunk bytes move.  Returns the new path."""
        return self._transfer(src, dst, move=False)

    def move(self, src: Location, dst: Location) -> str:
        """Move a dataset or directory: copy (sharing chunks), then delete the source.  Returns the new path.

        Not one atomic step across two heads: the destination is committed
        before the source is deleted, so a crash in between leaves both, never
        neither.  A source changed meanwhile is kept (409).
        """
        return self._transfer(src, dst, move=True)

    def _transfer(self, src: Location, dst: Location, *, move: bool) -> str:
        src_entries, items = self._sources(src)
        dst_entries = src_entries if dst.root == src.root else self._entries(dst.root)
        dst = _destination(src, dst, dst_entries)
        if dst.root == src.root and (dst.rel == src.rel or dst.rel.startswith(src.rel + "/")):
            if dst.rel == src.rel:
                return dst.path  # onto itself: nothing to do (and a move must not delete it)
            raise BadRequest(f"cannot {'move' if move else 'copy'} {src.path} into itself ({dst.path})")
        targets = {p: dst.at(f"{dst.rel}/{tail}" if tail else dst.rel) for p, tail in items.items()}
        for target in targets.values():
            _check_parents(dst_entries, target)
            if _is_dir(dst_entries, target.rel) and target.rel not in dst_entries:
                raise BadRequest(f"{target.path} is a directory; choose another destination")
        if not (move and dst.root == src.root):
            adding = sum(int(src_entries[p].get("cbytes", 0)) for p in items)
            self._check_quota(dst, dst_entries, adding, {t.rel for t in targets.values()})
        for rel, target in targets.items():
            self._transfer_one(src, rel, target, move=move)
        return dst.path

    def _sources(self, src: Location) -> tuple[dict, dict[str, str]]:
        """The source root's entries, and the datasets a transfer of *src* takes (path → tail)."""
        if not src.rel:
            raise BadRequest(f"{src.path} is a whole root; name a file or directory inside it")
        entries = self._entries(src.root)
        if src.rel in entries:
            return entries, {src.rel: ""}
        items = _below(entries, src.rel)
        if not items:
            raise DatasetNotFound(src.path)
        return entries, items

    def _transfer_one(self, src: Location, rel: str, target: Location, *, move: bool) -> None:
        """Commit the current version of ``src.root/rel`` at *target* (chunks shared); a move deletes it."""
        head, _ = self.publisher.read_head(src.root, rel)
        if head is None or head.deleted:
            return  # removed since we listed it
        content = self.publisher.read_manifest(head.manifest).content
        self.settle(self.publisher.publish_content(target.root, target.rel, content))
        if not move:
            return
        try:
            self.settle(self.publisher.delete(src.root, rel, expect_version=head.version))
        except Conflict:
            raise Conflict(
                f"{src.space}/{rel} changed while it was being moved: {target.path} holds the "
                f"version that was copied and the newer source was kept"
            ) from None

    # ------------------------------------------------------------------ append

    def append(self, loc: Location, data: bytes) -> list[int]:
        """Append the NDArray frame *data* to *loc* along axis 0; return the new shape.

        Chunks of the existing array that the append does not touch are reused
        as they are; only the last, partial row of chunks (if any) is rebuilt.
        The commit is conditional on the version that was extended, so two
        racing appends cannot lose one another (the loser retries).
        """
        self.check_upload_size(len(data))
        # Appended values are decompressed whole: a tighter total than a stored upload's
        limits = self.publisher.frame_limits
        limits = FrameLimits(limits.chunk_nbytes, min(limits.total_nbytes or APPEND_NBYTES, APPEND_NBYTES))
        try:
            new = open_frame(data, "the appended data", limits, ndarray=True)
        except InvalidFrame:
            raise
        except NotBlosc2:
            raise BadRequest("the appended data is not a Blosc2 NDArray frame") from None
        for _attempt in range(MAX_APPEND_ATTEMPTS):
            manifest, version = self._current(loc.root, loc.rel, loc.path)
            if manifest.kind != Kind.NDARRAY:
                raise BadRequest(f"{loc.path} is a {manifest.kind}; only n-d arrays (.b2nd) take appends")
            geo = manifest.geometry
            values = _conform(new, geo, loc)
            if values.shape[0] == 0:
                return list(geo.shape)
            content, chunks = _appended(manifest, values, self.region)
            if loc.personal:
                entries = self._entries(loc.root)
                self._check_quota(loc, entries, content.cbytes, {loc.rel})
            try:
                result = self.publisher.publish(
                    loc.root, loc.rel, Loaded(content, chunks), expect_version=version
                )
            except Conflict:
                continue  # another write committed in between: redo it over the new version
            self.settle(result)
            return list(content.geometry["shape"])
        raise Conflict(f"{loc.path} kept changing during the append; retry")

    # ------------------------------------------------------------------ unfold

    def unfold(self, loc: Location):
        """Convert the stored HDF5 file at *loc* into ``<dir>/<stem>/<hdf5 path>.b2nd`` datasets.

        Returns the :class:`~functions.engine.hdf5.unfold.UnfoldReport`; ``loc.at(report.directory)``
        is the directory's path.  The file is read chunk by chunk from the store (never whole in
        memory); quota and upload size limits apply to every dataset it creates, and a refusal
        removes the datasets this call created.  A file with no convertible array is a 400.
        """
        from functions.engine.hdf5 import unfold as h5unfold  # h5py only when something unfolds

        if not h5unfold.is_hdf5(loc.rel):
            raise BadRequest(f"{loc.path} is not an HDF5 file (.h5 or .hdf5): only those can be unfolded")
        manifest, _ = self._current(loc.root, loc.rel, loc.path)
        if manifest.kind != Kind.FILE:
            raise BadRequest(f"{loc.path} is a {manifest.kind}, not an uploaded HDF5 file")
        entries = self._entries(loc.root)
        target = loc.at(h5unfold.directory_of(loc.rel))
        if target.rel in entries:
            raise BadRequest(f"{target.path} is a file, so {loc.path} cannot be unfolded into it")
        _check_parents(entries, target)
        added: dict[str, int] = {}

        def check(rel: str, content: Content) -> None:
            self.check_upload_size(content.cbytes)
            added[rel] = content.cbytes
            self._check_quota(loc, entries, sum(added.values()), set(added))

        committed: list[PublishResult] = []

        def progress(result: PublishResult) -> None:
            committed.append(result)
            self.settle(result)  # the writer's next info/list sees it at once

        try:
            return h5unfold.unfold_stored(
                manifest, self.region, self.publisher, target.rel, check=check, progress=progress
            )
        except (QuotaExceeded, TooLarge):
            for result in committed:  # what this call created goes; replaced versions stay
                if result.status == "published" and result.version == 1:
                    self.settle(self.publisher.delete(loc.root, result.path))
            raise

    # ------------------------------------------------------------------ staged uploads

    def stage(self, sub: str, size: int) -> dict:
        """A presigned PUT of exactly *size* bytes, for one large upload by user *sub*.

        The size is refused at once when over ``max_upload_bytes`` (no URL is
        made); it is signed into the URL (S3 refuses another length) and kept in
        the staging key, so a commit refuses whatever else was staged.

        Returns
        -------
        dict
            ``{"url", "method": "PUT", "staged": key, "expires_in", "max_bytes", "size"}``.

        """
        if self.staging is None:
            raise BadRequest("this server has no staging bucket: large uploads are not available")
        if size < 0:
            raise BadRequest("size must be the upload's length in bytes")
        self.check_upload_size(size)
        key = f"{STAGING_PREFIX}{sub}/{uuid.uuid4().hex}-{size}"
        return {
            "url": self.staging.presign_put(key, self.presign_ttl, size),
            "method": "PUT",
            "staged": key,
            "expires_in": self.presign_ttl,
            "max_bytes": self.max_upload_bytes,
            "size": size,
        }

    def commit_staged(self, loc: Location, sub: str, key: str) -> str:
        """Publish a staged object at *loc* (as an upload would) and delete it; return the path.

        Raises
        ------
        Forbidden
            If *key* is not a staging key of user *sub*.
        DatasetNotFound
            If nothing was PUT there (or it expired, or was committed already).
        BadRequest
            If what was staged is not the size the URL was made for (then it is deleted).

        """
        if self.staging is None:
            raise BadRequest("this server has no staging bucket: large uploads are not available")
        match = re.fullmatch(rf"{re.escape(STAGING_PREFIX + sub)}/[0-9a-f]{{32}}-([0-9]{{1,15}})", key or "")
        if not match:
            raise Forbidden("that staged upload is not yours (or not a staging key at all)")
        try:
            size = self.staging.size(key)
        except NotFound:
            raise DatasetNotFound(
                f"staged upload {key}: PUT the file to its presigned URL first (the URL expires after "
                f"{self.presign_ttl} s, and a committed upload is gone)"
            ) from None
        if size != int(match.group(1)):
            self.staging.delete(key)
            raise BadRequest(
                f"the staged upload is {size} bytes, not the {match.group(1)} its URL was made for; "
                "it was deleted: ask /api/upload-url again with the right size"
            )
        try:
            self.check_upload_size(size)
            path = self.upload(loc, None, self.staging.read(key))
        except (BadRequest, Forbidden):
            self.staging.delete(key)  # it can never be committed; don't keep it around
            raise
        self.staging.delete(key)
        return path
