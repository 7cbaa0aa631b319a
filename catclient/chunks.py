"""Chunk transfers of :class:`catclient.Client`: read plans, presigned S3 GETs, the local cache.

A read plan lists the chunks a selection touches as presigned URLs; each chunk
is checked against its content hash, and the API's ``/api/chunk`` serves any
chunk S3 would not.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import httpx
import urllib3

from catclient import wire
from catclient.cache import chunk_matches
from catclient.errors import BadRequest, IntegrityError, NotSupported, ServerError
from catclient.keys import normalize_key, path_str
from catclient.stats import Progress

log = logging.getLogger("catclient.client")

#: Attempts at one presigned GET before going through the API instead.
PRESIGNED_ATTEMPTS = 3


class Chunks:
    """Plans and chunks (a mixin of :class:`catclient.Client`)."""

    def _selection(self, path: str, geo: wire.Geometry, key: tuple, fancy: bool,
                   plan: Mapping | None = None, *, decode: bool = False,
                   ) -> tuple[wire.Selection, dict[int, bytes], wire.ArraySink | None]:
        """*key* planned by :mod:`catclient.wire`, the bytes of every chunk it touches, and a sink.

        The chunks come from *plan* if given, else from a plan asked now, else
        (no plans on this server) through ``/api/chunk``.  With *decode*, and a
        key :class:`wire.ArraySink` can read, each chunk is also decompressed
        into the numpy answer by the worker that fetched it (the sink returned
        holds it); else the sink is None and the caller selects from the bytes.
        """
        try:
            selection = wire.Selection.of(geo, key)
            if plan is None and self._plans_allowed():
                # A fancy key is planned as its bounding box, then indexed locally
                plan = self.plan(path, selection.box if fancy else key, fancy=False)
            if plan is None:
                sink = wire.ArraySink.of(selection.geo, key) if decode else None
                chunks = selection.gather(lambda touched: self._api_chunks(path, touched, sink))
                return selection, chunks, sink
            # The plan's geometry is that of the version its chunks belong to
            selection = wire.Selection.of(wire.Geometry.from_json(plan), key)
        except wire.SliceError as exc:
            raise BadRequest(str(exc)) from None
        refs = plan["chunk_refs"]
        sink = wire.ArraySink.of(selection.geo, key) if decode else None
        try:
            return selection, selection.gather(lambda _touched: self._load_refs(path, refs, sink)), sink
        except LookupError as exc:
            raise ServerError(f"the read plan of {path} does not list every chunk needed: {exc}") from None
        except ValueError as exc:  # a chunk (checked against its hash) that does not fit the plan's geometry
            raise ServerError(f"the read plan of {path} does not match its chunks: {exc}") from None

    def plan(self, path, key=None, *, fancy: bool | None = None) -> dict | None:
        """The server's read plan for a selection, or None when the server offers none.

        Parameters
        ----------
        path : str, PurePosixPath or Dataset
            The dataset.
        key : optional
            The selection (see :meth:`fetch`); fancy keys ask for their bounding box.
        fancy : bool, optional
            Whether *key* is already known to be (non-)fancy.

        Returns
        -------
        dict or None
            The plan JSON (geometry plus ``chunk_refs``; see docs/ARCHITECTURE.md).

        """
        path = path_str(path)
        if fancy is None:
            key, fancy = normalize_key(key, None)
        if fancy:
            meta = self.get_info(path)
            try:
                key = wire.key_plan(key, meta["shape"], meta["chunks"])[0]
            except wire.SliceError as exc:
                raise BadRequest(str(exc)) from None
        try:
            plan = self._json("GET", "plan", path, params={"slice_": wire.format_slice(key)}, optional=True)
        except NotSupported:
            log.info("%s has no read plans; reading through the API", self.urlbase)
            self._plans_ok = False
            return None
        self._plans_ok = True
        return plan

    def _load_refs(self, path: str, refs: list[Mapping], sink: wire.ArraySink | None = None,
                   ) -> dict[int, bytes]:
        """Bytes of a plan's chunk refs: inline, local cache, presigned URL, else ``/api/chunk``.

        With *sink*, each chunk is put into it as soon as its bytes are here (and
        checked), in the worker thread that fetched it.
        """
        out: dict[int, bytes] = {}
        by_hash: dict[str, list[int]] = {}
        urls: dict[str, str | None] = {}
        sizes: dict[str, int] = {}
        for nchunk, ref in wire.iter_chunk_refs(refs):
            if ref.get("inline") is not None:
                out[nchunk] = wire.decode_inline(ref["inline"])
                continue
            digest = str(ref["hash"])
            by_hash.setdefault(digest, []).append(nchunk)
            urls.setdefault(digest, ref.get("url"))
            sizes[digest] = int(ref.get("size") or 0)
        found = self.cache.get_many(by_hash) if self.cache is not None and by_hash else {}
        self.stats.add(cache_hits=len(found))
        todo = [d for d in by_hash if d not in found]
        name = path.rsplit("/", 1)[-1]
        with Progress(self.progress and bool(todo), sum(sizes[d] for d in todo), name) as bar:

            def one(digest: str) -> tuple[str, bytes]:
                data = self._chunk_by_ref(path, digest, urls[digest], by_hash[digest][0])
                bar.update(len(data))
                if sink is not None:
                    for nchunk in by_hash[digest]:
                        sink.put(nchunk, data)
                return digest, data

            results = self._map(one, todo)  # submitted now: downloads start
            if sink is not None:
                # What is already here (inline, cached) is decoded while the rest downloads
                _put_all(sink, out.items())
                _put_all(sink, ((n, d) for h, d in found.items() for n in by_hash[h]))
            fetched = dict(results)
        if self.cache is not None and fetched:
            self.cache.put_many(fetched, verified=True)
        for digest, data in (found | fetched).items():
            for nchunk in by_hash[digest]:
                out[nchunk] = data
        return out

    def _chunk_by_ref(self, path: str, digest: str, url: str | None, nchunk: int) -> bytes:
        if url:
            data = self._get_presigned(url)
            if data is not None:
                if chunk_matches(data, digest):
                    return data
                log.warning("chunk %s of %s from S3 does not match its hash; asking the API", nchunk, path)
        # No URL (a server without S3, e.g. an in-memory store), an expired one,
        # or bad bytes: the API serves the same chunk, checked the same way
        data = self.get_chunk(path, nchunk)
        if not chunk_matches(data, digest):
            raise IntegrityError(f"chunk {nchunk} of {path} does not match its hash {digest}")
        return data

    def _get_presigned(self, url: str) -> bytes | None:
        """A presigned GET (no API credentials: S3 allows one auth mechanism); None if refused."""
        for attempt in range(PRESIGNED_ATTEMPTS):
            try:
                status, content = self._presigned_once(url)
            except (httpx.HTTPError, urllib3.exceptions.HTTPError) as exc:
                log.debug("presigned GET failed (%s), attempt %d", exc, attempt + 1)
                time.sleep(0.05 * 2**attempt)
                continue
            self.stats.add(bytes_received=len(content))
            if status == 200:
                self.stats.add(chunk_downloads=1)
                return content
            if status < 500:
                return None  # expired or refused: retrying the same URL will not help
            time.sleep(0.05 * 2**attempt)
        return None

    def _presigned_once(self, url: str) -> tuple[int, bytes]:
        """One GET of a presigned URL: ``(status, body)`` (urllib3's pool, else the API's client)."""
        if self._s3 is None:
            resp = self._http.get(url)
            return resp.status_code, resp.content
        resp = self._s3.request("GET", url, preload_content=True, redirect=False)
        return resp.status, resp.data

    def _api_chunks(self, path: str, indices: list[int], sink: wire.ArraySink | None = None,
                    ) -> dict[int, bytes]:
        with Progress(self.progress, len(indices), path.rsplit("/", 1)[-1], unit="chunk") as bar:

            def one(i: int) -> tuple[int, bytes]:
                data = self.get_chunk(path, i)
                bar.update(1)
                if sink is not None:
                    sink.put(i, data)
                return i, data

            return dict(self._map(one, indices))


def _put_all(sink: wire.ArraySink, pairs) -> None:
    for nchunk, data in pairs:
        sink.put(nchunk, data)
