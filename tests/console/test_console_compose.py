"""The compose form under stress, in a real browser: a draft outlives its session, the policy's
rewrite is one button, a drill's Clery record is asked for, and an alert can ask "Are you safe?".
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from channels.sandbox.push import PUSH
from tests.console.conftest import ACCOUNTS, Console, axe_violations, sign_in
from tests.console.test_console_browser import alert_id_of, final_status, settled_total

pytestmark = pytest.mark.asyncio(loop_scope="session")

NAMING = "A student, Maria Lopez, reported a robbery at the library at 9 pm. Lock your doors."
REWRITTEN = "A student reported a robbery at the library at 9 pm. Lock your doors."
DRILL = "Evacuation drill. Leave your building by the nearest exit now."


@pytest_asyncio.fixture(loop_scope="session")
async def checked(browser: Browser) -> AsyncIterator[Page]:
    """A page whose context lets axe-core's script past the console's CSP."""
    ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    ctx.set_default_timeout(15_000)
    yield await ctx.new_page()
    await ctx.close()


async def sign_in_again(page: Page) -> None:
    """Sign in as dana on the sign-in page shown, and land on the restored draft."""
    await page.get_by_label("User name").fill("dana")
    await page.get_by_label("Password").fill(ACCOUNTS["dana"].password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(r"/console/compose\?draft=restore$"))


class TestDrafts:
    """What the dispatcher types is kept per user and comes back after signing in again."""

    async def test_expired_session_keeps_the_draft(self, console: Console,
                                                   checked: Page) -> None:
        """The preview says the session expired without leaving; signing in restores it."""
        page = checked
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        message = page.get_by_label("Message in English")
        await message.fill(DRILL)
        await settled_total(page)
        await console.run.service.db.execute(
            "DELETE FROM console_sessions WHERE user_name = ?", ("dana",))
        await message.press_sequentially(" Go")
        expired = page.locator("#session-expired")
        await expect(expired).to_contain_text(
            "Your session expired: sign in again (your draft is kept)")
        assert page.url == console.url + "compose"
        await expect(message).to_have_value(DRILL + " Go")
        assert await axe_violations(page) == []
        await expired.get_by_role("button", name="sign in again").click()
        await expect(page.locator(".error-summary")).to_contain_text("Your session expired")
        assert await axe_violations(page) == []
        await sign_in_again(page)
        await expect(page.locator("#draft-restored")).to_be_visible()
        assert await axe_violations(page) == []
        # Even what was typed after the session ended.
        await expect(page.get_by_label("Message in English")).to_have_value(DRILL + " Go")
        # Another machine: a fresh browser offers the same draft.
        await page.context.clear_cookies()
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await expect(page.locator("#draft-kept")).to_contain_text("unsent draft")
        await page.get_by_role("button", name="Discard it").click()
        await expect(page.locator("#draft-kept")).to_have_count(0)
        await expect(page.get_by_label("Message in English")).to_have_value("")


    async def test_without_javascript(self, console: Console, browser: Browser) -> None:
        """Sending the form after the session ended signs in again and keeps every field."""
        ctx = await browser.new_context(java_script_enabled=False)
        try:
            page = await ctx.new_page()
            await sign_in(page, console, "dana")
            await page.goto(console.url + "compose")
            await page.get_by_label("A drill (an exercise people take part in)").check()
            await page.get_by_label("Message in English").fill(DRILL)
            await page.get_by_label("Central Campus (academic core)").check()
            await console.run.service.db.execute(
                "DELETE FROM console_sessions WHERE user_name = ?", ("dana",))
            await page.get_by_role("button", name="Check and send").click()
            await expect(page.locator(".error-summary")).to_contain_text(
                "Your session expired")
            await sign_in_again(page)
            await expect(page.get_by_label("Message in English")).to_have_value(DRILL)
            assert await page.get_by_label("Central Campus (academic core)").is_checked()
            assert await page.locator("#mode-drill").is_checked()
        finally:
            await ctx.close()


class TestRewrites:
    """Each confidentiality mark offers the policy's words, applied by the server."""

    async def test_one_step_rewrite_of_the_whole_phrase(self, console: Console,
                                                        checked: Page) -> None:
        """"A student, Maria Lopez," becomes "A student", never "a student, a student"."""
        page = checked
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("Message in English").fill(NAMING)
        mark = page.locator("#marked-en mark.violation")
        await expect(mark).to_have_text(re.compile(r"^A student, Maria Lopez,"))
        button = page.get_by_role("button", name="Replace with “A student”")
        await expect(button).to_be_visible()
        assert await axe_violations(page) == []
        await button.click()
        await expect(page.get_by_label("Message in English")).to_have_value(REWRITTEN)
        await expect(page.locator(".ok-line")).to_have_text("No problems found.")


    async def test_rewrite_without_javascript(self, console: Console, browser: Browser) -> None:
        """The button posts the form; the server puts the words in and shows the form again."""
        ctx = await browser.new_context(java_script_enabled=False)
        try:
            page = await ctx.new_page()
            await sign_in(page, console, "dana")
            await page.goto(console.url + "compose")
            await page.get_by_label("Message in English").fill(NAMING)
            await page.get_by_role("button", name="Update the preview").click()
            await page.get_by_role("button", name="Replace with “A student”").click()
            await expect(page.get_by_label("Message in English")).to_have_value(REWRITTEN)
            await expect(page.locator("#marked-en mark")).to_have_count(0)
        finally:
            await ctx.close()


class TestDrillRecord:
    """A console drill's Clery record holds what the dispatcher entered."""

    async def test_compose_drill_fields_reach_the_record(self, console: Console,
                                                         checked: Page) -> None:
        """Entered fields are in the record, and the year's report does not warn about it."""
        page = checked
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("A drill (an exercise people take part in)").check()
        await page.get_by_label("Message in English").fill(DRILL)
        await page.get_by_label("What does it exercise?").fill(
            "Evacuation of every building, fire procedures")
        await page.get_by_label("No, it is unannounced").check()
        await page.get_by_label("Yes, the procedures were publicized with it").check()
        await settled_total(page)
        assert await axe_violations(page) == []
        await page.get_by_role("button", name="Check and send").click()
        await expect(page.locator("#confirm-drill")).to_contain_text(
            "Unannounced; procedures publicized")
        assert await axe_violations(page) == []
        await page.get_by_role("button", name="Yes, send now").click()
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        record = await console.run.service.alerts.get(alert_id_of(page))
        assert record is not None and record.request.drill is not None
        drill = record.request.drill
        assert drill.description == "Evacuation of every building, fire procedures"
        assert not drill.announced and drill.procedures_publicized
        await final_status(console, record.id)
        service = console.run.service
        year = datetime.fromtimestamp(record.created_at / 1000, UTC).year
        report = await service.records.report(year, now_ms=service.clock.now_ms())
        codes = {w.code for w in report.warnings}
        assert "no_publicized_test" not in codes and "no_qualifying_test" not in codes
        assert not [w for w in report.warnings if w.alert_id == record.id]

    async def test_drills_page_asks_for_the_record(self, console: Console,
                                                   checked: Page) -> None:
        """An empty description is a located error; the run keeps what was entered."""
        page = checked
        await sign_in(page, console, "drew")
        await page.goto(console.url + "drills")
        described = page.locator("#monthly-siren-test-description")
        await described.fill("")
        await page.get_by_role("button", name="Run “monthly-siren-test” now").click()
        summary = page.locator(".error-summary")
        await expect(summary).to_contain_text("Enter what the drill exercises")
        assert await axe_violations(page) == []
        await page.locator("#monthly-siren-test-description").fill("Siren test, north campus")
        await page.locator("#monthly-siren-test-announced-no").check()
        await page.get_by_role("button", name="Run “monthly-siren-test” now").click()
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        record = await console.run.service.alerts.get(alert_id_of(page))
        assert record is not None and record.request.drill is not None
        assert record.request.drill.description == "Siren test, north campus"
        assert not record.request.drill.announced
        await final_status(console, record.id)


class TestAsking:
    """The compose form asks "Are you safe?"; the answers show on the alert's page."""

    async def test_ask_preview_confirm_and_answers(self, console: Console,
                                                   checked: Page) -> None:
        """Ticked, it is in the preview and the confirmation; the sandbox's people tap their
        push notification's answer link, and the alert's page counts what they answered."""
        push = console.sandbox.app[PUSH]
        saved = (push.click_rate, push.click_delay_s, push.need_help_rate)
        push.click_rate, push.click_delay_s, push.need_help_rate = 1.0, 0.1, 0.5
        tapped = len(push.clicks)
        try:
            page = checked
            await sign_in(page, console, "dana")
            await page.goto(console.url + "compose")
            await page.get_by_label("A drill (an exercise people take part in)").check()
            await page.get_by_label("Message in English").fill(DRILL)
            await page.get_by_label("Ask “Are you safe?”").check()
            await expect(page.locator("#preview-question")).to_contain_text("Are you safe?")
            await page.get_by_label("Central Campus (academic core)").check()
            await settled_total(page)
            assert await axe_violations(page) == []
            await page.get_by_role("button", name="Check and send").click()
            await expect(page.locator("#confirm-question-asked")).to_contain_text(
                "Are you safe?")
            assert await axe_violations(page) == []
            await page.get_by_role("button", name="Yes, send now").click()
            await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
            alert_id = alert_id_of(page)
            record = await console.run.service.alerts.get(alert_id)
            assert record is not None and record.request.ask is not None
            await final_status(console, alert_id)
            pushed = await console.run.service.db.fetchval(
                "SELECT COUNT(*) FROM deliveries WHERE alert_id = ? AND channel = 'push'"
                " AND state IN ('accepted', 'delivered')",
                (alert_id,))
            assert pushed > 1
            try:
                async with asyncio.timeout(30):
                    while len(push.clicks) - tapped < pushed:
                        await asyncio.sleep(0.1)
            except TimeoutError:
                raise AssertionError((pushed, len(push.clicks) - tapped)) from None
        finally:
            push.click_rate, push.click_delay_s, push.need_help_rate = saved
        answered = push.clicks[tapped:]
        assert all(status == 200 for _, status in answered), answered
        safe = sum(1 for option, _ in answered if option == "safe")
        need_help = len(answered) - safe
        # The page's tally is read again every few seconds, not on every answer.
        shown = page.locator('[data-answer="safe"]')
        async with asyncio.timeout(30):
            while await shown.inner_text() != f"{safe:,}":
                await asyncio.sleep(0.5)
                await page.reload()
        await expect(page.locator('[data-answer="need_help"]')).to_contain_text(f"{need_help:,}")
        await expect(page.locator("tr[data-zone='b']")).to_be_visible()
        if need_help:
            await page.get_by_role("link", name="who, where and how to reach them").click()
            await expect(page.locator("#need-help")).to_be_visible()
        assert await axe_violations(page) == []
