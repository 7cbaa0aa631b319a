"""Write latencies through ``caterva2.Client`` against the local stack (its default 5 s timeout).

``python -m bench.write_latency [--repeat 5] [--out FILE]`` starts a local stack (free ports),
publishes a 67 MB uint16 stack of 6.7 MB chunks into ``@personal``, then times, ``--repeat``
times each: ``copy`` and ``move`` of that dataset, ``remove`` of a copy, and
``upload(lazyexpr, compute=True)`` of a small expression (200 KB result). Each figure is
the median (and max) of the repeats, in seconds; the JSON goes to ``--out``.

Copy, move and remove are metadata operations (a manifest references immutable chunks), so
their time does not depend on the dataset's size: a few S3 round trips each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path


def _timed(fn, repeat: int) -> dict:
    took = []
    for i in range(repeat):
        start = time.perf_counter()
        fn(i)
        took.append(time.perf_counter() - start)
    return {"median_s": statistics.median(took), "max_s": max(took), "runs": took}


def measure(repeat: int) -> dict:
    """Start a stack, run every case *repeat* times; figures per case."""
    import blosc2
    import caterva2 as cat2
    import numpy as np

    from infra.local import LocalStack, StackConfig

    stack = LocalStack(StackConfig(port=0, moto_in_thread=False)).start()
    try:
        info = stack.ready_info()
        run = uuid.uuid4().hex[:6]
        rng = np.random.default_rng(1)
        frames = rng.integers(0, 60000, (10, 1830, 1830), dtype=np.uint16)  # 67 MB, 6.7 MB chunks
        small = np.arange(25_000, dtype=np.float64).reshape(250, 100)  # the expression's operand
        auth = (info["demo_user"], info["demo_password"])
        with cat2.Client(info["api_url"], auth) as client, tempfile.TemporaryDirectory() as tmp:
            # the big dataset is published (past 4.5 MB caterva2's client cannot upload), then
            # copied into @personal: the copies, moves and removes timed are the user's
            from functions.engine.content import load_object

            stack.regions[0].services.publisher.publish(
                f"wl-{run}", "stack.b2nd", load_object(blosc2.asarray(frames, chunks=(1, 1830, 1830)))
            )
            src = f"@personal/wl-{run}/stack.b2nd"
            client.copy(f"wl-{run}/stack.b2nd", src)
            local = Path(tmp) / "small.b2nd"
            blosc2.asarray(small, urlpath=str(local), mode="w")
            client.upload(local, f"@personal/wl-{run}/small.b2nd")
            operand = client.get(f"@personal/wl-{run}/small.b2nd")
            cases = {
                "copy": lambda i: client.copy(src, f"@personal/wl-{run}/copy{i}.b2nd"),
                "move": lambda i: client.move(
                    f"@personal/wl-{run}/copy{i}.b2nd", f"@personal/wl-{run}/moved{i}.b2nd"
                ),
                "remove": lambda i: client.remove(f"@personal/wl-{run}/moved{i}.b2nd"),
                "upload(expr, compute=True)": lambda i: client.upload(
                    blosc2.lazyexpr("x * 2 + 1", {"x": operand}), f"@personal/wl-{run}/expr{i}.b2nd",
                    compute=True,
                ),
            }
            return {name: _timed(fn, repeat) for name, fn in cases.items()}
    finally:
        stack.stop()


def main(argv: list[str] | None = None) -> int:
    """Command line: measure, print a table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each case (default 5)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/write-latency.json"))
    args = parser.parse_args(argv)
    figures = measure(args.repeat)
    print(f"{'case':<28} {'median':>8} {'max':>8}   (caterva2.Client's default timeout: 5 s)")
    for name, fig in figures.items():
        print(f"{name:<28} {fig['median_s']:>7.2f}s {fig['max_s']:>7.2f}s")
    args.out.write_text(json.dumps({"repeat": args.repeat, "cases": figures}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
