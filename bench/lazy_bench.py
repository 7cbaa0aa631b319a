"""Lazy-expression benchmark (issue 7): server-side evaluation vs blosc2 locally, and fan-out.

Usage::

    python -m bench.lazy_bench [--quick] [--reps N] [--out FILE]

Also the ``lazy`` case of ``python -m bench`` (same figures, in its table and JSON).

On one run and the same data (a float64 operand of >= 50 MB, published into a
local stack's S3 through moto), it measures, as medians over repetitions (each
figure after one untimed warm-up):

- ``x + 1`` and ``sum(x)`` evaluated server-side by the compute coordinator (what
  the API does for ``/api/fetch`` on a lazy dataset, minus the HTTP answer), from
  a cold region (every chunk read from S3) and warm (chunks in the process LRU);
- blosc2 evaluating the same expressions locally on the same ``.b2nd`` file;
- ``sum(x)`` from a cold region with one compute invocation vs fanned out over
  2 and 8 (the default) invocations on groups of chunks.

Contenders compared with each other take turns (repetition 1 of each, then 2 of
each, ...), and every figure records the CPU seconds this process (coordinator,
compute invocations, blosc2) and the S3 stand-in (moto, its own process) used.

Where it runs: the compute invocations are threads of this process
(:class:`functions.adapters.inprocess.LocalInvoker`, the local stack's invoker), so
they share one interpreter with the coordinator, and moto serves every chunk GET
from a single Python process on the same cores.  On Lambda each invocation is a
container of its own reading real S3.

It prints a table and writes JSON with medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import blosc2
import numpy as np

from bench.measure import Timing, repeat_interleaved
from functions.adapters.inprocess import LocalInvoker
from functions.engine import compute
from functions.engine.content import load_path
from functions.engine.region import Region
from infra.local import LocalStack, StackConfig

#: Fan-outs of the cold ``sum(x)`` comparison; the last is the product's default
FANOUTS = (1, 2, compute.DEFAULT_FANOUT)


def _operand(path: Path, rows: int) -> np.ndarray:
    """Smooth data plus noise (compresses like measurements, not like zeros)."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 20, rows * 2500).reshape(rows, 2500)
    values = np.sin(x) + rng.normal(0, 0.01, x.shape)
    blosc2.asarray(values, chunks=(100, 2500), urlpath=str(path), mode="w")
    return values


def _detail(t: Timing) -> dict:
    return {"median_s": t.median, "seconds": [round(s, 6) for s in t.seconds], "cpu_s": t.cpu}


def run(quick: bool = False, reps: int = 5, other_pids: dict[str, int] | None = None) -> dict:
    """Run the benchmark; returns the results dict.

    Keys ending in ``_s`` are medians in seconds; ``ratios`` are *time* ratios
    (ours / blosc2 locally: > 1 means ours is slower; ``fanout_speedup`` is the
    time with one invocation / the time with the default fan-out);
    ``throughput_ratios`` are ours / blosc2 locally (< 1 means ours is slower).
    *other_pids* (name: pid) are processes whose CPU seconds to record as well
    (``python -m bench`` passes its idle servers).
    """
    rows = 40 if quick else 2500  # 2500 x 2500 float64 = 50 MB
    reps = 1 if quick else reps
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.b2nd"
        values = _operand(path, rows)
        nbytes = values.nbytes
        local = blosc2.open(str(path))
        with LocalStack(StackConfig(port=0, regions=1, root_dir=None)) as stack:
            services = stack.regions[0].services
            services.publisher.publish("bench", "x.b2nd", load_path(path))
            origin = services.region.origin
            manifest_key = Region(origin).head("bench", "x.b2nd").manifest
            operands = {"x": manifest_key}
            pids = {**(other_pids or {}), "client": os.getpid()}
            if getattr(stack._moto, "pid", None):
                pids["s3"] = stack._moto.pid

            def coordinator(fanout: int, region: Region) -> compute.Coordinator:
                invoker = LocalInvoker(lambda event: compute.handle(region, event))
                return compute.Coordinator(region, invoker, fanout=fanout)

            def cold(text: str, fanout: int = compute.DEFAULT_FANOUT):
                # A fresh region without a cache bucket: every chunk comes from S3, no result cache
                region = Region(origin, None)
                coord = coordinator(fanout, region)
                try:
                    return coord.evaluate(text, operands, ())
                finally:
                    # neither has a close(); without this every repetition leaves ~30 idle threads
                    coord._pool.shutdown(wait=False)
                    region._pool.shutdown(wait=False)

            warm_coord = coordinator(compute.DEFAULT_FANOUT, Region(origin, None))
            warm_coord.evaluate("x + 1", operands, ())  # fill the LRU

            assert np.allclose(cold("x + 1"), values + 1)
            assert np.allclose(warm_coord.evaluate("x + 1", operands, ()), values + 1)
            assert np.isclose(cold("sum(x)"), values.sum())
            assert np.isclose(warm_coord.evaluate("sum(x)", operands, ()), values.sum())
            assert np.isclose(cold("sum(x)", fanout=1), values.sum())

            detail: dict[str, dict] = {}
            add1 = repeat_interleaved(
                {
                    "add1_cold": lambda: cold("x + 1"),
                    "add1_warm": lambda: warm_coord.evaluate("x + 1", operands, ()),
                    "add1_blosc2_local": lambda: blosc2.lazyexpr("x + 1", {"x": local})[:],
                },
                reps,
                pids=pids,
            )
            sums = repeat_interleaved(
                {
                    "sum_warm": lambda: warm_coord.evaluate("sum(x)", operands, ()),
                    "sum_blosc2_local": lambda: blosc2.sum(local),
                    **{f"sum_cold_fanout{n}": (lambda n=n: cold("sum(x)", fanout=n)) for n in FANOUTS},
                },
                reps,
                pids=pids,
            )
            for name, t in {**add1, **sums}.items():
                detail[name] = _detail(t)
    default = f"sum_cold_fanout{compute.DEFAULT_FANOUT}"
    figures: dict = {"operand_bytes": nbytes}
    for name in ("add1_cold", "add1_warm", "add1_blosc2_local"):
        figures[name + "_s"] = detail[name]["median_s"]
    figures["sum_cold_s"] = detail[default]["median_s"]  # the default fan-out
    for name in ("sum_warm", "sum_blosc2_local", *(f"sum_cold_fanout{n}" for n in FANOUTS)):
        figures[name + "_s"] = detail[name]["median_s"]
    mb = nbytes / 1e6
    figures["ratios"] = {
        "add1_cold_vs_local": figures["add1_cold_s"] / figures["add1_blosc2_local_s"],
        "add1_warm_vs_local": figures["add1_warm_s"] / figures["add1_blosc2_local_s"],
        "sum_cold_vs_local": figures["sum_cold_s"] / figures["sum_blosc2_local_s"],
        "sum_warm_vs_local": figures["sum_warm_s"] / figures["sum_blosc2_local_s"],
        "fanout_speedup": figures["sum_cold_fanout1_s"] / figures[default + "_s"],
        **{
            f"fanout{n}_speedup": figures["sum_cold_fanout1_s"] / figures[f"sum_cold_fanout{n}_s"]
            for n in FANOUTS[1:]
        },
    }
    figures["throughput_ratios"] = {
        name: 1 / figures["ratios"][name] for name in figures["ratios"] if name.endswith("_vs_local")
    }
    figures["throughput_MBps"] = {
        k.removesuffix("_s"): mb / v for k, v in figures.items() if k.endswith("_s") and isinstance(v, float)
    }
    figures["detail"] = detail
    figures["setup"] = {
        "reps": reps,
        "operand": {"shape": list(values.shape), "dtype": "float64", "chunks": [100, 2500]},
        "nchunks": -(-rows // 100),
        "default_fanout": compute.DEFAULT_FANOUT,
        "fanouts": list(FANOUTS),
        "where": "compute invocations are threads of this process (LocalInvoker); S3 is moto in a"
        " child process on the same cores; cold = a fresh Region without cache bucket per repetition",
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
    print("time ratios (ours / blosc2 locally; fan-out: 1 invocation / n)")
    for name, ratio in figures["ratios"].items():
        print(f"  {name:<24} {ratio:9.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
