"""The web UI in a real browser: headless Chromium (Debian's) driven by Playwright, against the local stack.

Walks the pages a user would, checks what they show against numpy (table cells,
decoded canvas pixels), uploads and deletes, creates a lazy expression, and
asserts hostile Markdown and vlmeta do not run.  Every request the pages make
must go to the stack on 127.0.0.1: nothing comes from a CDN.  Screenshots land in
tests/artifacts/ (git-ignored); docs/img/ holds three of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
import warnings
from pathlib import Path
from urllib.parse import urlparse

import blosc2
import numpy as np
import pytest

from tests.test_web_http import PWNED, STACK, TABLE, web_root  # noqa: F401 - web_root is a fixture

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parent / "artifacts"
RUN = uuid.uuid4().hex[:8]


def _chromium() -> str | None:
    """Debian's Chromium, installed with apt when missing and possible (as ``make test`` does)."""
    if shutil.which("chromium") is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=False, timeout=600)
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')"
    )
    executable = _chromium()
    if executable is None:
        message = (
            "BROWSER TESTS SKIPPED: Debian's chromium is not installed and could not be installed "
            "(apt-get install chromium, as root); the web UI was NOT tested in a browser"
        )
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


class Session:
    """A browser context on the stack, recording every request that leaves for elsewhere."""

    def __init__(self, browser, base: str) -> None:
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.foreign: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", lambda dialog: dialog.accept())

    def _route(self, route) -> None:
        host = urlparse(route.request.url).hostname
        if host != "127.0.0.1":
            self.foreign.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    def goto(self, path: str):
        resp = self.page.goto(self.base + path)
        return resp

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert self.foreign == [], f"requests left 127.0.0.1: {self.foreign}"


@pytest.fixture
def session(browser, api_url):
    s = Session(browser, api_url)
    yield s
    s.close()


def table_values(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#values tbody tr",
        "rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(td => td.textContent))",
    )


def canvas_pixels(page) -> np.ndarray:
    """The viewer canvas's pixels (red channel: frames are gray)."""
    data = page.evaluate(
        """() => { const c = document.getElementById('frame-canvas');
                   const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
                   return {w: c.width, h: c.height, px: Array.from(d.data)}; }"""
    )
    rgba = np.array(data["px"], dtype=np.uint8).reshape(data["h"], data["w"], 4)
    assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 3] == 255).all()
    return rgba[..., 0]


def login(session: Session, stack) -> None:
    session.goto("/login?next=/roots/@personal")
    session.page.fill("input[name=username]", stack.resources["demo_user"])
    session.page.fill("input[name=password]", stack.resources["demo_password"])
    session.page.click("#login-form button[type=submit]")
    session.page.wait_for_url("**/roots/@personal")
    assert session.page.inner_text(".who .user") == stack.resources["demo_user"]


# --------------------------------------------------------------------------- browsing


@pytest.fixture(scope="module")
def phantom(stack, web_root) -> str:  # noqa: F811
    from infra.example_data import tomography
    from tests.test_web_http import publish

    publish(stack, "phantom.b2nd", blosc2.asarray(tomography((48, 320, 320)), chunks=(8, 160, 160)))
    return f"{web_root}/phantom.b2nd"


def test_browse_to_a_dataset_and_scrub_the_image_stack(session, web_root, phantom):  # noqa: F811
    page = session.page
    session.goto("/")
    assert page.locator(f'section.root[data-root="{web_root}"]').count() == 1
    session.shot("home")
    # The filter box hides what does not match
    page.fill("#tree-filter", "table.b2nd")
    assert page.locator(f'li.file[data-path="{web_root}/dir/table.b2nd"]').is_visible()
    assert not page.locator(f'li.file[data-path="{web_root}/stack.b2nd"]').is_visible()
    session.shot("home-filtered")
    page.fill("#tree-filter", "")
    page.click(f'section.root[data-root="{web_root}"] h2 a')
    page.wait_for_url(f"**/roots/{web_root}")
    page.click(f'li.file[data-path="{web_root}/dir/table.b2nd"] a')
    page.wait_for_url(f"**/roots/{web_root}/dir/table.b2nd")
    assert np.array_equal(np.array(table_values(page), dtype=float), TABLE[:50, :20])
    session.shot("dataset")
    page.click("a[rel=next]")
    page.wait_for_url("**row=50**")
    assert np.array_equal(np.array(table_values(page), dtype=float), TABLE[50:70, :20])

    session.goto(f"/roots/{web_root}/stack.b2nd")
    page.wait_for_selector("#frame-canvas[data-frame='0']")
    page.select_option("#contrast", "manual")
    page.fill("#lo", "0")
    page.fill("#hi", "255")
    page.dispatch_event("#hi", "change")
    page.wait_for_selector("#frame-canvas[data-window='0 255']")
    assert np.array_equal(canvas_pixels(page), STACK[0].astype(np.uint8))
    # The slider moves through the first axis; the frame is fetched and drawn
    page.eval_on_selector("#frame-slider", "el => { el.value = 4; el.dispatchEvent(new Event('input')); }")
    page.wait_for_selector("#frame-canvas[data-frame='4']")
    assert np.array_equal(canvas_pixels(page), STACK[4].astype(np.uint8))
    assert page.inner_text("#frame-number") == "4"
    page.select_option("#zoom", "4")
    assert page.eval_on_selector("#frame-canvas", "c => c.getBoundingClientRect().width") == 200
    session.shot("viewer-known-stack")
    # The picture for the docs: a synthetic tomography, percentile contrast
    session.goto(f"/roots/{phantom}")
    page.wait_for_selector("#frame-canvas[data-frame='0']")
    page.select_option("#contrast", "pct")
    page.wait_for_selector("#frame-canvas[data-window]:not([data-window=''])")
    page.eval_on_selector("#frame-slider", "el => { el.value = 20; el.dispatchEvent(new Event('input')); }")
    page.wait_for_selector("#frame-canvas[data-frame='20']")
    page.locator("#viewer").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "viewer.png"))
    assert session.errors == []


def test_hostile_markdown_and_vlmeta_do_not_run(session, web_root):  # noqa: F811
    page = session.page
    for path in (f"/roots/{web_root}/hostile.md", f"/roots/{web_root}/hostile.b2nd", f"/roots/{web_root}"):
        session.goto(path)
        page.wait_for_load_state("load")
        assert page.evaluate("() => window.__pwned") is None, path
    session.goto(f"/roots/{web_root}/hostile.md")
    assert page.locator("#markdown h1").inner_text().startswith("Notes <script>")
    hrefs = page.eval_on_selector_all("#markdown a", "as => as.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.org/ok"]
    session.shot("hostile-markdown")
    assert PWNED in page.inner_text("#markdown")


def test_docs_render_offline(session):
    page = session.page
    session.goto("/docs")
    page.wait_for_selector(".opblock", timeout=15000)
    assert page.locator(".opblock").count() > 15
    assert page.locator(".opblock-summary-path", has_text="/api/fetch/").count() >= 2
    session.shot("docs")


# --------------------------------------------------------------------------- signed in


def test_login_upload_open_delete(session, stack):
    page = session.page
    login(session, stack)
    values = np.arange(24, dtype=np.int32).reshape(4, 6) * 3
    name = f"up-{RUN}.b2nd"
    page.set_input_files(
        "section.upload input[type=file]",
        files=[
            {
                "name": name,
                "mimeType": "application/octet-stream",
                "buffer": blosc2.asarray(values).to_cframe(),
            }
        ],
    )
    link = page.locator(f'li.file[data-path="@personal/{name}"] a')
    link.wait_for(timeout=10000)  # the page reloads once the upload answered
    link.click()
    page.wait_for_url(f"**/roots/@personal/{name}")
    assert np.array_equal(np.array(table_values(page), dtype=np.int32), values)
    # Copy it, then delete both
    page.fill("form.movecopy input[name=dst]", f"@personal/copy-{RUN}.b2nd")
    page.click("form.movecopy button[value=copy]")
    page.wait_for_url(f"**/roots/@personal/copy-{RUN}.b2nd")
    assert np.array_equal(np.array(table_values(page), dtype=np.int32), values)
    for target in (f"copy-{RUN}.b2nd", name):
        session.goto(f"/roots/@personal/{target}")
        page.click("button[data-action=delete]")
        page.wait_for_url("**/roots/@personal")
        assert page.locator(f'li.file[data-path="@personal/{target}"]').count() == 0
    # Drag and drop onto the zone uploads as well
    page.evaluate(
        """name => { const dt = new DataTransfer();
                     dt.items.add(new File(['# dropped'], name, {type: 'text/markdown'}));
                     const zone = document.querySelector('.dropzone');
                     zone.dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true})); }""",
        f"drop-{RUN}.md",
    )
    page.locator(f'li.file[data-path="@personal/drop-{RUN}.md"]').wait_for(timeout=10000)
    session.goto(f"/roots/@personal/drop-{RUN}.md")
    assert page.inner_text("#markdown h1") == "dropped"
    page.click("button[data-action=delete]")
    page.wait_for_url("**/roots/@personal")
    # Log out: @personal is gone again
    page.click("#logout")
    page.wait_for_url(session.base + "/")
    assert page.locator('section.root[data-root="@personal"]').count() == 0
    assert session.errors == []


def test_a_large_upload_goes_through_the_presigned_put(session, stack):
    """Over the payload limit the page PUTs straight to S3 (the bucket needs CORS for browsers)."""
    plan = stack.resources["plan"]
    s3 = stack.client("s3")
    s3.put_bucket_cors(
        Bucket=plan.ingest_bucket,
        CORSConfiguration={
            "CORSRules": [
                {"AllowedOrigins": [session.base], "AllowedMethods": ["PUT"], "AllowedHeaders": ["*"]}
            ]
        },
    )
    payload = stack.regions[0].services.settings.payload_limit
    values = np.random.default_rng(5).integers(0, 2**62, payload // 8 + 20_000, dtype=np.int64)
    frame = blosc2.asarray(values, cparams=blosc2.CParams(clevel=0)).to_cframe()
    assert len(frame) > payload
    login(session, stack)
    name = f"big-{RUN}.b2nd"
    seen = []
    session.page.on("request", lambda req: seen.append((req.method, urlparse(req.url).path)))
    session.page.set_input_files(
        "section.upload input[type=file]",
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": frame}],
    )
    session.page.locator(f'li.file[data-path="@personal/{name}"]').wait_for(timeout=20000)
    assert ("POST", f"/api/upload-url/@personal/{name}") in seen
    assert any(method == "PUT" and "_staging/" in path for method, path in seen)
    session.goto(f"/roots/@personal/{name}")
    cells = table_values(session.page)
    assert [int(c[0]) for c in cells] == list(values[:50])
    session.page.click("button[data-action=delete]")
    session.page.wait_for_url("**/roots/@personal")


def test_a_lazy_expression_from_the_form(session, stack, web_root):  # noqa: F811
    page = session.page
    login(session, stack)
    session.goto("/web/lazy")
    name = f"lazy-{RUN}"
    page.fill("input[name=name]", name)
    page.fill("input[name=expression]", "a * 2 + b")
    rows = page.locator(".operand")
    rows.nth(0).locator(".alias").fill("a")
    rows.nth(0).locator(".target").select_option(f"{web_root}/dir/table.b2nd")
    rows.nth(1).locator(".alias").fill("b")
    rows.nth(1).locator(".target").select_option(f"{web_root}/dir/table.b2nd")
    page.click("#lazy-form button[type=submit]")
    page.wait_for_url(f"**/roots/@personal/{name}.b2nd")
    assert page.inner_text("pre.expression") == "a * 2 + b"
    assert np.array_equal(np.array(table_values(page), dtype=float), (TABLE * 2 + TABLE)[:50, :20])
    session.shot("lazy")
    page.click("button[data-action=delete]")
    page.wait_for_url("**/roots/@personal")
    assert session.errors == []
