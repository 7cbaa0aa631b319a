"""The web UI over real HTTP (the local stack): status codes, values, frames, escaping, who sees what.

The browser walk is in test_web_browser.py; this file checks what the server sends.
"""

from __future__ import annotations

import dataclasses
import html
import re
import statistics
import struct
import time
import uuid
import zlib

import blosc2
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.engine.content import load_object, load_plain
from functions.services import Services
from functions.web import markdown, png
from tests.test_auth_http import add_user, login

RUN = uuid.uuid4().hex[:8]
ROOT = f"web-{RUN}"
PWNED = "window.__pwned=1"

#: A stack whose pixels are known: with the window 0..255 each pixel equals its value
STACK = (
    (np.arange(6)[:, None, None] * 37 + np.arange(40)[None, :, None] * 3 + np.arange(50)[None, None, :]) % 256
).astype(np.uint16)
TABLE = np.random.default_rng(7).normal(size=(70, 30))
RGB = np.random.default_rng(8).integers(0, 256, (3, 20, 24, 3)).astype(np.uint8)
HOSTILE_MD = f"""# Notes <script>{PWNED}</script>

<img src=x onerror="{PWNED}">

[click](javascript:{PWNED}) [tab](java\tscript:{PWNED}) [data](data:text/html,<script>{PWNED}</script>)

[fine](https://example.org/ok) and **bold**
"""
# Blosc2 limits vlmeta names to 31 bytes: the key's payload is an attribute (sets the global __pwned)
HOSTILE_VLMETA = {"<img src=x onerror=__pwned=1>": f"<script>{PWNED}</script>", "note": "</td><b>x</b>"}


def publish(stack, rel: str, obj) -> None:
    """Publish through the origin's publisher and wait until region 1 lists it."""
    loaded = load_plain(obj) if isinstance(obj, bytes) else load_object(obj)
    stack.regions[0].services.publisher.publish(ROOT, rel, loaded)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if rel in httpx.get(f"{stack.api_url}/api/list/{ROOT}").json():
            return
        time.sleep(0.05)
    raise AssertionError(f"{rel} did not reach the region")


@pytest.fixture(scope="module")
def web_root(stack) -> str:
    """The module's root: a known stack, a table, an RGB stack, hostile Markdown and vlmeta."""
    publish(stack, "stack.b2nd", blosc2.asarray(STACK, chunks=(2, 16, 16), blocks=(1, 8, 8)))
    publish(stack, "dir/table.b2nd", blosc2.asarray(TABLE, chunks=(32, 16)))
    publish(stack, "rgb.b2nd", blosc2.asarray(RGB, chunks=(1, 20, 24, 3)))
    hostile = blosc2.asarray(np.arange(10))
    for key, value in HOSTILE_VLMETA.items():
        hostile.schunk.vlmeta[key] = value
    publish(stack, "hostile.b2nd", hostile)
    publish(stack, "hostile.md", HOSTILE_MD.encode())
    publish(stack, "notes.txt", b"plain text\nline 2\n")
    publish(stack, "blob.bin", bytes(range(256)) * 4)
    return ROOT


@dataclasses.dataclass
class User:
    name: str
    password: str
    token: str

    @property
    def cookies(self) -> dict:
        return {"c2subauth": self.token}


@pytest.fixture(scope="module")
def users(stack) -> dict[str, User]:
    out = {}
    for key in ("a", "b"):
        name = f"web-{key}-{RUN}"
        password = add_user(stack, name)
        out[key] = User(name, password, login(stack.api_url, name, password))
    return out


def get(url: str, path: str, user: User | None = None, **params) -> httpx.Response:
    return httpx.get(f"{url}{path}", params=params or None, cookies=user.cookies if user else None)


# --------------------------------------------------------------------------- PNG decoding (the test's own)


def decode_png(data: bytes) -> np.ndarray:
    """Decode the 8-bit, unfiltered PNGs the server writes (signature, IHDR, IDAT*, IEND)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(
            kind + payload
        )
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat += payload
        pos += 12 + length
    width, height, depth, colour = header[:4]
    channels = {0: 1, 2: 3, 6: 4}[colour]
    assert depth == 8
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, width * channels + 1)
    assert not raw[:, 0].any()  # filter type 0 on every row
    pixels = raw[:, 1:].reshape(height, width, channels)
    return pixels[:, :, 0] if channels == 1 else pixels


def table_cells(page: str) -> list[list[str]]:
    """The body cells of the page's data table, unescaped."""
    body = page.split('id="values"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)] for row in rows]


# --------------------------------------------------------------------------- pages


def test_pages_answer_with_the_right_status(api_url, web_root):
    ok = [
        "/",
        f"/roots/{web_root}",
        f"/roots/{web_root}/dir",
        f"/roots/{web_root}/stack.b2nd",
        f"/roots/{web_root}/notes.txt",
        f"/roots/{web_root}/blob.bin",
        "/roots/example/ds-hello.b2frame",
        "/roots/example/dir2/ds-4d.b2nd",
        "/roots/example/ds-sc-attr.b2nd",
        "/login",
        "/web/lazy",
        "/roots/example/dir1/ds-3d.b2nd?lead=2&row=1&col=3",
        "/docs",
        "/redoc",
    ]
    for path in ok:
        resp = httpx.get(api_url + path)
        assert resp.status_code == 200, (path, resp.text[:300])
        assert resp.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{api_url}/roots", follow_redirects=False).status_code == 307
    missing = httpx.get(f"{api_url}/roots/{web_root}/nothing-here.b2nd")
    assert missing.status_code == 404 and "not found" in missing.text
    assert httpx.get(f"{api_url}/roots/no-such-root").status_code == 404
    # Bad paths are a 400 page, never a 500
    assert httpx.get(f"{api_url}/roots/{web_root}/a/../b").status_code in (400, 404)
    assert httpx.get(f"{api_url}/roots/example/dir1/ds-2d.b2nd", params={"row": -1}).status_code == 400


def test_home_lists_roots_with_their_trees(api_url, web_root, users):
    page = get(api_url, "/").text
    for name in ("example", "@public", web_root):
        assert f'data-root="{name}"' in page
    assert f'href="/roots/{web_root}/dir/table.b2nd"' in page and 'id="tree-filter"' in page
    assert 'data-root="@personal"' not in page and 'data-root="@shared"' not in page
    assert "data-subscribe" not in page  # toggles are for signed-in users
    signed = get(api_url, "/", users["a"]).text
    assert 'data-root="@personal"' in signed and 'data-root="@shared"' in signed
    assert 'data-subscribe="example"' in signed and 'data-subscribe="@personal"' not in signed
    assert users["a"].name in signed


def test_dataset_page_shows_metadata_and_the_values(api_url, web_root):
    page = get(api_url, f"/roots/{web_root}/dir/table.b2nd").text
    for label in ("shape", "dtype", "chunks", "blocks", "compression ratio", "codec", "mtime", "version"):
        assert f"<th>{label}</th>" in page
    assert (
        "[70, 30]" in page and "float64" in page and f'href="/api/download/{web_root}/dir/table.b2nd"' in page
    )
    cells = table_cells(page)
    assert np.array_equal(np.array(cells, dtype=float), TABLE[:50, :20])
    # The next page of rows and columns
    cells = table_cells(get(api_url, f"/roots/{web_root}/dir/table.b2nd", row=50, col=20).text)
    assert np.array_equal(np.array(cells, dtype=float), TABLE[50:70, 20:30])


def test_nd_pages_pick_leading_indices(api_url):
    want = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    cells = table_cells(get(api_url, "/roots/example/dir1/ds-3d.b2nd", lead="2").text)
    assert np.array_equal(np.array(cells, dtype=np.float32), want[2])
    a4 = np.arange(120, dtype=np.complex128).reshape(2, 3, 4, 5)
    cells = table_cells(get(api_url, "/roots/example/dir2/ds-4d.b2nd", lead="1,2").text)
    assert np.array_equal(np.array(cells, dtype=complex), (a4 + a4 * 1j)[1, 2])


def test_structured_arrays_show_fields_and_filter(api_url):
    from infra.example_data import fields_array

    want = fields_array()
    page = get(api_url, "/roots/example/ds-1d-fields.b2nd").text
    assert "<th>a</th><th>b</th><th>c</th><th>d</th>" in page
    cells = table_cells(page)
    assert [int(r[0]) for r in cells] == list(want["a"][:50])
    assert [float(r[1]) for r in cells] == list(want["b"][:50])
    assert [r[2] for r in cells] == [c.decode() for c in want["c"][:50]]
    picked = want[(want["a"] > 500) & want["d"]]
    page = get(api_url, "/roots/example/ds-1d-fields.b2nd", filter="(a > 500) & d").text
    assert [int(r[0]) for r in table_cells(page)] == list(picked["a"][:50])
    assert f"of {len(picked)}" in page
    bad = get(api_url, "/roots/example/ds-1d-fields.b2nd", filter="nope > 1")
    assert bad.status_code == 200 and 'id="table-error"' in bad.text and "nope" in bad.text


def test_file_previews(api_url, web_root):
    readme = get(api_url, "/roots/example/README.md").text
    assert '<article class="markdown" id="markdown">' in readme and "<h1>Example root</h1>" in readme
    text = get(api_url, f"/roots/{web_root}/notes.txt").text
    assert 'id="text-preview">plain text\nline 2' in text
    hexed = get(api_url, f"/roots/{web_root}/blob.bin").text
    assert 'id="hex-preview"' in hexed and "00000000  00 01 02 03" in hexed
    frame = get(api_url, "/roots/example/ds-hello.b2frame").text
    assert "48 65 6c 6c 6f" in frame  # "Hello"


# --------------------------------------------------------------------------- escaping


def test_hostile_markdown_is_rendered_inert(api_url, web_root):
    page = get(api_url, f"/roots/{web_root}/hostile.md").text
    article = page.split('id="markdown">', 1)[1].split("</article>", 1)[0]
    assert (
        "<script" not in article
        and "<img" not in article
        and "onerror=" not in article.replace("onerror=&quot;", "")
    )
    assert "&lt;script&gt;" in article
    assert "javascript:" not in re.findall(r'href="([^"]*)"', article).__str__()
    assert re.findall(r'href="([^"]*)"', article) == ["https://example.org/ok"]
    assert "<strong>bold</strong>" in article


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://x.org", True),
        ("/roots/a", True),
        ("rel/path.md", True),
        ("#top", True),
        ("mailto:a@b.c", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        (" java\tscript:alert(1)", False),
        ("data:text/html,x", False),
        ("vbscript:x", False),
        ("&#106;avascript:x", False),
    ],
)
def test_markdown_link_schemes(url, safe):
    assert markdown.safe_url(url) is safe


def test_hostile_vlmeta_and_paths_are_escaped(api_url, web_root, stack):
    page = get(api_url, f"/roots/{web_root}/hostile.b2nd").text
    assert "<script>window" not in page and "<img src=x" not in page and "</td><b>" not in page
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=__pwned=1&gt;" in page
    assert "&lt;/td&gt;&lt;b&gt;x&lt;/b&gt;" in page
    # A path that is itself markup
    name = '"><img src=x onerror=alert(1)>.txt'
    publish(stack, name, b"x")
    listing = get(api_url, f"/roots/{web_root}").text
    assert "<img src=x" not in listing and "&lt;img src=x onerror=alert(1)&gt;" in listing
    opened = get(api_url, f"/roots/{web_root}/{name}")
    assert opened.status_code == 200 and "<img src=x" not in opened.text


# --------------------------------------------------------------------------- authorisation


def test_anonymous_users_cannot_open_private_spaces(api_url):
    for path in ("/roots/@personal", "/roots/@shared", "/roots/@shared/x.b2nd", "/roots/@personal/x.b2nd"):
        resp = httpx.get(api_url + path)
        assert resp.status_code == 401, path
        assert 'href="/login?next=' in resp.text
    assert httpx.get(f"{api_url}/web/frame/@personal/x.b2nd").status_code == 401


def test_another_users_personal_space_is_unreachable(stack, api_url, users):
    a, b = users["a"], users["b"]
    data = blosc2.asarray(np.arange(12).reshape(3, 4)).to_cframe()
    resp = httpx.post(
        f"{api_url}/api/upload/@personal/mine-{RUN}.b2nd", files={"file": ("m.b2nd", data)}, cookies=a.cookies
    )
    assert resp.status_code == 200, resp.text
    assert get(api_url, f"/roots/@personal/mine-{RUN}.b2nd", a).status_code == 200
    assert f"mine-{RUN}.b2nd" in get(api_url, "/roots/@personal", a).text
    # B's @personal is B's own: A's dataset is not there, and A's storage name is not addressable
    assert get(api_url, f"/roots/@personal/mine-{RUN}.b2nd", b).status_code == 404
    assert f"mine-{RUN}" not in get(api_url, "/roots/@personal", b).text
    assert f"mine-{RUN}" not in get(api_url, "/", b).text
    sub = stack.regions[0].services.auth.verify(a.token).sub
    for who in (b, a, None):
        assert get(api_url, f"/roots/@personal.{sub}/mine-{RUN}.b2nd", who).status_code == 404
    assert get(api_url, f"/web/frame/@personal/mine-{RUN}.b2nd", b).status_code == 404
    # Write controls appear only where the viewer may write
    assert 'data-action="delete"' in get(api_url, f"/roots/@personal/mine-{RUN}.b2nd", a).text
    assert 'data-action="delete"' not in get(api_url, "/roots/example/dir1/ds-2d.b2nd", a).text
    assert 'class="upload"' not in get(api_url, "/roots/@public").text
    assert 'class="upload"' in get(api_url, "/roots/@public", a).text


def test_writes_from_the_pages_need_a_login(api_url):
    for path in ("/api/upload/@public/x.b2nd", "/api/remove/@public/examples/ds-1d.b2nd"):
        assert httpx.post(api_url + path, files={"file": ("x", b"1")}).status_code == 401
    assert (
        httpx.post(
            f"{api_url}/api/lazyexpr/", json={"name": "x", "expression": "a", "operands": {}}
        ).status_code
        == 401
    )
    assert "needs a logged-in user" in get(api_url, "/web/lazy").text


# --------------------------------------------------------------------------- frames


def test_frames_are_pngs_of_the_known_values(api_url, web_root):
    for i in (0, 3, 5):
        resp = get(api_url, f"/web/frame/{web_root}/stack.b2nd", i=i, lo=0, hi=255)
        assert resp.status_code == 200 and resp.headers["content-type"] == "image/png"
        assert np.array_equal(decode_png(resp.content), STACK[i].astype(np.uint8))
        assert resp.headers["X-Frame-Window"] == "0 255"
    # Default window: the plane's min/max; percentiles as asked
    plane = STACK[2]
    resp = get(api_url, f"/web/frame/{web_root}/stack.b2nd", i=2)
    assert resp.headers["X-Frame-Window"] == f"{plane.min()} {plane.max()}"
    pixels = decode_png(resp.content)
    assert pixels.min() == 0 and pixels.max() == 255
    resp = get(api_url, f"/web/frame/{web_root}/stack.b2nd", i=2, plo=10, phi=90)
    lo, hi = np.percentile(plane, 10), np.percentile(plane, 90)
    assert resp.headers["X-Frame-Window"] == f"{lo:g} {hi:g}"
    assert np.array_equal(decode_png(resp.content), png.to_uint8(plane, png.Window(lo, hi)))
    # A 2-D dataset is one frame; a 4-D RGB stack is colour
    two_d = decode_png(get(api_url, "/web/frame/example/dir1/ds-2d.b2nd", lo=0, hi=255).content)
    assert np.array_equal(two_d, np.arange(200).reshape(10, 20).astype(np.uint8))
    rgb = decode_png(get(api_url, f"/web/frame/{web_root}/rgb.b2nd", i=1).content)
    assert np.array_equal(rgb, RGB[1])
    # Out of range or not an image: a clear 400
    for path, params in [
        (f"{web_root}/stack.b2nd", {"i": 6}),
        ("example/ds-1d.b2nd", {}),
        ("example/ds-1d-fields.b2nd", {}),
        ("example/dir2/ds-4d.b2nd", {}),
        ("example/README.md", {}),
    ]:
        resp = get(api_url, f"/web/frame/{path}", **params)
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["detail"]


def test_planes_of_a_64_mib_stack_are_served(stack, api_url):
    """512x512 planes of the 128x512x512 uint16 tomography (the viewer's scrubbing case).

    Timings are printed, not asserted: ``make bench`` (case ``frames``) reports them as ratios.
    """
    from infra.example_data import TOMO_BLOCKS, TOMO_CHUNKS, tomography

    volume = tomography()
    assert volume.nbytes == 64 << 20
    publish(stack, "tomo.b2nd", blosc2.asarray(volume, chunks=TOMO_CHUNKS, blocks=TOMO_BLOCKS))
    url = f"{api_url}/web/frame/{ROOT}/tomo.b2nd"
    with httpx.Client() as client:
        cold = time.perf_counter()
        first = client.get(url, params={"i": 40, "lo": 0, "hi": 65535})
        cold = time.perf_counter() - cold
        assert first.status_code == 200
        assert np.array_equal(decode_png(first.content), png.to_uint8(volume[40], png.Window(0, 65535)))
        timings = []
        for i in range(32, 48):  # the same chunks, other planes: what scrubbing does
            start = time.perf_counter()
            answer = client.get(url, params={"i": i, "lo": 0, "hi": 65535})
            assert answer.status_code == 200
            assert np.array_equal(decode_png(answer.content), png.to_uint8(volume[i], png.Window(0, 65535)))
            timings.append(time.perf_counter() - start)
    median = statistics.median(timings)
    print(
        f"\n512x512 uint16 frame of a 64 MiB stack: cold {cold * 1000:.0f} ms, "
        f"warm median {median * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms"
    )


# --------------------------------------------------------------------------- Lambda limits, offline docs


def test_pages_and_frames_stay_under_the_response_limit(stack, web_root):
    base = stack.regions[0].services
    settings = base.settings.model_copy(update={"response_limit": 3000})
    services = Services(
        settings, base.region, base.publisher, base.events, auth=base.auth, staging=base.staging
    )
    with TestClient(create_app(services)) as client:
        resp = client.get(f"/roots/{web_root}/dir/table.b2nd")  # ~20 kB of HTML
        assert resp.status_code == 413 and "response limit" in resp.text
        resp = client.get(f"/web/frame/{web_root}/rgb.b2nd")  # ~1.5 kB: fits
        assert resp.status_code == 200
        big = client.get(f"/web/frame/{web_root}/stack.b2nd", params={"i": 1})
        assert big.status_code in (200, 413)
        assert len(big.content) <= 3000 or big.status_code == 413


def test_docs_use_only_local_assets(api_url):
    for path in ("/docs", "/redoc"):
        page = httpx.get(api_url + path).text
        sources = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert sources and all(s.startswith("/") for s in sources), sources
        for src in sources:
            assert httpx.get(api_url + src).status_code == 200, src
    assert "cdn" not in httpx.get(f"{api_url}/docs").text.lower()
    assert httpx.get(f"{api_url}/openapi.json").json()["paths"]["/api/fetch/{path}"]


def test_png_encoder_round_trips():
    rng = np.random.default_rng(3)
    for shape in [(1, 1), (7, 13), (5, 4, 3), (3, 9, 4)]:
        pixels = rng.integers(0, 256, shape).astype(np.uint8)
        assert np.array_equal(decode_png(png.encode_png(pixels)), pixels)
    with pytest.raises(ValueError):
        png.encode_png(np.zeros((2, 2), np.uint16))
    flat = png.to_uint8(np.full((2, 2), 7.0), png.Window(7, 7))
    assert not flat.any()
    assert png.to_uint8(np.array([np.nan, 1.0]), png.Window(0, 1)).tolist() == [0, 255]
