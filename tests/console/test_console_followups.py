"""The console's alert pages as a dispatcher reads them: the list of alerts in force, the
sender's full name, zones by name, an asking alert's text, expression errors while typing."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from playwright.async_api import Page, expect

from dispatcher.access.auth import Role
from dispatcher.console.web import CONSOLE
from tests.console.conftest import Console, sign_in
from tests.support import AUTH

pytestmark = pytest.mark.asyncio(loop_scope="session")

GAS = "Gas leak at the Chemistry Building. Evacuate now and avoid the area until told it is safe."


async def post(console: Console, **body: Any) -> str:
    """An e-mail-only drill sent through the API; its id."""
    request = {"kind": "emergency", "mode": "drill", "audience": "all", "channels": ["email"],
               "text": GAS, **body}
    resp = await console.run.post_alert(request)
    assert resp.status == 202, await resp.text()
    alert_id: str = (await resp.json())["id"]
    return alert_id


async def settled(console: Console, alert_id: str) -> None:
    """Wait until the alert is no longer dispatching."""
    async with asyncio.timeout(60):
        while True:
            resp = await console.run.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)
            if (await resp.json())["state"] != "dispatching":
                return
            await asyncio.sleep(0.1)


class TestActiveAlerts:
    """The front page lists what the public page shows: no replaced or cleared alerts."""

    async def test_update_and_all_clear_drop_what_they_end(
        self, console: Console, page: Page
    ) -> None:
        """An update replaces its alert; an all clear ends the alert it names."""
        first = await post(console)
        update = await post(console, references=first,
                            text="Update: the gas leak at the Chemistry Building is contained. "
                            "Stay away from the building.")
        await sign_in(page, console, "dana")
        await page.goto(console.url)
        rows = page.locator("tr[data-alert]")
        await expect(page.locator(f'tr[data-alert="{update}"]')).to_have_count(1)
        await expect(page.locator(f'tr[data-alert="{first}"]')).to_have_count(0)
        clear = await post(console, kind="all_clear", references=update,
                           text="All clear: the gas leak at the Chemistry Building is over. "
                           "Normal activities resume.")
        await page.reload()
        await expect(page.locator(f'tr[data-alert="{clear}"]')).to_have_count(1)
        await expect(page.locator(f'tr[data-alert="{update}"]')).to_have_count(0)
        assert await rows.count() >= 1
        public = await (await console.run.client.get("/public/alerts.json")).json()
        shown = {a["id"] for a in public["alerts"]}
        assert first not in shown and update not in shown


class TestAlertPage:
    """What a dispatcher reads on one alert's page."""

    async def test_asking_alert_and_zones_by_name(self, console: Console, page: Page) -> None:
        """The answer link is a readable placeholder; answers per zone name the zone."""
        alert_id = await post(console, ask={"question": "Are you safe?"})
        await settled(console, alert_id)
        await console.run.service.responses.record_answer(
            alert_id=alert_id, person_id="P000001", option="safe", channel="sms")
        await sign_in(page, console, "dana")
        await page.goto(console.url + f"alerts/{alert_id}")
        message = page.locator("blockquote.message")
        await expect(message).to_contain_text("[personal answer link]")
        assert "{answer_link}" not in await page.content()
        zones = console.run.service.audience.zones
        answers = page.locator('table:has(caption:text("Answers by zone")) tbody th')
        await expect(answers.first).to_be_visible()
        names = await answers.all_inner_texts()
        assert names and all(n in {z.name for z in zones.values()} for n in names), names

    async def test_sent_by_full_name_and_map_labels(self, console: Console, page: Page) -> None:
        """The map labels zones by name; the page says who sent the alert by full name."""
        accounts = console.run.client.server.app[CONSOLE].accounts
        if await accounts.users.get("rosa") is None:
            await accounts.add_user("rosa", "dispatcher-password-0009", role=Role.DISPATCHER,
                                    full_name="Rosa Martínez", actor="tests")
        await page.goto(console.url)
        await page.get_by_label("User name").fill("rosa")
        await page.get_by_label("Password").fill("dispatcher-password-0009")
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(console.url)
        await page.goto(console.url + "compose")
        labels = await page.locator(".zone-map text").all_text_contents()
        assert "North Campus" in labels and "a" not in labels, labels
        await page.get_by_label("Message in English").fill(GAS)
        await expect(page.locator("#audience-total")).to_be_visible()
        await page.locator("#mode-drill").check()
        for box in await page.locator('#channels input[type="checkbox"]').all():
            if await box.get_attribute("value") != "email":
                await box.uncheck()
        await page.get_by_role("button", name="Check and send").click()
        await page.get_by_role("button", name=re.compile("^Yes, send")).click()
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        await expect(page.locator("#sent-by")).to_have_text("Rosa Martínez")
        alert_id = page.url.rsplit("/", 1)[-1]
        await page.goto(console.url)
        await expect(page.locator(f'tr[data-alert="{alert_id}"]')).to_contain_text(
            "by Rosa Martínez")
        await page.goto(console.url + "history")
        row = page.locator("tr", has=page.locator(f'a[href="/console/alerts/{alert_id}"]'))
        await expect(row).to_contain_text("Rosa Martínez")


class TestExpressionErrors:
    """An expression that does not parse is named once, where it is wrong, while typing."""

    async def test_error_under_the_field_with_one_position(
        self, console: Console, page: Page
    ) -> None:
        """The error quotes the word and one position (from 1), under the field as it is typed."""
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("Message in English").fill(GAS)
        await expect(page.locator("#audience-total")).to_be_visible()
        await page.get_by_label("People matching an expression").check()
        await page.get_by_label("Expression", exact=True).fill("role:student adn staff")
        under = page.locator("#expression-errors .field-error")
        await expect(under).to_contain_text("at position 14, found 'adn'")
        text = await under.inner_text()
        assert "character" not in text and text.count("position") == 1, text
        await expect(page.locator(".preview-problems")).to_contain_text(
            "at position 14, found 'adn'")
        await page.get_by_label("Expression", exact=True).fill("role:student or role:staff")
        await expect(under).to_have_count(0)


class TestTemplateLanguages:
    """A template filled in English only previews in Spanish without English values."""

    async def test_choice_and_free_text_in_spanish(self, console: Console, page: Page) -> None:
        """The threat is offered as a choice and shown in Spanish; the place loses 'the'."""
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("Template (optional)").select_option("lockdown")
        threat = page.get_by_label("Threat", exact=True)
        await expect(threat).to_be_visible()
        offered = await page.locator("#choices-threat option").evaluate_all(
            "options => options.map(o => o.value)")
        assert "Shots fired" in offered, offered
        await threat.fill("Shots fired")
        await page.get_by_label("Location", exact=True).fill("the 300 block of Walnut Street")
        spanish = page.locator("#marked-es")
        await expect(spanish).to_contain_text(
            "EMERGENCIA: Disparos reportados en 300 block of Walnut Street.")
        text = await spanish.inner_text()
        assert "Shots" not in text and " the " not in text, text
