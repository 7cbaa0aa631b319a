"""The read API of :class:`catclient.Client`: listing, metadata, and reading selections.

Small selections go through ``/api/fetch``; large ones through read plans
(:mod:`catclient.chunks`), assembled locally by the selection pipeline of
:mod:`catclient.wire`.
"""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Mapping

import blosc2
import numpy as np

from catclient import wire
from catclient.errors import BadRequest, NotFound, ServerError, TooLarge
from catclient.keys import geometry_of, indices_param, kind_of, normalize_key, path_str, selection_nbytes
from catclient.objects import Dataset, File, Group, Root
from catclient.tables import table_records, table_rows

log = logging.getLogger("catclient.client")

#: Query strings longer than this go as ``POST /api/fetch`` with a JSON body
#: (proxies and API Gateway refuse URLs of a few KB).
MAX_QUERY_CHARS = 4000

#: Datasets whose metadata a client remembers from its last plan read of them.
PLANNED_MEMO = 256


class Reads:
    """Reading (a mixin of :class:`catclient.Client`)."""

    def get_roots(self) -> dict:
        """The roots this server offers.

        Returns
        -------
        dict
            ``{name: {"name": name, "subscribed": bool, ...}}``.

        """
        return self._request("GET", f"{self.urlbase}/api/roots", "roots").json()

    def get_list(self, path) -> list[str]:
        """Every file below *path* (a root or directory), recursively, relative to it.

        Parameters
        ----------
        path : str, PurePosixPath, Root, Group or File
            Where to list.

        Returns
        -------
        list of str
            Sorted relative paths; ``[basename]`` when *path* names a file.

        """
        return self._json("GET", "list", path_str(path))

    def get_info(self, path) -> dict:
        """Metadata of a dataset, file, directory or root (Caterva2's ``/api/info`` JSON).

        Parameters
        ----------
        path : str, PurePosixPath or File
            Path as ``root/relative/path``.

        Returns
        -------
        dict
            For arrays: ``shape``, ``chunks``, ``blocks``, ``dtype``, ``schunk``,
            ``mtime``; for files the SChunk fields; for directories ``kind: group``.

        """
        return self._json("GET", "info", path_str(path))

    def get(self, path, version: int | None = None) -> Root | File | Dataset | Group:
        """An object for a root, directory, dataset or file.

        Parameters
        ----------
        path : str, PurePosixPath, Root, File or Group
            ``"example"`` gives a :class:`Root`; ``"example/ds-1d.b2nd"`` a
            :class:`Dataset`; a plain file a :class:`File`; a directory a
            :class:`Group`.  Objects are returned as they are.
        version : int, optional
            An earlier version of a dataset or file: the object reads only it
            (through :meth:`at_version`).

        Returns
        -------
        Root, Dataset, File or Group

        """
        if version is not None:
            return self.at_version(version).get(path_str(path))
        if isinstance(path, Root | File | Group):
            return path
        text = path_str(path)
        if "/" not in text:
            return Root(self, text)
        root, rel = text.split("/", 1)
        return Root(self, root)[rel]

    def get_download_url(self, path) -> str:
        """The URL ``download`` reads (what ``catclient url`` prints)."""
        return self._url("download", path_str(path))

    def fetch(self, path, slice_=None):
        """A slice of a dataset, decompressed.

        Parameters
        ----------
        path : str, PurePosixPath, Dataset or File
            The dataset.
        slice_ : str, int, slice, list, numpy.ndarray or tuple of those, optional
            What to read: ``"2:4, 3:6"``, ``(slice(2, 4), 3)``, ``5``, index
            arrays (fancy indexing).  None reads everything.

        Returns
        -------
        numpy.ndarray or bytes
            An array for n-dimensional datasets, bytes for SChunks and files.

        Notes
        -----
        Selections over ``plan_threshold`` bytes are read through a read plan
        (chunks straight from S3, in parallel) when the server offers plans; the
        rest through ``/api/fetch``.  When the server says an answer is too
        large (413), the chunks are read one by one instead.

        """
        return self.get_slice(path, slice_, as_blosc2=False)

    def get_slice(self, path, key=None, as_blosc2: bool = True, field: str | None = None,
                  filter: str | None = None):
        """A slice of a dataset as a Blosc2 object (or numpy/bytes with ``as_blosc2=False``).

        Parameters
        ----------
        path : str, PurePosixPath, Dataset or File
            The dataset.
        key : str, int, slice, list, numpy.ndarray or tuple of those, optional
            The selection (see :meth:`fetch`).
        as_blosc2 : bool
            True returns ``blosc2.NDArray`` / ``blosc2.SChunk``; False numpy / bytes.
        field : str, optional
            One field of a structured dtype (evaluated by the server).
        filter : str, optional
            A boolean expression over field names, e.g. ``"(a > 990) & d"``
            (evaluated by the server).

        Returns
        -------
        blosc2.NDArray, blosc2.SChunk, numpy.ndarray or bytes

        """
        meta = path.meta if isinstance(path, File) else None
        return self._read(path_str(path), key, as_blosc2=as_blosc2, meta=meta, field=field, filter=filter)

    def get_chunk(self, path, nchunk: int) -> bytes:
        """One compressed chunk exactly as stored (``schunk.get_chunk(nchunk)``), via ``/api/chunk``.

        Parameters
        ----------
        path : str, PurePosixPath or Dataset
            The dataset.
        nchunk : int
            Flat chunk index.

        Returns
        -------
        bytes

        """
        url = self._url("chunk", path_str(path))
        resp = self._request("GET", url, "chunk", params={"nchunk": int(nchunk)})
        return resp.content

    def _read_selected(self, path, params, kind, geo, key, fancy, as_blosc2, field, filter):
        """A field or filter: asked of the API; a field too large for one answer is read locally."""
        try:
            return self._fetch_api(path, {**params, "field": field, "filter": filter}, kind, as_blosc2)
        except TooLarge:
            if filter or geo is None:
                raise
        # A field is a view of the records: read them locally and take it
        whole = self._read_local(path, geo, key, fancy, as_blosc2=False)
        result = np.ascontiguousarray(whole[field])
        return blosc2.asarray(result) if as_blosc2 else result

    def _read(self, path: str, key, *, as_blosc2: bool, meta: Mapping | None = None,
              field: str | None = None, filter: str | None = None):
        if meta is None and not (field or filter):
            planned = self._read_planned(path, key, as_blosc2)
            if planned is not None:
                return planned
        meta = self.get_info(path) if meta is None else meta
        kind = kind_of(meta)
        if kind == "group":
            raise BadRequest(f"{path} is a directory; list it, or read the datasets in it")
        if kind == "ctable":
            return self._read_table(path, key, meta, as_blosc2, field or filter)
        ndim = len(meta["shape"]) if kind == "ndarray" else 1
        key, fancy = normalize_key(key, ndim)
        geo = geometry_of(meta, path)
        if kind != "ndarray" and (fancy or field or filter):
            raise BadRequest(f"fancy indices, field and filter apply to n-d arrays; {path} is not one")
        nbytes = selection_nbytes(meta, key)
        params = {"indices": indices_param(key)} if fancy else {"slice_": wire.format_slice(key)}
        if field or filter:
            return self._read_selected(path, params, kind, geo, key, fancy, as_blosc2, field, filter)
        if geo is not None and not fancy and self._plans_allowed() and nbytes > self.plan_threshold:
            plan = self.plan(path, key, fancy=False)
            if plan is not None:
                self._remember_planned(path, meta)
                return self._read_local(path, geo, key, fancy, as_blosc2=as_blosc2, plan=plan)
            # No plans on this server: /api/fetch, and chunk by chunk if that is refused
        if geo is not None and geo.kind == "file":
            # /api/fetch serves datasets (as Caterva2's server does): a plain file is read chunk-wise
            return self._read_local(path, geo, key, fancy, as_blosc2=as_blosc2)
        try:
            return self._fetch_api(path, params, kind, as_blosc2)
        except TooLarge:
            if geo is None:
                raise
        log.info("%s: the API refused the answer as too large; reading its chunks instead", path)
        return self._read_local(path, geo, key, fancy, as_blosc2=as_blosc2)

    def _read_table(self, path: str, key, meta: Mapping, as_blosc2: bool, selected) -> object:
        """Rows of a CTable: a ``blosc2.CTable``, or numpy records of the columns that have a dtype."""
        if selected:
            raise BadRequest(f"{path} is a table: read rows with a start:stop slice (client.get: a Table)")
        table = blosc2.ctable_from_cframe(self._fetch_raw(path, {"slice_": table_rows(key)}))
        return table if as_blosc2 else table_records(table, meta)

    def _read_planned(self, path: str, key, as_blosc2: bool):
        """A read of a dataset last read through a plan, straight through a plan: no ``/api/info``.

        The metadata remembered only routes the read (plan or ``/api/fetch``): the
        plan itself carries the geometry of the version it reads, and the key is
        checked against that.  None when the read goes another way (then
        ``/api/info`` is asked as usual).
        """
        meta = self._planned.get(path)
        if meta is None or not self._plans_allowed():
            return None
        try:
            key, fancy = normalize_key(key, len(meta["shape"]))
            if fancy or selection_nbytes(meta, key) <= self.plan_threshold:
                return None
        except BadRequest:
            return None  # the dataset may have changed: ask /api/info
        geo = geometry_of(meta, path)
        try:
            plan = self.plan(path, key, fancy=False)
        except (BadRequest, NotFound):
            self._planned.pop(path, None)  # changed or gone: the usual way says which
            return None
        if plan is None:
            return None
        return self._read_local(path, geo, key, False, as_blosc2=as_blosc2, plan=plan)

    def _remember_planned(self, path: str, meta: Mapping) -> None:
        if kind_of(meta) != "ndarray":
            return
        self._planned.pop(path, None)
        self._planned[path] = dict(meta)
        while len(self._planned) > PLANNED_MEMO:
            self._planned.pop(next(iter(self._planned)))

    def _plans_allowed(self) -> bool:
        return self.use_plans and self._plans_ok is not False

    def _fetch_raw(self, path: str, params: Mapping) -> bytes:
        """The body ``/api/fetch`` answers (POSTed when the query would be too long)."""
        params = {k: v for k, v in params.items() if v is not None}
        url = self._url("fetch", path)
        if len(urllib.parse.urlencode(params)) > MAX_QUERY_CHARS:
            return self._request("POST", url, "fetch", json=params).content
        return self._request("GET", url, "fetch", params=params).content

    def _fetch_api(self, path: str, params: Mapping, kind: str, as_blosc2: bool):
        url = self._url("fetch", path)
        data = self._fetch_raw(path, params)
        try:
            if kind == "ndarray":
                obj = blosc2.ndarray_from_cframe(data, copy=True)
            else:
                obj = blosc2.schunk_from_cframe(data, copy=True)
        except (RuntimeError, ValueError) as exc:
            raise ServerError(f"/api/fetch/{path} answered with something that is not a Blosc2 frame: {exc}",
                              url=url) from None
        return obj if as_blosc2 else _to_numpy(obj)

    def _read_local(self, path: str, geo: wire.Geometry, key: tuple, fancy: bool, *, as_blosc2: bool,
                    plan: Mapping | None = None):
        """Fetch the chunks a key touches (plan or ``/api/chunk``) and select locally.

        A numpy answer (or a selection returned as a new NDArray) is decoded chunk by
        chunk as the chunks arrive (:class:`wire.ArraySink`); a whole dataset as
        Blosc2 is assembled from the stored chunks, without decoding them.
        """
        decode = not fancy and not (as_blosc2 and not key)
        selection, chunks, sink = self._selection(path, geo, key, fancy, plan, decode=decode)
        if selection.whole and as_blosc2:
            return selection.assemble(chunks)  # as stored: no recompression
        try:
            result = sink.result() if sink is not None else selection.result(chunks)
        except wire.SliceError as exc:
            raise BadRequest(str(exc)) from None
        if not as_blosc2:
            return result
        if isinstance(result, bytes):
            return wire.items_schunk(result, selection.geo.typesize)
        return blosc2.asarray(np.ascontiguousarray(result))


def _to_numpy(obj):
    if isinstance(obj, blosc2.NDArray):
        return obj[()] if obj.ndim == 0 else obj[:]
    return obj[:]
