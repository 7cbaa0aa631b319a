r"""``cat-import`` and ``cat-export``: HDF5 files ↔ Caterva2 root directories (and published roots).

``cat-import FILE.h5 DIR`` writes a local root directory: one ``.b2nd`` per HDF5
dataset (attributes as vlmeta), ``!_attrs_.json`` per group; converted chunk by
chunk in bounded memory.  ``cat-publish DIR --root NAME`` then publishes it
(or publish the file itself: ``cat-publish FILE.h5 --root NAME``).

``cat-export DIR FILE.h5`` writes an HDF5 file from a root directory;
``cat-export --url URL ROOT FILE.h5`` from a root a running API serves
(through catclient: big arrays are read from S3 through read plans).

Examples
--------
::

    cat-import measurements.h5 ./meas-root
    cat-export ./meas-root again.h5
    cat-export --url http://127.0.0.1:8000 example example.h5
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import blosc2
import numpy as np

from functions.engine.content import _jsonable
from functions.engine.errors import BadRequest
from functions.engine.hdf5 import convert
from functions.engine.hdf5.attrs import ATTRS_NAME
from functions.engine.hdf5.export import ExportReport, Source, export


def import_file(h5file: Path, directory: Path) -> tuple[int, list[tuple[str, str]]]:
    """Convert *h5file* into the root directory *directory*; returns (arrays written, skipped)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    with convert.open_file(h5file) as f:
        walk = convert.walk(f)
        for group in walk.groups:
            target = directory / group.rel / ATTRS_NAME
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(group.attrs, sort_keys=True, indent=1))
        skipped = list(walk.skipped)
        for item in walk.datasets:
            target = directory / item.rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                _write_b2nd(item, target)
            except (OSError, ValueError, TypeError, RuntimeError) as exc:
                target.unlink(missing_ok=True)
                skipped.append((item.h5path, f"unreadable: {exc}"))
                continue
            written += 1
    return written, skipped


def _write_b2nd(item: convert.Item, target: Path) -> None:
    """One dataset as a ``.b2nd`` file on disk, chunk by chunk (the file holds them, not memory)."""
    arr = blosc2.uninit(
        item.plan.shape,
        dtype=item.dtype,
        chunks=item.plan.chunks or None,
        blocks=item.plan.blocks or None,
        cparams=convert.cparams(item.dtype),
        urlpath=str(target),
        mode="w",
    )
    for i, chunk in convert.iter_chunks(item):
        arr.schunk.update_chunk(i, chunk)
    for name, value in item.vlmeta.items():
        arr.schunk.vlmeta[name] = value


# ---------------------------------------------------------------------- export sources


def local_sources(directory: Path) -> Iterator[Source]:
    """Every file of a root directory (hidden ones skipped) as an export source."""
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if not path.is_file() or any(p.startswith(".") for p in Path(rel).parts):
            continue
        if path.suffix == ".b2nd":
            arr = blosc2.open(str(path), mode="r")
            vlmeta = {str(k): _jsonable(v) for k, v in arr.schunk.vlmeta.getall().items()}
            yield Source(rel, "ndarray", tuple(arr.shape), arr.dtype, tuple(arr.chunks), vlmeta,
                         read=lambda box, arr=arr: np.asarray(arr[box]))
        else:
            yield Source(rel, "file", size=path.stat().st_size,
                         read_bytes=lambda a, b, path=path: _file_range(path, a, b))


def _file_range(path: Path, start: int, stop: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(stop - start)


def remote_sources(client, root: str) -> Iterator[Source]:
    """Every dataset and file of a published *root* (through catclient) as an export source."""
    for rel in client.get_list(root):
        path = f"{root}/{rel}"
        info = client.get_info(path)
        if rel.endswith(".b2nd") and "shape" in info:
            ds = client.get(path)
            vlmeta = dict((info.get("schunk") or {}).get("vlmeta") or {})
            yield Source(rel, "ndarray", tuple(ds.shape), ds.dtype, tuple(ds.chunks), vlmeta,
                         read=lambda box, path=path: np.asarray(client.fetch(path, box if box else None)))
        else:
            size = int((info.get("schunk") or info).get("nbytes") or 0)
            yield Source(rel, "file", size=size,
                         read_bytes=lambda a, b, path=path: bytes(client.fetch(path, slice(a, b))))


# ---------------------------------------------------------------------- commands


def _print_skipped(prog: str, skipped) -> None:
    for where, reason in skipped:
        print(f"{prog}: skipped {where}: {reason}", file=sys.stderr)


def import_main(argv: list[str] | None = None) -> int:
    """``cat-import FILE.h5 DIR``; exit codes: 0 ok, 1 bad input."""
    p = argparse.ArgumentParser(prog="cat-import", description="Convert an HDF5 file into a Caterva2 root "
                                "directory (.b2nd per dataset, attributes kept).",
                                epilog=__doc__.split("Examples", 1)[1].replace("--------\n", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", type=Path, help="the HDF5 file (.h5, .hdf5)")
    p.add_argument("directory", type=Path, help="the root directory to write (created if missing)")
    args = p.parse_args(argv)
    try:
        written, skipped = import_file(args.file, args.directory)
    except OSError as exc:
        print(f"cat-import: error: {args.file} cannot be read as HDF5: {exc}", file=sys.stderr)
        return 1
    _print_skipped("cat-import", skipped)
    print(f"{args.file} -> {args.directory}: {written} array(s), {len(skipped)} object(s) skipped")
    return 0 if written else 1


def export_main(argv: list[str] | None = None) -> int:
    """``cat-export DIR FILE.h5`` or ``cat-export --url URL ROOT FILE.h5``; exit codes: 0 ok, 1 bad input."""
    p = argparse.ArgumentParser(prog="cat-export", description="Write an HDF5 file from a Caterva2 root "
                                "(a local directory, or a published root with --url).",
                                epilog=__doc__.split("Examples", 1)[1].replace("--------\n", ""),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="root directory (or, with --url, the root's name)")
    p.add_argument("file", type=Path, help="the HDF5 file to write (replaced if it exists)")
    p.add_argument("--url", help="API to read a published root from (env CATCLIENT_URL is not implied)")
    p.add_argument("--skip-files", action="store_true", help="skip plain files (default: keep their bytes)")
    args = p.parse_args(argv)
    try:
        report = _export(args)
    except (BadRequest, OSError) as exc:
        print(f"cat-export: error: {exc}", file=sys.stderr)
        return 1
    _print_skipped("cat-export", report.skipped)
    print(f"{args.source} -> {args.file}: {report.datasets} array(s), {report.files} file(s), "
          f"{report.groups} group attribute set(s), {len(report.skipped)} skipped")
    return 0


def _export(args) -> ExportReport:
    if args.url is None:
        directory = Path(args.source)
        if not directory.is_dir():
            raise BadRequest(f"{directory} is not a directory (to export a published root, pass --url)")
        return export(local_sources(directory), args.file, files=not args.skip_files)
    import catclient  # the client library: only for exports from a running API

    try:
        with catclient.Client(args.url) as client:
            sources = remote_sources(client, args.source.strip("/"))
            return export(sources, args.file, files=not args.skip_files)
    except catclient.CatClientError as exc:
        raise BadRequest(str(exc)) from None


if __name__ == "__main__":  # python -m infra.hdf5_cli import|export ...
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command not in ("import", "export"):
        print("usage: python -m infra.hdf5_cli import FILE.h5 DIR | export ...", file=sys.stderr)
        raise SystemExit(1)
    raise SystemExit((import_main if command == "import" else export_main)(sys.argv[2:]))
