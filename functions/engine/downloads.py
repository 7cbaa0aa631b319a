"""Downloads and read plans: the part of :class:`~functions.engine.reads.ReadService` that hands
out whole files and presigned chunk URLs.

:class:`Downloads` is a mixin of ``ReadService`` (it uses the service's region, answer limits
and lookups); :class:`Download` is what a download answers.
"""

from __future__ import annotations

import mimetypes
import posixpath
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from catclient import wire
from catclient.wire import human_bytes
from functions.engine import answers, describe, ranges
from functions.engine.answers import Stream
from functions.engine.errors import BadRequest, TooLarge
from functions.engine.fetchrules import FetchParams
from functions.engine.model import Kind, Manifest
from functions.engine.region import CacheStats
from functions.engine.spaces import Location, Principal

__all__ = ["PLAN_HINT", "Download", "Downloads"]

#: What to do instead of a read that is too big for any answer of this server
PLAN_HINT = "use catclient (it reads big datasets straight from S3) or read chunk-wise via /api/chunk"


@dataclass(frozen=True)
class Download:
    """A body ready to send."""

    body: bytes | Stream
    media_type: str
    filename: str
    content_encoding: str | None = None


class Downloads:
    """``download`` and ``plan`` of a :class:`~functions.engine.reads.ReadService` (a mixin)."""

    # ------------------------------------------------------------------ downloads

    def download(
        self, loc: Location, *, blosc2_encoding: bool, stats: CacheStats, who: Principal, ranged: bool = False
    ) -> Download:
        """The dataset as a file: kept frames exactly as stored, other frames rebuilt, plain files
        decompressed (or as cframe).  A download serves no byte ranges (*ranged*: one was asked for, 416).
        """
        with self._as_user(loc, who):
            m = self.manifest(loc)
            if ranged:
                raise ranges.refuse_ranges("a download")
            name = posixpath.basename(loc.rel)
            if m.kind == Kind.LAZY:  # the computed result, as a frame
                body = self._fetch_lazy(m, FetchParams(), self._may_read(who))
                return Download(body, "application/octet-stream", name)
            return self._download_stored(m, name, blosc2_encoding, stats)

    def _download_stored(self, m: Manifest, name: str, blosc2_encoding: bool, stats: CacheStats) -> Download:
        if describe.accept_ranges(m) == "bytes":  # the bytes uploaded or published, a window at a time
            fetch = self._objects(stats, keep=False)
            answer = ranges.exact_answer(m, None, None, fetch, self.limits, PLAN_HINT)
            return Download(answer.body, "application/octet-stream", name)
        geo = m.geometry
        plain = m.kind == Kind.FILE and not blosc2_encoding
        size = geo.nbytes if plain else m.content.cbytes + answers.FRAME_SLACK
        if self.limits.admit(size, name, PLAN_HINT):
            return self._download_streamed(m, name, plain, stats)
        if plain and self.max_read_nbytes and geo.nbytes > self.max_read_nbytes:  # decompressed whole
            raise TooLarge(
                f"{name} is {human_bytes(geo.nbytes)} decompressed, over the "
                f"{human_bytes(self.max_read_nbytes)} one request may decompress: {PLAN_HINT}"
            )
        chunks = self.region.chunks(m, range(len(m.refs)), stats)
        if m.kind == Kind.NDARRAY:
            body = wire.assemble_ndarray(geo, chunks).to_cframe()
            return Download(body, "application/octet-stream", name)
        schunk = wire.assemble_schunk(geo, [chunks[i] for i in range(len(m.refs))])
        if m.kind == Kind.SCHUNK:
            return Download(schunk.to_cframe(), "application/octet-stream", name)
        if blosc2_encoding:
            return Download(schunk.to_cframe(), "application/octet-stream", name, content_encoding="blosc2")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Download(schunk[:] if geo.nbytes else b"", media, name)

    def _download_streamed(self, m: Manifest, name: str, plain: bool, stats: CacheStats) -> Download:
        """A download past the buffered limit, made a few chunks at a time."""

        def fetch(indices):  # read once for this answer: not kept in the chunk LRU
            return self.region.chunks(m, indices, stats, keep=False)

        if plain:
            body = answers.plain_chunks(m.geometry.nbytes, len(m.refs), fetch)
            return Download(body, mimetypes.guess_type(name)[0] or "application/octet-stream", name)
        body = answers.frame_file(m.geometry, fetch)
        encoding = "blosc2" if m.kind == Kind.FILE else None
        return Download(body, "application/octet-stream", name, content_encoding=encoding)

    # ------------------------------------------------------------------ plans

    def plan(self, loc: Location, slice_: str | None, stats: CacheStats, who: Principal) -> dict:
        """A read plan: the chunks a slice needs, as presigned URLs (or inline bytes)."""
        with self._as_user(loc, who):
            m = self.manifest(loc)
            geo = m.geometry
            if m.kind == Kind.LAZY:
                raise BadRequest(f"{loc.path} is computed on read and has no stored chunks: use /api/fetch")
            try:
                key = wire.parse_key(geo, slice_)
                touched = wire.plan_chunks(geo, key)
            except wire.SliceError as exc:
                raise BadRequest(str(exc)) from None
            self.region.ensure_cached(m, touched, stats)
        return {
            "path": loc.path,
            "version": m.version,
            "mtime": m.mtime,
            **m.content.geometry,
            "vlmeta": m.content.vlmeta,
            "slice_": wire.format_slice(key),
            "expires_in": self.presign_ttl,
            "expires_at": _expiry(self.presign_ttl),
            "chunk_refs": self._plan_refs(m, touched),
        }

    def _plan_refs(self, m: Manifest, touched: list[int]) -> list[dict]:
        refs = []
        for i in touched:
            ref = m.refs[i]
            if ref.inline is not None:
                refs.append({"nchunk": i, "inline": wire.encode_inline(ref.inline), "size": ref.size})
            else:
                url = self.region.presign(ref.digest, self.presign_ttl)
                refs.append({"nchunk": i, "hash": ref.digest, "size": ref.size, "url": url})
        return refs


def _expiry(seconds: int) -> str:
    """When URLs signed now for *seconds* stop working (ISO-8601 UTC)."""
    return datetime.fromtimestamp(time.time() + seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
