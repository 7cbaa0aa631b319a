"""HDF5 through the running stack over HTTP: cat-publish FILE.h5, unfold through caterva2.Client,
ingest drops, catclient unfold, directories holding x.h5, and HDF5-born arrays read every usual way.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from pathlib import Path

import blosc2
import boto3
import caterva2 as cat2
import h5py
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

import catclient
from catclient import cli as catcli
from functions import admin
from functions.api.app import create_app
from functions.services import Services
from infra.publish import main as publish_main
from tests.hdf5_files import SKIPPED, datasets, make_varied, same

RUN = uuid.uuid4().hex[:8]


@dataclasses.dataclass
class User:
    name: str
    password: str
    cookie: dict


@pytest.fixture(scope="module")
def user(stack) -> User:
    name, password = f"h5-{RUN}", admin.generate_password()
    argv = ["--pool-id", stack.resources["user_pool_id"], "--endpoint-url", stack.endpoint_url]
    assert admin.main([*argv, "users", "add", name, "--password", password]) == 0
    resp = httpx.post(f"{stack.api_url}/auth/jwt/login", data={"username": name, "password": password})
    return User(name, password, {"Cookie": f"c2subauth={resp.cookies['c2subauth']}"})


@pytest.fixture(scope="module")
def small_h5(tmp_path_factory) -> Path:
    return make_varied(tmp_path_factory.mktemp("h5http") / "varied.h5", small=True)


def _env_args(stack):
    return ["--bucket", stack.resources["plan"].origin_bucket, "--topic-arn", stack.resources["topic_arn"]]


def _check_all(client: cat2.Client, base: str, h5file: Path) -> None:
    """Every convertible dataset of *h5file* below *base*, element for element, through caterva2.Client."""
    want = datasets(h5file)
    # A publish from outside the region commits catalog versions one file at a time, and the
    # region learns each by its event: wait for the last one rather than read a middle one
    deadline = time.monotonic() + 5
    listing = set(client.get_list(base))
    while not set(want) <= listing and time.monotonic() < deadline:
        time.sleep(0.1)
        listing = set(client.get_list(base))
    for rel, values in want.items():
        assert rel in listing, rel
        assert same(client.fetch(f"{base}/{rel}"), values), rel
    assert not any(p.lstrip("/") + ".b2nd" in listing for p in SKIPPED if p != "/skip/ok")


@pytest.fixture(scope="module")
def published_root(stack, small_h5, tmp_path_factory):
    import os

    old = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = stack.endpoint_url
    try:
        assert publish_main([str(small_h5), "--root", f"h5root-{RUN}", *_env_args(stack)]) == 0
    finally:
        if old is None:
            os.environ.pop("AWS_ENDPOINT_URL")
        else:
            os.environ["AWS_ENDPOINT_URL"] = old
    return f"h5root-{RUN}"


def test_cat_publish_hdf5_file_as_a_root(stack, published_root, small_h5, capsys, monkeypatch):
    with cat2.Client(stack.api_url) as client:
        _check_all(client, published_root, small_h5)
        info = client.get_info(f"{published_root}/layout/chunked3d.b2nd")
        assert info["shape"] == [40, 130, 130] and info["chunks"] == [16, 64, 64]
        assert info["schunk"]["vlmeta"]["units"] == "mV"
        # attributes of groups and of the file: info of the directory
        assert client.get_info(f"{published_root}/numbers")["attrs"] == {"unit": "counts"}
        assert client.get_info(published_root)["attrs"]["title"] == "varied test file"
        assert client.get_info(f"{published_root}/a/b/c")["attrs"] == {"depth": 3}
    # re-publishing the unchanged file uploads nothing; skipped objects are reported on stderr
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)
    capsys.readouterr()
    assert publish_main([str(small_h5), "--root", published_root, *_env_args(stack)]) == 0
    out, err = capsys.readouterr()
    assert "0 of" in out and "0 B uploaded" in out
    for path in SKIPPED:
        assert f"skipped {path}:" in err


def test_hdf5_born_arrays_read_every_usual_way(stack, published_root, small_h5, user, tmp_path):
    with h5py.File(small_h5) as f:
        truth = f["layout/chunked3d"][()]
    path = f"{published_root}/layout/chunked3d.b2nd"
    remote = blosc2.C2Array(path, urlbase=stack.api_url)
    assert np.array_equal(remote[3:20, 60:70, 100:130], truth[3:20, 60:70, 100:130])
    proxy = blosc2.Proxy(remote, urlpath=str(tmp_path / "proxy.b2nd"), mode="w")
    assert np.array_equal(proxy[0:2, 0:5, 120:130], truth[0:2, 0:5, 120:130])
    # catclient through read plans (chunks straight from S3)
    with catclient.Client(stack.api_url, plan_threshold=1) as client:
        assert np.array_equal(client.fetch(path, (slice(0, 40), slice(0, 130), 5)), truth[:, :, 5])
        assert client.stats.plan_requests >= 1
    # a lazy expression over an HDF5-born operand
    with h5py.File(small_h5) as f:
        leaf = f["a/b/c/leaf"][()]
    lazy = blosc2.lazyexpr("x * 2 + 1", {"x": blosc2.C2Array(f"{published_root}/a/b/c/leaf.b2nd",
                                                              urlbase=stack.api_url)})
    assert np.array_equal(lazy[:], leaf * 2 + 1)
    # and a server-side lazy expression stored in @personal
    token = user.cookie["Cookie"].split("=", 1)[1]
    with catclient.Client(stack.api_url, token) as client:
        made = client.lazyexpr(f"h5lazy-{RUN}", "x - 1", {"x": path})
        assert np.array_equal(client.fetch(made, (slice(0, 3), 7, slice(None))), truth[0:3, 7, :] - 1)


def test_unfold_through_caterva2_client(stack, user, small_h5, tmp_path):
    local = tmp_path / "run.h5"
    local.write_bytes(small_h5.read_bytes())
    # ~50 datasets, each its own commit against moto: more than the client's default 5 s
    with cat2.Client(stack.api_url, (user.name, user.password), timeout=120) as client:
        client.upload(local, f"@personal/exp-{RUN}/run.h5")
        started = time.monotonic()
        out = client.unfold(f"@personal/exp-{RUN}/run.h5")
        print(f"unfold took {time.monotonic() - started:.1f} s")
        assert str(out) == f"exp-{RUN}/run"  # the directory relative to its root, as the client joins it
        _check_all(client, f"@personal/exp-{RUN}/run", small_h5)
        assert client.get_info(f"@personal/exp-{RUN}/run/text")["attrs"] == {}
        # the file itself stays beside its tree
        assert "run.h5" in client.get_list(f"@personal/exp-{RUN}")
    resp = httpx.post(f"{stack.api_url}/api/unfold/@personal/exp-{RUN}/run.h5?report=true", headers=user.cookie,
                      timeout=120)
    body = resp.json()
    assert resp.status_code == 200 and resp.headers["X-Cat-Skipped"] == str(len(body["skipped"]))
    assert body["path"] == f"@personal/exp-{RUN}/run" and body["changed"] == 0  # unchanged: nothing new
    assert {s["path"] for s in body["skipped"]} >= set(SKIPPED)


def test_unfold_errors_are_4xx(stack, user, tmp_path):
    base = f"{stack.api_url}/api"
    empty = tmp_path / "none.h5"
    with h5py.File(empty, "w") as f:
        f.create_group("only").attrs["x"] = 1
    cases = {
        "noarrays.h5": empty.read_bytes(),
        "junk.h5": b"not an HDF5 file at all",
        "notes.txt": b"text",
    }
    for name, data in cases.items():
        httpx.post(f"{base}/upload/@personal/bad-{RUN}/{name}", files={"file": (name, data)},
                   headers=user.cookie).raise_for_status()
    resp = httpx.post(f"{base}/unfold/@personal/bad-{RUN}/noarrays.h5", headers=user.cookie, timeout=120)
    assert resp.status_code == 400 and "no arrays" in resp.json()["detail"]
    resp = httpx.post(f"{base}/unfold/@personal/bad-{RUN}/junk.h5", headers=user.cookie, timeout=120)
    assert resp.status_code == 400 and "HDF5" in resp.json()["detail"]
    resp = httpx.post(f"{base}/unfold/@personal/bad-{RUN}/notes.txt", headers=user.cookie, timeout=120)
    assert resp.status_code == 400
    assert httpx.post(f"{base}/unfold/@personal/bad-{RUN}/missing.h5", headers=user.cookie).status_code == 404
    assert httpx.post(f"{base}/unfold/@personal/bad-{RUN}/noarrays.h5").status_code == 401
    assert httpx.post(f"{base}/unfold/example/README.md", headers=user.cookie).status_code in (400, 403)


def test_unfold_honours_the_quota(stack, user, small_h5):
    path = f"@personal/quota-{RUN}/big.h5"
    resp = httpx.post(f"{stack.api_url}/api/upload/{path}", files={"file": ("big.h5", small_h5.read_bytes())},
                      headers=user.cookie)
    assert resp.status_code == 200, resp.text
    used = httpx.get(f"{stack.api_url}/api/limits", headers=user.cookie).json()["personal_bytes"]
    # the same stack's services with a quota the stored file fits in, but not what unfolding it creates
    base = stack.regions[0].services
    settings = base.settings.model_copy(update={"user_quota_bytes": used + 20_000})
    services = Services(settings, base.region, base.publisher, base.events, auth=base.auth, staging=base.staging)
    with TestClient(create_app(services)) as client:
        client.headers.update(user.cookie)
        resp = client.post(f"/api/unfold/{path}")
        assert resp.status_code == 413 and "quota" in resp.json()["detail"]
        # what the refused unfold had created is gone again; the file stays
        assert client.get(f"/api/list/@personal/quota-{RUN}").json() == ["big.h5"]


def test_catclient_unfold_cli(stack, user, small_h5, capsys):
    token = user.cookie["Cookie"].split("=", 1)[1]
    common = ["--url", stack.api_url, "--token", token]
    assert catcli.main([*common, "upload", str(small_h5), f"@shared/cli-{RUN}/v.h5"]) == 0
    capsys.readouterr()
    assert catcli.main([*common, "unfold", f"@shared/cli-{RUN}/v.h5"]) == 0
    out = capsys.readouterr().out
    assert f"into @shared/cli-{RUN}/v" in out and "skipped /skip/soft: soft link to the group /a" in out
    assert catcli.main([*common, "--json", "unfold", f"@shared/cli-{RUN}/v.h5"]) == 0
    body = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert body["path"] == f"@shared/cli-{RUN}/v" and body["arrays"] == len(datasets(small_h5))


def test_ingest_drop_is_stored_and_unfolded(stack, small_h5):
    s3 = boto3.client("s3", endpoint_url=stack.endpoint_url, region_name="us-east-1")
    s3.put_object(Bucket=stack.resources["plan"].ingest_bucket, Key=f"h5drop-{RUN}/runs/r1.h5",
                  Body=small_h5.read_bytes())
    want = {f"runs/r1/{rel}" for rel in datasets(small_h5)}
    deadline = time.monotonic() + 120  # the dispatcher delivers the drop after the events queued before it
    with cat2.Client(stack.regions[-1].url) as client:
        while time.monotonic() < deadline:
            try:
                listing = client.get_list(f"h5drop-{RUN}")
            except Exception:  # noqa: BLE001 - 404 until the root exists
                listing = []
            if "runs/r1.h5" in listing and want <= set(listing):
                break
            time.sleep(0.2)
        assert "runs/r1.h5" in listing
        _check_all(client, f"h5drop-{RUN}/runs/r1", small_h5)


def test_directory_with_an_hdf5_file(stack, small_h5, tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "x.h5").write_bytes(small_h5.read_bytes())
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)
    assert publish_main([str(tmp_path), "--root", f"h5dir-{RUN}", *_env_args(stack)]) == 0
    with cat2.Client(stack.api_url) as client:
        listing = client.get_list(f"h5dir-{RUN}")
        assert "x.h5" in listing and "notes.txt" in listing
        _check_all(client, f"h5dir-{RUN}/x", small_h5)
    # the file gone: its tree goes with it
    (tmp_path / "x.h5").unlink()
    assert publish_main([str(tmp_path), "--root", f"h5dir-{RUN}", *_env_args(stack)]) == 0
    with cat2.Client(stack.api_url) as client:
        deadline = time.monotonic() + 5
        while len(client.get_list(f"h5dir-{RUN}")) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get_list(f"h5dir-{RUN}") == ["notes.txt"]


def test_directory_with_an_hdf5_file_not_unfolded(stack, small_h5, tmp_path, monkeypatch):
    (tmp_path / "x.h5").write_bytes(small_h5.read_bytes())
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)
    root = f"h5flat-{RUN}"
    assert publish_main([str(tmp_path), "--root", root, "--no-unfold", *_env_args(stack)]) == 0
    with cat2.Client(stack.api_url) as client:
        assert client.get_list(root) == ["x.h5"]
    download = httpx.get(f"{stack.api_url}/api/download/{root}/x.h5")
    assert download.content == small_h5.read_bytes()


def test_export_from_the_api_round_trips(stack, published_root, small_h5, tmp_path):
    from infra.hdf5_cli import export_main
    from tests.test_hdf5_cli import assert_same_h5

    out = tmp_path / "back.h5"
    assert export_main(["--url", stack.api_url, published_root, str(out)]) == 0
    assert_same_h5(small_h5, out)
