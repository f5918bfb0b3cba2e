"""The website banner in real Chromium, on a campus page of another origin."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from playwright.async_api import Browser, Page, Response

from tests.conftest import SettingsFactory
from tests.public.conftest import CampusSite
from tests.public.test_public_http import ALL_CLEAR, GAS_LEAK, ids, send, until
from tests.support import Running, start_service

BANNER = "clarion-alert-banner"
# One poll of the host page (2 s) and room for a slow, shared machine to render.
ONE_POLL_MS = 2000 + 3000
# What axe must not find, on any page we serve or host.
AXE_RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


@pytest_asyncio.fixture
async def clarion(make_settings: SettingsFactory, campus_site: CampusSite) -> AsyncIterator[
    Running
]:
    """Clarion, allowing the campus site's origin to read its feed."""
    run = await start_service(make_settings(public={"allowed_origins": [campus_site.origin]}))
    campus_site.script = str(run.client.make_url("/public/banner.js"))
    yield run
    await run.client.close()


class Watched:
    """A page with its script errors and its feed responses recorded."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.polls = 0
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("response", self._response)

    def _response(self, response: Response) -> None:
        if response.url.endswith("/public/alerts.json"):
            self.polls += 1

    async def next_poll(self) -> None:
        """Wait until the banner has asked for the feed once more (and handled the answer)."""
        seen = self.polls
        async with asyncio.timeout(ONE_POLL_MS / 1000 + 5):
            while self.polls <= seen:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)


async def open_site(browser: Browser, site: CampusSite, **context: Any) -> Watched:
    page = await (await browser.new_context(**context)).new_page()
    watched = Watched(page)
    await page.goto(site.origin + "/")
    await watched.next_poll()
    return watched


async def banner_text(page: Page) -> str:
    alert = page.locator(f"{BANNER} [role=alert]")
    await alert.wait_for(state="visible", timeout=ONE_POLL_MS)
    return await alert.inner_text()


async def axe_violations(page: Page, axe_source: str) -> list[dict[str, Any]]:
    await page.evaluate(axe_source)
    found: list[dict[str, Any]] = await page.evaluate(
        """rules => axe.run(document, {runOnly: {type: "tag", values: rules}}).then(r =>
             r.violations.map(v => ({id: v.id, impact: v.impact,
                                     nodes: v.nodes.map(n => n.target)})))""",
        AXE_RULES,
    )
    return found


class TestBannerLifecycle:
    """The banner appears within one poll of a new alert and goes on all clear."""

    async def test_appears_then_disappears_on_all_clear(
        self, browser: Browser, clarion: Running, campus_site: CampusSite
    ) -> None:
        site = await open_site(browser, campus_site)
        assert await site.page.locator(BANNER).count() == 0

        alert_id = await send(clarion, {"kind": "emergency", "text": GAS_LEAK})
        doc = await until(clarion, lambda d: ids(d) == [alert_id])
        text = await banner_text(site.page)
        assert "Gas leak at the Chemistry Building" in text and "DRILL" not in text
        section = site.page.locator(f"{BANNER} section")
        assert await section.get_attribute("data-alert-id") == alert_id
        link = site.page.locator(f"{BANNER} a")
        assert await link.get_attribute("href") == doc["page"]

        await send(clarion, {"kind": "all_clear", "text": ALL_CLEAR, "references": alert_id})
        await until(clarion, lambda d: d["status"] == "all_clear")
        await site.page.locator(BANNER).wait_for(state="detached", timeout=ONE_POLL_MS)
        assert site.errors == []

    async def test_a_drill_is_shown_as_a_drill(
        self, browser: Browser, clarion: Running, campus_site: CampusSite
    ) -> None:
        site = await open_site(browser, campus_site)
        drill_id = await send(clarion, {"kind": "emergency", "mode": "drill", "text": GAS_LEAK})
        await until(clarion, lambda d: ids(d) == [drill_id])
        text = await banner_text(site.page)
        assert text.startswith("DRILL: this is an exercise, not a real emergency.")
        assert await site.page.locator(f"{BANNER} section").get_attribute("data-drill") == "true"

    async def test_dismissed_stays_dismissed_until_a_new_alert(
        self, browser: Browser, clarion: Running, campus_site: CampusSite
    ) -> None:
        site = await open_site(browser, campus_site)
        first = await send(clarion, {"kind": "emergency", "text": GAS_LEAK})
        await until(clarion, lambda d: ids(d) == [first])
        await banner_text(site.page)
        await site.page.get_by_role("button", name="Dismiss alert").click()
        assert await site.page.locator(BANNER).count() == 0
        await site.next_poll()
        assert await site.page.locator(BANNER).count() == 0
        second = await send(clarion, {"kind": "timely_warning", "text": GAS_LEAK})
        await until(clarion, lambda d: second in ids(d))
        assert "Gas leak" in await banner_text(site.page)

    async def test_spanish_host_page_gets_a_spanish_banner(
        self, browser: Browser, clarion: Running, campus_site: CampusSite
    ) -> None:
        campus_site.lang = "es"
        site = await open_site(browser, campus_site)
        drill_id = await send(clarion, {"kind": "emergency", "mode": "drill", "text": GAS_LEAK})
        await until(clarion, lambda d: ids(d) == [drill_id])
        assert (await banner_text(site.page)).startswith("SIMULACRO")
        link = site.page.locator(f"{BANNER} a")
        assert (await link.get_attribute("href") or "").endswith("/public/?lang=es")


class TestHostPageUntouched:
    """No globals, no styles either way, no errors, and silence when Clarion is away."""

    async def test_globals_and_styles_of_the_host_stay_as_they_were(
        self, browser: Browser, clarion: Running, campus_site: CampusSite
    ) -> None:
        site = await open_site(browser, campus_site)
        page = site.page
        style = """() => { const s = getComputedStyle(document.getElementById("para"));
                           return [s.fontSize, s.color, getComputedStyle(document.body).color]; }"""
        before = await page.evaluate(style)
        alert_id = await send(clarion, {"kind": "emergency", "text": GAS_LEAK})
        await until(clarion, lambda d: ids(d) == [alert_id])
        await banner_text(page)

        assert await page.evaluate(style) == before == ["31px", "rgb(200, 0, 0)",
                                                          "rgb(10, 20, 30)"]
        added = await page.evaluate(
            """() => Object.getOwnPropertyNames(window)
                       .filter(n => !window.globalsBefore.includes(n) && n !== "globalsBefore")"""
        )
        assert added == []
        assert await page.evaluate("[hostCounter, hostValue, hostFunction()]") == [
            42, "kept", "host"]
        # The host's rules aimed at the banner's names reach none of it: it is in a shadow root.
        headline = page.locator(f"{BANNER} .headline")
        assert await headline.is_visible()
        font = await headline.evaluate("e => getComputedStyle(e).fontSize")
        assert font != "31px"
        assert await headline.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
        assert site.errors == []

    async def test_silent_when_clarion_is_unreachable(
        self, browser: Browser, campus_site: CampusSite
    ) -> None:
        from channels.sandbox.broker import free_port

        campus_site.script = f"http://127.0.0.1:{free_port()}/public/banner.js"
        page = await (await browser.new_context()).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        await page.goto(campus_site.origin + "/")
        await page.wait_for_timeout(500)
        assert errors == []
        assert await page.evaluate("hostCounter") == 42
        assert await page.locator(BANNER).count() == 0

    async def test_silent_when_the_feed_is_unreachable(
        self, browser: Browser, clarion: Running, campus_site: CampusSite
    ) -> None:
        from channels.sandbox.broker import free_port

        campus_site.extra = f' data-feed="http://127.0.0.1:{free_port()}/public/alerts.json"'
        page = await (await browser.new_context()).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        await page.goto(campus_site.origin + "/")
        async with asyncio.timeout(10):
            while not failed:
                await asyncio.sleep(0.05)
        assert errors == [] and await page.locator(BANNER).count() == 0
        assert await page.evaluate("hostCounter") == 42


class TestAccessibility:
    """axe-core finds nothing on the banner, the public page or the demo."""

    async def test_banner_on_the_host_page(
        self, browser: Browser, clarion: Running, campus_site: CampusSite, axe_source: str
    ) -> None:
        site = await open_site(browser, campus_site)
        alert_id = await send(clarion, {"kind": "emergency", "text": GAS_LEAK})
        await until(clarion, lambda d: ids(d) == [alert_id])
        await banner_text(site.page)
        assert await axe_violations(site.page, axe_source) == []

    async def test_public_page_and_demo(
        self, browser: Browser, clarion: Running, axe_source: str
    ) -> None:
        await send(clarion, {"kind": "emergency", "mode": "drill", "text": GAS_LEAK})
        first = await send(clarion, {"kind": "timely_warning", "text": GAS_LEAK})
        await send(clarion, {"kind": "all_clear", "text": ALL_CLEAR})
        later = await send(clarion, {"kind": "emergency", "text": GAS_LEAK,
                                     "instruction": "Leave by the north doors."})
        await until(clarion, lambda d: later in ids(d) and first not in ids(d))
        # axe is injected past the page's CSP; the page itself runs no script.
        context = await browser.new_context(bypass_csp=True, viewport={"width": 375,
                                                                       "height": 740})
        page = await context.new_page()
        for path in ("/public/", "/public/?lang=es", "/public/demo"):
            await page.goto(str(clarion.client.make_url(path)))
            if path == "/public/demo":
                await banner_text(page)
            assert await axe_violations(page, axe_source) == [], path
        # Readable on a phone: nothing wider than the screen.
        await page.goto(str(clarion.client.make_url("/public/")))
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375

    async def test_the_page_works_under_its_own_csp(
        self, browser: Browser, clarion: Running
    ) -> None:
        page = await (await browser.new_context()).new_page()
        blocked: list[str] = []
        page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text
                else None)
        await page.goto(str(clarion.client.make_url("/public/")))
        # The stylesheet loads under `style-src 'self'`: the calm box has its colour.
        colour = await page.locator(".calm").evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour == "rgb(232, 245, 238)"
        assert blocked == []
