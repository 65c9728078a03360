"""A real browser for tests: headless Chromium (Debian's ``chromium``, installed by ``make data``)
driven by Playwright's Python API, and the check that a screenshot shows something.

    with chromium_page() as page:
        page.goto(url)
        page.click("text=u0001")
        assert_not_blank(page.screenshot(path=out / "page.png"))

Playwright never downloads a browser here: it launches the system binary
(``TFREC_FASHION_CHROMIUM``, default the first of ``chromium`` / ``chromium-browser`` on PATH).
Without it the test is skipped, or fails under ``TFREC_FASHION_REQUIRE_DATA=1`` (CI installs it).
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from collections.abc import Iterator

import numpy as np
import pytest


def chromium_binary() -> str:
    """The Chromium executable; skips (or fails under CI's rule) when there is none."""
    binary = os.environ.get("TFREC_FASHION_CHROMIUM") or shutil.which("chromium") \
        or shutil.which("chromium-browser")
    if binary:
        return binary
    message = "no chromium binary on PATH (`make data` installs Debian's chromium)"
    if os.environ.get("TFREC_FASHION_REQUIRE_DATA") == "1":
        pytest.fail(f"TFREC_FASHION_REQUIRE_DATA=1 but {message}")
    pytest.skip(message)


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 900) -> Iterator:
    """A fresh Playwright page in headless Chromium; JavaScript errors on the page (uncaught
    exceptions, ``console.error``) fail the test when the block ends."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    binary = chromium_binary()
    errors: list[str] = []
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(30_000)
            page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
            page.on("console", lambda message: errors.append(f"console.error: {message.text}")
                    if message.type == "error" else None)
            yield page
        finally:
            browser.close()
    assert not errors, "the page reported JavaScript errors:\n" + "\n".join(errors)


def assert_not_blank(png: bytes, min_colours: int = 16, min_share: float = 0.02) -> None:
    """Asserts that a screenshot shows content: at least ``min_colours`` distinct colours and at
    least ``min_share`` of its pixels different from its most common colour (the background)."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    share = 1.0 - counts.max() / len(pixels)
    assert len(colours) >= min_colours and share >= min_share, (
        f"the screenshot looks blank: {len(colours)} colours, {share:.1%} of the pixels differ "
        "from the background")
