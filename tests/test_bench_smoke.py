"""Smoke test of the benchmark harness: ``python -m bench --quick`` end to end, no timing assertions.

Keeps ``bench/`` working as the product changes.  Tiny data, one repetition; the
Caterva2-server rows run only if ``.venv-cat2`` already exists (nothing is installed).
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench import publish_cli as bench_publish_cli

REPO = Path(__file__).resolve().parent.parent
HAVE_CAT2 = (REPO / ".venv-cat2" / "bin" / "cat2-server").exists()
HAVE_ZARR = importlib.util.find_spec("zarr") is not None and importlib.util.find_spec("obstore") is not None
CASES = ("reads", "small", "proxy", "publish", "propagation", "cache", "lazy", "coldstart")
#: Keys whose values are durations, throughputs or ratios: must be positive and finite
POSITIVE = {"median_s", "mb_per_s", "p50_s", "p95_s", "max_s"}


def _walk(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, obj


def _positive(value, where):
    assert isinstance(value, int | float) and not isinstance(value, bool), (
        f"{where}: {value!r} is not a number"
    )
    assert math.isfinite(value) and value > 0, f"{where}: {value!r} is not positive and finite"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--no-install", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert "targets (issue 8)" in proc.stdout  # the printed table
    return json.loads(out.read_text())


def test_meta(results):
    meta = results["meta"]
    assert meta["mode"] == "quick" and meta["reps"] == 1
    machine = meta["machine"]
    for key in ("cpu_model", "cores", "ram_bytes", "python", "packages"):
        assert machine[key], key
    assert machine["packages"]["blosc2"] and machine["packages"]["boto3"]
    assert set(meta["datasets"]) == {"big", "tomo"}
    assert set(CASES) <= set(results)


def test_all_timings_positive_and_finite(results):
    seen = 0
    for where, value in _walk(results):
        key = where.rsplit(".", 1)[-1]
        if key in POSITIVE or ".seconds[" in where:
            _positive(value, where)
            seen += 1
    assert seen > 50


def test_reads(results):
    rows_expected = {"catclient_plans", "catclient_api", "cat2_client_our_api", "raw_s3_get"}
    if HAVE_CAT2:
        rows_expected.add("cat2_client_cat2_server")
    if HAVE_ZARR:  # the bench extra: zarr-python 3 + obstore over the same moto
        rows_expected.add("zarr_obstore")
    for label in ("full", "slice"):
        block = results["reads"][label]
        assert set(block["rows"]) == rows_expected
        assert block["bytes"] > 0 and block["chunks"] > 0
        for name, ratio in block["throughput_ratios"].items():
            if ratio is not None:
                _positive(ratio, name)
        assert (block["throughput_ratios"]["plans_vs_zarr_obstore"] is not None) == HAVE_ZARR
        # plans move compressed chunks only: about the compressed size of the touched chunks
        received = block["rows"]["catclient_plans"]["client_received_bytes"]
        assert 0 < received < 2 * block["compressed_bytes"] + 100_000


def test_small_slice(results):
    rows = results["small"]["rows"]
    assert {"catclient_our_api", "cat2_client_our_api"} <= set(rows)
    assert ("cat2_client_cat2_server" in rows) == HAVE_CAT2
    for row in rows.values():
        _positive(row["cold"]["median_s"], "cold")
        _positive(row["warm"]["median_s"], "warm")


def test_publish(results):
    pub = results["publish"]
    assert {"our_publisher", "boto3_upload_file"} == set(pub["rows"])
    commands = pub["commands"]
    assert set(commands["rows"]) == {"cat_publish", "upload_file_command", *bench_publish_cli.STARTUP}
    # The pieces of each command's time add up to it (start-up timed alone beside it)
    b = commands["breakdown_s"]
    ours = b["python_start"] + b["cat_publish_imports"] + b["cat_publish_client"] + b["cat_publish_work"]
    assert math.isclose(ours, commands["rows"]["cat_publish"]["median_s"])
    assert b["python_start"] > 0 and commands["time_ratio"] > 0
    rp = pub["republish_1pct"]
    assert rp["chunks_changed_per_rep"] >= 1
    for rep in rp["reps"]:
        assert rep["changed_chunks_seen"] == rep["changed_chunks_asked"]
        assert 0 < rep["fraction_of_file"] < 1


def test_cache_and_propagation(results):
    fetch = results["cache"]["fetch"]
    assert fetch["cold"]["misses"] > 0 and fetch["cold_origin_bytes_equal_cbytes"]
    assert fetch["warm"]["misses"] == 0 and fetch["warm"]["origin_bytes_total"] == 0
    prop = results["propagation"]
    assert set(prop["regions"]) == {"r1", "r2"}
    for region in prop["regions"].values():
        assert region["from_publish_start"]["missed"] == 0


def test_lazy(results):
    lz = results["lazy"]
    assert lz["operand_bytes"] > 0
    for key in ("add1_cold_s", "add1_warm_s", "add1_blosc2_local_s", "sum_cold_s", "sum_cold_fanout1_s"):
        _positive(lz[key], key)
    for name, ratio in {**lz["ratios"], **lz["throughput_ratios"]}.items():
        _positive(ratio, name)
    assert "fanout_speedup" in lz["ratios"] and "add1_warm_vs_local" in lz["throughput_ratios"]
    # its rows are in the printed table
    from bench import report

    assert any(sec.startswith("lazy expressions") for sec, *_ in report.table_rows(results))


def test_coldstart_and_targets(results):
    med = results["coldstart"]["median_s"]
    for key in ("handler_import", "handler_build", "blosc2_import", "handler_importtime"):
        _positive(med[key], key)
    names = [t["target"] for t in results["targets"]]
    assert any("raw S3" in n for n in names) and any("1 %" in n for n in names)
