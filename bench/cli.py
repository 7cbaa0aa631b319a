"""``python -m bench``: generate data, start both servers, measure, print and save the results.

Examples
--------
    python -m bench                      # full run, 7 repetitions (make bench)
    python -m bench --quick              # tiny data, one repetition (the smoke test)
    python -m bench --only reads,small   # some cases only
    python -m bench --table bench/results/2026-01-01.json --markdown   # re-print a saved run
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import sys
import time
from pathlib import Path

import blosc2
import numpy as np

from bench import cases, report
from bench import data as bdata
from bench.servers import Cat2Server, OurStack, cat2_available, install_cat2

RESULTS = Path(__file__).resolve().parent / "results"
_FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="small data and one repetition (smoke test)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per figure (default 7; quick 1)")
    p.add_argument("--only", default="", help=f"comma-separated cases: {','.join(cases.CASES)}")
    p.add_argument(
        "--out", type=Path, default=None, help="results JSON (default bench/results/<date>-<commit>.json)"
    )
    p.add_argument(
        "--no-install", action="store_true", help="never create .venv-cat2 (skip its rows if absent)"
    )
    p.add_argument("--skip-cat2", action="store_true", help="do not start Caterva2's server")
    p.add_argument("--table", type=Path, default=None, help="only print the table of a saved results JSON")
    p.add_argument("--markdown", action="store_true", help="with --table: as markdown (for BENCHMARKS.md)")
    return p


def _busy_fraction(seconds: float = 1.0) -> float | None:
    """How busy all cores were over the next *seconds* (0..1), from /proc/stat."""
    from bench.measure import system_busy_seconds

    before = system_busy_seconds()
    time.sleep(seconds)
    after = system_busy_seconds()
    if before is None or after is None:
        return None
    return round((after - before) / seconds / (os.cpu_count() or 1), 3)


def _log(msg: str) -> None:
    print(msg, flush=True)


def prepare_data(sizes: bdata.Sizes, directory: Path) -> tuple[dict[str, Path], dict[str, np.ndarray]]:
    """Write the datasets (unless already there with this geometry) and load their ground truth."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {"big": directory / cases.BIG, "tomo": directory / cases.TOMO}
    wanted = {
        "big": (sizes.big_shape, sizes.big_chunks, bdata.write_big),
        "tomo": (sizes.tomo_shape, sizes.tomo_chunks, bdata.write_tomo),
    }
    truth = {}
    for name, (shape, chunks, write) in wanted.items():
        path = files[name]
        ok = False
        if path.exists():
            try:
                arr = blosc2.open(str(path), mode="r")
                ok = tuple(arr.shape) == tuple(shape) and tuple(arr.chunks) == tuple(chunks)
            except Exception:  # noqa: BLE001 - a half-written file from an interrupted run: rewrite it
                ok = False
        if not ok:
            t0 = time.perf_counter()
            write(path, sizes)
            _log(
                f"  wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}"
                f" in {time.perf_counter() - t0:.1f} s"
            )
        arr = blosc2.open(str(path), mode="r")
        truth[name] = arr[()]
    return files, truth


def _publish(stack: OurStack, files: dict[str, Path]) -> dict:
    from functions.aws import build_services
    from functions.engine.content import load_path
    from functions.settings import Settings

    info = stack.info
    services = build_services(
        Settings(
            origin_bucket=info["origin_bucket"], topic_arn=info["topic_arn"], endpoint_url=stack.endpoint_url
        )
    )
    out = {}
    for path in files.values():
        r = services.publisher.publish(cases.ROOT, path.name, load_path(path))
        out[path.name] = r.to_json() | {"changed_chunks": len(r.changed_chunks)}
    return out


def run(args: argparse.Namespace) -> dict:
    """One benchmark run; returns the results dict (also written to ``args.out``)."""
    for k, v in _FAKE_AWS.items():
        os.environ.setdefault(k, v)
    os.environ.pop("AWS_ENDPOINT_URL", None)  # every client here is given the moto endpoint explicitly
    sizes = bdata.QUICK if args.quick else bdata.FULL
    reps = args.reps or (1 if args.quick else 7)
    only = [n.strip() for n in args.only.split(",") if n.strip()] or list(cases.CASES)
    unknown = set(only) - set(cases.CASES)
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(cases.CASES)}")
    mode = "quick" if args.quick else "full"
    directory = bdata.DATA_DIR / mode
    started = dt.datetime.now()
    load_before = os.getloadavg()
    _log(f"bench: {mode} run, {reps} repetition(s), cases: {', '.join(only)}")
    busy = _busy_fraction()
    if busy is not None and busy > 0.25:
        _log(
            f"  warning: the machine is {busy * 100:.0f} % busy before we start; figures will be noisy"
            " (every row's cpu_s.other says how much CPU the rest of the machine took)"
        )
    _log("data")
    files, truth = prepare_data(sizes, directory)
    for name, path in files.items():
        arr = blosc2.open(str(path), mode="r")
        _log(
            f"  {name}: {arr.shape} {arr.dtype} chunks {arr.chunks} blocks {arr.blocks}, "
            f"{truth[name].nbytes / 1e6:.0f} MB -> {arr.schunk.cbytes / 1e6:.1f} MB"
            f" (x{arr.schunk.cratio:.2f})"
        )

    cat2 = None
    notes = []
    if not args.skip_cat2 and not cat2_available() and not args.no_install:
        install_cat2(_log)
    stack = OurStack()
    try:
        if args.skip_cat2 or not cat2_available():
            notes.append("Caterva2 server rows skipped (.venv-cat2 absent or --skip-cat2)")
            _log("  " + notes[-1])
        else:
            cat2 = Cat2Server(directory / "cat2")
            cat2.clear_public()
            for path in files.values():
                cat2.add_public(path)
            cat2.start()
            import caterva2

            with caterva2.Client(cat2.url) as c:
                listed = c.get_list("@public")
            missing = {p.name for p in files.values()} - set(listed)
            if missing:
                raise RuntimeError(f"cat2-server does not list {sorted(missing)} in @public: {listed}")
            _log(f"cat2-server at {cat2.url}: @public = {sorted(listed)}")
        stack.start()
        _log(f"our stack: regions {stack.info['api_urls']}, S3 (moto) at {stack.endpoint_url}")
        published = _publish(stack, files)
        ctx = cases.Context(sizes, reps, args.quick, files, truth, stack, cat2, log=_log)
        results: dict = {}
        for name in only:
            t0 = time.perf_counter()
            results[name] = cases.CASES[name](ctx)
            results[name]["case_wall_s"] = time.perf_counter() - t0
    finally:
        stack.stop()
        if cat2 is not None:
            cat2.stop()
    meta = {
        "date": started.date().isoformat(),
        "started": started.isoformat(timespec="seconds"),
        "mode": mode,
        "reps": reps,
        "cases": only,
        "machine": report.machine(),
        "datasets": {
            name: {
                "path": f"{cases.ROOT}/{files[name].name}",
                "shape": list(truth[name].shape),
                "dtype": str(truth[name].dtype),
                "chunks": list(blosc2.open(str(files[name])).chunks),
                "blocks": list(blosc2.open(str(files[name])).blocks),
                "nbytes": int(truth[name].nbytes),
                "file_bytes": files[name].stat().st_size,
            }
            for name in files
        },
        "setup": {
            "our_stack": "bench.stackproc child process: 2 regional APIs (uvicorn threads) + dispatcher;"
            " moto server in its own child process (S3/SNS/SQS); r1 has the 4.5 MB Lambda response"
            " limit, r2 none (for caterva2.Client whole-array reads)",
            "cat2_server": None
            if cat2 is None
            else "cat2-server (.venv-cat2), own process, files in @public",
            "clients": "this process only",
            "published": published,
        },
        "busy_fraction_before": busy,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "notes": notes,
    }
    res = {"meta": meta, **results}
    res["targets"] = report.targets(res)
    res["targets_issue17"] = report.targets17(res)
    # <date>-<short commit>: runs of different commits on one day do not overwrite each other
    commit = (meta["machine"].get("git_commit") or "")[:7]
    stem = "-".join(x for x in (meta["date"], commit) if x) + ("-quick" if args.quick else "")
    out = args.out or RESULTS / f"{stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_clean(res), indent=1, sort_keys=False) + "\n")
    _log(report.render(res))
    _log(f"\nresults written to {out}")
    return res


def _clean(obj):
    """JSON without NaN/inf (null instead), so any JSON reader takes it."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.table:
        print(report.render(json.loads(args.table.read_text()), markdown=args.markdown))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
