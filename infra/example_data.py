"""Generate ``root-example/``: the datasets Caterva2 users know, plus a large image stack.

Usage::

    python -m infra.example_data [DIR]              # the small datasets (committed in root-example/)
    python -m infra.example_data --tomo DIR         # also the ~64 MB tomography stack
    python -m infra.example_data --tomo-root DEST   # root-example's files + the stack, in DEST

The tomography stack is generated on demand (it is not committed): a synthetic
uint16 3-D volume with smooth structure and noise, so it compresses like real
detector data rather than like zeros.  ``make run ARGS=--tomo`` publishes
``--tomo-root .cache/root-tomo``, so the tracked ``root-example/`` is never written.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import blosc2
import numpy as np

README = """\
# Example root

Datasets that Caterva2 users know, published as the root `example` by `make run`.

- `ds-hello.b2frame`: an SChunk of `b"Hello world!" * 100`
- `ds-1d.b2nd`, `ds-1d-b.b2nd`, `ds-sc-attr.b2nd`, `ds-1d-fields.b2nd`
- `dir1/ds-2d.b2nd`, `dir1/ds-3d.b2nd`, `dir2/ds-4d.b2nd`
- `tomo-stack.b2nd` (optional: `make run ARGS=--tomo` adds it)
"""

#: Shape of the synthetic tomography: 128 slices of 512x512 uint16 = 64 MiB.
TOMO_SHAPE = (128, 512, 512)
TOMO_CHUNKS = (16, 256, 256)
TOMO_BLOCKS = (4, 64, 64)

FIELDS_DTYPE = np.dtype([("a", "<i4"), ("b", "<f8"), ("c", "S8"), ("d", "?")])


def fields_array(n: int = 1000) -> np.ndarray:
    """The structured array behind ``ds-1d-fields.b2nd`` (int, float, bytes, bool)."""
    arr = np.empty(n, dtype=FIELDS_DTYPE)
    arr["a"] = np.arange(n, dtype=np.int32)
    arr["b"] = np.linspace(0, 1, n)
    arr["c"] = [f"s{i % 100}".encode() for i in range(n)]
    arr["d"] = np.arange(n) % 3 == 0
    return arr


def expected() -> dict[str, object]:
    """Ground truth (numpy arrays / bytes) of every small dataset, keyed by relative path."""
    a4 = np.arange(120, dtype=np.complex128).reshape(2, 3, 4, 5)
    return {
        "README.md": README.encode(),
        "ds-hello.b2frame": b"Hello world!" * 100,
        "ds-1d.b2nd": np.arange(1000, dtype=np.int64),
        "ds-1d-b.b2nd": np.array([b"foobar"] * 1000),
        "ds-sc-attr.b2nd": np.array(np.str_("foobar")),
        "ds-1d-fields.b2nd": fields_array(),
        "dir1/ds-2d.b2nd": np.arange(200, dtype=np.uint16).reshape(10, 20),
        "dir1/ds-3d.b2nd": np.arange(60, dtype=np.float32).reshape(3, 4, 5),
        "dir2/ds-4d.b2nd": a4 + a4 * 1j,
    }


#: chunks/blocks of each n-d dataset, as Caterva2's example root has them
GEOMETRY = {
    "ds-1d.b2nd": ((100,), (10,)),
    "ds-1d-b.b2nd": ((100,), (10,)),
    "ds-1d-fields.b2nd": ((100,), (10,)),
    "dir1/ds-2d.b2nd": ((5, 5), (2, 3)),
    "dir1/ds-3d.b2nd": ((2, 3, 4), (2, 2, 2)),
    "dir2/ds-4d.b2nd": ((1, 2, 3, 4), (1, 2, 2, 2)),
}


def tomography(shape=TOMO_SHAPE, seed: int = 0) -> np.ndarray:
    """A synthetic uint16 volume: concentric density shells plus detector noise."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    cz, cy, cx = (s / 2 for s in shape)
    r = np.sqrt(((z - cz) / shape[0]) ** 2 * 4 + ((y - cy) / shape[1]) ** 2 + ((x - cx) / shape[2]) ** 2)
    volume = 20000 * np.exp(-((r * 6) % 1.0)) * (r < 0.5)
    volume = volume + rng.normal(1000, 30, size=shape)
    return np.clip(volume, 0, 65535).astype(np.uint16)


def tomo_guess_test() -> np.ndarray:
    """The (10, 100, 100) uint16 stack of Caterva2's tutorial: value ``i*10000 + j*100 + k`` (mod 2**16)."""
    i, j, k = np.ogrid[:10, :100, :100]
    return ((i * 10000 + j * 100 + k) % 65536).astype(np.uint16)


def write_example(directory: Path, *, tomo: bool = False) -> list[Path]:
    """Write every dataset into *directory* (overwriting); return the paths written."""
    directory = Path(directory)
    written = []
    for rel, value in expected().items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        if rel == "README.md":
            path.write_bytes(value)
        elif rel == "ds-hello.b2frame":
            blosc2.SChunk(chunksize=100, data=value, urlpath=str(path), contiguous=True, mode="w")
        elif rel == "ds-sc-attr.b2nd":
            arr = blosc2.asarray(value, urlpath=str(path), mode="w")
            arr.schunk.vlmeta["a"] = 1
            arr.schunk.vlmeta["b"] = "foo"
            arr.schunk.vlmeta["c"] = 123.456
        else:
            chunks, blocks = GEOMETRY[rel]
            blosc2.asarray(value, chunks=chunks, blocks=blocks, urlpath=str(path), mode="w")
        written.append(path)
    if tomo:
        written.append(write_tomography(directory / "tomo-stack.b2nd"))
    return written


def write_tomography(path: Path) -> Path:
    """Write the synthetic tomography stack to *path*.

    Written under a hidden name and renamed, so an interrupted run leaves no half stack
    that a later publish (which skips hidden files) would pick up.
    """
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    blosc2.asarray(tomography(), chunks=TOMO_CHUNKS, blocks=TOMO_BLOCKS, urlpath=str(partial), mode="w")
    os.replace(partial, path)
    return path


TOMO_NAME = "tomo-stack.b2nd"


def tomo_root(source: Path, dest: Path) -> Path:
    """Make *dest* hold *source*'s files plus the tomography stack; return *dest*.

    Parameters
    ----------
    source : Path
        The root to extend (``root-example``); only read.
    dest : Path
        A cache directory (``.cache/root-tomo``): everything in it but the stack is
        replaced by *source*'s files, and the stack is generated only when missing
        (it is deterministic, and takes seconds to make).

    Returns
    -------
    Path
        *dest*.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    stack = dest / TOMO_NAME
    for entry in dest.iterdir():
        if entry == stack:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    shutil.copytree(source, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(TOMO_NAME))
    if not stack.is_file():
        write_tomography(stack)
    return dest


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", nargs="?", default="root-example", type=Path)
    parser.add_argument("--tomo", action="store_true", help="also write the ~64 MiB tomo-stack.b2nd")
    parser.add_argument(
        "--tomo-root",
        type=Path,
        metavar="DEST",
        help="copy DIRECTORY's files into DEST and add the tomography stack (what make run --tomo publishes)",
    )
    args = parser.parse_args(argv)
    if args.tomo_root is not None:
        print(tomo_root(args.directory, args.tomo_root) / TOMO_NAME)
        return 0
    for path in write_example(args.directory, tomo=args.tomo):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
