"""A real headless Chromium (Debian's ``chromium`` package) driven by Playwright.

Playwright's own browser download does not work on these machines (and would be a second
browser to keep patched), so it drives the system's executable. ``hack/deps.sh`` installs it.
Screenshots land in ``.dev/artifacts/webui/`` (git-ignored), one per test that takes one.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

from harness.stack import STATE

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = STATE / "artifacts" / "webui"


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: run hack/deps.sh (apt-get install chromium)")
    async with async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@asynccontextmanager
async def page(browser: Browser) -> AsyncIterator[tuple[Page, list[str]]]:
    """A fresh page, and the errors its scripts raised or logged (a test should expect none)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    opened = await context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    opened.on(
        "console",
        lambda message: (
            errors.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    try:
        yield opened, errors
    finally:
        await context.close()


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
    await page.screenshot(path=str(path), full_page=True)
    return path
