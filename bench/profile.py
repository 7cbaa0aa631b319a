"""Where the time goes: the profiles behind BENCHMARKS.md's before/after and "Where we still lose".

``python -m bench.profile NAME [--quick]`` with NAME one of:

- ``nagle``: per-request latency of the local API, and whether its accepted
  sockets have Nagle's algorithm off (``TCP_NODELAY``; ~40 ms per answer without);
- ``plan``: a catclient read-plan read of the whole 200 MB array split into its
  phases, and the plan request split into ``ensure_cached`` (first plan: a HEAD
  per chunk; later plans: none) and presigning;
- ``api413``: how long the API works on a 50 MB slice before refusing it (413);
- ``answer``: pyinstrument profile of ``/api/fetch`` answers (in process), and
  Blosc2 compression speed at the default level vs level 1;
- ``publish``: ``load_path`` profile, the upload of an already loaded dataset,
  and ``upload_file`` of the same file;
- ``coldstart``: pyinstrument profile of importing the API handler and building the app.

Uses the datasets under ``bench/data/`` (run ``python -m bench`` once first).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import blosc2
import httpx

from bench import data as bdata
from bench.cases import API_ENV
from bench.cli import _FAKE_AWS, _publish, prepare_data
from bench.servers import REPO, OurStack


def _median_ms(fn: Callable[[], object], n: int = 5) -> float:
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3


def _stack(files) -> OurStack:
    stack = OurStack().start()
    _publish(stack, files)
    return stack


def _region_services(stack: OurStack, label: str = "r1"):
    """Services like region *label*'s, in this process (to profile domain code without HTTP)."""
    from functions.adapters.inprocess import NullSink
    from functions.aws import build_services
    from functions.settings import Settings

    info = stack.info
    settings = Settings(
        origin_bucket=info["origin_bucket"],
        cache_bucket=info["cache_buckets"][label],
        endpoint_url=stack.endpoint_url,
    )
    return build_services(settings, events=NullSink())


def _pyinstrument(fn: Callable[[], object], interval: float = 0.0005) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(interval=interval)
    profiler.start()
    fn()
    profiler.stop()
    return profiler.output_text(unicode=False, color=False)


def nagle(files, sizes) -> None:
    import socket

    stack = OurStack().start()
    try:
        url = stack.url("r1")
        with httpx.Client() as http:
            ms = {ep: _median_ms(lambda ep=ep: http.get(url + ep), 30) for ep in ("/api/roots", "/nothing")}
        print("local API, per request: " + "   ".join(f"GET {ep}: {v:6.1f} ms" for ep, v in ms.items()))
    finally:
        stack.stop()
    # What asyncio does with uvicorn's listening socket: TCP_NODELAY on accepted
    # sockets only when the listener reports proto == IPPROTO_TCP (infra/local.py:_listen)
    from infra.local import _listen

    listener = _listen("127.0.0.1", 0)
    try:
        print(
            f"infra.local._listen: proto {listener.proto} (IPPROTO_TCP = {socket.IPPROTO_TCP}):"
            f" Nagle {'off' if listener.proto == socket.IPPROTO_TCP else 'ON: ~40 ms per answer'}"
        )
    finally:
        listener.close()


def plan(files, sizes) -> None:
    import catclient
    from catclient import wire
    from catclient.cache import chunk_digest
    from functions.engine.region import CacheStats
    from functions.engine.spaces import ANONYMOUS, locate

    stack = _stack(files)
    try:
        path = f"bench/{files['big'].name}"
        client = catclient.Client(stack.url("r1"))
        client.fetch(path)  # warm the region
        print("catclient read-plan read of the whole array, phases (ms):")
        for _ in range(3):
            t = {}
            t0 = time.perf_counter()
            client.get_info(path)
            t["get_info"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            p = client.plan(path, ())
            t["plan request"] = time.perf_counter() - t0
            refs = p["chunk_refs"]
            t0 = time.perf_counter()
            datas = list(client._map(lambda r: client._http.get(r["url"]).content, refs))
            t["presigned GETs"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            for d in datas:
                chunk_digest(d)
            t["hash checks (serial here)"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            arr = wire.assemble_ndarray(
                wire.Geometry.from_json(p), {r["nchunk"]: d for r, d in zip(refs, datas, strict=True)}
            )
            arr[()]
            t["assemble + decompress"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            client.fetch(path)
            t["catclient fetch, total"] = time.perf_counter() - t0
            print("  " + ", ".join(f"{k} {v * 1e3:.0f}" for k, v in t.items()))
        # The bench's 50 MB slice: how much of the read is the plan request before the first GET
        key = sizes.big_slice()
        plan_ms = _median_ms(lambda: client.plan(path, key))
        fetch_ms = _median_ms(lambda: client.fetch(path, key))
        share = plan_ms / fetch_ms
        print(f"slice {key}: plan request {plan_ms:.1f} ms of a {fetch_ms:.0f} ms read ({share:.0%})")
        client.close()
        services = _region_services(stack)
        region, read = services.region, services.read
        m = region.dataset("bench", files["big"].name)
        idx = list(range(len(m.refs)))
        # A fresh Region knows nothing of the cache bucket: its first plan HEADs every chunk
        first = _median_ms(lambda: region.ensure_cached(m, idx, CacheStats()), 1)
        ensure = _median_ms(lambda: region.ensure_cached(m, idx, CacheStats()))
        presign = _median_ms(lambda: [region.presign(r.digest, 300) for r in m.refs])
        loc = locate("bench", files["big"].name, ANONYMOUS)
        whole = _median_ms(lambda: read.plan(loc, None, CacheStats(), ANONYMOUS))
        print(
            f"plan request in process: ensure_cached {first:.0f} ms the first time ({len(idx)} HEADs),"
            f" {ensure:.1f} ms after (chunks known to be cached), presign x{len(idx)} {presign:.0f} ms,"
            f" ReadService.plan {whole:.0f} ms"
        )
    finally:
        stack.stop()


def api413(files, sizes) -> None:
    import catclient

    stack = _stack(files)
    try:
        key = sizes.big_slice()
        text = f"{key[0].start}:{key[0].stop},:"
        path = f"bench/{files['big'].name}"
        url = stack.url("r1")
        with httpx.Client(timeout=120) as http, catclient.Client(url, use_plans=False) as client:
            client.fetch(path, key)
            refused = _median_ms(lambda: http.get(f"{url}/api/fetch/{path}", params={"slice_": text}))
            status = http.get(f"{url}/api/fetch/{path}", params={"slice_": text}).status_code
            total = _median_ms(lambda: client.fetch(path, key))
        print(f"/api/fetch of [{text}] answers {status} after {refused:.0f} ms (median)")
        print(f"catclient (use_plans=False) read of the same slice, total {total:.0f} ms")
    finally:
        stack.stop()


def answer(files, sizes) -> None:
    from functions.engine.reads import FetchParams
    from functions.engine.region import CacheStats

    stack = _stack(files)
    try:
        read = _region_services(stack).read
        shape, chunks = sizes.tomo_shape, sizes.tomo_chunks
        boxes = [
            f"{z}:{z + chunks[0]},{y}:{y + chunks[1]},{x}:{x + chunks[2]}"
            for z in range(0, shape[0], chunks[0])
            for y in range(0, shape[1], chunks[1])
            for x in range(0, shape[2], chunks[2])
        ]
        name = files["tomo"].name

        def fetch_all():
            for b in boxes:
                read.fetch("bench", name, FetchParams(slice_=b), CacheStats())

        fetch_all()
        print(f"{len(boxes)} chunk-box /api/fetch answers of {name}, warm, in process:")
        print(_pyinstrument(fetch_all))
    finally:
        stack.stop()
    tomo = blosc2.open(str(files["tomo"]))
    big = blosc2.open(str(files["big"]))
    c = sizes.tomo_chunks
    samples = {
        "tomo chunk box": tomo[: c[0], : c[1], : c[2]],
        "50 MB slice of big": big[sizes.big_slice()],
    }
    for label, x in samples.items():
        for text, cparams in (
            ("default (ZSTD 5)", None),
            ("ZSTD 1", blosc2.CParams(codec=blosc2.Codec.ZSTD, clevel=1)),
            ("LZ4 1", blosc2.CParams(codec=blosc2.Codec.LZ4, clevel=1)),
        ):
            kw = {} if cparams is None else {"cparams": cparams}
            ms = _median_ms(lambda x=x, kw=kw: blosc2.asarray(x, **kw).to_cframe(), 3)
            size = len(blosc2.asarray(x, **kw).to_cframe())
            print(
                f"  {label:20s} {text:17s} {ms:7.1f} ms  {x.nbytes / 1e6 / ms * 1e3:6.0f} MB/s"
                f"  ratio {x.nbytes / size:.2f}"
            )


def publish(files, sizes) -> None:
    from functions.adapters.inprocess import NullSink
    from functions.adapters.s3 import S3Store
    from functions.aws import s3_client
    from functions.engine.content import load_path
    from functions.engine.publish import Publisher
    from functions.settings import Settings

    stack = OurStack().start()
    try:
        src = files["big"]
        s3 = s3_client(Settings(origin_bucket="unused", endpoint_url=stack.endpoint_url))
        print(f"load_path({src.name}) profile:")
        print(_pyinstrument(lambda: load_path(src), 0.001))
        t0 = time.perf_counter()
        loaded = load_path(src)
        print(f"  load_path (read, hash chunks)              {time.perf_counter() - t0:.3f} s")
        for i in range(3):
            bucket = f"cat-bench-profile-{i}"
            s3.create_bucket(Bucket=bucket)
            t0 = time.perf_counter()
            Publisher(S3Store(s3, bucket), NullSink()).publish("p", src.name, loaded)
            print(f"  upload of the loaded dataset, empty bucket {time.perf_counter() - t0:.3f} s")
        for _ in range(2):
            t0 = time.perf_counter()
            s3.upload_file(str(src), "cat-bench-profile-0", "plain")
            print(f"  boto3 upload_file of the same file         {time.perf_counter() - t0:.3f} s")
    finally:
        stack.stop()


_COLD = """
from pyinstrument import Profiler
p = Profiler(interval=0.001)
p.start()
import functions.handlers.api as h
from functions.aws import build_services
from functions.settings import Settings
h.make_handler(build_services(Settings.from_env()))
p.stop()
print(p.output_text(unicode=False, color=False))
"""


def coldstart(files, sizes) -> None:
    env = {**os.environ, **API_ENV}
    subprocess.run([sys.executable, "-c", _COLD], env=env, cwd=REPO, check=True)


PROFILES = {
    "nagle": nagle,
    "plan": plan,
    "api413": api413,
    "answer": answer,
    "publish": publish,
    "coldstart": coldstart,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", choices=sorted(PROFILES))
    p.add_argument("--quick", action="store_true", help="the small datasets")
    args = p.parse_args(argv)
    for k, v in _FAKE_AWS.items():
        os.environ.setdefault(k, v)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    sizes = bdata.QUICK if args.quick else bdata.FULL
    files, _ = prepare_data(sizes, bdata.DATA_DIR / ("quick" if args.quick else "full"))
    PROFILES[args.name](files, sizes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
