"""HDF5 conversion benchmark (issue 14): a >= 1 GB generated HDF5 file converted chunk by chunk.

Usage::

    python -m bench.hdf5_bench [--size-mb 1024] [--dir .cache/hdf5-bench] [--out FILE]

The file (generated once into the git-ignored ``--dir``, never committed) holds two
datasets of half the size each: a chunked ``uint16`` volume (HDF5 chunks of
16 x 256 x 256, no filter) and a contiguous ``float64`` grid, smooth data plus
noise (compresses like measurements, not like zeros).

Each contender runs in a fresh child process, so its peak RSS (``ru_maxrss``) is its
own:

- ``root``: what ``cat-publish FILE.h5 --root NAME`` does, the datasets converted and
  published (chunks hashed and handed to the store; the store here keeps only
  metadata, so neither S3 nor moto is measured);
- ``ingest``: what the ingest function does with a dropped ``.h5``: the file itself
  stored (1 MiB chunks) and then unfolded;
- ``caterva2``: Caterva2's own conversion. caterva2 2026.9.2 ships no ``cat2import``;
  its server unfolds with ``caterva2.hdf5.create_hdf5_proxies`` and converts a
  dataset when it is read whole (``HDF5Proxy.to_cframe``), which is what is timed.

MB/s are HDF5 dataset bytes (uncompressed) per second of wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from functions.adapters.memory import MemoryStore

ROOT = Path(__file__).resolve().parent.parent


class MetadataStore(MemoryStore):
    """A store that keeps manifests, heads and catalogs but only the keys of chunks (bytes dropped)."""

    def put(self, key, data, **kw):  # noqa: D102
        if key.startswith("c/"):
            self.chunk_bytes = getattr(self, "chunk_bytes", 0) + len(data)
            data = b""
        return super().put(key, data, **kw)


def generate(path: Path, size_mb: int) -> Path:
    """Write the benchmark file slab by slab (bounded memory), unless it exists at that size."""
    half = size_mb * (1 << 20) // 2
    side = 1024
    depth = max(16, half // (side * side * 2) // 16 * 16)
    rows = max(1024, int((half // 8) ** 0.5) // 64 * 64)
    if path.is_file():
        with h5py.File(path) as f:
            if f["vol"].shape[0] == depth and f["grid"].shape[0] == rows:
                return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        vol = f.create_dataset("vol", shape=(depth, side, side), dtype="u2", chunks=(16, 256, 256))
        yy, xx = np.mgrid[0:side, 0:side]
        for z in range(0, depth, 16):
            base = (2000 + 1000 * np.sin(xx / 50 + z / 30) * np.cos(yy / 70)).astype("u2")
            vol[z : z + 16] = base[None] + rng.integers(0, 64, (16, side, side), dtype="u2")
        grid = f.create_dataset("grid", shape=(rows, rows), dtype="f8")
        cols = np.linspace(0, 20, rows)
        for r in range(0, rows, 256):
            n = min(256, rows - r)
            grid[r : r + n] = np.sin(cols[None, :] + np.arange(r, r + n)[:, None] / 100) + rng.normal(
                0, 0.01, (n, rows))
        f.attrs["generated"] = "bench/hdf5_bench.py"
    return path


def _data_bytes(path: Path) -> int:
    with h5py.File(path) as f:
        return sum(f[k].size * f[k].dtype.itemsize for k in f)


# ---------------------------------------------------------------------- children


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def child(kind: str, path: Path) -> dict:
    """Run one contender in this (fresh) process; returns its figures."""
    from functions.engine.publish import Publisher

    start = time.perf_counter()
    out: dict = {}
    if kind in ("root", "ingest"):
        from functions.engine.hdf5.unfold import publish_hdf5_file, publish_hdf5_root

        store = MetadataStore()
        pub = Publisher(store)
        if kind == "root":
            report = publish_hdf5_root(pub, "bench", path)
        else:
            _, report = publish_hdf5_file(pub, "bench", "drop/big.h5", path)
        out["arrays"] = report.arrays
        out["stored_bytes"] = getattr(store, "chunk_bytes", 0)
    else:
        from caterva2.hdf5 import create_hdf5_proxies

        copy = path.parent / "cat2" / path.name
        copy.parent.mkdir(exist_ok=True)
        if not copy.exists():
            copy.symlink_to(path.resolve())
        total = 0
        for proxy in create_hdf5_proxies(copy):
            total += len(proxy.to_cframe())
        shutil.rmtree(copy.with_suffix(""), ignore_errors=True)
        out["stored_bytes"] = total
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = _peak_mb()
    return out


def _run_child(kind: str, path: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench.hdf5_bench", "--child", kind, str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(size_mb: int, directory: Path) -> dict:
    """Generate (once) and convert with every contender; returns the results dict."""
    path = generate(directory / f"bench-{size_mb}mb.h5", size_mb)
    nbytes = _data_bytes(path)
    results = {"file_bytes": path.stat().st_size, "data_bytes": nbytes, "date": datetime.now(UTC).isoformat()}
    for kind in ("root", "ingest", "caterva2"):
        r = _run_child(kind, path)
        if "seconds" in r:
            r["mb_per_s"] = nbytes / 1e6 / r["seconds"]
        results[kind] = r
    if "seconds" in results["caterva2"]:
        results["ratio_root_vs_caterva2_time"] = results["root"]["seconds"] / results["caterva2"]["seconds"]
    return results


def main(argv: list[str] | None = None) -> int:  # noqa: D103
    p = argparse.ArgumentParser(prog="hdf5_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mb", type=int, default=1024, help="HDF5 data size, MiB (default 1024)")
    p.add_argument("--dir", type=Path, default=ROOT / ".cache" / "hdf5-bench", help="file location")
    p.add_argument("--out", type=Path, help="write the results JSON here")
    p.add_argument("--child", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return 0
    results = run(args.size_mb, args.dir)
    print(f"file: {results['file_bytes'] / 1e6:.0f} MB on disk, {results['data_bytes'] / 1e6:.0f} MB of data")
    for kind in ("root", "ingest", "caterva2"):
        r = results[kind]
        if "error" in r:
            print(f"{kind:>9}: did not run: {r['error']}")
        else:
            print(f"{kind:>9}: {r['seconds']:7.1f} s  {r['mb_per_s']:7.1f} MB/s"
                  f"  peak RSS {r['peak_rss_mb']:7.0f} MB  output {r['stored_bytes'] / 1e6:.0f} MB")
    if "ratio_root_vs_caterva2_time" in results:
        print(f"time ratio root / caterva2: {results['ratio_root_vs_caterva2_time']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
