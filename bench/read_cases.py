"""Read cases: large reads (plans, API, Caterva2, zarr + obstore, raw S3), small slices, blosc2.Proxy."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import blosc2
import numpy as np

from bench import rawget, zarrpeer
from bench.common import (
    BIG,
    MB,
    ROOT,
    SMALL_KEY,
    TOMO,
    Context,
    WrongAnswer,
    _cat2client,
    _catclient,
    _checked,
    _ratio,
    _row,
)
from bench.measure import percentile, repeat_interleaved

# --------------------------------------------------------------------------- large reads


def reads(ctx: Context) -> dict:
    """Full-array read and a large slice of the 200 MB array, six ways (zarr + obstore if installed)."""
    s3 = ctx.s3()
    layout = rawget.ChunkLayout.from_origin(s3, ctx.stack.info["origin_bucket"], ROOT, BIG)
    zarr_read = None
    if zarrpeer.available():
        # Same array, chunks and codec (zstd clevel 5 + shuffle), in the same moto
        zarrpeer.write(s3, ctx.stack.endpoint_url, "big", ctx.truth["big"], ctx.sizes.big_chunks)
        zarr_read = zarrpeer.reader(ctx.stack.endpoint_url, "big")
    else:
        ctx.log("  zarr + obstore rows skipped: pip install -e '.[bench]' for them")
    return {
        label: _read_rows(ctx, key, layout, s3, label, zarr_read)
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


def _read_rows(ctx: Context, key: tuple, layout: rawget.ChunkLayout, s3, label: str, zarr_read=None) -> dict:
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
    if zarr_read is not None:
        row("zarr_obstore", "zarr-python 3 + obstore", lambda: zarr_read(key), bucket=zarrpeer.BUCKET)
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
        "plans_vs_zarr_obstore": _ratio(med.get("zarr_obstore"), med["catclient_plans"]),
        "api_vs_zarr_obstore": _ratio(med.get("zarr_obstore"), med["catclient_api"]),
        "raw_s3_vs_zarr_obstore": _ratio(med.get("zarr_obstore"), med["raw_s3_get"]),
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

