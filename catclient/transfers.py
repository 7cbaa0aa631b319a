"""Whole files of :class:`catclient.Client`: download and upload.

Large downloads are assembled locally from their chunks; uploads over the API's
payload limit go through a presigned S3 PUT.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath

import blosc2
import httpx
import numpy as np

from catclient import wire
from catclient.errors import (
    BadRequest,
    NotFound,
    NotSupported,
    ServerUnavailable,
    TooLarge,
    Unauthorized,
    answer_path,
    error_for,
)
from catclient.keys import cbytes_of, geometry_of, kind_of, path_str
from catclient.objects import File
from catclient.stats import Progress, ProgressReader

log = logging.getLogger("catclient.client")

#: Uploads over this many bytes first learn the API's payload limit (``/api/limits``):
#: bigger ones go through a presigned S3 PUT instead of the API.
UPLOAD_PROBE_BYTES = 1_000_000


class Transfers:
    """Download and upload (a mixin of :class:`catclient.Client`)."""

    def download(self, path, localpath=None) -> Path:
        """Save a dataset or file locally.

        Parameters
        ----------
        path : str, PurePosixPath, Dataset or File
            What to download.
        localpath : str or Path, optional
            Target file, or an existing directory to put it in.  Defaults to
            ``./<root>/<path>`` as Caterva2 does.

        Returns
        -------
        Path
            Where the file was written.  ``.b2nd``/``.b2frame`` datasets are
            saved as Blosc2 frames, plain files decompressed.

        Notes
        -----
        Large datasets (over ``plan_threshold`` compressed bytes, or refused by
        the API as too large) are assembled locally from their chunks.

        """
        meta = path.meta if isinstance(path, File) else None
        path = path_str(path)
        meta = self.get_info(path) if meta is None else meta
        if kind_of(meta) == "group":
            raise BadRequest(f"{path} is a directory; download the files in it one by one")
        if localpath is None:
            dest = Path(path)
        else:
            dest = Path(localpath)
            if dest.is_dir():
                dest = dest / PurePosixPath(path).name
        geo = geometry_of(meta, path)
        if geo is not None and self._plans_allowed() and cbytes_of(meta) > self.plan_threshold:
            plan = self.plan(path, ())
            if plan is not None:
                self._download_local(path, geo, dest, plan)
                return dest
        try:
            self._download_api(path, dest)
        except TooLarge:
            if geo is None:
                raise
            log.info("%s: the API refused the download as too large; reading chunk by chunk", path)
            self._download_local(path, geo, dest)
        return dest

    def _download_api(self, path: str, dest: Path) -> None:
        url = self._url("download", path)
        # Ask for the compressed form of plain files: fewer bytes on the wire
        headers = {**self._auth_headers, "Accept-Encoding": "blosc2"}
        try:
            with self._http.stream("GET", url, headers=headers) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self.stats.add(api_requests=1, bytes_received=len(resp.content))
                    raise error_for(resp, "download", False)
                total = int(resp.headers.get("Content-Length") or 0)
                packed = resp.headers.get("Content-Encoding") == "blosc2"
                received = 0
                target = dest.with_name(dest.name + ".b2") if packed else dest

                def write(fh) -> None:
                    nonlocal received
                    with Progress(self.progress, total, dest.name) as bar:
                        for block in resp.iter_raw():
                            fh.write(block)
                            received += len(block)
                            bar.update(len(block))

                _write_atomic(target, write)
                self.stats.add(api_requests=1, bytes_received=received)
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"download of {path} from {self.urlbase} failed: {exc}",
                                    url=url) from None
        if packed:
            try:
                schunk = blosc2.open(str(target), mode="r")
                _write_atomic(dest, lambda fh: _write_chunks(fh, schunk))
            finally:
                target.unlink(missing_ok=True)

    def _download_local(self, path: str, geo: wire.Geometry, dest: Path, plan: Mapping | None = None) -> None:
        selection, chunks, _ = self._selection(path, geo, (), False, plan)
        whole = selection.assemble(chunks)  # as stored: no recompression
        if selection.geo.kind == "file":
            _write_atomic(dest, lambda fh: _write_chunks(fh, whole))
            return
        frame = whole.to_cframe()
        _write_atomic(dest, lambda fh: fh.write(frame))

    def upload(self, local, remotepath) -> File:
        """Upload a local file or an in-memory object.

        Parameters
        ----------
        local : str, Path, numpy.ndarray, blosc2.NDArray, blosc2.SChunk or bytes
            A file (``.b2nd``/``.b2frame`` stay Blosc2 datasets, anything else is
            stored compressed), or data: arrays become ``.b2nd`` frames.
        remotepath : str or PurePosixPath
            Destination ``root/path``; a path ending in ``/`` (or naming an existing
            directory) gets the local file's name.

        Returns
        -------
        Dataset or File
            The uploaded object (read back with ``/api/info``).

        Notes
        -----
        Bodies over the API's payload limit (``GET /api/limits``; ~4.5 MB on
        Lambda) go through a presigned S3 PUT (``/api/upload-url``, then the
        commit URL it names) instead of through the API.

        """
        remote = path_str(remotepath)
        if isinstance(local, str | os.PathLike):
            lp = Path(local)
            if not lp.is_file():
                raise NotFound(f"no such local file: {lp}")
            if str(remotepath).endswith("/"):
                # "into this directory", whether or not it exists yet
                remote = f"{remote}/{lp.name}"
            name, size = lp.name, lp.stat().st_size

            def opener():
                return open(lp, "rb")
        else:
            name, body = _payload(local, remote)
            size = len(body)

            def opener():
                return io.BytesIO(body)

        if size > UPLOAD_PROBE_BYTES and size > self._payload_limit():
            return self.get(self._upload_presigned(remote, opener, size, name))
        try:
            with opener() as fh, Progress(self.progress, size, f"upload {name}") as bar:
                files = {"file": (name, ProgressReader(fh, bar), "application/octet-stream")}
                url = self._url("upload", remote)
                resp = self._request("POST", url, "upload", files=files, optional=True)
        except TooLarge as exc:
            # A server whose limits we could not learn: its 413 says where big uploads go
            if "upload-url" not in (exc.detail or ""):
                raise
            return self.get(self._upload_presigned(remote, opener, size, name))
        return self.get(answer_path(resp))

    def _payload_limit(self) -> float:
        """Largest request body the API takes (``GET /api/limits``; asked once), inf if unknown."""
        if self._limits is None:
            try:
                self._limits = self._json("GET", "limits", None, optional=True, slash=False)
            except (NotSupported, BadRequest, Unauthorized):
                self._limits = {}
        return float(self._limits.get("payload_limit") or "inf")

    def _upload_presigned(self, remote: str, opener: Callable, size: int, name: str) -> str:
        """Upload through a presigned S3 PUT (for bodies over the API's payload limit); the final path."""
        # The size is signed into the URL: S3 takes exactly these bytes, and the API refuses
        # a size over its limit before anything is sent
        start = self._json("POST", "upload-url", remote, optional=True, params={"size": size})
        url = start["url"]
        with opener() as fh, Progress(self.progress, size, f"upload {name}") as bar:

            def blocks() -> Iterator[bytes]:
                while block := fh.read(1 << 20):
                    bar.update(len(block))
                    yield block

            try:
                # No API credentials: the URL is the authorisation.  An explicit length,
                # since S3 refuses chunked uploads to presigned URLs
                resp = self._http.request(start.get("method", "PUT"), url, content=blocks(),
                                          headers={"Content-Length": str(size)})
            except httpx.HTTPError as exc:
                raise ServerUnavailable(f"upload of {name} to S3 failed: {exc}",
                                        url=url.split("?")[0]) from None
        if resp.status_code >= 300:
            raise error_for(resp, "upload (presigned PUT)", False)
        commit = urllib.parse.urljoin(self.urlbase + "/", start["commit"].lstrip("/"))
        return answer_path(self._request("POST", commit, "upload-commit"))


def _write_atomic(dest: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write *dest* through a temporary file in the same directory, then rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _write_chunks(fh, schunk) -> None:
    """Write an SChunk's decompressed content chunk by chunk (never all of it in memory)."""
    for i in range(schunk.nchunks):
        fh.write(schunk.decompress_chunk(i))


def _payload(obj, remote: str) -> tuple[str, bytes]:
    """(filename, bytes) of an in-memory object to upload."""
    name = PurePosixPath(remote).name or "data"
    if isinstance(obj, blosc2.NDArray | blosc2.SChunk):
        return name, obj.to_cframe()
    if isinstance(obj, bytes | bytearray | memoryview):
        if name.endswith(".b2frame"):
            return name, blosc2.SChunk(data=bytes(obj)).to_cframe()
        return name, bytes(obj)
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        return name, blosc2.asarray(np.asarray(obj)).to_cframe()
    raise BadRequest(f"cannot upload a {type(obj).__name__}: pass a path, an array, an SChunk or bytes")
