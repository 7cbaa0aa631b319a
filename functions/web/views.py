"""What the pages show, computed from metadata and numpy values (no HTTP, no services).

The routes fetch through :mod:`functions.web.data` and hand the results here;
templates receive plain dicts and lists.
"""

from __future__ import annotations

import math
import posixpath
from dataclasses import dataclass, field

import blosc2
import numpy as np

from catclient import wire
from catclient.wire import human_bytes
from functions.engine.errors import BadRequest

#: Rows and columns of one page of the data table
PAGE_ROWS = 50
PAGE_COLS = 20
#: Files listed per root on the home page (the rest is counted, and reachable from the root page)
TREE_LIMIT = 2000
#: Largest side of a frame before it is strided down (keeps a PNG under the response limit)
MAX_FRAME_SIDE = 2048
#: Characters of one vlmeta value shown
VLMETA_CHARS = 2000

IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
MARKDOWN_TYPES = (".md", ".markdown")
FRAME_SUFFIXES = (".b2frame", ".b2")


# ---------------------------------------------------------------------- trees


@dataclass
class Node:
    """A directory or file of a root's tree (``path`` is the user path, for links)."""

    name: str
    path: str
    children: dict[str, Node] = field(default_factory=dict)

    @property
    def is_dir(self) -> bool:
        """Whether this node has children."""
        return bool(self.children)

    def sorted_children(self) -> list[Node]:
        """Directories first, then files, each by name."""
        return sorted(self.children.values(), key=lambda n: (not n.is_dir, n.name))


def build_tree(base: str, files: list[str], limit: int = TREE_LIMIT) -> tuple[Node, int]:
    """The tree of *files* (relative paths below *base*), and how many were left out past *limit*."""
    top = Node(posixpath.basename(base) or base, base)
    for rel in files[:limit]:
        node = top
        parts = rel.split("/")
        for i, part in enumerate(parts):
            path = f"{base}/{'/'.join(parts[: i + 1])}"
            node = node.children.setdefault(part, Node(part, path))
    return top, max(0, len(files) - limit)


def breadcrumbs(path: str) -> list[tuple[str, str]]:
    """(name, path) of each ancestor of *path* and of *path* itself."""
    parts = path.split("/")
    return [(part, "/".join(parts[: i + 1])) for i, part in enumerate(parts)]


# ---------------------------------------------------------------------- kinds


def kind_of(path: str, meta: dict) -> str:
    """``group``, ``lazy``, ``ndarray``, ``schunk`` or ``file`` (what the page shows)."""
    if meta.get("kind") == "group":
        return "group"
    if "expression" in meta:
        return "lazy"
    if "shape" in meta:
        return "ndarray"
    return "schunk" if path.endswith(FRAME_SUFFIXES) else "file"


def file_kind(path: str) -> str:
    """How a plain file is previewed: ``markdown``, ``image`` or ``bytes``."""
    ext = posixpath.splitext(path)[1].lower()
    if ext in MARKDOWN_TYPES:
        return "markdown"
    if ext in IMAGE_TYPES:
        return "image"
    return "bytes"


def image_mode(meta: dict) -> str | None:
    """``plane`` (2-D), ``stack`` (3-D gray), ``colour`` (4-D, last axis 3/4) or None."""
    shape = meta.get("shape") or []
    try:
        dtype = wire.dtype_from_str(meta.get("dtype", ""))
    except (TypeError, ValueError):
        return None
    if dtype.kind not in "biuf" or 0 in shape:
        return None
    if len(shape) == 2:
        return "plane"
    if len(shape) == 3:
        return "stack"
    if len(shape) == 4 and shape[-1] in (3, 4):
        return "colour"
    return None


def frame_step(shape: list[int], mode: str) -> int:
    """Stride that keeps a frame's sides at most :data:`MAX_FRAME_SIDE`."""
    h, w = (shape[0], shape[1]) if mode == "plane" else (shape[1], shape[2])
    return max(1, math.ceil(max(h, w) / MAX_FRAME_SIDE))


def frame_key(shape: list[int], mode: str, index: int, step: int) -> str:
    """The ``slice_`` of one frame: *index* along the first axis (stacks), strided by *step*."""
    side = f"::{step}" if step > 1 else ":"
    if mode == "plane":
        return f"{side}, {side}"
    if not 0 <= index < shape[0]:
        raise BadRequest(f"frame {index} is out of range: the stack has {shape[0]} (0..{shape[0] - 1})")
    return f"{index}, {side}, {side}" + (", :" if mode == "colour" else "")


# ---------------------------------------------------------------------- metadata


def _short(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= VLMETA_CHARS else text[:VLMETA_CHARS] + f"… ({len(text)} characters)"


def metadata_rows(meta: dict) -> list[tuple[str, str]]:
    """(label, value) rows of a dataset's metadata table, as text (templates escape it)."""
    schunk = meta.get("schunk", meta)
    cparams = schunk.get("cparams", {}) or {}
    rows = [
        ("shape", meta.get("shape")),
        ("dtype", meta.get("dtype")),
        ("chunks", meta.get("chunks")),
        ("blocks", meta.get("blocks")),
        ("size", _bytes(schunk.get("nbytes"))),
        ("compressed", _bytes(schunk.get("cbytes")) if "expression" not in meta else None),
        ("compression ratio", f"{schunk.get('cratio'):.2f}x" if schunk.get("cratio") else None),
        ("codec", _codec(cparams)),
        ("mtime", meta.get("mtime")),
        ("version", meta.get("version")),
    ]
    return [(k, v if isinstance(v, str) else _short(v)) for k, v in rows if v not in (None, "", [])]


def vlmeta_rows(meta: dict) -> list[tuple[str, str]]:
    """(key, value) of the dataset's variable-length metadata (truncated, as text)."""
    vlmeta = meta.get("schunk", meta).get("vlmeta", {}) or {}
    return [(_short(k), _short(v)) for k, v in vlmeta.items()]


def _enum_name(enum, value) -> str:
    try:
        return enum(int(value)).name
    except (TypeError, ValueError):
        return str(value)


def _codec(cparams: dict) -> str | None:
    if not cparams:
        return None
    parts = [_enum_name(blosc2.Codec, cparams.get("codec", "?"))]
    if "clevel" in cparams:
        parts.append(f"clevel {cparams['clevel']}")
    filters = [_enum_name(blosc2.Filter, f) for f in cparams.get("filters", []) if f not in (0, "NOFILTER")]
    if filters:
        parts.append("filters " + ", ".join(filters))
    return "; ".join(parts)


def _bytes(n) -> str | None:
    return None if n is None else human_bytes(int(n))


# ---------------------------------------------------------------------- values


def fmt(value: object) -> str:
    """One value as the table shows it (numpy's shortest round-trip text for numbers)."""
    if isinstance(value, bytes | np.bytes_):
        return bytes(value).decode("utf-8", "backslashreplace")
    return str(value)


@dataclass(frozen=True)
class TablePage:
    """Which part of an array one page shows.

    ``lead`` are the fixed leading indices, ``row0``/``col0`` the first row and
    column shown; ``table_dims`` is 1 (a column, or fields as columns) or 2.
    """

    shape: tuple[int, ...]
    structured: bool
    lead: tuple[int, ...] = ()
    row0: int = 0
    col0: int = 0

    @property
    def table_dims(self) -> int:
        """Dimensions laid out as the table (structured arrays: rows only)."""
        return min(len(self.shape), 1 if self.structured else 2)

    def key(self) -> str:
        """The ``slice_`` of this page."""
        if not self.shape:
            return ""
        parts = [str(i) for i in self.lead]
        rows = self.shape[len(self.lead)]
        parts.append(f"{self.row0}:{min(rows, self.row0 + PAGE_ROWS)}")
        if self.table_dims == 2:
            parts.append(f"{self.col0}:{min(self.shape[-1], self.col0 + PAGE_COLS)}")
        return ", ".join(parts)


def table_page(shape: list[int], structured: bool, lead: str | None, row0: int, col0: int) -> TablePage:
    """The page asked for, clamped to *shape* (leading indices parsed from ``"i,j"``)."""
    shape = tuple(shape)
    base = TablePage(shape, structured)
    nlead = len(shape) - base.table_dims
    wanted = [int(x) for x in (lead or "").replace(" ", "").split(",") if x.lstrip("-").isdigit()]
    wanted = (wanted + [0] * nlead)[:nlead]
    fixed = tuple(min(max(0, i), n - 1) for i, n in zip(wanted, shape, strict=False))
    rows = shape[nlead] if shape else 0
    cols = shape[-1] if base.table_dims == 2 else 0
    return TablePage(
        shape,
        structured,
        fixed,
        min(max(0, row0), max(0, rows - 1)),
        min(max(0, col0), max(0, cols - 1)),
    )


def table_rows(page: TablePage, values: np.ndarray, row_offset: int | None = None) -> dict:
    """Headers and cell texts of one page of *values* (already the page's selection)."""
    start = page.row0 if row_offset is None else row_offset
    if values.ndim == 0:
        return {"columns": ["value"], "rows": [("", [fmt(values[()])])]}
    if values.dtype.fields:
        names = list(values.dtype.fields)
        rows = [(str(start + i), [fmt(v[n]) for n in names]) for i, v in enumerate(values)]
        return {"columns": names, "rows": rows}
    if values.ndim == 1:
        return {"columns": ["value"], "rows": [(str(start + i), [fmt(v)]) for i, v in enumerate(values)]}
    columns = [str(page.col0 + j) for j in range(values.shape[1])]
    return {
        "columns": columns,
        "rows": [(str(start + i), [fmt(v) for v in row]) for i, row in enumerate(values)],
    }


def pager(page: TablePage, total_rows: int | None = None) -> dict:
    """Previous/next offsets for rows and columns (None where there is none)."""
    if not page.shape:
        return {}
    rows = page.shape[len(page.lead)] if total_rows is None else total_rows
    cols = page.shape[-1] if page.table_dims == 2 else 0
    return {
        "rows": rows,
        "cols": cols,
        "prev_row": max(0, page.row0 - PAGE_ROWS) if page.row0 else None,
        "next_row": page.row0 + PAGE_ROWS if page.row0 + PAGE_ROWS < rows else None,
        "prev_col": max(0, page.col0 - PAGE_COLS) if page.col0 else None,
        "next_col": page.col0 + PAGE_COLS if page.col0 + PAGE_COLS < cols else None,
        "last_row": min(rows, page.row0 + PAGE_ROWS),
        "last_col": min(cols, page.col0 + PAGE_COLS),
    }


# ---------------------------------------------------------------------- files


def hexdump(data: bytes, width: int = 16) -> str:
    """Classic offset / hex / ASCII lines."""
    lines = []
    for off in range(0, len(data), width):
        part = data[off : off + width]
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in part)
        lines.append(f"{off:08x}  {part.hex(' '):<{width * 3}} {text}")
    return "\n".join(lines)


def looks_textual(data: bytes) -> bool:
    """UTF-8 without NULs (a cut at the end of a multi-byte character is tolerated)."""
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(data) - 3
    return True
