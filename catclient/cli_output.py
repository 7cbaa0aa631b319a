"""What the ``catclient`` command line prints: sizes, metadata, data, and ``--json`` documents."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import blosc2
import numpy as np

from catclient import wire


def human_size(n: int | float | None) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as the server reports them); None -> ``"?"``."""
    return "?" if n is None else wire.human_bytes(int(n))


def jsonable(value):
    """JSON-friendly form of what ``fetch`` returns (numpy scalars, bytes, complex)."""
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, complex):
        return [value.real, value.imag]
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    return value


def emit(args, data, text: str | Callable[[], str]) -> None:
    """Print *data* as JSON with ``--json``, else *text*."""
    if args.json:
        print(json.dumps(jsonable(data)))
    else:
        print(text() if callable(text) else text)


def _codec_name(n) -> str:
    try:
        return blosc2.Codec(n).name
    except ValueError:
        return str(n)


def _filters_text(filters) -> str:
    names = []
    for f in filters or []:
        if f:
            try:
                names.append(blosc2.Filter(f).name)
            except ValueError:
                names.append(str(f))
    return ", ".join(names) or "none"


def info_text(path: str, meta: dict) -> str:
    lines = [f"path    : {path}"]
    if meta.get("kind") == "group":
        lines += [
            "kind    : directory",
            f"nfiles  : {meta.get('nfiles')}",
            f"size    : {human_size(meta.get('size'))}",
            f"mtime   : {meta.get('mtime')}",
        ]
        if meta.get("attrs"):  # an unfolded HDF5 group's (or file's) attributes
            lines += [f"attrs   : {json.dumps(meta['attrs'])}"]
        return "\n".join(lines)
    sc = meta.get("schunk", meta)
    if "shape" in meta:
        kind = "lazy expression" if "expression" in meta else "n-d array"
        lines += [
            f"kind    : {kind}",
            f"shape   : {tuple(meta['shape'])}",
            f"dtype   : {meta.get('dtype')}",
        ]
        if "chunks" in meta:
            lines += [f"chunks  : {tuple(meta['chunks'])}", f"blocks  : {tuple(meta['blocks'])}"]
        if "expression" in meta:
            lines += [f"expr    : {meta['expression']}", f"operands: {meta.get('operands')}"]
    else:
        kind = "Blosc2 frame" if path.endswith(".b2frame") else "file"
        lines += [
            f"kind    : {kind}",
            f"chunksize: {human_size(sc.get('chunksize'))}",
            f"typesize: {sc.get('cparams', {}).get('typesize')}",
        ]
    nbytes, cbytes = sc.get("nbytes"), sc.get("cbytes")
    if nbytes is not None:
        lines.append(f"nbytes  : {human_size(nbytes)}")
    if cbytes is not None:
        lines.append(f"cbytes  : {human_size(cbytes)}")
        ratio = f"{nbytes / cbytes:.2f}x" if nbytes and cbytes else "n/a"
        lines.append(f"ratio   : {ratio}")
    if "nchunks" in sc:
        lines.append(f"nchunks : {sc['nchunks']}")
    cp = sc.get("cparams")
    if cp:
        lines.append(
            f"cparams : codec {_codec_name(cp.get('codec'))}, clevel {cp.get('clevel')}, "
            f"filters [{_filters_text(cp.get('filters'))}]"
        )
    if sc.get("vlmeta"):
        lines.append(f"vlmeta  : {json.dumps(sc['vlmeta'])}")
    lines.append(f"mtime   : {meta.get('mtime')}")
    return "\n".join(lines)


def show_text(data) -> str:
    if isinstance(data, bytes):
        try:
            return data.decode()
        except UnicodeDecodeError:
            return f"<{human_size(len(data))} of binary data; use 'catclient download' to save it>"
    return str(data)
