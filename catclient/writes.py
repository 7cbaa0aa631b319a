"""Writes of :class:`catclient.Client`: remove, move, copy, append, unfold, lazy expressions, subscribe."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

import blosc2
import numpy as np

from catclient.errors import answer_path
from catclient.keys import path_str
from catclient.objects import File, Group


class Writes:
    """Changing the server's content (a mixin of :class:`catclient.Client`)."""

    def remove(self, path) -> PurePosixPath:
        """Remove a dataset, file or directory (recursively).

        Returns
        -------
        PurePosixPath
            The removed path.

        """
        resp = self._request("POST", self._url("remove", path_str(path)), "remove", optional=True)
        return PurePosixPath(answer_path(resp))

    def move(self, src, dst) -> File | Group:
        """Move (rename) a dataset or directory; returns the object at its new place."""
        body = {"src": path_str(src), "dst": path_str(dst)}
        resp = self._request("POST", self._url("move"), "move", json=body, optional=True)
        return self.get(answer_path(resp))

    def copy(self, src, dst) -> File | Group:
        """Copy a dataset or directory (chunks are shared, not copied); returns the copy."""
        body = {"src": path_str(src), "dst": path_str(dst)}
        resp = self._request("POST", self._url("copy"), "copy", json=body, optional=True)
        return self.get(answer_path(resp))

    def append(self, path, data) -> tuple[int, ...]:
        """Append rows to an n-d dataset along its first dimension.

        Parameters
        ----------
        path : str, PurePosixPath or Dataset
            The dataset.
        data : array-like
            Rows with the dataset's trailing shape and dtype.

        Returns
        -------
        tuple of int
            The dataset's new shape.

        """
        arr = data if isinstance(data, blosc2.NDArray) else blosc2.asarray(np.asarray(data))
        files = {"file": ("append.b2nd", arr.to_cframe(), "application/octet-stream")}
        url = self._url("append", path_str(path))
        resp = self._request("POST", url, "append", files=files, optional=True)
        return tuple(int(n) for n in resp.json())

    def unfold(self, path) -> dict:
        """Unfold an uploaded HDF5 file (``.h5``/``.hdf5``) into a directory of Blosc2 arrays.

        ``@personal/dir/x.h5`` becomes ``@personal/dir/x/<hdf5 path>.b2nd``, one per dataset.

        Returns
        -------
        dict
            ``{"path": the directory, "arrays": count, "skipped": [{"path", "reason"}], ...}``:
            what could not be converted (variable-length strings, references, links) is listed.

        """
        return self._json("POST", "unfold", path_str(path), params={"report": "true"}, optional=True)

    def lazyexpr(self, name: str, expression: str, operands: Mapping[str, Any]) -> PurePosixPath:
        """Create a lazy expression over remote datasets, stored in ``@personal``.

        Parameters
        ----------
        name : str
            Name of the new dataset (``@personal/<name>.b2nd``).
        expression : str
            E.g. ``"x + 1"``; evaluated by the server only when read, and only
            for the slice read.
        operands : dict
            Variable name -> dataset path (or Dataset).

        Returns
        -------
        PurePosixPath
            The new dataset's path, e.g. ``PurePosixPath('@personal/plusone.b2nd')``.

        """
        ops = {k: path_str(v) for k, v in operands.items()}
        body = {"name": name, "expression": expression, "operands": ops}
        resp = self._request("POST", self._url("lazyexpr"), "lazyexpr", json=body, optional=True)
        return PurePosixPath(answer_path(resp))

    def subscribe(self, root) -> dict:
        """Have this region follow *root* (its changed chunks are prefetched).

        Returns
        -------
        dict
            ``{"name": root, "subscribed": True}``.

        """
        return self._json("POST", "subscribe", path_str(root), optional=True)

    def unsubscribe(self, root) -> dict:
        """Stop following *root* (reads keep working, on demand).

        Returns
        -------
        dict
            ``{"name": root, "subscribed": False}``.

        """
        return self._json("POST", "unsubscribe", path_str(root), optional=True)
