"""Browser fixtures: Debian's Chromium under Playwright, and a campus site hosting the banner."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web

from channels.sandbox.broker import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.exists()
# No browser download is possible here: Playwright drives the system's Chromium.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).resolve().parent.parent / "assets" / "axe.min.js"

# A campus page with its own script, globals and loud styles, some aimed at the banner's
# own class names: none of it may reach the banner, and the banner may change none of it.
HOST_PAGE = """<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<title>Example University news</title>
<style>
  body {{ font-family: serif; color: rgb(10, 20, 30); background: rgb(255, 255, 240); }}
  p {{ font-size: 31px; color: rgb(200, 0, 0); }}
  button {{ background: rgb(0, 255, 0); }}
  section, div {{ border: 7px solid rgb(1, 2, 3); }}
  .banner, .headline, [role=alert] {{ display: none !important; }}
</style>
<script>
  var hostCounter = 41;
  window.hostValue = "kept";
  function hostFunction() {{ return "host"; }}
  window.globalsBefore = Object.getOwnPropertyNames(window);
</script>
<script src="{script}" data-poll-seconds="{poll}" defer{extra}></script>
</head>
<body>
<main>
<h1 id="title">Campus news</h1>
<p id="para">The library is open late this week.</p>
</main>
<script>hostCounter += 1;</script>
</body>
</html>
"""


class CampusSite:
    """A web site of the campus on its own origin, whose page carries the banner tag."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.script = ""
        self.extra = ""
        self.poll_s = 2
        self.lang = "en"
        self._runner: web.AppRunner | None = None

    def page(self) -> str:
        """The host page as served now."""
        return HOST_PAGE.format(script=self.script, poll=self.poll_s, extra=self.extra,
                                lang=self.lang)

    async def start(self) -> None:
        """Serve the page on 127.0.0.1."""
        async def home(_request: web.Request) -> web.Response:
            return web.Response(text=self.page(), content_type="text/html")

        app = web.Application()
        app.router.add_get("/", home)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()


@pytest_asyncio.fixture
async def campus_site() -> AsyncIterator[CampusSite]:
    """The campus site, started before Clarion so that its origin can be configured."""
    site = CampusSite(free_port())
    await site.start()
    yield site
    await site.stop()


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[object]:
    """Headless Chromium (Debian's) under Playwright."""
    if not CHROMIUM_INSTALLED:
        pytest.skip("Debian's chromium is not installed (`make tools` installs it)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        await chromium.close()


@pytest.fixture
def axe_source() -> str:
    """axe-core, vendored (see tests/assets/README.md)."""
    return AXE.read_text(encoding="utf-8")
