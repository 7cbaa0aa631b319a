"""The object model: :class:`Root`, :class:`Dataset`, :class:`File`, :class:`Group`.

Each object reads through the :class:`catclient.Client` that made it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np

from catclient import wire
from catclient.errors import BadRequest, NotFound
from catclient.keys import BLOSC2_SUFFIXES, SLICE_LIKE, cbytes_of, kind_of, path_str

if TYPE_CHECKING:
    from catclient.client import Client


class Root:
    """A root on the server (``client.get("example")``).

    Parameters
    ----------
    client : Client
        The client to read through.
    name : str
        The root's name, e.g. ``"example"`` or ``"@public"``.

    """

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = path_str(name)

    @property
    def path(self) -> PurePosixPath:
        """The root's path (its name)."""
        return PurePosixPath(self.name)

    @property
    def file_list(self) -> list[str]:
        """Every file in the root, relative to it, sorted."""
        return self.client.get_list(self.name)

    def __getitem__(self, path) -> File | Dataset | Group:
        rel = path_str(path)
        full = f"{self.name}/{rel}"
        meta = self.client.get_info(full)
        kind = kind_of(meta)
        if kind == "group":
            return Group(self, rel, meta)
        if kind == "ctable":
            from catclient.tables import Table  # it builds on File, defined below

            return Table(self, rel, meta)
        if kind == "ndarray" or rel.endswith(BLOSC2_SUFFIXES):
            return Dataset(self, rel, meta)
        return File(self, rel, meta)

    def __contains__(self, path) -> bool:
        try:
            self.client.get_info(f"{self.name}/{path_str(path)}")
        except NotFound:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self.file_list)

    def __len__(self) -> int:
        return len(self.file_list)

    def upload(self, local, remotepath=None) -> File:
        """Upload *local* into this root (default name: the local file's name).

        Parameters
        ----------
        local : str, Path or array-like
            See :meth:`Client.upload`.
        remotepath : str, optional
            Path inside the root.

        Returns
        -------
        Dataset or File

        """
        if remotepath is None:
            if not isinstance(local, str | os.PathLike):
                raise BadRequest("give remotepath when uploading an in-memory object")
            remotepath = Path(local).name
        return self.client.upload(local, f"{self.name}/{path_str(remotepath)}")

    def __repr__(self) -> str:
        return f"<Root: {self.name}>"

    def __str__(self) -> str:
        return self.name


class _Node:
    """Something at a path inside a root, with its ``/api/info`` metadata."""

    def __init__(self, root: Root, path: str, meta: Mapping | None = None) -> None:
        self.root = root
        self.name = path_str(path)
        self.path = PurePosixPath(f"{root.name}/{self.name}")
        self.meta = dict(meta) if meta is not None else root.client.get_info(self.path)

    @property
    def client(self) -> Client:
        """The client this object reads through."""
        return self.root.client


class File(_Node):
    """A file on the server: a plain file (bytes) or, as :class:`Dataset`, a Blosc2 dataset.

    Parameters
    ----------
    root : Root
        The root it lives in.
    path : str
        Path inside the root.
    meta : dict, optional
        Its ``/api/info`` JSON, if already known.

    """

    @property
    def vlmeta(self) -> dict:
        """User attributes (variable-length metalayers)."""
        return dict(self.meta.get("schunk", self.meta).get("vlmeta") or {})

    @property
    def nbytes(self) -> int:
        """Uncompressed size in bytes."""
        return int(self.meta.get("schunk", self.meta).get("nbytes") or 0)

    @property
    def cbytes(self) -> int:
        """Compressed (stored) size in bytes."""
        return cbytes_of(self.meta)

    @property
    def version(self) -> int | None:
        """The version this object reads (pinned by ``client.get(path, version=n)``, else the current one)."""
        return self.meta.get("version")

    def history(self, limit: int = 50) -> list[dict]:
        """Its kept versions, newest first (see :meth:`Client.history`)."""
        return self.client.history(self.path, limit=limit)["versions"]

    def estimate(self, key=None) -> dict:
        """What reading *key* would do and cost (see :meth:`Client.estimate`)."""
        return self.client.estimate(self.path, key)

    def __getitem__(self, key):
        return self.slice(key, as_blosc2=False)

    def slice(self, key=None, as_blosc2: bool = True):
        """A slice as a Blosc2 object (an ``SChunk`` for files; numpy/bytes with ``as_blosc2=False``)."""
        return self.client._read(str(self.path), key, as_blosc2=as_blosc2, meta=self.meta)

    def download(self, localpath=None) -> Path:
        """Save locally (see :meth:`Client.download`)."""
        return self.client.download(self, localpath)

    def get_download_url(self) -> str:
        """The URL ``download`` reads."""
        return self.client.get_download_url(self.path)

    def remove(self) -> PurePosixPath:
        """Remove it from the server."""
        return self.client.remove(self.path)

    def move(self, dst) -> File | Group:
        """Move it; returns the object at the new place."""
        return self.client.move(self.path, dst)

    def copy(self, dst) -> File | Group:
        """Copy it; returns the copy."""
        return self.client.copy(self.path, dst)

    def __repr__(self) -> str:
        return f"<File: {self.path}>"

    def __str__(self) -> str:
        return str(self.path)


class Dataset(File):
    """A Blosc2 dataset (``.b2nd`` n-d array or ``.b2frame`` SChunk) on the server.

    Indexing reads like numpy: ``ds[5, 10:12, 3]`` returns a ``numpy.ndarray``
    (bytes for ``.b2frame``); :meth:`slice` returns a ``blosc2.NDArray`` or
    ``blosc2.SChunk`` instead.  A string key is a field name, a ``slice_``
    string (``"2:4, 3:6"``) or a filter expression (``"(a > 990) & d"``).
    """

    @property
    def shape(self) -> tuple[int, ...] | None:
        """Shape of an n-d dataset (None for SChunks)."""
        return tuple(self.meta["shape"]) if "shape" in self.meta else None

    @property
    def ndim(self) -> int | None:
        """Number of dimensions (None for SChunks)."""
        return len(self.meta["shape"]) if "shape" in self.meta else None

    @property
    def dtype(self) -> np.dtype | None:
        """Numpy dtype of an n-d dataset (None for SChunks)."""
        return wire.dtype_from_str(self.meta["dtype"]) if "dtype" in self.meta else None

    @property
    def chunks(self) -> tuple[int, ...] | None:
        """Chunk shape (None for SChunks)."""
        return tuple(self.meta["chunks"]) if "chunks" in self.meta else None

    @property
    def blocks(self) -> tuple[int, ...] | None:
        """Block shape (None for SChunks)."""
        return tuple(self.meta["blocks"]) if "blocks" in self.meta else None

    def __getitem__(self, key):
        if isinstance(key, str):
            dtype = self.dtype
            if dtype is not None and dtype.fields and key in dtype.fields:
                return self.client.get_slice(self, None, as_blosc2=False, field=key)
            if not SLICE_LIKE.match(key):
                return self.client.get_slice(self, None, as_blosc2=False, filter=key)
        return self.slice(key, as_blosc2=False)

    def __array__(self, dtype=None, copy=None):
        result = np.asarray(self[()])
        return result.astype(dtype) if dtype is not None else result

    def __len__(self) -> int:
        shape = self.shape
        if not shape:
            raise TypeError("len() of a 0-d or SChunk dataset")
        return shape[0]

    def get_chunk(self, nchunk: int) -> bytes:
        """One compressed chunk as stored (see :meth:`Client.get_chunk`)."""
        return self.client.get_chunk(self.path, nchunk)

    def append(self, data) -> tuple[int, ...]:
        """Append rows (see :meth:`Client.append`); updates :attr:`meta`."""
        shape = self.client.append(self.path, data)
        self.meta = self.client.get_info(self.path)
        return shape

    def __repr__(self) -> str:
        return f"<Dataset: {self.path}>"


class Group(_Node):
    """A directory inside a root.

    Parameters
    ----------
    root : Root
        The root it lives in.
    path : str
        Path inside the root.
    meta : dict, optional
        Its ``/api/info`` JSON (``kind: group``).

    """

    @property
    def file_list(self) -> list[str]:
        """Every file below this directory, relative to it."""
        return self.client.get_list(self.path)

    def __getitem__(self, path) -> File | Dataset | Group:
        return self.root[f"{self.name}/{path_str(path)}"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.file_list)

    def __len__(self) -> int:
        return len(self.file_list)

    def remove(self) -> PurePosixPath:
        """Remove the directory and everything in it."""
        return self.client.remove(self.path)

    def __repr__(self) -> str:
        return f"<Group: {self.path}>"

    def __str__(self) -> str:
        return str(self.path)
