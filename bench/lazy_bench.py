"""Lazy-expression benchmark (issue 7): server-side evaluation vs blosc2 locally, and fan-out.

Usage::

    python -m bench.lazy_bench [--quick] [--reps N] [--out FILE]

On one run and the same data (a float64 operand of >= 50 MB, published into the
local stack's S3 through moto), it measures, as medians over repetitions:

- ``x + 1`` and ``sum(x)`` evaluated server-side by the compute coordinator (what
  the API does for ``/api/fetch`` on a lazy dataset, minus the HTTP answer), from
  a cold region (every chunk read from S3) and warm (chunks in the process LRU);
- blosc2 evaluating the same expressions locally on the same ``.b2nd`` file;
- ``sum(x)`` with one compute invocation vs fanned out over groups of chunks.

It prints a table and writes JSON with medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import blosc2
import numpy as np

from functions.engine import compute
from functions.engine.content import load_path
from functions.engine.reader import Region
from infra.local import LocalStack, StackConfig


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _operand(path: Path, rows: int) -> np.ndarray:
    """Smooth data plus noise (compresses like measurements, not like zeros)."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 20, rows * 2500).reshape(rows, 2500)
    values = np.sin(x) + rng.normal(0, 0.01, x.shape)
    blosc2.asarray(values, chunks=(100, 2500), urlpath=str(path), mode="w")
    return values


def run(quick: bool = False, reps: int = 5) -> dict:
    """Run the benchmark; returns the results dict."""
    rows = 40 if quick else 2500  # 2500 x 2500 float64 = 50 MB
    reps = 1 if quick else reps
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.b2nd"
        values = _operand(path, rows)
        nbytes = values.nbytes
        with LocalStack(StackConfig(port=0, regions=1, root_dir=None)) as stack:
            services = stack.regions[0].services
            services.publisher.publish("bench", "x.b2nd", load_path(path))
            origin = services.region.origin
            manifest_key = Region(origin).head("bench", "x.b2nd").manifest
            operands = {"x": manifest_key}

            def coordinator(fanout: int, region: Region) -> compute.Coordinator:
                invoker = compute.LocalInvoker(lambda event: compute.handle(region, event))
                return compute.Coordinator(region, invoker, fanout=fanout)

            def cold(text: str, fanout: int = 8):
                # A fresh region without a cache bucket: every chunk comes from S3, no result cache
                region = Region(origin, None)
                return coordinator(fanout, region).evaluate(text, operands, ())

            warm_region = Region(origin, None)
            warm_coord = coordinator(8, warm_region)
            warm_coord.evaluate("x + 1", operands, ())  # fill the LRU

            local = blosc2.open(str(path))
            check = cold("x + 1")
            assert np.allclose(check, values + 1)
            assert np.isclose(cold("sum(x)"), values.sum())

            figures = {
                "operand_bytes": nbytes,
                "add1_cold_s": _median_time(lambda: cold("x + 1"), reps),
                "add1_warm_s": _median_time(lambda: warm_coord.evaluate("x + 1", operands, ()), reps),
                "add1_blosc2_local_s": _median_time(lambda: blosc2.lazyexpr("x + 1", {"x": local})[:], reps),
                "sum_cold_s": _median_time(lambda: cold("sum(x)"), reps),
                "sum_warm_s": _median_time(lambda: warm_coord.evaluate("sum(x)", operands, ()), reps),
                "sum_blosc2_local_s": _median_time(lambda: blosc2.sum(local), reps),
                "sum_cold_fanout1_s": _median_time(lambda: cold("sum(x)", fanout=1), reps),
                "sum_cold_fanout8_s": _median_time(lambda: cold("sum(x)", fanout=8), reps),
            }
    mb = nbytes / 1e6
    figures["ratios"] = {
        "add1_cold_vs_local": figures["add1_cold_s"] / figures["add1_blosc2_local_s"],
        "add1_warm_vs_local": figures["add1_warm_s"] / figures["add1_blosc2_local_s"],
        "sum_cold_vs_local": figures["sum_cold_s"] / figures["sum_blosc2_local_s"],
        "sum_warm_vs_local": figures["sum_warm_s"] / figures["sum_blosc2_local_s"],
        "fanout_speedup": figures["sum_cold_fanout1_s"] / figures["sum_cold_fanout8_s"],
    }
    figures["throughput_MBps"] = {
        k.removesuffix("_s"): mb / v for k, v in figures.items() if k.endswith("_s") and isinstance(v, float)
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny data, one repetition (smoke test)")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="write the results JSON here")
    args = parser.parse_args(argv)
    figures = run(args.quick, args.reps)
    print(f"operand: {figures['operand_bytes'] / 1e6:.1f} MB float64")
    for name, mbps in figures["throughput_MBps"].items():
        print(f"  {name:<24} {figures[name + '_s'] * 1000:9.1f} ms  {mbps:9.1f} MB/s")
    for name, ratio in figures["ratios"].items():
        print(f"  {name:<24} {ratio:9.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
