"""Write cases: publishing against ``upload_file`` and zarr, change propagation between regions."""

from __future__ import annotations

import math
import shutil
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import blosc2
import boto3
import httpx
import numpy as np

from bench import data as bdata
from bench.common import BIG, MB, ROOT, Context, _ratio, _row
from bench.measure import CpuMeter, percentile, repeat_interleaved

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
            "our_publisher": lambda: publisher.publish_file("pub", BIG, src),  # as cat-publish does
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

    from bench.publish_cli import publishing_commands

    out["commands"] = publishing_commands(ctx, bucket, empty_bucket)

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

