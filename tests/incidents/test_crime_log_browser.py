"""The public crime log in Chromium on a 375 px phone: no sideways scroll, the public page's
style, readable case numbers, nothing axe-core finds; its screenshot for the docs."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest_asyncio
from playwright.async_api import Browser, async_playwright

from tests.conftest import SettingsFactory
from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, axe_violations
from tests.support import AUTH, Running, start_service

PHONE = {"viewport": {"width": 375, "height": 812}, "device_scale_factor": 2,
         "is_mobile": True, "has_touch": True}
# Long words and a long place: a log that must still wrap at 375 px.
LONG = {"nature": "Theft of an unattended electric-assisted cargo bicycle and its "
                  "detachable battery pack (serial-numbered, engraved)",
        "location": "Northeast parking structure, level 3, beside the electric-vehicle "
                    "charging stations"}


@pytest_asyncio.fixture
async def served(make_settings: SettingsFactory) -> AsyncIterator[Running]:
    """The service with the example incidents and one long entry."""
    run = await start_service(make_settings(incidents={"timezone": "America/New_York"}))
    try:
        resp = await run.client.post("/v1/incidents", headers=AUTH, json={
            "reported_at": (datetime.now(tz=UTC) - timedelta(days=20)).isoformat(),
            "geography": "on_campus", **LONG})
        assert resp.status == 201, await resp.text()
        yield run
    finally:
        await run.client.close()


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless."""
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


class TestOnAPhone:
    """The daily crime log read at 375 px."""

    async def test_fits_is_styled_and_passes_axe(self, served: Running, browser: Browser) -> None:
        """No sideways scroll, the public stylesheet applied, case numbers like 2026-000001."""
        url = str(served.client.make_url("/public/crime-log"))
        ctx = await browser.new_context(**PHONE)
        try:
            page = await ctx.new_page()
            blocked: list[str] = []
            page.on("console", lambda m: blocked.append(m.text) if m.type == "error" else None)
            await page.goto(url)
            width = await page.evaluate("() => document.scrollingElement.scrollWidth")
            assert width <= 375, width
            border = await page.locator(".entry").first.evaluate(
                "e => getComputedStyle(e).borderLeftWidth")
            assert border == "10px"
            assert blocked == []
            cases = await page.locator(".entry .kind").all_text_contents()
            assert len(cases) >= 5
            assert all(re.fullmatch(r"Case \d{4}-\d{6}", c.strip()) for c in cases), cases
            assert LONG["nature"] in await page.locator("main").inner_text()
            folder = os.environ.get("CLARION_SCREENSHOTS")
            if folder:  # Playwright makes the folder when it is missing.
                await page.screenshot(path=str(Path(folder) / "crime-log-375.png"))
        finally:
            await ctx.close()
        # axe-core is injected as a script: this context lets it past the page's CSP.
        ctx = await browser.new_context(**PHONE, bypass_csp=True)
        try:
            page = await ctx.new_page()
            await page.goto(url)
            assert await axe_violations(page) == []
        finally:
            await ctx.close()
