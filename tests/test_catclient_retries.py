"""catclient sends an idempotent request again after a dropped connection or a 502/503/504."""

from __future__ import annotations

import json
import socket
import struct
import threading

import numpy as np
import pytest

from catclient import Client
from catclient.errors import ServerUnavailable

INFO = {"shape": [3], "chunks": [3], "blocks": [3], "dtype": "<i8"}


class Flaky:
    """An HTTP server on 127.0.0.1 that misbehaves for the first *bad* requests, then answers.

    ``mode`` ``"reset"`` closes the connection after reading a request (what a proxy
    recycling a keep-alive connection does); ``"503"`` answers 503 with ``Retry-After: 0``.
    """

    def __init__(self, bad: int, mode: str) -> None:
        self.bad, self.mode, self.seen = bad, mode, []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = conn.recv(65536).decode("latin-1")
                if not head:
                    continue
                self.seen.append(head.split(" ", 2)[:2])
                if len(self.seen) <= self.bad:
                    if self.mode == "reset":
                        continue  # closed without an answer
                    body, status = b'{"detail": "busy"}', "503 Service Unavailable\r\nRetry-After: 0"
                else:
                    body, status = json.dumps(INFO).encode(), "200 OK"
                conn.sendall(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
                )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def flaky(request):
    server = Flaky(*request.param)
    yield server
    server.close()


@pytest.mark.parametrize("flaky", [(2, "reset"), (2, "503")], indirect=True, ids=["reset", "503"])
def test_a_get_survives_two_bad_answers(flaky):
    with Client(flaky.url, cache_dir=None) as client:
        assert client.get_info("@public/x.b2nd")["shape"] == [3]
        assert client.stats.retries == 2
    assert [m for m, _ in flaky.seen] == ["GET"] * 3


@pytest.mark.parametrize("flaky", [(5, "reset")], indirect=True)
def test_it_gives_up_after_three_attempts_with_a_clear_error(flaky):
    with Client(flaky.url, cache_dir=None) as client, pytest.raises(ServerUnavailable, match="cannot reach"):
        client.get_info("@public/x.b2nd")
    assert len(flaky.seen) == 3


@pytest.mark.parametrize("flaky", [(1, "reset")], indirect=True)
def test_a_post_is_not_sent_twice_after_a_dropped_answer(flaky):
    # The server may have acted on it: a move or an upload must not happen twice
    with Client(flaky.url, cache_dir=None) as client, pytest.raises(ServerUnavailable):
        client.move("@personal/a.b2nd", "@personal/b.b2nd")
    assert [m for m, _ in flaky.seen] == ["POST"]


class ResettingProxy:
    """A TCP proxy in front of the API that resets (RST) the first *resets* connections asking for a chunk.

    What the benchmark met under load: "Connection reset by peer" in the ``/api/chunk``
    fallback of a read plan.  Every other request is passed through, one per connection.
    """

    def __init__(self, upstream: str, resets: int) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream, self.resets, self.chunk_requests = (host, int(port)), resets, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                block = conn.recv(65536)
                if not block:
                    return
                head += block
            if b" /api/chunk/" in head.split(b"\r\n", 1)[0]:
                self.chunk_requests += 1
                if self.chunk_requests <= self.resets:
                    # SO_LINGER 0: close() sends RST, the client reads ECONNRESET
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
            # One request per connection: ask the API to close after answering, relay to EOF
            head = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
            with socket.create_connection(self.upstream) as up:
                up.sendall(head)
                while block := up.recv(65536):
                    conn.sendall(block)

    def close(self) -> None:
        self.sock.close()


def test_a_reset_in_the_chunk_fallback_of_a_plan_is_retried(api_url, monkeypatch):
    from infra.example_data import expected

    proxy = ResettingProxy(api_url, resets=2)
    try:
        with Client(proxy.url, plan_threshold=0, cache_dir=None) as client:
            # S3 refuses every presigned GET (an expired plan): each chunk comes through /api/chunk
            monkeypatch.setattr(client, "_get_presigned", lambda url: None)
            got = client.fetch("example/dir1/ds-2d.b2nd")
            assert np.array_equal(got, expected()["dir1/ds-2d.b2nd"])
            assert client.stats.api_chunk_requests == 8
            assert client.stats.retries == 2  # the two reset chunk GETs, sent again after a backoff
        assert proxy.chunk_requests == 8 + 2
    finally:
        proxy.close()


def test_presigned_gets_go_through_urllib3_and_survive_a_reset_and_a_503():
    # A read plan's chunk GETs go straight to S3 through urllib3's pool: a connection reset
    # and a 503 are retried with backoff, a refusal (403: an expired URL) is not
    import http.server
    import socket
    import struct
    import threading

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's API
            seen.append(self.path)
            n = seen.count(self.path)
            if self.path.startswith("/flaky") and n == 1:  # reset: RST instead of an answer
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            if self.path.startswith("/flaky") and n == 2:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 403 if self.path.startswith("/expired") else 200
            body = b"chunk bytes" if status == 200 else b""
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with Client(base) as client:
            assert client._s3 is not None  # no transport given: the urllib3 pool
            assert client._get_presigned(f"{base}/flaky?X-Amz-Signature=x") == b"chunk bytes"
            assert seen.count("/flaky?X-Amz-Signature=x") == 3
            assert client._get_presigned(f"{base}/expired?X-Amz-Signature=x") is None
            assert seen.count("/expired?X-Amz-Signature=x") == 1
    finally:
        server.shutdown()
