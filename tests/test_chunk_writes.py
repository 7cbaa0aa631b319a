"""Chunk writes into laid-out arrays and their publish, over real HTTP (the local stack).

An array is laid out by uploading a ``blosc2.uninit`` frame; writers then fill its
slots with ``POST /api/chunk/{path}?nchunk=N``, each slot once, and the filled array
is copied out as one frame (``POST /api/publish``).  The real clients drive it
(``blosc2.C2Array.update_chunk``, ``caterva2.Client.lay_out/fill_chunk/publish``).
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import blosc2
import caterva2 as cat2
import httpx
import numpy as np
import pytest

from functions import admin
from functions.engine.chunkwrites import PUBLISHED_PREFIX

RUN = uuid.uuid4().hex[:8]
CHUNKS, BLOCKS, NCHUNKS = (1000,), (250,), 5
SHAPE = (CHUNKS[0] * NCHUNKS,)
DTYPE = np.dtype(np.int32)


class User:
    def __init__(self, stack, key: str) -> None:
        self.name, self.password = f"filler-{key}-{RUN}", admin.generate_password()
        argv = ["--pool-id", stack.resources["user_pool_id"], "--endpoint-url", stack.endpoint_url]
        assert admin.main([*argv, "users", "add", self.name, "--password", self.password]) == 0
        resp = httpx.post(
            f"{stack.api_url}/auth/jwt/login", data={"username": self.name, "password": self.password}
        )
        self.cookie = f"c2subauth={resp.cookies['c2subauth']}"
        self.headers = {"Cookie": self.cookie}
        self.sub = stack.regions[0].services.auth.verify(resp.cookies["c2subauth"]).sub


@pytest.fixture(scope="module")
def user(stack) -> User:
    return User(stack, "a")


def chunk_of(value, *, typesize=DTYPE.itemsize, blocksize=BLOCKS[0] * DTYPE.itemsize, n=CHUNKS[0]) -> bytes:
    """A compressed chunk of the array's geometry (unless told otherwise) filled with *value*."""
    return blosc2.compress2(np.full(n, value, DTYPE), typesize=typesize, blocksize=blocksize)


def lay_out(api_url: str, user: User, tmp_path, name: str) -> str:
    """Upload a laid-out (uninitialised) array; return its path."""
    local = tmp_path / f"{name}.b2nd"
    blosc2.uninit(SHAPE, dtype=DTYPE, chunks=CHUNKS, blocks=BLOCKS, urlpath=str(local), mode="w")
    path = f"@personal/fill-{RUN}/{name}.b2nd"
    resp = httpx.post(
        f"{api_url}/api/upload/{path}", files={"file": (local.name, local.read_bytes())}, headers=user.headers
    )
    assert resp.status_code == 200, resp.text
    return path


def write(api_url: str, user: User | None, path: str, nchunk: int, chunk: bytes) -> httpx.Response:
    headers = user.headers if user else {}
    return httpx.post(
        f"{api_url}/api/chunk/{path}", params={"nchunk": nchunk}, content=chunk, headers=headers
    )


def info(api_url: str, user: User, path: str) -> httpx.Response:
    resp = httpx.get(f"{api_url}/api/info/{path}", headers=user.headers)
    resp.raise_for_status()
    return resp


def values(api_url: str, user: User, path: str) -> np.ndarray:
    resp = httpx.get(f"{api_url}/api/fetch/{path}", headers=user.headers)
    resp.raise_for_status()
    return blosc2.ndarray_from_cframe(resp.content)[:]


def written(api_url: str, user: User, path: str) -> list[bool]:
    """Which slots hold a chunk, read from the chunks the API serves (uninit = unwritten)."""
    out = []
    for n in range(NCHUNKS):
        resp = httpx.get(f"{api_url}/api/chunk/{path}", params={"nchunk": n}, headers=user.headers)
        resp.raise_for_status()
        out.append(resp.content[31] >> 4 & 7 != 4)
    return out


def wait_state(api_url, user, path, state, timeout=10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        vlmeta = info(api_url, user, path).json()["schunk"]["vlmeta"]
        if vlmeta.get("fill_state") == state or time.monotonic() > deadline:
            return vlmeta
        time.sleep(0.05)


def published_object(stack, url: str) -> bytes:
    """The bytes of a published frame, read from the origin bucket its URL names."""
    bucket, _, key = url.removeprefix("s3://").partition("/")
    assert key.startswith(PUBLISHED_PREFIX)
    return stack.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


# --------------------------------------------------------------------------- filling


def test_a_chunk_lands_and_the_answer_says_how_far_the_fill_got(api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "lands")
    assert written(api_url, user, path) == [False] * NCHUNKS
    resp = write(api_url, user, path, 2, chunk_of(7))
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"nchunk": 2, "written": 1, "nchunks": NCHUNKS, "state": "filling"}
    assert write(api_url, user, path, 4, chunk_of(1)).json()["written"] == 2
    got = values(api_url, user, path)
    np.testing.assert_array_equal(got[2000:3000], np.full(1000, 7, DTYPE))
    np.testing.assert_array_equal(got[4000:], np.full(1000, 1, DTYPE))
    assert written(api_url, user, path) == [False, False, True, False, True]
    # The chunk served is the one that was written, byte for byte
    resp = httpx.get(f"{api_url}/api/chunk/{path}", params={"nchunk": 2}, headers=user.headers)
    assert resp.content == chunk_of(7)


def test_a_second_write_to_a_slot_is_refused_and_the_first_stands(api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "second")
    assert write(api_url, user, path, 1, chunk_of(11)).status_code == 200
    resp = write(api_url, user, path, 1, chunk_of(22))
    assert resp.status_code == 409
    assert "already written" in resp.json()["detail"]
    np.testing.assert_array_equal(values(api_url, user, path)[1000:2000], np.full(1000, 11, DTYPE))


def test_a_slot_written_with_zeros_is_written(api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "zeros")
    zeros = chunk_of(0)
    assert len(zeros) == 32  # a special chunk of zeros, not an uninitialised one
    assert write(api_url, user, path, 4, zeros).json()["written"] == 1
    assert written(api_url, user, path)[4]
    assert write(api_url, user, path, 4, chunk_of(5)).status_code == 409


#: Held: a chunk is read from the schunk of a live array
_UNINIT = blosc2.uninit(SHAPE, dtype=DTYPE, chunks=CHUNKS, blocks=BLOCKS)


@pytest.mark.parametrize(
    "bad, words",
    [
        (chunk_of(3, n=500), "bytes where"),  # another geometry
        (chunk_of(3, typesize=3), "typesize"),  # the sizes agree, the stride does not
        (blosc2.compress2(np.full(1000, 3, DTYPE), typesize=4), "blocks of"),  # blosc2 picked the blocks
        (b"not a chunk at all, not even a header", "not a Blosc2 chunk"),
        (b"", "no chunk was sent"),
        (_UNINIT.schunk.get_chunk(0), "uninitialised"),
    ],
)
def test_a_chunk_the_array_cannot_read_is_refused(api_url, user, tmp_path, bad, words):
    path = lay_out(api_url, user, tmp_path, f"bad-{uuid.uuid4().hex[:6]}")
    resp = write(api_url, user, path, 0, bad)
    assert resp.status_code == 400, resp.text
    assert words in resp.json()["detail"]
    assert written(api_url, user, path) == [False] * NCHUNKS
    assert "fill_nonce" not in info(api_url, user, path).json()["schunk"]["vlmeta"]


def test_a_chunk_whose_data_does_not_decompress_is_refused(api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "corrupt")
    good = bytearray(blosc2.compress2(np.arange(1000, dtype=DTYPE), typesize=4, blocksize=1000))
    good[40:] = bytes(len(good) - 40)  # the header stands, the data behind it is gone
    resp = write(api_url, user, path, 0, bytes(good))
    assert resp.status_code == 400, resp.text
    assert written(api_url, user, path) == [False] * NCHUNKS


def test_writes_that_are_not_into_a_laid_out_array_of_the_caller_are_refused(stack, api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "refusals")
    # Anonymous: 401, and nothing is read or written
    assert write(api_url, None, path, 0, chunk_of(1)).status_code == 401
    # Another user's @personal is their own: the same path names nothing of theirs
    other = User(stack, "b")
    assert write(api_url, other, path, 0, chunk_of(1)).status_code == 404
    assert written(api_url, user, path) == [False] * NCHUNKS
    # No such array, no such slot: 404 (a fill does not invent a layout)
    assert write(api_url, user, f"@personal/fill-{RUN}/never.b2nd", 0, chunk_of(1)).status_code == 404
    resp = write(api_url, user, path, NCHUNKS + 3, chunk_of(1))
    assert resp.status_code == 404 and "has 5 chunk(s)" in resp.json()["detail"]
    assert write(api_url, user, path, -1, chunk_of(1)).status_code == 400
    # Not an array: a plain file, and a suffix that is not .b2nd
    httpx.post(
        f"{api_url}/api/upload/@personal/fill-{RUN}/notes.txt",
        files={"file": ("n", b"x")},
        headers=user.headers,
    ).raise_for_status()
    assert write(api_url, user, f"@personal/fill-{RUN}/notes.txt", 0, b"x").status_code == 400
    # A published root is nobody's to write; a path climbing out of its root is refused
    assert write(api_url, user, "example/ds-1d.b2nd", 0, chunk_of(1)).status_code == 403
    escape = f"@personal/fill-{RUN}/%2E%2E/%2E%2E/@public/x.b2nd"
    assert write(api_url, user, escape, 0, chunk_of(1)).status_code == 400
    assert httpx.post(f"{api_url}/api/publish/{escape}", headers=user.headers).status_code == 400


@pytest.mark.parametrize("first", [False, True], ids=["first-write", "slot-claim"])
@pytest.mark.parametrize("same", [False, True], ids=["different-bytes", "same-bytes"])
def test_racing_writers_for_one_slot_leave_exactly_one_winner(api_url, user, tmp_path, first, same):
    """8 writers, one slot: the array's first write (decided by the head's CAS) or a later
    one (decided by the slot marker's conditional create), with equal or different chunks."""
    path = lay_out(api_url, user, tmp_path, f"race-{int(first)}{int(same)}")
    if first:
        write(api_url, user, path, 0, chunk_of(1)).raise_for_status()

    def attempt(value: int) -> int:
        return write(api_url, user, path, 2, chunk_of(10 if same else value)).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(attempt, range(10, 18)))
    assert sorted(statuses) == [200] + [409] * 7, statuses
    stored = np.unique(values(api_url, user, path)[2000:3000])
    assert len(stored) == 1 and 10 <= stored[0] < 18
    assert written(api_url, user, path) == [first, False, True, False, False]


def test_several_writers_fill_one_array_through_blosc2(api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "several")

    def fill(nchunk: int) -> dict:
        remote = blosc2.C2Array(path, urlbase=api_url, auth_token=user.cookie)
        return remote.update_chunk(nchunk, chunk_of(nchunk))

    with concurrent.futures.ThreadPoolExecutor(max_workers=NCHUNKS) as pool:
        answers = list(pool.map(fill, range(NCHUNKS)))
    assert max(a["written"] for a in answers) == NCHUNKS  # claims are committed together
    assert "publishing" in [a["state"] for a in answers]  # the commit that completed it said so
    np.testing.assert_array_equal(
        values(api_url, user, path), np.repeat(np.arange(NCHUNKS, dtype=DTYPE), 1000)
    )
    remote = blosc2.C2Array(path, urlbase=api_url, auth_token=user.cookie)
    with pytest.raises(blosc2.ChunkAlreadyWritten):
        remote.update_chunk(0, chunk_of(0))


# --------------------------------------------------------------------------- state, nonce, etag


def test_the_fill_state_and_nonce_are_in_the_arrays_vlmeta(api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "nonce")
    assert "fill_nonce" not in info(api_url, user, path).json()["schunk"]["vlmeta"]
    write(api_url, user, path, 0, chunk_of(0)).raise_for_status()
    vlmeta = info(api_url, user, path).json()["schunk"]["vlmeta"]
    nonce = vlmeta["fill_nonce"]
    assert len(nonce) == 32 and vlmeta["fill_state"] == "filling"
    for n in range(1, NCHUNKS):
        write(api_url, user, path, n, chunk_of(n)).raise_for_status()
    vlmeta = wait_state(api_url, user, path, "published")
    assert vlmeta["fill_nonce"] == nonce  # written once, never again
    assert vlmeta["fill_state"] == "published"


def test_every_write_moves_the_etag_and_a_refusal_does_not(api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "etag")
    first = info(api_url, user, path).headers["etag"]
    assert info(api_url, user, path).headers["etag"] == first  # stable while nothing is written
    write(api_url, user, path, 0, chunk_of(0)).raise_for_status()  # zeros: no payload stored
    second = info(api_url, user, path).headers["etag"]
    write(api_url, user, path, 1, chunk_of(0)).raise_for_status()
    third = info(api_url, user, path).headers["etag"]
    assert len({first, second, third}) == 3
    assert write(api_url, user, path, 1, chunk_of(9)).status_code == 409
    assert info(api_url, user, path).headers["etag"] == third


# --------------------------------------------------------------------------- the frame as it fills


def _frame_bytes(api_url: str, user: User, path: str) -> tuple[bytes, httpx.Headers]:
    """The whole frame as /api/fetch serves it (the bytes its ranges are cut from); /api/download agrees."""
    resp = httpx.get(f"{api_url}/api/fetch/{path}", headers=user.headers)
    resp.raise_for_status()
    download = httpx.get(f"{api_url}/api/download/{path}", headers=user.headers)
    assert download.content == resp.content
    return resp.content, resp.headers


def _local_fill(tmp_path, writes: list[tuple[int, bytes]]) -> bytes:
    """The file blosc2 itself leaves after writing *writes* into a laid-out array, in order."""
    local = tmp_path / "local-fill.b2nd"
    blosc2.uninit(SHAPE, dtype=DTYPE, chunks=CHUNKS, blocks=BLOCKS, urlpath=str(local), mode="w")
    for n, chunk in writes:
        array = blosc2.open(str(local), mode="a")
        array.schunk.update_chunk(n, chunk)
        del array
    return local.read_bytes()


def _offsets(frame: bytes) -> np.ndarray:
    header_len = int.from_bytes(frame[11:15], "big")
    index = header_len + int.from_bytes(frame[39:47], "big", signed=True)
    cbytes = int.from_bytes(frame[index + 12 : index + 16], "little")
    return np.frombuffer(blosc2.decompress2(frame[index : index + cbytes]), np.int64)


def test_the_frame_moves_as_blosc2_moves_a_file_it_fills(api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "framed")
    writes = [(3, chunk_of(3)), (0, chunk_of(7)), (4, chunk_of(0))]  # the last one: zeros, no bytes
    for n, chunk in writes:
        write(api_url, user, path, n, chunk).raise_for_status()
    ours, headers = _frame_bytes(api_url, user, path)
    theirs = _local_fill(tmp_path, writes)
    assert headers["accept-ranges"] == "bytes"
    # Byte for byte, but for the offsets chunk's own compression: the same header, the same
    # chunks at the same places, the same offsets and the same trailer
    header_len = int.from_bytes(theirs[11:15], "big")
    assert len(ours) - len(_tail(ours)) == len(theirs) - len(_tail(theirs))
    assert ours[:header_len][:16] == theirs[:header_len][:16] and ours[24:header_len] == theirs[24:header_len]
    assert (
        ours[header_len : len(ours) - len(_tail(ours))]
        == theirs[header_len : len(theirs) - len(_tail(theirs))]
    )
    np.testing.assert_array_equal(_offsets(ours), _offsets(theirs))
    assert ours.endswith(theirs[-35:])  # the trailer (vlmeta and its length): unchanged by writes
    # blosc2 reads it as an array: the written slots hold what was written
    array = blosc2.ndarray_from_cframe(ours)
    np.testing.assert_array_equal(array[3000:4000], np.full(1000, 3, DTYPE))
    np.testing.assert_array_equal(array[0:1000], np.full(1000, 7, DTYPE))
    np.testing.assert_array_equal(array[4000:5000], np.zeros(1000, DTYPE))


def _tail(frame: bytes) -> bytes:
    """The offsets chunk and the trailer: what follows the chunks."""
    header_len = int.from_bytes(frame[11:15], "big")
    return frame[header_len + int.from_bytes(frame[39:47], "big", signed=True) :]


def test_written_chunks_are_legible_over_ranges_as_the_fill_goes(api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "legible")
    remote = blosc2.C2Array(path, urlbase=api_url, auth_token=user.cookie)
    assert not remote.written_chunks().any()
    remote.update_chunk(1, chunk_of(1))
    assert list(remote.written_chunks()) == [False, True, False, False, False]
    write(api_url, user, path, 3, chunk_of(0)).raise_for_status()  # zeros: written, though no bytes
    assert list(remote.written_chunks()) == [False, True, False, True, False]
    # A range carries the ETag api/info gives, and a write moves both
    etag = info(api_url, user, path).headers["etag"]
    ranged = httpx.get(f"{api_url}/api/fetch/{path}", headers={**user.headers, "Range": "bytes=0-31"})
    assert ranged.status_code == 206 and ranged.headers["etag"] == etag and not etag.startswith("W/")
    write(api_url, user, path, 0, chunk_of(5)).raise_for_status()
    assert info(api_url, user, path).headers["etag"] != etag
    stale = httpx.get(
        f"{api_url}/api/fetch/{path}", headers={**user.headers, "Range": "bytes=0-31", "If-Range": etag}
    )
    assert stale.status_code == 200  # the frame moved: the whole of it, not a range of another


def test_a_published_array_downloads_as_the_published_frame(stack, api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "downloads")
    for n in range(NCHUNKS):
        write(api_url, user, path, n, chunk_of(n)).raise_for_status()
    url = wait_state(api_url, user, path, "published")["published_url"]
    ours, headers = _frame_bytes(api_url, user, path)
    assert ours == published_object(stack, url) and headers["accept-ranges"] == "bytes"
    remote = blosc2.C2Array(path, urlbase=api_url, auth_token=user.cookie)
    assert remote.written_chunks().all() and remote.vlmeta["fill_state"] == "published"


# --------------------------------------------------------------------------- publishing


def test_the_last_chunk_publishes_the_array_as_one_frame(stack, api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "run")
    for n in range(NCHUNKS):
        answer = write(api_url, user, path, n, chunk_of(n)).json()
    assert answer == {"nchunk": NCHUNKS - 1, "written": NCHUNKS, "nchunks": NCHUNKS, "state": "publishing"}
    vlmeta = wait_state(api_url, user, path, "published")
    url = vlmeta["published_url"]
    assert url.startswith("s3://") and url.endswith(f"/fill-{RUN}/run.b2nd")
    assert user.sub in url  # @personal publishes under the user's own storage root
    frame = blosc2.ndarray_from_cframe(published_object(stack, url))
    np.testing.assert_array_equal(frame[:], np.repeat(np.arange(NCHUNKS, dtype=DTYPE), 1000))
    assert frame.schunk.vlmeta["fill_state"] == "published"
    # Again, as a retry would: the same place, and nothing changes
    etag = info(api_url, user, path).headers["etag"]
    resp = httpx.post(f"{api_url}/api/publish/{path}", headers=user.headers)
    assert resp.status_code == 200 and resp.json() == {"published": url}
    assert info(api_url, user, path).headers["etag"] == etag


def test_a_publish_racing_the_last_chunks_answers_once_its_reader_sees_it(api_url, user, tmp_path):
    # The last write sets off a publish after its answer; a client publishing at once races it,
    # and whichever records it, the client's next api/info must say published
    for attempt in range(3):
        path = lay_out(api_url, user, tmp_path, f"race-{attempt}")
        for n in range(NCHUNKS):
            write(api_url, user, path, n, chunk_of(n)).raise_for_status()
        resp = httpx.post(f"{api_url}/api/publish/{path}", headers=user.headers, timeout=30)
        assert resp.status_code == 200, resp.text
        assert info(api_url, user, path).json()["schunk"]["vlmeta"]["fill_state"] == "published"


def test_an_unfinished_array_is_not_published(api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "unfinished")
    write(api_url, user, path, 0, chunk_of(0)).raise_for_status()
    resp = httpx.post(f"{api_url}/api/publish/{path}", headers=user.headers)
    assert resp.status_code == 400
    assert "4 of its 5 chunks still unwritten" in resp.json()["detail"]
    assert httpx.post(f"{api_url}/api/publish/{path}").status_code == 401
    assert (
        httpx.post(f"{api_url}/api/publish/@personal/fill-{RUN}/nope.b2nd", headers=user.headers).status_code
        == 404
    )


def test_overlapping_publishes_agree(stack, api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "overlap")
    for n in range(NCHUNKS):
        write(api_url, user, path, n, chunk_of(n)).raise_for_status()

    def publish(_):
        return httpx.post(f"{api_url}/api/publish/{path}", headers=user.headers, timeout=30)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(publish, range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    urls = {a.json()["published"] for a in answers}
    assert len(urls) == 1
    frame = blosc2.ndarray_from_cframe(published_object(stack, urls.pop()))
    np.testing.assert_array_equal(frame[:], np.repeat(np.arange(NCHUNKS, dtype=DTYPE), 1000))


def test_two_users_publishing_one_name_do_not_collide(stack, api_url, user, tmp_path):
    other = User(stack, "c")
    urls = []
    for who, value in ((user, 1), (other, 2)):
        path = lay_out(api_url, who, tmp_path, "collide")
        for n in range(NCHUNKS):
            write(api_url, who, path, n, chunk_of(value)).raise_for_status()
        urls.append(httpx.post(f"{api_url}/api/publish/{path}", headers=who.headers).json()["published"])
    assert urls[0] != urls[1]
    assert [int(blosc2.ndarray_from_cframe(published_object(stack, u))[0]) for u in urls] == [1, 2]


def test_the_caterva2_client_lays_out_fills_and_publishes(api_url, user):
    with cat2.Client(api_url, (user.name, user.password)) as client:
        path = f"@personal/fill-{RUN}/client.b2nd"
        array = client.lay_out(path, SHAPE, DTYPE, chunks=CHUNKS, blocks=BLOCKS)
        for n in range(NCHUNKS):
            answer = array.fill_chunk(n, chunk_of(n))
        assert answer["written"] == NCHUNKS
        np.testing.assert_array_equal(array[:], np.repeat(np.arange(NCHUNKS, dtype=DTYPE), 1000))
        with pytest.raises(blosc2.ChunkAlreadyWritten):
            array.fill_chunk(0, chunk_of(0))
        assert client.publish(path).endswith("/client.b2nd")


def test_a_laid_out_array_stores_no_chunks(stack, api_url, user, tmp_path):
    """20 MB laid out: every slot an inline uninitialised chunk, no chunk object in the origin."""
    store = stack.regions[0].services.publisher.store
    before = sum(1 for _ in store.list("c/"))
    local = tmp_path / "big.b2nd"
    blosc2.uninit(
        (CHUNKS[0] * 5000,), dtype=DTYPE, chunks=CHUNKS, blocks=BLOCKS, urlpath=str(local), mode="w"
    )
    assert local.stat().st_size < 4096
    path = f"@personal/fill-{RUN}/big.b2nd"
    httpx.post(
        f"{api_url}/api/upload/{path}", files={"file": ("big.b2nd", local.read_bytes())}, headers=user.headers
    ).raise_for_status()
    assert sum(1 for _ in store.list("c/")) == before
    meta = info(api_url, user, path).json()
    assert meta["schunk"]["nchunks"] == 5000 and meta["schunk"]["cbytes"] <= 32 * 5000 + 1024
    answer = write(api_url, user, path, 4999, chunk_of(3)).json()
    assert answer == {"nchunk": 4999, "written": 1, "nchunks": 5000, "state": "filling"}


def test_chunks_are_charged_to_the_quota_and_a_publish_is_bounded(stack, tmp_path):
    """The same stack's services with a small quota and upload limit, served in-process."""
    user = User(stack, "quota")  # an empty @personal of its own
    from fastapi.testclient import TestClient

    from functions.api.app import create_app
    from functions.services import Services

    base = stack.regions[0].services
    settings = base.settings.model_copy(update={"user_quota_bytes": 10_000, "max_upload_bytes": 6_000})
    services = Services(
        settings, base.region, base.publisher, base.events, auth=base.auth, staging=base.staging
    )
    rng = np.random.default_rng(7)

    def noise() -> bytes:  # ~4 kB that does not compress
        data = rng.integers(0, 2**31 - 1, CHUNKS[0], dtype=np.int32)
        return blosc2.compress2(data, typesize=4, blocksize=BLOCKS[0] * 4)

    local = tmp_path / "quota.b2nd"
    blosc2.uninit(SHAPE, dtype=DTYPE, chunks=CHUNKS, blocks=BLOCKS, urlpath=str(local), mode="w")
    with TestClient(create_app(services)) as client:
        client.headers.update(user.headers)
        for space in (f"@personal/quota-{RUN}", f"@shared/quota-{RUN}"):
            resp = client.post(f"/api/upload/{space}/a.b2nd", files={"file": ("a.b2nd", local.read_bytes())})
            assert resp.status_code == 200, resp.text
        mine = f"@personal/quota-{RUN}/a.b2nd"
        assert client.post(f"/api/chunk/{mine}", params={"nchunk": 0}, content=noise()).status_code == 200
        assert client.post(f"/api/chunk/{mine}", params={"nchunk": 1}, content=noise()).status_code == 200
        resp = client.post(f"/api/chunk/{mine}", params={"nchunk": 2}, content=noise())
        assert resp.status_code == 413 and "quota" in resp.json()["detail"]
        # @shared has no per-user quota; its filled array is over what a publish copies
        shared = f"@shared/quota-{RUN}/a.b2nd"
        for n in range(NCHUNKS):
            client.post(f"/api/chunk/{shared}", params={"nchunk": n}, content=noise()).raise_for_status()
        resp = client.post(f"/api/publish/{shared}")
        assert resp.status_code == 413 and "a publish copies" in resp.json()["detail"]


def test_another_region_sees_the_written_slots(stack, api_url, user, tmp_path):
    path = lay_out(api_url, user, tmp_path, "regions")
    other = stack.regions[1].url
    values(other, user, path)  # region 2 holds the layout now
    write(api_url, user, path, 3, chunk_of(3)).raise_for_status()
    deadline = time.monotonic() + 10
    while not np.array_equal(values(other, user, path)[3000:4000], np.full(1000, 3, DTYPE)):
        assert time.monotonic() < deadline, "region 2 never saw the written slot"
        time.sleep(0.1)
    # ... and refuses the slot there too: every region writes into the one origin
    assert write(other, user, path, 3, chunk_of(4)).status_code == 409
