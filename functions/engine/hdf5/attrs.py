"""HDF5 attributes ↔ JSON, keeping what is needed to write them back with their exact dtypes.

Attributes become plain JSON values (what ``info`` shows: numbers, strings,
lists); the dtype of every NumPy-typed attribute is kept beside them, under the
reserved key ``_hdf5``, so an export writes ``float32`` back as ``float32``.
No h5py import here: the API reads these on cold start paths.
"""

from __future__ import annotations

import base64

import numpy as np

from catclient.wire import dtype_from_str, dtype_to_str

#: The key of HDF5 bookkeeping in vlmeta and group attribute files (original path,
#: attribute dtypes, layout); never an attribute itself.
META_KEY = "_hdf5"
#: File holding a group's (or the file's) attributes inside its directory: the
#: name Caterva2 gives it when it unfolds an HDF5 file.
ATTRS_NAME = "!_attrs_.json"
#: dtype marker of a list of variable-length strings (h5py's string dtype).
VLEN_STR = "vlen-str"
#: dtype prefix of an empty attribute (``h5py.Empty``: a type and no value).
EMPTY = "empty:"


class Unrepresentable(ValueError):
    """An attribute value with no JSON form (object references)."""


def _plain(value):
    """NumPy's ``tolist()`` output as JSON: bytes as text (or base64), complex as [re, im]."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"__bytes__": base64.b64encode(value).decode()}
    if isinstance(value, complex):
        return [value.real, value.imag]
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    raise Unrepresentable(f"a {type(value).__name__} value (object references cannot be stored)")


def encode(value) -> tuple[object, str | None]:
    """An attribute value as ``(json_value, dtype or None)``.

    Raises
    ------
    Unrepresentable
        For references and other objects without a JSON form.

    """
    empty_dtype = getattr(value, "dtype", None) if type(value).__name__ == "Empty" else None
    if empty_dtype is not None:
        return None, EMPTY + dtype_to_str(empty_dtype)
    if isinstance(value, str):
        return value, None
    if isinstance(value, bytes):
        return _plain(value), "|S" + str(max(1, len(value)))
    if isinstance(value, np.generic | np.ndarray):
        if value.dtype.kind == "O":
            return [_plain(v) for v in np.asarray(value).ravel().tolist()], VLEN_STR
        return _plain(value.tolist()), dtype_to_str(value.dtype) + _shape_suffix(value)
    if isinstance(value, bool | int | float) or value is None:
        return value, None
    raise Unrepresentable(f"a {type(value).__name__} value (object references cannot be stored)")


def _shape_suffix(value) -> str:
    # A one-element array and a scalar have the same JSON; the shape tells them apart
    return "" if isinstance(value, np.generic) else "#" + ",".join(map(str, value.shape))


def _unplain(value, dtype: np.dtype, ndim: int = 0):
    """Inverse of :func:`_plain` for an *ndim*-dimensional value of *dtype* (bytes back, pairs to complex)."""
    if ndim:
        return [_unplain(v, dtype, ndim - 1) for v in value]
    if isinstance(value, dict) and "__bytes__" in value:
        return base64.b64decode(value["__bytes__"])
    if dtype.fields:
        return tuple(_unplain(v, dtype.fields[name][0]) for v, name in zip(value, dtype.names, strict=True))
    if dtype.subdtype is not None:
        sub, shape = dtype.subdtype
        return _unplain(value, sub, len(shape))
    if dtype.kind == "c":
        return complex(value[0], value[1])
    if dtype.kind == "S" and isinstance(value, str):
        return value.encode("utf-8")
    return value


def decode(value, dtype: str | None):
    """The NumPy (or h5py) value an attribute had, from :func:`encode`'s output."""
    if dtype is None:
        return value
    if dtype.startswith(EMPTY):
        import h5py  # only exports write HDF5

        return h5py.Empty(dtype_from_str(dtype[len(EMPTY) :]))
    if dtype == VLEN_STR:
        import h5py

        return np.array(value, dtype=h5py.string_dtype())
    text, _, shape = dtype.partition("#")
    dt = dtype_from_str(text)
    if not shape:
        return np.array(_unplain(value, dt), dtype=dt)[()]
    dims = tuple(int(n) for n in shape.split(",") if n)
    return np.array(_unplain(value, dt, len(dims)), dtype=dt).reshape(dims)


def encode_all(attrs, where: str, skipped: list[tuple[str, str]]) -> dict:
    """``{name: json}`` of an attribute mapping plus ``_hdf5.dtypes``; unrepresentable ones reported."""
    out, dtypes = {}, {}
    for name in sorted(attrs.keys()):
        if name == META_KEY:
            skipped.append((f"{where}@{name}", f"attribute name {META_KEY!r} is reserved"))
            continue
        try:
            value, dtype = encode(attrs[name])
        except Unrepresentable as exc:
            skipped.append((f"{where}@{name}", str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - h5py raises OSError/TypeError on types it cannot read
            skipped.append((f"{where}@{name}", f"unreadable attribute: {exc}"))
            continue
        out[name] = value
        if dtype is not None:
            dtypes[name] = dtype
    out[META_KEY] = {"path": where, "dtypes": dtypes}
    return out


def decode_all(meta: dict) -> dict:
    """The attributes of vlmeta or an attribute file (without ``_hdf5``), with their dtypes back."""
    dtypes = (meta.get(META_KEY) or {}).get("dtypes", {})
    return {k: decode(v, dtypes.get(k)) for k, v in meta.items() if k != META_KEY}


def shown(meta: dict) -> dict:
    """Attributes as ``info`` shows them: the JSON values, bookkeeping left out."""
    return {k: v for k, v in meta.items() if k != META_KEY}
