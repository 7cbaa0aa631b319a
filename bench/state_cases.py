"""State cases: the regional cache, lazy expressions, cold start, hostile frames."""

from __future__ import annotations

import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import blosc2
import httpx
import numpy as np

from bench import rawget
from bench.common import (
    API_ENV,
    MB,
    ROOT,
    TOMO,
    Context,
    WrongAnswer,
    _catclient,
    _checked,
    _ratio,
    _row,
)
from bench.measure import repeat
from bench.read_cases import _key_text
from bench.servers import REPO

# --------------------------------------------------------------------------- regional cache (issue 3)

_CACHE_RE = re.compile(r"hits=(\d+) misses=(\d+) origin-bytes=(\d+)")


def cache(ctx: Context) -> dict:
    """Cold vs warm reads of the tomography through one region, with origin bytes per request."""
    truth = ctx.truth["tomo"]
    url = ctx.stack.url("r1")
    path = f"{ROOT}/{TOMO}"
    shape, chunks = truth.shape, ctx.sizes.tomo_chunks
    grid = [range(0, s, c) for s, c in zip(shape, chunks, strict=True)]
    boxes = [
        tuple(slice(o, min(o + c, s)) for o, c, s in zip(origin, chunks, shape, strict=True))
        for origin in itertools.product(*grid)
    ]
    s3 = ctx.s3()
    layout = rawget.ChunkLayout.from_origin(s3, ctx.stack.info["origin_bucket"], ROOT, TOMO)
    cbytes = sum(layout.sizes)
    http = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=16, max_keepalive_connections=16))
    workers = 8

    def fetch_all() -> list[tuple[int, int, int]]:
        def one(box):
            resp = http.get(f"{url}/api/fetch/{path}", params={"slice_": _key_text(box)[1:-1]})
            resp.raise_for_status()
            m = _CACHE_RE.search(resp.headers.get("x-cat-cache", ""))
            arr = blosc2.ndarray_from_cframe(resp.content)[()]
            if not np.array_equal(arr, truth[box]):
                raise WrongAnswer(f"/api/fetch {box} differs from the ground truth")
            return tuple(int(g) for g in m.groups())

        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(one, boxes))

    headers: dict[str, list] = {"cold": [], "warm": []}

    def run(which):
        def fn():
            headers[which].append(fetch_all())

        return fn

    ctx.log(f"  regional cache: {len(boxes)} chunk-sized /api/fetch requests, {workers} in parallel")

    def reset():
        ctx.stack.reset_cache("r1")

    t_cold = repeat(run("cold"), ctx.reps, warmup=0, before=reset, pids=ctx.pids)
    t_warm = repeat(run("warm"), ctx.reps, warmup=0, pids=ctx.pids)

    def summary(which, timing):
        per_rep = headers[which]
        last = per_rep[-1]
        origin = [h[2] for h in last]
        return _row(
            timing,
            truth.nbytes,
            requests=len(last),
            hits=sum(h[0] for h in last),
            misses=sum(h[1] for h in last),
            origin_bytes_total=sum(origin),
            origin_bytes_per_request_mean=statistics.mean(origin),
            origin_bytes_per_request_max=max(origin),
        )

    out = {
        "dataset": TOMO,
        "bytes": truth.nbytes,
        "compressed_bytes": cbytes,
        "fetch": {"cold": summary("cold", t_cold), "warm": summary("warm", t_warm)},
    }
    out["fetch"]["warm_vs_cold_throughput"] = _ratio(t_cold.median, t_warm.median)
    out["fetch"]["cold_origin_bytes_equal_cbytes"] = out["fetch"]["cold"]["origin_bytes_total"] == cbytes
    c, w = out["fetch"]["cold"], out["fetch"]["warm"]
    ctx.log(
        f"    fetch cold {c['mb_per_s']:7.1f} MB/s ({c['origin_bytes_per_request_mean'] / MB:.2f} MB"
        f" origin/request)   warm {w['mb_per_s']:7.1f} MB/s"
        f" ({w['origin_bytes_per_request_max']} B origin max)"
    )

    # The same cold/warm pair through read plans (whole dataset, chunks straight from S3)
    client = _catclient(url)
    fn = _checked(lambda: client.fetch(path), truth, "plans")
    t_cold = repeat(fn, ctx.reps, warmup=0, before=reset, pids=ctx.pids)
    t_warm = repeat(fn, ctx.reps, warmup=0, pids=ctx.pids)
    client.close()
    http.close()
    out["plans"] = {
        "cold": _row(t_cold, truth.nbytes),
        "warm": _row(t_warm, truth.nbytes),
        "warm_vs_cold_throughput": _ratio(t_cold.median, t_warm.median),
    }
    pc, pw = out["plans"]["cold"], out["plans"]["warm"]
    ctx.log(f"    plans cold {pc['mb_per_s']:7.1f} MB/s   warm {pw['mb_per_s']:7.1f} MB/s")
    return out


# --------------------------------------------------------------------------- lazy expressions (issue 7)


def lazy(ctx: Context) -> dict:
    """Server-side ``x + 1`` and ``sum(x)`` vs blosc2 locally, and reduction fan-out (bench/lazy_bench.py).

    Runs on a one-region local stack of its own (its compute invocations are threads
    of this process, its moto a child process); the servers of the other cases idle.
    """
    from bench import lazy_bench

    ctx.log("  lazy expressions (a one-region stack of their own, compute invocations in this process)")
    idle = {f"idle_{name}": pid for name, pid in ctx.pids.items() if name != "client"}
    out = lazy_bench.run(ctx.quick, ctx.reps, other_pids=idle)
    mbps, r = out["throughput_MBps"], out["throughput_ratios"]
    ctx.log(
        f"    x + 1: cold {mbps['add1_cold']:7.1f} MB/s, warm {mbps['add1_warm']:7.1f} MB/s,"
        f" blosc2 locally {mbps['add1_blosc2_local']:7.1f} MB/s (warm/local {r['add1_warm_vs_local']:.2f}x)"
    )
    ctx.log(
        f"    sum(x): cold {mbps['sum_cold']:7.1f} MB/s, warm {mbps['sum_warm']:7.1f} MB/s,"
        f" blosc2 locally {mbps['sum_blosc2_local']:7.1f} MB/s;"
        f" fan-out speed-up {out['ratios']['fanout_speedup']:.2f}x"
    )
    return out


# --------------------------------------------------------------------------- cold start

_COLD_START = """
import json, os, time
t0 = time.perf_counter()
import functions.handlers.api as h
t1 = time.perf_counter()
from functions.aws import build_services
from functions.settings import Settings
handler = h.make_handler(build_services(Settings.from_env()))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "build_s": t2 - t1}))
"""

_BLOSC2 = """
import json, time
t0 = time.perf_counter()
import blosc2
print(json.dumps({"import_s": time.perf_counter() - t0}))
"""


def _importtime(module: str, env: dict) -> tuple[float, float]:
    """``python -X importtime -c "import MODULE"``: (MODULE's cumulative, sum of all self times) in s.

    The sum also counts what the interpreter imports at start-up (``site``, encodings).
    """
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=True,
    )
    total_self = 0
    cumulative = 0
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|\s*(\S+)", line)
        if not m:
            continue
        total_self += int(m.group(1))
        if m.group(3) == module:
            cumulative = int(m.group(2))
    return cumulative / 1e6, total_self / 1e6


def _cold_once(env: dict) -> tuple[float, float, float]:
    """(process wall, handler import, app build) of one fresh interpreter, seconds."""
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", _COLD_START], capture_output=True, text=True, env=env, cwd=REPO, check=True
    )
    wall = time.perf_counter() - t0
    d = json.loads(p.stdout.strip().splitlines()[-1])
    return wall, d["import_s"], d["build_s"]


def coldstart(ctx: Context) -> dict:
    """Importing the API handler module and building the app, vs importing blosc2 alone.

    ``handler_*``: as the template deploys it by default (on Lambda, ``Tracing: Active``:
    ``AWS_LAMBDA_FUNCTION_NAME`` set, so the X-Ray SDK is imported); ``notrace_*``:
    with ``Tracing: PassThrough`` (``POWERTOOLS_TRACE_DISABLED``).
    """
    env = {
        **os.environ,
        **API_ENV,
        "AWS_LAMBDA_FUNCTION_NAME": "caterva-bench-api",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("POWERTOOLS_TRACE_DISABLED", None)
    notrace = {**env, "POWERTOOLS_TRACE_DISABLED": "true"}
    n = max(3, ctx.reps) if not ctx.quick else 1
    rows: dict[str, list] = {}

    def add(key: str, value: float) -> None:
        rows.setdefault(key, []).append(value)

    ctx.log(f"  cold start ({n} fresh interpreters per figure)")
    for _ in range(n):
        for prefix, e in (("handler", env), ("notrace", notrace)):
            wall, imp, build = _cold_once(e)
            add(f"{prefix}_wall", wall)
            add(f"{prefix}_import", imp)
            add(f"{prefix}_build", build)
            add(f"{prefix}_import_plus_build", imp + build)
            cumulative, total = _importtime("functions.handlers.api", e)
            add(f"{prefix}_importtime", cumulative)
            add(f"{prefix}_importtime_total", total)
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, "-c", _BLOSC2], capture_output=True, text=True, env=env, cwd=REPO, check=True
        )
        add("blosc2_wall", time.perf_counter() - t0)
        add("blosc2_import", json.loads(p.stdout.strip().splitlines()[-1])["import_s"])
        cumulative, total = _importtime("blosc2", env)
        add("blosc2_importtime", cumulative)
        add("blosc2_importtime_total", total)
    med = {k: statistics.median(v) for k, v in rows.items()}
    out = {
        "runs": n,
        "median_s": med,
        "samples_s": rows,
        "ratios": {
            "import_plus_build_vs_blosc2_import": _ratio(
                med["handler_import_plus_build"], med["blosc2_import"]
            ),
            "notrace_import_plus_build_vs_blosc2_import": _ratio(
                med["notrace_import_plus_build"], med["blosc2_import"]
            ),
            "importtime_vs_blosc2": _ratio(med["handler_importtime"], med["blosc2_importtime"]),
            "process_wall_vs_blosc2_process": _ratio(med["handler_wall"], med["blosc2_wall"]),
        },
    }
    ctx.log(
        f"    handler import + build {med['handler_import_plus_build']:.3f} s (tracing on),"
        f" {med['notrace_import_plus_build']:.3f} s (tracing off); blosc2 alone {med['blosc2_import']:.3f} s"
    )
    return out


def _frames(ctx: Context) -> dict:
    from bench.frames import frames

    return frames(ctx)


#: Seconds the idle stack is watched (quick runs: 2 s)
IDLE_SECONDS = 10.0


def idle(ctx: Context) -> dict:
    """CPU our stack (both regional APIs, the event dispatcher, moto) uses doing nothing.

    After a settle of 2 s (the last case's background work done), the stack's processes are
    watched for :data:`IDLE_SECONDS` with no request: cores = CPU seconds / wall seconds.
    """
    from bench.measure import CpuMeter

    seconds = 2.0 if ctx.quick else IDLE_SECONDS
    time.sleep(2.0)
    meter = CpuMeter(ctx.stack.pids)
    meter.start()
    t0 = time.perf_counter()
    time.sleep(seconds)
    wall = time.perf_counter() - t0
    used = meter.stop()
    cores = {k: round(v / wall, 4) for k, v in used.items() if k != "other"}
    ctx.log(f"  idle stack over {wall:.1f} s: " + ", ".join(f"{k} {v:.3f} cores" for k, v in cores.items()))
    return {
        "seconds": round(wall, 2),
        "cpu_s": used,
        "cores": cores,
        "stack_cores": round(sum(cores.values()), 4),
    }
