"""The measurements.  Each case takes the run's :class:`Context` and returns a JSON-able dict.

Every timed repetition is preceded by one untimed warm-up (unless the case is
about cold state, which it then recreates before each repetition); results are
checked against numpy ground truth once per row, so no figure is of a wrong answer.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import blosc2
import boto3
import httpx
import numpy as np
from botocore.config import Config

from bench import data as bdata
from bench import rawget
from bench.measure import CpuMeter, Timing, percentile, repeat, repeat_interleaved
from bench.servers import REPO, Cat2Server, OurStack

ROOT = "bench"
BIG = "big.b2nd"
TOMO = "tomo.b2nd"
#: The small slice of issue 8 (``ds[5, 10:12, 3]``) on the tomography stack.
SMALL_KEY = (5, slice(10, 12), 3)
MB = 1e6


class WrongAnswer(AssertionError):
    """A client returned data that differs from the ground truth."""


@dataclass
class Context:
    """Everything the cases share in one run."""

    sizes: bdata.Sizes
    reps: int
    quick: bool
    files: dict[str, Path]
    truth: dict[str, np.ndarray]
    stack: OurStack
    cat2: Cat2Server | None
    log: Callable[[str], None] = print

    @property
    def pids(self) -> dict[str, int]:
        out = {"client": os.getpid(), **self.stack.pids}
        if self.cat2 is not None:
            out.update(self.cat2.pids)
        return out

    def s3(self, pool: int = 32):
        """A boto3 S3 client on our S3 endpoint (moto) for the harness itself."""
        return boto3.client(
            "s3",
            endpoint_url=self.stack.endpoint_url,
            region_name="us-east-1",
            config=Config(max_pool_connections=pool, s3={"addressing_style": "path"}),
        )


# --------------------------------------------------------------------------- helpers


#: The API function's environment as the template sets it (no AWS is called at import)
API_ENV = {
    "CAT_ORIGIN_BUCKET": "bench-origin",
    "CAT_CACHE_BUCKET": "bench-cache",
    "CAT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:bench",
    "CAT_USER_POOL_ID": "us-east-1_benchpool",
    "CAT_USER_POOL_CLIENT_ID": "benchclient",
}


def _row(timing: Timing, nbytes: int | None = None, **extra) -> dict:
    out = {
        "median_s": timing.median,
        "seconds": [round(s, 6) for s in timing.seconds],
        "cpu_s": timing.cpu,
        **extra,
    }
    if nbytes:
        out["mb_per_s"] = nbytes / MB / timing.median
    return out


def _checked(fn: Callable[[], object], truth: np.ndarray, what: str) -> Callable[[], object]:
    """*fn*, whose first answer is compared with *truth* (the rest are trusted)."""
    state = {"checked": False}

    def run():
        result = fn()
        if not state["checked"]:
            got = np.asarray(result)
            if got.shape != truth.shape or not np.array_equal(got, truth):
                raise WrongAnswer(f"{what}: answer differs from the ground truth")
            state["checked"] = True
        return result

    return run


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def _catclient(url: str, **kw):
    import catclient

    return catclient.Client(url, **kw)


def _cat2client(url: str):
    import caterva2

    # caterva2.Client's default timeout is 5 s: too short for a 200 MB answer
    return caterva2.Client(url, timeout=600)


# --------------------------------------------------------------------------- large reads


def reads(ctx: Context) -> dict:
    """Full-array read and a large slice of the 200 MB array, five ways."""
    s3 = ctx.s3()
    layout = rawget.ChunkLayout.from_origin(s3, ctx.stack.info["origin_bucket"], ROOT, BIG)
    return {
        label: _read_rows(ctx, key, layout, s3, label)
        for label, key in (("full", ()), ("slice", ctx.sizes.big_slice()))
    }


def _received(client, fn: Callable[[], object]) -> Callable[[], object]:
    """*fn*, noting in ``.received`` the bytes *client* (a catclient) received in its last call."""

    def run():
        before = client.stats.as_dict()["bytes_received"]
        result = fn()
        run.received = client.stats.as_dict()["bytes_received"] - before
        return result

    run.received = 0
    return run


def _read_rows(ctx: Context, key: tuple, layout: rawget.ChunkLayout, s3, label: str) -> dict:
    ours = f"{ROOT}/{BIG}"
    bucket = ctx.stack.info["cache_buckets"]["r1"]  # where read plans point
    truth = ctx.truth["big"][key] if key else ctx.truth["big"]
    nbytes = truth.nbytes
    touched = layout.touched(rawget.normalize_box(key, layout.shape))
    slice_arg = key or None
    rows: dict[str, dict] = {}
    ctx.log(f"  reads/{label} {_key_text(key)}: {nbytes / MB:.0f} MB, {len(touched)} chunks")

    contenders: dict[str, tuple[str, Callable[[], object], dict]] = {}
    clients = []

    def row(name: str, text: str, fn: Callable[[], object], **extra) -> None:
        contenders[name] = (text, fn, extra)

    plans = _catclient(ctx.stack.url("r1"))
    api = _catclient(ctx.stack.url("r1"), use_plans=False)
    c2o = _cat2client(ctx.stack.url("r2"))
    clients += [plans, api, c2o]
    row("catclient_plans", "catclient (plans)", _received(plans, lambda: plans.fetch(ours, slice_arg)))
    row("catclient_api", "catclient (API)", _received(api, lambda: api.fetch(ours, slice_arg)))
    if ctx.cat2 is not None:
        c2 = _cat2client(ctx.cat2.url)
        clients.append(c2)
        row(
            "cat2_client_cat2_server",
            "caterva2.Client -> cat2-server",
            lambda: c2.fetch(f"@public/{BIG}", slice_arg),
        )
    row(
        "cat2_client_our_api",
        "caterva2.Client -> our API",
        lambda: c2o.fetch(ours, slice_arg),
        region="r2 (response limit off)",
    )
    row(
        "raw_s3_get",
        "raw parallel boto3 GETs",
        lambda: rawget.read(s3, bucket, layout, key),
        chunks=len(touched),
    )
    try:
        checked = {name: _checked(fn, truth, name) for name, (_, fn, _) in contenders.items()}
        timings = repeat_interleaved(checked, ctx.reps, pids=ctx.pids)
    finally:
        for client in clients:
            client.close()
    for name, (text, fn, extra) in contenders.items():
        t = timings[name]
        received = getattr(fn, "received", None)
        if received is not None:
            extra = {**extra, "client_received_bytes": received}
        rows[name] = _row(t, nbytes, **extra)
        ctx.log(f"    {text:32s} {t.median:7.3f} s  {nbytes / MB / t.median:8.1f} MB/s")
    med = {k: v["median_s"] for k, v in rows.items()}
    ratios = {
        # throughput ratios (ours / peer): > 1 means ours is faster
        "plans_vs_raw_s3": _ratio(med["raw_s3_get"], med["catclient_plans"]),
        "api_vs_raw_s3": _ratio(med["raw_s3_get"], med["catclient_api"]),
        "plans_vs_cat2": _ratio(med.get("cat2_client_cat2_server"), med["catclient_plans"]),
        "api_vs_cat2": _ratio(med.get("cat2_client_cat2_server"), med["catclient_api"]),
        "cat2_client_on_ours_vs_cat2": _ratio(med.get("cat2_client_cat2_server"), med["cat2_client_our_api"]),
        "plans_vs_cat2_client_on_ours": _ratio(med["cat2_client_our_api"], med["catclient_plans"]),
    }
    return {
        "key": _key_text(key),
        "bytes": nbytes,
        "chunks": len(touched),
        "compressed_bytes": sum(layout.sizes[i] for i in touched),
        "rows": rows,
        "throughput_ratios": ratios,
    }


def _key_text(key) -> str:
    if not key:
        return "[:]"
    parts = []
    for k in key:
        if isinstance(k, slice):
            parts.append(f"{'' if k.start is None else k.start}:{'' if k.stop is None else k.stop}")
        else:
            parts.append(str(k))
    return "[" + ", ".join(parts) + "]"


# --------------------------------------------------------------------------- small slices


def small_slice(ctx: Context) -> dict:
    """``ds[5, 10:12, 3]`` on the tomography: cold and warm latency."""
    truth = ctx.truth["tomo"][SMALL_KEY]
    ours = f"{ROOT}/{TOMO}"
    r1 = ctx.stack.url("r1")
    warm_n = max(5, ctx.reps * 10)
    out: dict = {"key": _key_text(SMALL_KEY), "warm_samples": warm_n, "rows": {}}

    cold_fns: dict[str, Callable[[], object]] = {}
    cold_before: dict[str, Callable[[], object]] = {}
    warm_fns: dict[str, Callable[[], object]] = {}
    clients = []

    def contender(name: str, make_client, path_for_cold: Callable[[int], str], reset, warm_path: str):
        counter = {"i": 0}

        def before():
            counter["i"] += 1
            reset()

        def cold():
            client = make_client()
            try:
                return client.get(path_for_cold(counter["i"]))[SMALL_KEY]
            finally:
                client.close()

        cold_fns[name] = _checked(cold, truth, name + " cold")
        cold_before[name] = before
        client = make_client()
        clients.append(client)
        ds = client.get(warm_path)
        warm_fns[name] = _checked(lambda: ds[SMALL_KEY], truth, name + " warm")

    ctx.log("  small slice " + out["key"])

    def reset_r1():
        ctx.stack.reset_cache("r1")

    contender("catclient_our_api", lambda: _catclient(r1), lambda i: ours, reset_r1, ours)
    contender("cat2_client_our_api", lambda: _cat2client(r1), lambda i: ours, reset_r1, ours)
    if ctx.cat2 is not None:
        # Cold on Caterva2's server: a path it has never served (a hard link of the same
        # file, so the OS page cache is warm; we cannot drop it without root on the host)
        names = {}

        def cold_path(i: int) -> str:
            if i not in names:
                names[i] = ctx.cat2.add_public(ctx.files["tomo"], f"tomo-cold-{i}.b2nd")
            return names[i]

        contender(
            "cat2_client_cat2_server",
            lambda: _cat2client(ctx.cat2.url),
            cold_path,
            lambda: None,
            f"@public/{TOMO}",
        )
    # Contenders take turns (cold: each after its own reset), so a slow spell of the
    # machine lands on all of them alike; warm first, while the warm objects are fresh
    try:
        warm = repeat_interleaved(warm_fns, warm_n, pids=ctx.pids)
        cold = repeat_interleaved(cold_fns, ctx.reps, before=cold_before, pids=ctx.pids)
    finally:
        for client in clients:
            client.close()
    for name in warm_fns:
        t_cold, t_warm = cold[name], warm[name]
        out["rows"][name] = {
            "cold": _row(t_cold, cold_means="new client, get(path)[key]; serving tier caches empty"),
            "warm": _row(t_warm, p95_s=percentile(t_warm.seconds, 95)),
        }
        ctx.log(f"    {name:32s} cold {t_cold.median * 1e3:8.1f} ms   warm {t_warm.median * 1e3:7.2f} ms")
    rows = out["rows"]

    def med(name, which):
        return rows.get(name, {}).get(which, {}).get("median_s")

    out["latency_ratios"] = {
        # latency ratios (ours / peer): < 1 means ours is faster
        "warm_catclient_vs_cat2": _ratio(
            med("catclient_our_api", "warm"), med("cat2_client_cat2_server", "warm")
        ),
        "cold_catclient_vs_cat2": _ratio(
            med("catclient_our_api", "cold"), med("cat2_client_cat2_server", "cold")
        ),
        "warm_cat2client_ours_vs_cat2": _ratio(
            med("cat2_client_our_api", "warm"), med("cat2_client_cat2_server", "warm")
        ),
    }
    return out


# --------------------------------------------------------------------------- blosc2.Proxy


def proxy(ctx: Context) -> dict:
    """``blosc2.Proxy(blosc2.C2Array(...))`` filling its whole cache (every chunk of the tomography)."""
    truth = ctx.truth["tomo"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    out: dict = {"dataset": TOMO, "bytes": truth.nbytes, "rows": {}}

    def fill(url: str, path: str) -> Callable[[], object]:
        def run():
            src = blosc2.C2Array(path, urlbase=url.rstrip("/") + "/")
            cache = tmp / "cache.b2nd"
            p = blosc2.Proxy(src, urlpath=str(cache), mode="w")
            p.fetch()
            return p

        return run

    def check(fn, name):
        def run():
            p = fn()
            if not run.done:
                if not np.array_equal(p[()], truth):
                    raise WrongAnswer(f"{name}: proxy cache differs from the ground truth")
                run.done = True
            return p

        run.done = False
        return run

    try:
        ctx.log("  blosc2.Proxy over C2Array, whole cache")
        fns = {"our_api": check(fill(ctx.stack.url("r1"), f"{ROOT}/{TOMO}"), "ours")}
        if ctx.cat2 is not None:
            fns["cat2_server"] = check(fill(ctx.cat2.url, f"@public/{TOMO}"), "cat2")
        for name, t in repeat_interleaved(fns, ctx.reps, pids=ctx.pids).items():
            out["rows"][name] = _row(t, truth.nbytes)
            ctx.log(f"    {name:28s} {t.median:7.3f} s")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = out["rows"]
    if "cat2_server" in rows:
        out["throughput_ratios"] = {
            "ours_vs_cat2": _ratio(rows["cat2_server"]["median_s"], rows["our_api"]["median_s"])
        }
    return out


# --------------------------------------------------------------------------- publishing


class CountingStore:
    """A BlobStore wrapper that counts what ``put`` sends (every object, not only chunks)."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.put_bytes = 0
        self.puts = 0
        self._lock = threading.Lock()

    def put(self, key, data, **kw):
        with self._lock:
            self.put_bytes += len(data)
            self.puts += 1
        return self._inner.put(key, data, **kw)

    def reset(self) -> None:
        self.put_bytes = 0
        self.puts = 0

    def __getattr__(self, name):
        return getattr(self._inner, name)


def publishing(ctx: Context) -> dict:
    """Publishing the 200 MB array vs ``upload_file``; re-publishing after a 1 % change."""
    from functions.adapters.inprocess import NullSink
    from functions.adapters.s3 import S3Store
    from functions.aws import s3_client
    from functions.engine.content import load_path
    from functions.engine.publish import Publisher
    from functions.settings import Settings

    bucket = "cat-bench-publish"
    settings = Settings(origin_bucket=bucket, endpoint_url=ctx.stack.endpoint_url)
    product_s3 = s3_client(settings)  # the client config the product's publisher uses
    product_s3.create_bucket(Bucket=bucket)
    store = CountingStore(S3Store(product_s3, bucket))
    publisher = Publisher(store, NullSink())
    plain_s3 = boto3.client("s3", endpoint_url=ctx.stack.endpoint_url, region_name="us-east-1")
    src = ctx.files["big"]
    size = src.stat().st_size
    nbytes = ctx.truth["big"].nbytes
    out: dict = {"file_bytes": size, "array_bytes": nbytes, "rows": {}}

    def empty_bucket():
        pages = product_s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for page in pages:
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                product_s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})

    def before():
        empty_bucket()
        store.reset()

    ctx.log("  publishing")
    # The two take turns, each into an empty bucket (store.reset: the bytes of the last publish)
    timings = repeat_interleaved(
        {
            "our_publisher": lambda: publisher.publish("pub", BIG, load_path(src)),
            "boto3_upload_file": lambda: plain_s3.upload_file(str(src), bucket, "plain/" + BIG),
        },
        ctx.reps,
        before={"our_publisher": before, "boto3_upload_file": empty_bucket},
        pids=ctx.pids,
    )
    t = timings["our_publisher"]
    out["rows"]["our_publisher"] = _row(t, size, put_bytes=store.put_bytes, puts=store.puts)
    ctx.log(f"    our Publisher (load + upload) {t.median:7.3f} s  ({store.put_bytes / MB:.1f} MB PUT)")
    t = timings["boto3_upload_file"]
    out["rows"]["boto3_upload_file"] = _row(t, size)
    ctx.log(f"    boto3 upload_file             {t.median:7.3f} s")
    out["time_ratio_vs_upload_file"] = _ratio(
        out["rows"]["our_publisher"]["median_s"], out["rows"]["boto3_upload_file"]["median_s"]
    )

    # Re-publish after changing 1 % of the chunks, in place in a copy of the file
    before()
    edit = src.with_name("big-edit.b2nd")
    shutil.copyfile(src, edit)
    publisher.publish("pub", "edit.b2nd", load_path(edit))
    edited = blosc2.open(str(edit))  # keep the array alive while its schunk is used
    nchunks = edited.schunk.nchunks
    del edited
    per_rep = max(1, round(nchunks / 100))
    results = []
    step = max(1, nchunks // (per_rep * (ctx.reps + 1)))
    for rep in range(ctx.reps):
        which = sorted({(rep * per_rep + j) * step % nchunks for j in range(per_rep)})
        bdata.change_chunks(edit, which, seed=rep + 1)
        fsize = edit.stat().st_size
        store.reset()
        meter = CpuMeter(ctx.pids)
        meter.start()
        t0 = time.perf_counter()
        loaded = load_path(edit)
        r = publisher.publish("pub", "edit.b2nd", loaded)
        dt = time.perf_counter() - t0
        changed_bytes = sum(loaded.content.refs[i].size for i in r.changed_chunks)
        results.append(
            {
                "seconds": dt,
                "changed_chunks_asked": len(which),
                "changed_chunks_seen": len(r.changed_chunks),
                "uploaded_chunks": r.uploaded_chunks,
                "uploaded_chunk_bytes": r.uploaded_bytes,
                "changed_chunks_compressed_bytes": changed_bytes,
                "put_bytes_total": store.put_bytes,
                "puts": store.puts,
                "file_bytes": fsize,
                "fraction_of_file": store.put_bytes / fsize,
                "cpu_s": meter.stop(),
            }
        )
    edit.unlink(missing_ok=True)
    empty_bucket()
    fr = [r["fraction_of_file"] for r in results]
    out["republish_1pct"] = {
        "nchunks": nchunks,
        "chunks_changed_per_rep": per_rep,
        "median_s": statistics.median(r["seconds"] for r in results),
        "median_fraction_of_file": statistics.median(fr),
        "max_fraction_of_file": max(fr),
        "reps": results,
    }
    ctx.log(
        f"    re-publish 1 % ({per_rep}/{nchunks} chunks)   "
        f"{out['republish_1pct']['median_s']:7.3f} s, uploads {statistics.median(fr) * 100:.2f} % of the file"
    )
    return out


# --------------------------------------------------------------------------- change propagation


def propagation(ctx: Context) -> dict:
    """Publish → visible through each regional API (events through SNS → SQS → sync)."""
    from functions.aws import build_services
    from functions.engine.content import load_object
    from functions.settings import Settings

    info = ctx.stack.info
    services = build_services(
        Settings(
            origin_bucket=info["origin_bucket"],
            topic_arn=info["topic_arn"],
            endpoint_url=ctx.stack.endpoint_url,
        )
    )
    publisher = services.publisher
    path = "prop.b2nd"
    n = 3 if ctx.quick else 20
    labels = sorted(info["api_urls"])
    http = httpx.Client(timeout=10)
    poll = 0.005

    def publish(value: int):
        arr = blosc2.asarray(np.full((64, 64), value, dtype=np.int64) + np.arange(64))
        return publisher.publish(ROOT, path, load_object(arr))

    def visible(label: str, version: int, t0: float, deadline: float) -> float:
        url = f"{info['api_urls'][label]}/api/info/{ROOT}/{path}"
        while time.perf_counter() < deadline:
            resp = http.get(url)
            if resp.status_code == 200 and resp.json().get("version", 0) >= version:
                return time.perf_counter() - t0
            time.sleep(poll)
        return math.nan

    r = publish(-1)
    for label in labels:
        visible(label, r.version, time.perf_counter(), time.perf_counter() + 10)
    samples: dict[str, list[float]] = {label: [] for label in labels}
    after_commit: dict[str, list[float]] = {label: [] for label in labels}
    publish_s = []
    ctx.log(f"  change propagation ({n} publishes, polling every {poll * 1e3:.0f} ms)")
    with ThreadPoolExecutor(max_workers=len(labels)) as pool:
        for i in range(n):
            t0 = time.perf_counter()
            r = publish(i)
            t1 = time.perf_counter()
            publish_s.append(t1 - t0)
            futures = {label: pool.submit(visible, label, r.version, t0, t0 + 10) for label in labels}
            for label, fut in futures.items():
                s = fut.result()
                samples[label].append(s)
                after_commit[label].append(s - (t1 - t0))
            time.sleep(0.05)
    http.close()
    out: dict = {"publishes": n, "poll_interval_s": poll, "publish_call": _stats(publish_s), "regions": {}}
    for label in labels:
        out["regions"][label] = {
            "from_publish_start": _stats(samples[label]),
            "from_commit": _stats(after_commit[label]),
        }
        s = out["regions"][label]["from_publish_start"]
        ctx.log(f"    {label}: p50 {s['p50_s'] * 1e3:7.1f} ms   p95 {s['p95_s'] * 1e3:7.1f} ms")
    return out


def _stats(xs: list[float]) -> dict:
    good = [x for x in xs if not math.isnan(x)]
    return {
        "p50_s": percentile(good, 50),
        "p95_s": percentile(good, 95),
        "max_s": max(good) if good else math.nan,
        "missed": len(xs) - len(good),
    }


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


CASES: dict[str, Callable[[Context], dict]] = {
    "reads": reads,
    "small": small_slice,
    "proxy": proxy,
    "publish": publishing,
    "propagation": propagation,
    "cache": cache,
    "lazy": lazy,
    "coldstart": coldstart,
    "frames": _frames,
}
