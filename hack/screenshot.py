"""Saves a screenshot of a page of the web UI, in Debian's headless Chromium.

    .venv/bin/python hack/screenshot.py "$SAGAZ_API_URL/#/sagas/default/order-1002" docs/saga.png

How the README's picture of the compensated demo saga is made (after `make demo`). The page is
shot once its graph is drawn; the width is that of a laptop screen.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from harness import browser


async def shoot(url: str, out: Path, *, ready: str, width: int, height: int) -> None:
    async with browser.chromium() as running, browser.page(running) as (page, errors):
        await page.set_viewport_size({"width": width, "height": height})
        await page.goto(url)
        await page.locator(ready).first.wait_for(timeout=30_000)
        await page.screenshot(path=str(out), full_page=False)
        if errors:
            raise SystemExit("the page reported errors:\n" + "\n".join(errors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--ready", default="svg.dag .node", help="CSS selector to wait for")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    asyncio.run(shoot(args.url, args.out, ready=args.ready, width=args.width, height=args.height))


if __name__ == "__main__":
    main()
