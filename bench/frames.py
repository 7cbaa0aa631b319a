"""The web viewer's scrubbing case: one 512x512 plane of the 64 MiB uint16 tomography as a PNG.

Reported against the same plane's raw values through ``/api/fetch`` (what any client
pays for the data alone) and against blosc2 slicing the local file: the frame's cost
over those is the windowing and PNG encoding.
"""

from __future__ import annotations

import blosc2
import httpx

from bench.measure import repeat_interleaved


def frames(ctx) -> dict:
    """Warm frame latency (planes sharing chunks, as a slider moves) vs fetch and local slicing."""
    from bench.common import ROOT, TOMO, _ratio, _row

    r1 = ctx.stack.url("r1")
    local = blosc2.open(str(ctx.files["tomo"]))
    planes = iter(range(1 << 30))
    depth = ctx.truth["tomo"].shape[0]
    client = httpx.Client(timeout=60)

    def next_plane() -> int:
        return next(planes) % depth

    def frame():
        r = client.get(f"{r1}/web/frame/{ROOT}/{TOMO}", params={"i": next_plane()})
        r.raise_for_status()

    def fetch():
        r = client.get(f"{r1}/api/fetch/{ROOT}/{TOMO}", params={"slice_": f"{next_plane()}"})
        r.raise_for_status()

    def sliced():
        local[next_plane()]

    ctx.log("  web frames: 512x512 uint16 planes of the tomography")
    reps = max(10, ctx.reps * 10)
    timings = repeat_interleaved(
        {"frame_png": frame, "api_fetch_plane": fetch, "blosc2_local": sliced}, reps, warmup=2, pids=ctx.pids
    )
    client.close()
    rows = {name: _row(t) for name, t in timings.items()}
    med = {name: t.median for name, t in timings.items()}
    ctx.log(
        f"    frame {med['frame_png'] * 1000:.1f} ms, fetch {med['api_fetch_plane'] * 1000:.1f} ms,"
        f" local {med['blosc2_local'] * 1000:.1f} ms"
    )
    return {
        "rows": rows,
        "ratios": {
            "frame_vs_api_fetch": _ratio(med["frame_png"], med["api_fetch_plane"]),
            "frame_vs_blosc2_local": _ratio(med["frame_png"], med["blosc2_local"]),
        },
    }
