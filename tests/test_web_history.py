"""The dataset page's versions (open any kept one) and the estimate of the slice shown, over real HTTP."""

from __future__ import annotations

import re
import struct
import zlib

import httpx
import numpy as np

from tests.timetravel_world import world


def _png_pixels(body: bytes) -> np.ndarray:
    """Grey 8-bit pixels of the viewer's PNG (one IDAT, filter byte per row)."""
    width, height = struct.unpack(">II", body[16:24])
    idat = b"".join(body[i + 8 : i + 8 + struct.unpack(">I", body[i : i + 4])[0]]
                    for i in [m.start() - 4 for m in re.finditer(b"IDAT", body)])
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, -1)
    return raw[:, 1:]


def test_the_dataset_page_lists_versions_opens_any_and_prices_the_view():
    with world() as w:
        grid = np.arange(60 * 40, dtype=np.int64).reshape(60, 40)
        w.publish("web", "g.b2nd", grid, chunks=(20, 20))
        changed = grid.copy()
        changed[0, 0] = -5
        w.publish("web", "g.b2nd", changed, chunks=(20, 20))
        page = httpx.get(f"{w.url}/roots/web/g.b2nd")
        assert page.status_code == 200
        history = page.text.split('id="history"')[1].split("</section>")[0]
        assert "v2" in history and 'href="?version=1"' in history and "1/6 chunks changed" in history
        assert "(current)" in history
        cost = page.text.split('id="estimate"')[1].split("</section>")[0]
        assert "[0:50,0:20]" in cost and "<td>3 (3 S3 GETs when cold)</td>" in cost and "$" in cost
        assert "<td>-5</td>" in page.text
        old = httpx.get(f"{w.url}/roots/web/g.b2nd", params={"version": 1})
        assert old.status_code == 200 and 'id="old-version"' in old.text and "version 1" in old.text
        assert "<td>-5</td>" not in old.text and "<td>0</td>" in old.text
        assert 'href="/api/download/web/g.b2nd?version=1"' in old.text
        assert 'data-version="1"' in old.text  # the image viewer reads frames of that version
        window = {"lo": -5, "hi": 0}  # -5 (version 2's first value) is black, 0 (version 1's) white
        new_frame = httpx.get(f"{w.url}/web/frame/web/g.b2nd", params=window)
        old_frame = httpx.get(f"{w.url}/web/frame/web/g.b2nd", params={**window, "version": 1})
        assert old_frame.status_code == 200
        assert _png_pixels(new_frame.content)[0, 0] == 0 and _png_pixels(old_frame.content)[0, 0] == 255
        missing = httpx.get(f"{w.url}/roots/web/g.b2nd", params={"version": 9})
        assert missing.status_code == 404 and "no version 9" in missing.text
