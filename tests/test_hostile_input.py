"""Hostile frames and reads over real HTTP (the local stack): bombs, lying metadata, read amplification.

Every door that stores a frame refuses them and stores nothing: the API upload
(413 too big, 400 inconsistent), an ingest drop (the real ingest code over the
stack's buckets), and ``cat-publish``.  Reads are bounded by the bytes they
decompress, not only by the bytes they return.
"""

from __future__ import annotations

import json
import uuid

import blosc2
import httpx
import numpy as np
import pytest

from functions.engine.content import load_object
from functions.engine.ingest import ingest_object
from infra.publish import main as cat_publish
from tests import hostile_frames as hf

RUN = uuid.uuid4().hex[:8]
MiB = hf.MiB
BASE = hf.small_frame()

#: (case, frame, status, words the detail must hold)
FRAMES = [
    ("bomb-16x256MiB", hf.bomb(), 413, ["CAT_MAX_UPLOAD_NBYTES", "decompressed"]),
    ("chunk-512MiB", hf.bomb(1, 512 * MiB), 413, ["CAT_MAX_CHUNK_NBYTES", "per chunk"]),
    ("shape-1e15", hf.with_shape(BASE, 10**15), 400, ["needs 1000000000000 chunk(s)", "has 1"]),
    ("shape-2**62", hf.with_shape(BASE, 2**62), 400, ["chunk(s)", "has 1"]),
    ("shape-0", hf.with_shape(BASE, 0), 400, ["needs 0 chunk(s)", "has 1"]),
    ("header-byte-80", hf.flipped(BASE, 80), 400, ["compression parameters"]),
    ("codec-byte-27", hf.flipped(BASE, 27), 400, ["compression parameters"]),
    ("typesize-byte-51", hf.flipped(BASE, 51), 400, ["typesize"]),
    ("blocksize-byte-56", hf.flipped(BASE, 56), 400, ["blocksize"]),
    ("magic-byte-7", hf.flipped(BASE, 7), 400, ["not a valid Blosc2 frame"]),
    ("chunk-header", hf.flipped(BASE, hf.chunk_offset(BASE) + 2), 400, ["chunk 0"]),
    ("chunk-data", hf.flipped(BASE, hf.chunk_offset(BASE) + 40), 400, ["chunk 0"]),
]
IDS = [f[0] for f in FRAMES]


@pytest.fixture(scope="module")
def user(stack):
    resp = httpx.post(
        f"{stack.api_url}/auth/jwt/login",
        data={"username": stack.resources["demo_user"], "password": stack.resources["demo_password"]},
    )
    return {"Cookie": f"c2subauth={resp.cookies['c2subauth']}"}


def _upload(stack, user, path: str, frame: bytes) -> httpx.Response:
    return httpx.post(f"{stack.api_url}/api/upload/{path}", files={"file": ("x.b2nd", frame)}, headers=user)


def _stored(stack, user, path: str) -> int:
    return httpx.get(f"{stack.api_url}/api/info/{path}", headers=user).status_code


# --------------------------------------------------------------------------- the three doors


@pytest.mark.parametrize(("case", "frame", "status", "words"), FRAMES, ids=IDS)
def test_upload_of_a_hostile_frame_is_refused_and_nothing_stored(stack, user, case, frame, status, words):
    path = f"@personal/hostile-{RUN}/{case}.b2nd"
    r = _upload(stack, user, path, frame)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert all(w in detail for w in words), detail
    assert _stored(stack, user, path) == 404


@pytest.mark.parametrize(("case", "frame", "status", "words"), FRAMES, ids=IDS)
def test_ingest_drop_of_a_hostile_frame_is_refused(stack, case, frame, status, words):
    services = stack.regions[0].services
    root = f"hostile{RUN}"
    key = f"{root}/{case}.b2nd"
    services.drop.put(key, frame)
    outcome = ingest_object(services.publisher, services.drop, key)
    assert not outcome.ok and all(w in outcome.error for w in words), outcome
    catalog, _ = services.publisher.read_catalog(root)
    assert catalog is None or f"{case}.b2nd" not in catalog.datasets


def test_cat_publish_refuses_hostile_frames_and_publishes_the_rest(stack, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", stack.endpoint_url)
    for case, frame, _, _ in FRAMES:
        (tmp_path / f"{case}.b2nd").write_bytes(frame)
    (tmp_path / "good.b2nd").write_bytes(blosc2.asarray(np.arange(10)).to_cframe())
    root = f"hostilepub{RUN}"
    args = ["--bucket", stack.resources["plan"].origin_bucket, "--topic-arn", stack.resources["topic_arn"]]
    assert cat_publish([str(tmp_path), "--root", root, *args]) == 1  # some files refused
    err = capsys.readouterr().err
    for case, _, _, words in FRAMES:
        line = next(x for x in err.splitlines() if f"{root}/{case}.b2nd" in x)
        # blosc2.open of a file is stricter than opening frame bytes: it may refuse a header first
        assert all(w in line for w in words) or "is not a valid Blosc2 file" in line, line
    catalog, _ = stack.regions[0].services.publisher.read_catalog(root)
    assert set(catalog.datasets) == {"good.b2nd"}


# --------------------------------------------------------------------------- what is accepted


def test_special_chunks_are_accepted_without_decompressing(stack, user):
    path = f"@personal/hostile-{RUN}/zeros.b2nd"
    frame = hf.zeros_frame(8, 64 * MiB)  # 512 MiB decompressed, a few hundred bytes, nothing to decompress
    r = _upload(stack, user, path, frame)
    assert r.status_code == 200, r.text
    # A strided read over all 8 special chunks: nothing decompressed, the answer plus one chunk held
    stride = (64 * MiB) // 8
    r = httpx.get(f"{stack.api_url}/api/fetch/{path}", params={"slice_": f"::{stride}"}, headers=user)
    assert r.status_code == 200, r.text
    assert np.array_equal(blosc2.ndarray_from_cframe(r.content)[:], np.zeros(8))


# --------------------------------------------------------------------------- read amplification


@pytest.fixture(scope="module")
def big(stack):
    """1 GiB decompressed in 32 data chunks of 32 MiB (a few hundred KB stored)."""
    path = f"hostileread{RUN}/ones.b2nd"
    arr = hf.repeated_chunks(32, 32 * MiB)
    services = stack.regions[0].services
    services.writes.settle(services.publisher.publish(*path.split("/"), load_object(arr)))
    return path


STRIDE = (32 * MiB) // 8


@pytest.mark.parametrize(
    "params",
    [
        {"slice_": f"::{STRIDE}"},  # 32 elements, one per chunk: 256 bytes answered, 1 GiB touched
        {"slice_": f"{STRIDE - 1}:{9 * STRIDE + 1}"},  # 9 chunks, 288 MiB touched
        {"indices": json.dumps([list(range(0, 32 * STRIDE, STRIDE))])},
    ],
    ids=["stride", "span", "indices"],
)
def test_a_read_that_would_decompress_too_much_is_413(stack, big, params):
    r = httpx.get(f"{stack.api_url}/api/fetch/{big}", params=params)
    assert r.status_code == 413, r.text
    detail = r.json()["detail"]
    assert "decompress" in detail and "/api/chunk" in detail and "catclient" in detail


def test_reads_within_the_budget_still_work(stack, big):
    r = httpx.get(f"{stack.api_url}/api/fetch/{big}", params={"slice_": f"::{STRIDE * 4}"})  # 8 chunks
    assert r.status_code == 200, r.text
    got = blosc2.ndarray_from_cframe(r.content)[:]
    assert np.array_equal(got, np.full(8, 2.0))  # the first item of each chunk (see repeated_chunks)
    r = httpx.get(f"{stack.api_url}/api/chunk/{big}", params={"nchunk": 31})  # the way around the limit
    assert r.status_code == 200 and blosc2.decompress2(r.content)[:8] == np.float64(2.0).tobytes()


@pytest.mark.parametrize(
    ("expression", "words"),
    [("sum(x + x + x)", ["CAT_MAX_WORK"]), ("x * 2", ["CAT_MAX_READ_NBYTES"])],
    ids=["reduction", "elementwise"],
)
def test_lazy_expressions_over_budget_are_413_before_evaluation(stack, user, big, expression, words):
    name = f"budget-{RUN}-{len(expression)}"
    body = {"name": name, "expression": expression, "operands": {"x": big}}
    r = httpx.post(f"{stack.api_url}/api/lazyexpr/", json=body, headers=user)
    assert r.status_code == 200, r.text
    r = httpx.get(f"{stack.api_url}/api/fetch/@personal/{name}.b2nd", headers=user)
    assert r.status_code == 413, r.text
    assert all(w in r.json()["detail"] for w in words)
    if "sum" not in expression:  # a slice of it is within the budget
        small = httpx.get(f"{stack.api_url}/api/fetch/@personal/{name}.b2nd?slice_=0:4", headers=user)
        assert small.status_code == 200, small.text
        assert np.array_equal(blosc2.ndarray_from_cframe(small.content)[:], [4.0, 2.0, 2.0, 2.0])
