"""Machine information, the table of medians and ratios, and the issue-8 targets."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

from bench.servers import REPO, cat2_version
from catclient.wire import human_bytes

MB = 1e6
PACKAGES = ("blosc2", "numpy", "boto3", "botocore", "moto", "fastapi", "uvicorn", "httpx", "caterva2")


def machine() -> dict:
    """CPU model, cores, RAM, OS, Python and package versions, git commit."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
                break
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["caterva2_server (.venv-cat2)"] = cat2_version()
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        ).stdout.splitlines()
        dirty = bool(status)
    except (OSError, subprocess.CalledProcessError):
        commit, dirty, status = None, None, []
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "ram_bytes": ram,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "packages": versions,
        "git_commit": commit,
        "git_dirty": dirty,
        # the product changes under our feet while other work is in progress: say what was measured
        "git_modified_files": [line[3:] for line in status][:50],
    }


# --------------------------------------------------------------------------- formatting


def _x(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}x"


def _s(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v * 1e3:.1f} ms" if v < 1 else f"{v:.2f} s"


def _bytes(n: float) -> str:
    return human_bytes(int(n))


def _mbs(row: dict | None) -> str:
    return f"{row['mb_per_s']:.0f} MB/s" if row and row.get("mb_per_s") else ""


READ_ROWS = (
    ("catclient_plans", "catclient, read plans (S3 direct)", "raw_s3_get"),
    ("catclient_api", "catclient through the API", "raw_s3_get"),
    ("cat2_client_our_api", "caterva2.Client -> our API (limit off)", "raw_s3_get"),
    ("cat2_client_cat2_server", "caterva2.Client -> cat2-server (peer)", None),
    ("raw_s3_get", "raw parallel boto3 GETs (limit)", None),
    ("zarr_obstore", "zarr-python 3 + obstore (peer)", None),
)


Row = tuple[str, str, str, str]


def _read_rows(reads: dict) -> list[Row]:
    out: list[Row] = []
    for label in ("full", "slice"):
        r = reads.get(label)
        if not r:
            continue
        sec = f"read {label} {r['key']} ({r['bytes'] / MB:.0f} MB, {r['chunks']} chunks)"
        rows = r["rows"]
        peer = rows.get("cat2_client_cat2_server")
        for name, text, _limit in READ_ROWS:
            row = rows.get(name)
            if row:
                out.append(
                    (sec, text, f"{_s(row['median_s'])}  {_mbs(row)}", _read_ratios(name, row, rows, peer))
                )
    return out


def _read_ratios(name: str, row: dict, rows: dict, peer: dict | None) -> str:
    ratios = []
    if name != "raw_s3_get":
        ratios.append(f"vs raw S3 {_x(rows['raw_s3_get']['median_s'] / row['median_s'])}")
    if peer and name != "cat2_client_cat2_server":
        ratios.append(f"vs Caterva2 {_x(peer['median_s'] / row['median_s'])}")
    zarr = rows.get("zarr_obstore")
    if zarr and name != "zarr_obstore":
        ratios.append(f"vs zarr+obstore {_x(zarr['median_s'] / row['median_s'])}")
    return ", ".join(ratios)


_SMALL_ROWS = {
    "catclient_our_api": "catclient -> our API",
    "cat2_client_our_api": "caterva2.Client -> our API",
    "cat2_client_cat2_server": "caterva2.Client -> cat2-server (peer)",
}


def _small_rows(s: dict) -> list[Row]:
    out: list[Row] = []
    sec = f"small slice tomo{s['key']} latency"
    peer = s["rows"].get("cat2_client_cat2_server")
    for name, text in _SMALL_ROWS.items():
        row = s["rows"].get(name)
        if not row:
            continue
        for which in ("cold", "warm"):
            ratio = ""
            if peer and name != "cat2_client_cat2_server":
                ratio = f"ours/peer {_x(row[which]['median_s'] / peer[which]['median_s'])}"
            out.append((sec, f"{text}, {which}", _s(row[which]["median_s"]), ratio))
    return out


def _proxy_rows(p: dict) -> list[Row]:
    out: list[Row] = []
    sec = f"blosc2.Proxy(C2Array) fills its cache ({p['bytes'] / MB:.0f} MB)"
    peer = p["rows"].get("cat2_server")
    for name, text in (("our_api", "our API"), ("cat2_server", "cat2-server (peer)")):
        row = p["rows"].get(name)
        if row:
            ratio = (
                f"vs Caterva2 {_x(peer['median_s'] / row['median_s'])}" if peer and row is not peer else ""
            )
            out.append((sec, text, f"{_s(row['median_s'])}  {_mbs(row)}", ratio))
    return out


def _origin_bytes(row: dict) -> str:
    if "origin_bytes_per_request_mean" not in row:
        return ""
    return (
        f"origin bytes/request: mean {_bytes(row['origin_bytes_per_request_mean'])},"
        f" max {_bytes(row['origin_bytes_per_request_max'])}"
        f" (hits {row['hits']}, misses {row['misses']})"
    )


def _cache_rows(c: dict) -> list[Row]:
    out: list[Row] = []
    sec = f"regional cache, tomo ({c['bytes'] / MB:.0f} MB, {c['compressed_bytes'] / MB:.1f} MB compressed)"
    for via, text in (("fetch", "/api/fetch per chunk box"), ("plans", "catclient plans, whole")):
        block = c.get(via)
        if not block:
            continue
        for which in ("cold", "warm"):
            row = block[which]
            out.append((sec, f"{text}, {which}", f"{_s(row['median_s'])}  {_mbs(row)}", _origin_bytes(row)))
        out.append((sec, f"{text}: warm/cold throughput", "", _x(block.get("warm_vs_cold_throughput"))))
    return out


def _publish_rows(pub: dict) -> list[Row]:
    sec = f"publish big.b2nd ({pub['file_bytes'] / MB:.0f} MB file, {pub['array_bytes'] / MB:.0f} MB array)"
    ours, plain = pub["rows"]["our_publisher"], pub["rows"]["boto3_upload_file"]
    rp = pub["republish_1pct"]
    return [
        (
            sec,
            "our Publisher (chunks, manifest, head)",
            f"{_s(ours['median_s'])}  {_mbs(ours)}",
            f"time vs upload_file {_x(pub['time_ratio_vs_upload_file'])}",
        ),
        (sec, "boto3 upload_file (limit)", f"{_s(plain['median_s'])}  {_mbs(plain)}", ""),
        *_publish_command_rows(sec, pub.get("commands")),
        (
            sec,
            f"re-publish, {rp['chunks_changed_per_rep']}/{rp['nchunks']} chunks changed",
            _s(rp["median_s"]),
            f"uploads {rp['median_fraction_of_file'] * 100:.2f} % of the file"
            f" (max {rp['max_fraction_of_file'] * 100:.2f} %)",
        ),
    ]


def _publish_command_rows(sec: str, cmd: dict | None) -> list[Row]:
    """The commands, start-up included, and where their time goes (bench.publish_cli)."""
    if not cmd:
        return []
    ours, peer, b = cmd["rows"]["cat_publish"], cmd["rows"]["upload_file_command"], cmd["breakdown_s"]
    return [
        (
            sec,
            "cat-publish command (start-up included)",
            f"{_s(ours['median_s'])}  {_mbs(ours)}",
            f"time vs upload_file command {_x(cmd['time_ratio'])}",
        ),
        (sec, "python -c upload_file command (peer)", f"{_s(peer['median_s'])}  {_mbs(peer)}", ""),
        (
            sec,
            "  cat-publish: interpreter / imports / client / work",
            " / ".join(_s(b[k]) for k in ("python_start", "cat_publish_imports", "cat_publish_client"))
            + f" / {_s(b['cat_publish_work'])}",
            "",
        ),
        (
            sec,
            "  upload_file command: interpreter / boto3 + client / work",
            " / ".join(_s(b[k]) for k in ("python_start", "upload_file_startup", "upload_file_work")),
            "",
        ),
    ]


def _propagation_rows(pr: dict) -> list[Row]:
    sec = f"change propagation ({pr['publishes']} publishes)"
    out: list[Row] = [
        (
            sec,
            "publish call (commit + event)",
            f"p50 {_s(pr['publish_call']['p50_s'])}",
            f"p95 {_s(pr['publish_call']['p95_s'])}",
        )
    ]
    for label, r in pr["regions"].items():
        f = r["from_publish_start"]
        out.append(
            (
                sec,
                f"visible via region {label} API",
                f"p50 {_s(f['p50_s'])}",
                f"p95 {_s(f['p95_s'])}" + (f", {f['missed']} missed" if f["missed"] else ""),
            )
        )
    return out


def _coldstart_rows(cs: dict) -> list[Row]:
    m = cs["median_s"]
    sec = "cold start (fresh interpreter, Lambda environment)"
    return [
        (
            sec,
            "import handler + build app, Tracing: Active (default)",
            _s(m["handler_import_plus_build"]),
            f"vs import blosc2 {_x(cs['ratios']['import_plus_build_vs_blosc2_import'])}",
        ),
        (sec, "  of which import / build", f"{_s(m['handler_import'])} / {_s(m['handler_build'])}", ""),
        (
            sec,
            "import handler + build app, Tracing: PassThrough",
            _s(m["notrace_import_plus_build"]),
            f"vs import blosc2 {_x(cs['ratios']['notrace_import_plus_build_vs_blosc2_import'])}",
        ),
        (
            sec,
            "-X importtime functions.handlers.api (tracing on)",
            _s(m["handler_importtime"]),
            f"all imports incl. startup {_s(m['handler_importtime_total'])}",
        ),
        (sec, "import blosc2 alone", _s(m["blosc2_import"]), f"-X importtime {_s(m['blosc2_importtime'])}"),
        (
            sec,
            "whole process: handler / blosc2",
            f"{_s(m['handler_wall'])} / {_s(m['blosc2_wall'])}",
            _x(cs["ratios"]["process_wall_vs_blosc2_process"]),
        ),
    ]


def table_rows(res: dict) -> list[Row]:
    """(section, measurement, median, ratios) for every figure in a results dict.

    Parameters
    ----------
    res : dict
        A results dict as ``bench`` writes it; absent sections are skipped.

    Returns
    -------
    list of tuple
        One ``(section, measurement, median, ratios)`` row per figure, sections in report order.
    """
    out: list[Row] = _read_rows(res.get("reads", {}))
    # one formatter per section, in the order the report shows them
    sections = (
        ("small", _small_rows),
        ("proxy", _proxy_rows),
        ("cache", _cache_rows),
        ("publish", _publish_rows),
        ("propagation", _propagation_rows),
        ("lazy", _lazy_rows),
        ("coldstart", _coldstart_rows),
    )
    for key, rows in sections:
        if res.get(key):
            out += rows(res[key])
    return out


def _lazy_rows(lz: dict) -> list[tuple[str, str, str, str]]:
    setup = lz.get("setup", {})
    n = setup.get("nchunks")
    nchunks = "" if n is None else f", {n} chunk{'s' if n != 1 else ''}"
    sec = f"lazy expressions, server-side ({lz['operand_bytes'] / MB:.0f} MB float64 operand{nchunks})"
    mbps = lz["throughput_MBps"]
    tr = lz.get("throughput_ratios") or {k: 1 / v for k, v in lz["ratios"].items() if k.endswith("_vs_local")}

    def val(name: str) -> str:
        return f"{_s(lz[name + '_s'])}  {mbps[name]:.0f} MB/s"

    default = setup.get("default_fanout", 8)
    fanouts = setup.get("fanouts", [1, default])
    speedup = lz["ratios"].get("fanout_speedup")
    rows = [
        (
            "x + 1, cold region (chunks from S3)",
            "add1_cold",
            f"vs blosc2 locally {_x(tr['add1_cold_vs_local'])}",
        ),
        ("x + 1, warm (chunks in the LRU)", "add1_warm", f"vs blosc2 locally {_x(tr['add1_warm_vs_local'])}"),
        ("x + 1, blosc2 locally (peer)", "add1_blosc2_local", ""),
        (
            f"sum(x), cold, fan-out {default} (default)",
            "sum_cold",
            f"vs blosc2 locally {_x(tr['sum_cold_vs_local'])}, vs 1 invocation {_x(speedup)}",
        ),
        ("sum(x), warm", "sum_warm", f"vs blosc2 locally {_x(tr['sum_warm_vs_local'])}"),
        ("sum(x), blosc2 locally (peer)", "sum_blosc2_local", ""),
    ]
    out = [(sec, text, val(name), ratio) for text, name, ratio in rows]
    for n in fanouts:
        name = f"sum_cold_fanout{n}"
        if n == default or name + "_s" not in lz:
            continue
        ratio = "" if n == 1 else f"vs 1 invocation {_x(lz['sum_cold_fanout1_s'] / lz[name + '_s'])}"
        out.append((sec, f"sum(x), cold, fan-out {n}", val(name), ratio))
    return out


def targets(res: dict) -> list[dict]:
    """The issue-8 targets, as ratios from this run: value, goal, met."""
    out = []
    for label in ("full", "slice"):
        r = res.get("reads", {}).get(label)
        if not r:
            continue
        ratios = r["throughput_ratios"]
        out.append(
            _target(f"read {label} via plans / raw S3 GET throughput", ratios["plans_vs_raw_s3"], ">=", 0.8)
        )
        out.append(
            _target(f"read {label} via plans / Caterva2 on its server", ratios["plans_vs_cat2"], ">=", 1.0)
        )
    s = res.get("small")
    if s:
        out.append(
            _target(
                "warm small-slice latency, ours / Caterva2's",
                s["latency_ratios"]["warm_catclient_vs_cat2"],
                "<=",
                1.5,
            )
        )
    pub = res.get("publish")
    if pub:
        out.append(
            _target(
                "re-publish of a 1 %-changed array: bytes uploaded / file",
                pub["republish_1pct"]["max_fraction_of_file"],
                "<=",
                0.02,
            )
        )
    return out


def _inverse(v: float | None) -> float | None:
    return None if not v else 1.0 / v


def targets17(res: dict) -> list[dict]:
    """Issue 17's targets: ratios of *times*, ours / the peer's (below 1: ours is faster)."""
    out = []
    for label, what in (("full", "full array"), ("slice", "50 MB slice")):
        r = res.get("reads", {}).get(label)
        if r:
            ratios = r["throughput_ratios"]
            zarr = _inverse(ratios.get("plans_vs_zarr_obstore"))
            out.append(_target(f"{what} via plans, time / zarr + obstore's", zarr, "<=", 1.0))
            out.append(
                _target(
                    f"{what} via plans, time / raw parallel GETs'",
                    _inverse(ratios["plans_vs_raw_s3"]),
                    "<=",
                    1.1,
                )
            )
    s = res.get("small")
    if s:
        lat = s["latency_ratios"]
        out.append(
            _target("warm tiny slice p50, catclient / Caterva2's", lat["warm_catclient_vs_cat2"], "<=", 1.0)
        )
        out.append(
            _target(
                "warm tiny slice p50, caterva2.Client on our API / Caterva2's",
                lat["warm_cat2client_ours_vs_cat2"],
                "<=",
                1.0,
            )
        )
        out.append(_target("cold first small read / Caterva2's", lat["cold_catclient_vs_cat2"], "<=", 1.5))
    lz = res.get("lazy")
    if lz:
        out.append(
            _target(
                "sum(x) (warm region) / blosc2 on the local file",
                lz["sum_warm_s"] / lz["sum_blosc2_local_s"],
                "<=",
                2.0,
            )
        )
        out.append(
            _target(
                "x + 1 (warm region) / blosc2 on the local file",
                lz["add1_warm_s"] / lz["add1_blosc2_local_s"],
                "<=",
                2.0,
            )
        )
    pub = res.get("publish")
    if pub:
        out.append(_target("publish 200 MB / boto3 upload_file", pub["time_ratio_vs_upload_file"], "<=", 1.5))
        if pub.get("commands"):
            out.append(
                _target(
                    "publish 200 MB, cat-publish / upload_file command (start-up included)",
                    pub["commands"]["time_ratio"],
                    "<=",
                    1.5,
                )
            )
    idle = res.get("idle")
    if idle:
        out.append(_target("idle stack, cores", idle["stack_cores"], "<=", 0.05))
    return out


def _target(name: str, value: float | None, op: str, goal: float) -> dict:
    met = None if value is None else (value >= goal if op == ">=" else value <= goal)
    if "bytes uploaded" in name:
        text = f"{op} {goal * 100:g} %"
    else:
        text = f"{op} {goal}" if "cores" in name else f"{op} {goal}x"
    return {"target": name, "value": value, "goal": text, "met": met}


#: The target lists a run is judged by, as their tables are titled
_TARGET_TABLES = (("issue 8", targets), ("issue 17: times, ours / peer's", targets17))


def render(res: dict, *, markdown: bool = False) -> str:
    """The table (and targets) as text or markdown."""
    rows = table_rows(res)
    lines = []
    if markdown:
        lines.append("| section | measurement | median | ratios |")
        lines.append("|---|---|---|---|")
        last = None
        for sec, name, value, ratio in rows:
            lines.append(f"| {sec if sec != last else ''} | {name} | {value} | {ratio} |")
            last = sec
        for title, found in _TARGET_TABLES:
            lines += ["", f"| target ({title}) | this run | goal | met? |", "|---|---|---|---|"]
            for t in found(res):
                met = {True: "**met**", False: "**missed**", None: "n/a"}[t["met"]]
                lines.append(f"| {t['target']} | {_fmt_value(t)} | {t['goal']} | {met} |")
        return "\n".join(lines)
    w1 = max((len(r[1]) for r in rows), default=10)
    w2 = max((len(r[2]) for r in rows), default=10)
    last = None
    for sec, name, value, ratio in rows:
        if sec != last:
            lines.append("")
            lines.append(sec)
            last = sec
        lines.append(f"  {name:<{w1}}  {value:>{w2}}  {ratio}")
    lines.append("")
    for title, found in _TARGET_TABLES:
        lines.append(f"targets ({title})")
        for t in found(res):
            met = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
            lines.append(f"  {t['target']:<60} {_fmt_value(t):>8}  goal {t['goal']:<7} {met}")
        lines.append("")
    return "\n".join(lines).rstrip()


def _fmt_value(t: dict) -> str:
    v = t["value"]
    if v is None:
        return "n/a"
    if "cores" in t["target"]:
        return f"{v:.3f}"
    return f"{v * 100:.2f} %" if "bytes uploaded" in t["target"] else f"{v:.2f}x"
