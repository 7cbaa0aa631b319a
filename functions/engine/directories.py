"""Publishing a local directory as a root (``cat-publish DIR``, the local stack's example root)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from functions.engine.content import NotBlosc2
from functions.engine.errors import BadRequest, FrameTooLarge

if TYPE_CHECKING:
    from functions.engine.publish import Publisher, PublishResult


def publish_directory(
    publisher: Publisher,
    root: str,
    directory: Path,
    *,
    prefix: str = "",
    progress: Callable[[PublishResult], None] | None = None,
    on_error: Callable[[str, Exception], None] | None = None,
    on_skip: Callable[[str, str], None] | None = None,
    unfold_hdf5: bool = True,
) -> list[PublishResult]:
    """What :meth:`Publisher.publish_directory` does (documented there)."""
    directory = Path(directory)
    results = []
    seen = set()
    for local in _walk(directory):
        rel = prefix + local.relative_to(directory).as_posix()
        seen.add(rel)
        if unfold_hdf5 and local.suffix.lower() in (".h5", ".hdf5"):
            produced = _publish_hdf5(publisher, root, rel, local, progress, on_error, on_skip)
            seen.update(r.path for r in produced)
            results.extend(produced)
            continue
        try:
            result = publisher.publish_file(root, rel, local)
        except (NotBlosc2, FrameTooLarge) as exc:  # refused at the door; the rest goes on
            if on_error is None:
                raise
            on_error(rel, exc)
            continue
        results.append(result)
        if progress:
            progress(result)
    catalog, _ = publisher.read_catalog(root)
    stale = {p for p in catalog.datasets if p.startswith(prefix)} - seen if catalog else set()
    for path in sorted(stale):
        result = publisher.delete(root, path)
        results.append(result)
        if progress:
            progress(result)
    return results


def _publish_hdf5(publisher, root: str, rel: str, local: Path, progress, on_error, on_skip) -> list:
    """``x.h5`` of a directory: the file, and its unfolded tree under ``x/``; returns the results."""
    from functions.engine.hdf5.unfold import publish_hdf5_file  # h5py only when a directory has HDF5

    try:
        file_result, report = publish_hdf5_file(publisher, root, rel, local, progress=progress)
    except (BadRequest, OSError) as exc:  # not HDF5 after all, or no arrays: the file alone is kept
        if on_error is None:
            raise
        on_error(rel, exc)
        return []
    for path, reason in report.skipped:
        if on_skip is not None:
            on_skip(f"{rel}:{path}", reason)
    return [file_result, *report.results]


def _walk(directory: Path) -> Iterable[Path]:
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        yield path
