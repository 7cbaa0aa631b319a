"""What each page needs: read through :mod:`functions.web.data`, shaped by :mod:`functions.web.views`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from catclient import wire
from functions.engine.errors import BadRequest, TooLarge
from functions.engine.paths import split_path
from functions.engine.spaces import PERSONAL, SHARED, Principal
from functions.services import Services
from functions.web import data, markdown, png, versions, views

#: Bytes of a file read for its preview (Markdown rendered, text shown, else hex)
MARKDOWN_BYTES = 512 << 10
TEXT_BYTES = 64 << 10
HEX_BYTES = 4 << 10
#: Datasets offered as operands in the lazy-expression form
OPERAND_CHOICES = 500


@dataclass(frozen=True)
class TableQuery:
    """The data-table part of a dataset page's query string."""

    lead: str | None = None
    row0: int = 0
    col0: int = 0
    filter: str | None = None
    version: int | None = None  #: an earlier version (``?version=``); None: the current one


def home(services: Services, who: Principal) -> dict:
    """Every visible root with its file tree and subscription state."""
    roots = []
    for name, entry in data.roots(services, who).items():
        tree, more = views.build_tree(name, data.list_tree_expanded(services, who, name))
        subscribable = name not in (PERSONAL, SHARED)
        roots.append(
            {
                "name": name,
                "tree": tree,
                "more": more,
                "subscribed": entry["subscribed"],
                "subscribable": subscribable,
                "writable": data.writable(who, name),
            }
        )
    return {"roots": roots, "title": "Roots"}


def browse(services: Services, who: Principal, path: str, query: TableQuery) -> tuple[str, dict]:
    """The template and context of ``/roots/<path>``: a root, directory, dataset or file."""
    root, rel = split_path(path)
    path = f"{root}/{rel}" if rel else root
    meta = data.info(services, who, path, query.version)
    kind = views.kind_of(path, meta)
    base = {
        "path": path,
        "crumbs": views.breadcrumbs(path),
        "title": path,
        "kind": kind,
        "writable": data.writable(who, path),
        "meta_rows": views.metadata_rows(meta),
        "vlmeta_rows": views.vlmeta_rows(meta),
        "is_root": not rel,
        "version": query.version,
    }
    if kind == "group":
        tree, more = views.build_tree(path, data.list_tree_expanded(services, who, root, rel))
        return "directory.html", {**base, "tree": tree, "more": more, "nfiles": meta.get("nfiles", 0)}
    if kind in ("ndarray", "lazy"):
        out = {**base, **_array(services, who, path, meta, query)}
        panels = versions.panels(services, who, path, kind, out["page"], query.version)
        return "dataset.html", {**out, **panels}
    return "file.html", {**base, **_file(services, who, path)}


def _array(services: Services, who: Principal, path: str, meta: dict, query: TableQuery) -> dict:
    dtype = wire.dtype_from_str(meta["dtype"])
    structured = bool(dtype.fields)
    page = views.table_page(meta["shape"], structured, query.lead, query.row0, query.col0)
    out = {
        "lazy": {"expression": meta.get("expression"), "operands": meta.get("operands", {})},
        "structured": structured,
        "fields": list(dtype.fields or ()),
        "page": page,
        "filter": query.filter or "",
        "table": None,
        "table_error": None,
        "image": _image(meta),
    }
    try:
        filt = query.filter if structured else None
        out.update(_table(services, who, path, page, filt, query.version))
    except (BadRequest, TooLarge) as exc:
        out["table_error"] = str(exc)
    return out


def _table(
    services: Services,
    who: Principal,
    path: str,
    page: views.TablePage,
    filt: str | None,
    version: int | None,
) -> dict:
    if filt:
        # The filter runs over the whole dataset (as /api/fetch?filter= does); pages cut its result
        selected = data.values(services, who, path, _lead_key(page), filter=filt, version=version)
        rows = selected[page.row0 : page.row0 + views.PAGE_ROWS] if selected.ndim else selected
        return {"table": views.table_rows(page, rows), "pager": views.pager(page, len(selected))}
    values = data.values(services, who, path, page.key() or None, version=version)
    return {"table": views.table_rows(page, values), "pager": views.pager(page)}


def _lead_key(page: views.TablePage) -> str | None:
    return ", ".join(str(i) for i in page.lead) or None


def _image(meta: dict) -> dict | None:
    mode = views.image_mode(meta)
    if mode is None:
        return None
    shape = meta["shape"]
    return {
        "mode": mode,
        "frames": shape[0] if mode != "plane" else 1,
        "step": views.frame_step(shape, mode),
        "integer": meta["dtype"][1:2] in "iub",
    }


def _file(services: Services, who: Principal, path: str) -> dict:
    if path.endswith(views.FRAME_SUFFIXES):
        head, size = data.file_head(services, who, path, HEX_BYTES)
        return {"preview": "hex", "text": views.hexdump(head), "size": size, "shown": len(head)}
    kind = views.file_kind(path)
    if kind == "image":
        return {"preview": "image", "size": None, "shown": None, "text": ""}
    limit = MARKDOWN_BYTES if kind == "markdown" else TEXT_BYTES
    head, size = data.file_head(services, who, path, limit)
    if kind == "markdown":
        text = head.decode("utf-8", "replace")
        return {"preview": "markdown", "html": markdown.render(text), "size": size, "shown": len(head)}
    if views.looks_textual(head):
        return {"preview": "text", "text": head.decode("utf-8", "replace"), "size": size, "shown": len(head)}
    head = head[:HEX_BYTES]
    return {"preview": "hex", "text": views.hexdump(head), "size": size, "shown": len(head)}


def lazy_form(services: Services, who: Principal) -> dict:
    """Datasets to offer as operands (n-d arrays of every visible root)."""
    choices = []
    for name in data.roots(services, who):
        choices += [f"{name}/{p}" for p in data.list_tree(services, who, name) if p.endswith(".b2nd")]
    return {"title": "New lazy expression", "choices": choices[:OPERAND_CHOICES]}


@dataclass(frozen=True)
class FrameQuery:
    """What one frame of the image viewer is asked for."""

    index: int = 0
    lo: float | None = None
    hi: float | None = None
    plo: float | None = None
    phi: float | None = None
    version: int | None = None


def frame(services: Services, who: Principal, path: str, query: FrameQuery) -> tuple[bytes, dict]:
    """PNG bytes of one frame and headers describing it (window used, stride, value range)."""
    meta = data.info(services, who, path, query.version)
    mode = views.image_mode(meta) if "shape" in meta else None
    if mode is None:
        raise BadRequest(
            f"{path} cannot be shown as an image (it needs a 2-D, 3-D or 4-D RGB(A) number array)"
        )
    step = views.frame_step(meta["shape"], mode)
    key = views.frame_key(meta["shape"], mode, query.index, step)
    plane = data.plane(services, who, path, key, query.version)
    if plane.dtype.kind == "b":
        plane = plane.astype(np.uint8)
    default_full = mode == "colour" and plane.dtype == np.uint8 and query.plo is None
    window = png.window_for(
        plane,
        0.0 if default_full and query.lo is None else query.lo,
        255.0 if default_full and query.hi is None else query.hi,
        query.plo,
        query.phi,
    )
    body = png.frame_png(plane, window)
    limit = services.settings.response_limit
    if limit and len(body) > limit:
        raise TooLarge(f"this frame's PNG is {len(body)} bytes, over the response limit of {limit}")
    finite = plane[np.isfinite(plane)] if plane.dtype.kind == "f" else plane
    headers = {
        "X-Frame-Window": f"{window.lo:g} {window.hi:g}",
        "X-Frame-Range": f"{finite.min():g} {finite.max():g}" if finite.size else "",
        "X-Frame-Step": str(step),
        "Cache-Control": "private, max-age=0",
    }
    return body, headers
