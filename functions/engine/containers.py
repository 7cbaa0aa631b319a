"""Containers browsed in place: the members of a stored ``.h5``/``.hdf5`` or ``.b2z`` file as paths.

A container is a stored plain file; ``@public/tree.b2z/g/a`` names the member ``/g/a`` of
the container ``@public/tree.b2z``. This module is the storage-free part: where a path
splits into container and member (:func:`split_container_path`), and what a member is,
lists, weighs and holds, over an opened HDF5 file (:class:`H5Container`, through h5py on
any seekable file object, e.g. :class:`~functions.engine.hdf5.storedfile.StoredFile`) or
a Blosc2 TreeStore/DictStore zip (:class:`B2ZContainer`, through blosc2 on a local copy).

Members are *groups* (listing their leaves, like directories) or *leaves* (arrays).
A name that is neither answers :class:`~functions.engine.errors.NotFound`; malformed
inner keys (NUL bytes, ``..``, empty parts) never reach the libraries.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

import numpy as np

from catclient.wire import cparams_to_dict, dtype_to_str
from functions.engine.errors import NotFound

#: File suffixes that are containers (a directory of that name is an ordinary directory).
H5_SUFFIXES = (".h5", ".hdf5")
B2Z_SUFFIXES = (".b2z",)
CONTAINER_SUFFIXES = H5_SUFFIXES + B2Z_SUFFIXES


def may_be_in_container(rel: str) -> bool:
    """Whether *rel* names a container or something inside one, by its name alone (no catalog
    read: the common path of a plain dataset costs nothing).
    """
    return any(part.lower().endswith(CONTAINER_SUFFIXES) for part in rel.split("/"))


def split_container_path(rel: str, is_file: Callable[[str], bool]) -> tuple[str, str | None]:
    """``(container, "/inner/key")`` for a path inside a container, else ``(rel, None)``.

    Parameters
    ----------
    rel : str
        A path relative to its root (``sub/tree.h5/g/a``).
    is_file : callable
        Whether a relative path is a stored file (a directory named ``x.h5`` is not a
        container: the files beneath it stay reachable).

    """
    parts = rel.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower().endswith(CONTAINER_SUFFIXES):
            head = "/".join(parts[: i + 1])
            if is_file(head):
                return head, _inner_key("/".join(parts[i + 1 :]))
    return rel, None


def _inner_key(rest: str) -> str:
    """``/g/a`` for ``g/a``; NotFound for keys no container holds (NUL, ``..``, empty parts)."""
    parts = rest.strip("/").split("/")
    if not rest.strip("/") or any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise NotFound(f"no member {rest!r} in this container")
    return "/" + "/".join(parts)


def _relative(leaves: list[str], inner: str) -> list[str]:
    base = inner.rstrip("/") + "/"
    return sorted(leaf[len(base) :] for leaf in leaves if leaf.startswith(base))


class Container:
    """What every container answers; subclasses say what a key is and hold the data."""

    kind = "container"

    def leaves(self) -> list[str]:  # pragma: no cover - abstract
        """Every leaf key (``/g/a``), sorted."""
        raise NotImplementedError

    def is_leaf(self, key: str) -> bool:  # pragma: no cover - abstract
        """Whether *key* names an array."""
        raise NotImplementedError

    def leaf(self, key: str):  # pragma: no cover - abstract
        """The array at *key* (sliceable, with ``shape`` and ``dtype``)."""
        raise NotImplementedError

    def leaf_size(self, key: str) -> int:  # pragma: no cover - abstract
        """Bytes the leaf takes in the container (compressed where it is compressed)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the container's file."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- shared

    def is_group(self, key: str) -> bool:
        """Whether *key* names a group: the root, or a prefix of some leaf."""
        return key == "/" or any(leaf.startswith(key.rstrip("/") + "/") for leaf in self.leaves())

    def list(self, key: str = "/") -> list[str]:
        """Leaves below *key* relative to it (deep); a leaf lists as its own name; else [].

        A flat store's key may also be another key's prefix (``/grp`` and ``/grp/a``): it
        lists what is below it, never itself (``.../grp/grp`` names nothing).
        """
        if key == "/" or self.is_group(key):
            return _relative(self.leaves(), key)
        return [posixpath.basename(key)] if self.is_leaf(key) else []

    def info(self, key: str = "/", mtime: str | None = None) -> dict:
        """Caterva2's ``info`` of a member: a group's ``kind/nfiles/size``, a leaf's array metadata."""
        if key != "/" and self.is_leaf(key):
            return self._leaf_info(key, mtime)
        if not self.is_group(key):
            raise NotFound(f"no member {key!r} in this container")
        below = [leaf for leaf in self.leaves() if key == "/" or leaf.startswith(key.rstrip("/") + "/")]
        return {
            "kind": "group",
            "nfiles": len(below),
            "size": sum(self.leaf_size(k) for k in below),
            "mtime": mtime,
        }

    def read(self, key: str, index=()) -> np.ndarray:
        """The leaf's values at *index* (numpy basic indexing)."""
        if not self.is_leaf(key):
            raise NotFound(f"no array {key!r} in this container")
        return np.asarray(self.leaf(key)[index])

    def _leaf_info(self, key: str, mtime: str | None) -> dict:
        arr = self.leaf(key)
        return {
            "kind": "ndarray",
            "shape": list(arr.shape),
            "dtype": dtype_to_str(np.dtype(arr.dtype)),
            "chunks": list(getattr(arr, "chunks", None) or arr.shape),
            "size": self.leaf_size(key),
            "mtime": mtime,
        }


class H5Container(Container):
    """An HDF5 file's datasets as leaves and groups as groups (soft/external links are not followed).

    Parameters
    ----------
    source : path or binary file object
        What h5py opens (a :class:`~functions.engine.hdf5.storedfile.StoredFile` reads only the
        chunks HDF5 touches).

    """

    kind = "hdf5"

    def __init__(self, source) -> None:
        import h5py

        self._h5py = h5py
        self.file = h5py.File(source, "r")
        self._leaves: list[str] | None = None

    def leaves(self) -> list[str]:  # noqa: D102 - Container's
        if self._leaves is None:
            found: list[str] = []
            self.file.visititems(
                lambda name, obj: found.append("/" + name) if isinstance(obj, self._h5py.Dataset) else None
            )
            self._leaves = sorted(found)
        return self._leaves

    def is_leaf(self, key: str) -> bool:  # noqa: D102 - Container's
        return key in set(self.leaves())

    def leaf(self, key: str):  # noqa: D102 - Container's
        if not self.is_leaf(key):
            raise NotFound(f"no array {key!r} in this container")
        return self.file[key]

    def leaf_size(self, key: str) -> int:  # noqa: D102 - Container's
        return int(self.file[key].id.get_storage_size())

    def close(self) -> None:  # noqa: D102 - Container's
        self.file.close()


class B2ZContainer(Container):
    """A Blosc2 TreeStore or DictStore (``.b2z`` zip) at a local path; its arrays are leaves."""

    kind = "b2z"

    def __init__(self, path: str) -> None:
        import zipfile

        import blosc2

        if not zipfile.is_zipfile(path):  # blosc2 would take anything for an empty store
            raise ValueError("not a zip file")
        self.store = blosc2.DictStore(str(path), mode="r")
        self._leaves = sorted(self.store.keys())
        self._sizes = dict(getattr(self.store, "offsets", {}) or {})

    def leaves(self) -> list[str]:  # noqa: D102 - Container's
        return self._leaves

    def is_leaf(self, key: str) -> bool:  # noqa: D102 - Container's
        return key in set(self._leaves)

    def leaf(self, key: str):  # noqa: D102 - Container's
        if not self.is_leaf(key):
            raise NotFound(f"no array {key!r} in this container")
        return self.store[key]

    def leaf_size(self, key: str) -> int:  # noqa: D102 - Container's
        # a leaf stored as its own zip member (offsets: {"g/a.b2nd": {"offset", "length"}}) is
        # that many bytes; one embedded with others (embed.b2e) weighs its compressed size
        where = self._sizes.get(key.lstrip("/") + ".b2nd")
        if isinstance(where, dict) and "length" in where:
            return int(where["length"])
        return int(getattr(self.leaf(key), "cbytes", 0))

    def _leaf_info(self, key: str, mtime: str | None) -> dict:
        # What blosc2.C2Array opens a leaf with (schunk.cparams) and Proxy caches it by
        arr = self.leaf(key)
        out = super()._leaf_info(key, mtime)
        schunk = getattr(arr, "schunk", None)
        if schunk is None:
            return out
        out["blocks"] = list(arr.blocks)
        out["schunk"] = {
            "cbytes": int(schunk.cbytes),
            "chunkshape": int(np.prod(arr.chunks)),
            "chunksize": int(schunk.chunksize),
            "contiguous": True,
            "cparams": cparams_to_dict(schunk.cparams),
            "nbytes": int(schunk.nbytes),
            "cratio": round(schunk.nbytes / schunk.cbytes, 4) if schunk.cbytes else 0.0,
            "nchunks": int(schunk.nchunks),
            "vlmeta": {},
            "mtime": None,
        }
        return out

    def member_range(self, key: str) -> tuple[int, int] | None:
        """``(offset, length)`` of a leaf stored contiguously in the zip (uncompressed member), else None."""
        window = getattr(self.store, "member_window", None)
        if window is not None:  # blosc2's own answer where it has one
            try:
                found = window(key)
            except (KeyError, ValueError):
                found = None
            if found is not None:
                return int(found[0]), int(found[1])
        where = self._sizes.get(key.lstrip("/") + ".b2nd")
        if isinstance(where, dict) and where.get("stored") and "offset" in where:
            return int(where["offset"]), int(where["length"])
        return None

    def close(self) -> None:  # noqa: D102 - Container's
        self.store.close()
