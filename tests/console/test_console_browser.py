"""The console in a real browser: sign in, compose with the live policy, pick zones, send,
follow, drills, approvals, cancel and all clear, roles, the keyboard alone, and axe-core."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, expect

from dispatcher.domain import ChannelKind
from tests.console.conftest import (
    ACCOUNTS,
    Console,
    axe_violations,
    shot,
    sign_in,
)
from tests.support import AUTH

pytestmark = pytest.mark.asyncio(loop_scope="session")

NAMING = "A student, Maria Lopez, reported a robbery at the library at 9 pm. Lock your doors."
FIXED = "A robbery was reported at the library at 9 pm. Lock your doors and call 911 with tips."
GAS = "Gas leak at the Chemistry Building. Evacuate now and avoid the area until told it is safe."
KINDS = ("sms", "email", "push", "siren", "signage", "pa")


async def total(page: Page) -> int:
    """The audience count the preview shows."""
    value = await page.locator("#audience-total").get_attribute("data-total")
    return int(value or "0")


async def settled_total(page: Page, not_equal: int | None = None) -> int:
    """Wait for the preview to show a count (different from `not_equal` when given)."""
    async with asyncio.timeout(15):
        while True:
            if await page.locator("#audience-total").count():
                value = await total(page)
                if not_equal is None or value != not_equal:
                    return value
            await asyncio.sleep(0.1)


async def final_status(console: Console, alert_id: str) -> dict[str, Any]:
    """The alert's status once every delivery has its final receipt.

    SMS and devices report back (delivered or failed); e-mail and push end accepted.
    """
    doc: dict[str, Any] = {}
    try:
        async with asyncio.timeout(60):
            while True:
                resp = await console.run.client.get(f"/v1/alerts/{alert_id}", headers=AUTH)
                doc = await resp.json()
                chans = doc["channels"]
                if doc["state"] != "dispatching" and all(
                    chans[k]["delivered"] + chans[k]["failed"]
                    == chans[k]["total"] for k in ("sms", "siren", "signage", "pa") if k in chans
                ):
                    return doc
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"alert {alert_id} never settled: {doc}") from None


async def zone_name(console: Console, zone: str) -> str:
    """A zone's name as the console shows it."""
    return console.run.service.audience.zones[zone].name


def alert_id_of(page: Page) -> str:
    """The id in a follow page's address."""
    match = re.search(r"/console/alerts/([0-9a-f]+)$", page.url)
    assert match, page.url
    return match.group(1)


async def compose(page: Page, console: Console, text: str, *, zone: str | None = None) -> None:
    """Open the compose page, type the message, optionally pick one zone on the map."""
    await page.goto(console.url + "compose")
    await page.get_by_label("Message in English").fill(text)
    everyone = await settled_total(page)
    if zone is not None:
        await page.locator(f'.zone[data-zone="{zone}"] polygon').click()
        await settled_total(page, not_equal=everyone)


class TestSignIn:
    """People sign in with their name and password; sessions are HttpOnly, SameSite=Strict."""

    async def test_wrong_password_then_right(self, console: Console, page: Page,
                                             shots: Path) -> None:
        """A wrong password shows the error summary; the right one opens the console."""
        await page.goto(console.url)
        assert "/console/sign-in" in page.url
        await page.get_by_label("User name").fill("dana")
        await page.get_by_label("Password").fill("not-the-password")
        await page.get_by_role("button", name="Sign in").click()
        summary = page.locator(".error-summary")
        await expect(summary).to_contain_text("The user name or password is not right")
        await shot(page, shots, "sign-in-error")
        await page.get_by_label("Password").fill(ACCOUNTS["dana"].password)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Active alerts")).to_be_visible()
        cookie = next(c for c in await page.context.cookies() if c["name"] == "clarion_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in to Clarion")).to_be_visible()
        await page.goto(console.url + "compose")
        assert "/console/sign-in" in page.url


class TestCompose:
    """The policy runs as the dispatcher types; zones on the map change the count."""

    async def test_violation_marked_then_fixed(self, console: Console, page: Page,
                                               shots: Path) -> None:
        """A named person is marked at its span with the rule's message, and goes when fixed."""
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("Message in English").fill(NAMING)
        mark = page.locator("#marked-en mark.violation")
        await expect(mark).to_have_count(1)
        await expect(mark).to_contain_text("Maria Lopez")
        assert await mark.get_attribute("data-rule") == "confidentiality.name"
        item = page.locator(".violation-item[data-rule='confidentiality.name']")
        await expect(item).to_contain_text("looks like the name of a person")
        await expect(page.locator("#preview-status")).to_contain_text("1 problem")
        # Beside the message too, for a phone where the preview is further down.
        await expect(page.locator("#inline-verdict")).to_contain_text("1 policy problem")
        # Dispatchers may not override: the override box is for administrators.
        await expect(page.locator("#override")).to_have_count(0)
        await shot(page, shots, "compose-violation")
        await page.get_by_label("Message in English").fill(FIXED)
        await expect(page.locator(".ok-line")).to_have_text("No problems found.")
        await expect(page.locator("#marked-en mark")).to_have_count(0)
        await expect(page.locator("#inline-verdict")).to_contain_text("finds no problems")
        sms = page.locator(".rendering-sms [data-sms-note]")
        await expect(sms).to_contain_text(re.compile(r"\d segments?, GSM-7"))

    async def test_check_with_violation_shows_error_summary(self, console: Console,
                                                             page: Page) -> None:
        """Asking to send a message that breaks the policy returns with the problem listed."""
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("Message in English").fill(NAMING)
        await page.get_by_role("button", name="Check and send").click()
        await expect(page.locator(".error-summary")).to_be_visible()
        assert page.url.endswith("/console/compose")

    async def test_zone_on_the_map_changes_the_count(self, console: Console, page: Page,
                                                     shots: Path) -> None:
        """Clicking a zone ticks its box, fills it on the map, and the count drops."""
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("Message in English").fill(GAS)
        everyone = await settled_total(page)
        await page.locator('.zone[data-zone="a"] polygon').click()
        in_north = await settled_total(page, not_equal=everyone)
        assert 0 < in_north < everyone
        await expect(page.locator("#zone-a")).to_be_checked()
        await expect(page.locator('.zone[data-zone="a"]')).to_have_class(re.compile("chosen"))
        await shot(page, shots, "compose-zone")
        await page.locator('.zone[data-zone="a"] polygon').click()
        assert await settled_total(page, not_equal=in_north) == everyone


    async def test_admin_overrides_with_a_reason(self, console: Console, page: Page) -> None:
        """Only with a reason; the record keeps the overridden rule and the reason."""
        await sign_in(page, console, "admin")
        await compose(page, console, NAMING, zone="d-med")
        await page.get_by_label("Send even though the policy finds problems").check()
        await page.get_by_role("button", name="Check and send").click()
        summary = page.locator(".error-summary a[href='#override-reason']")
        await expect(summary).to_be_visible()
        await page.get_by_label("Reason", exact=True).fill("The family asked us to name her")
        await page.get_by_role("button", name="Check and send").click()
        await expect(page.locator("#confirm-question")).to_contain_text("Send to")
        await expect(page.get_by_text("confidentiality.name overridden")).to_be_visible()
        await page.get_by_role("button", name="Yes, send now").click()
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        entries = await console.run.service.audit.entries(alert_id_of(page))
        override = entries[0]["detail"]["override"]
        assert entries[0]["actor"] == "admin"
        assert override == {"rules": ["confidentiality.name"],
                            "reason": "The family asked us to name her"}
        await final_status(console, alert_id_of(page))

    async def test_template_fields_and_spanish(self, console: Console, page: Page) -> None:
        """A template brings its fields; both languages are previewed."""
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("Template (optional)").select_option("lockdown")
        threat = page.get_by_label("Threat", exact=True)
        await expect(threat).to_be_visible()
        await threat.fill("Armed person reported")
        await page.get_by_label("Location", exact=True).fill("the Student Union")
        await page.get_by_label("Threat es").fill("Persona armada reportada")
        await page.get_by_label("Location es").fill("el Centro Estudiantil")
        await expect(page.locator("#marked-en")).to_contain_text(
            "Armed person reported at the Student Union")
        await expect(page.locator("#marked-es")).to_contain_text("Persona armada reportada")

    async def test_expression_error_says_where(self, console: Console, page: Page) -> None:
        """A custom audience that does not parse is named with its position."""
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("Message in English").fill(GAS)
        await settled_total(page)
        await page.get_by_label("People matching an expression").check()
        await page.get_by_label("Expression", exact=True).fill("role:student and (")
        problems = page.locator(".preview-problems")
        await expect(problems).to_contain_text("at position 19")
        await page.get_by_role("button", name="Check and send").click()
        await expect(page.locator(".error-summary a[href='#expression']")).to_be_visible()


class TestSendAndFollow:
    """One confirmation states the count and channels; progress reaches done live."""

    async def test_send_follow_done_matches_sandbox(self, console: Console, page: Page,
                                                    shots: Path) -> None:
        """The follow page ends done, and its delivered counts are what the sandbox received."""
        before = await console.stats()
        await sign_in(page, console, "dana")
        await compose(page, console, GAS, zone="a")
        # Sirens and speakers are never ticked for the dispatcher: they are chosen.
        for loud in ("Outdoor sirens", "Public address speakers"):
            await expect(page.get_by_label(loud)).not_to_be_checked()
            await page.get_by_label(loud).check()
        for kind in ("siren", "pa"):
            await expect(page.locator(f'#preview tr[data-channel="{kind}"]')).to_be_visible()
        people = await total(page)
        await page.get_by_label("Name", exact=True).fill("Pat Chen")
        await page.get_by_label("Title").fill("Chief of Police")
        await page.get_by_role("button", name="Check and send").click()
        question = page.locator("#confirm-question")
        await expect(question).to_have_text(f"Send to {people:,} people on 6 channels?")
        await expect(page.locator("#confirm-loud")).to_have_text(
            "Outdoor sirens will sound and public address speakers will speak in "
            + await zone_name(console, "a") + ".")
        await shot(page, shots, "confirm")
        await page.get_by_role("button", name="Yes, send now").click()
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        alert_id = alert_id_of(page)
        # Updated by the event stream, with no reload.
        await expect(page.locator("#alert-state")).to_have_text("done", timeout=60_000)
        doc = await final_status(console, alert_id)
        after = await console.stats()
        for kind in KINDS:
            received = after[kind]["unique"] - before.get(kind, {}).get("unique", 0)
            counts = doc["channels"][kind]
            assert received == counts["accepted"] + counts["delivered"], (kind, received, counts)
        await page.reload()
        for kind in KINDS:
            row = page.locator(f'tr[data-channel="{kind}"] [data-count="delivered"]')
            await expect(row).to_have_text(f"{doc['channels'][kind]['delivered']:,}")
        await expect(page.locator('[data-percentile="50"]')).to_contain_text("s after sending")
        assert doc["channels"]["sms"]["delivered"] > 0
        await expect(page.get_by_text("Pat Chen, Chief of Police")).to_be_visible()
        await shot(page, shots, "follow-done")
        html = await page.content()
        rows = await console.run.service.db.fetchall("SELECT phone, email, push FROM people")
        leaked = [v for r in rows for v in (r["phone"], r["email"], r["push"]) if v and v in html]
        assert leaked == [], "contact data on the follow page"
        cap = await page.request.get(console.url + f"alerts/{alert_id}/cap")
        assert cap.status == 200 and b"<identifier>" + alert_id.encode() in await cap.body()


class TestDrillMode:
    """Choosing a drill or a test turns the whole page into drill mode."""

    async def test_drill_turns_the_page(self, console: Console, page: Page,
                                        shots: Path) -> None:
        """The banner shows and the body is marked, at once and after the check."""
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        banner = page.locator("#drill-banner")
        await expect(banner).to_be_hidden()
        await page.get_by_label("A drill (an exercise people take part in)").check()
        await expect(banner).to_be_visible()
        await expect(page.locator("body")).to_have_class(re.compile("drill-mode"))
        await page.get_by_label("Message in English").fill(
            "Evacuation drill. Leave your building by the nearest exit now.")
        await settled_total(page)
        await shot(page, shots, "compose-drill")
        await page.get_by_role("button", name="Check and send").click()
        await expect(page.locator("#drill-banner")).to_be_visible()
        await expect(page.locator("#confirm-question")).to_contain_text("Send to")

    async def test_a_drill_waiting_behind_a_live_alert_says_so(
        self, console: Console, browser: Browser, shots: Path
    ) -> None:
        """While the store holds a pause for the drill's SMS, its page says behind which
        alert it waits, with a link there, and passes axe; once the pause ends, it does not."""
        run = console.run
        ids = []
        for body in (
            {"kind": "emergency", "mode": "drill", "audience": "all", "channels": ["email"],
             "text": "Evacuation drill. Leave your building by the nearest exit now."},
            {"kind": "emergency", "audience": "all", "channels": ["email"], "zones": ["b"],
             "text": GAS},
        ):
            resp = await run.post_alert(body)
            assert resp.status == 202, await resp.text()
            ids.append((await resp.json())["id"])
        drill, live = ids
        # Done first: finishing an alert ends its pauses.
        await final_status(console, drill)
        pauses = run.service.pauses
        now = run.service.clock.now_ms()
        await pauses.open(ChannelKind.SMS, [drill], behind=live, now_ms=now)
        # axe-core is injected as a script: this context lets it past the page's CSP.
        ctx = await browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page = await ctx.new_page()
        try:
            await sign_in(page, console, "dana")
            await page.goto(console.url + f"alerts/{drill}")
            notice = page.locator("#waiting-behind")
            await expect(notice).to_contain_text("Waiting behind a more urgent alert")
            await expect(notice.get_by_role("link", name=live)).to_have_attribute(
                "href", f"/console/alerts/{live}")
            await shot(page, shots, "waiting-behind")
            assert await axe_violations(page) == []
            await pauses.close(ChannelKind.SMS, now_ms=now + 1)
            await page.reload()
            await expect(page.locator("#waiting-behind")).to_have_count(0)
        finally:
            await pauses.close(ChannelKind.SMS, now_ms=now + 1)
            await ctx.close()

    async def test_drill_only_role_sees_no_live_choice(self, console: Console,
                                                       page: Page) -> None:
        """A drill-only user cannot pick a real alert."""
        await sign_in(page, console, "drew")
        await page.goto(console.url + "compose")
        await expect(page.locator("#mode-live")).to_have_count(0)
        await expect(page.locator("body")).to_have_class(re.compile("drill-mode"))


class TestApproval:
    """A large live alert waits; the composer cannot approve it, a second person can."""

    async def test_second_person_approves(self, console: Console, browser: Browser,
                                          shots: Path) -> None:
        """Dana's alert to everyone is held; the admin approves it and it goes out."""
        dana = await browser.new_context(viewport={"width": 1280, "height": 900})
        admin = await browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = await dana.new_page()
            await sign_in(page, console, "dana")
            await compose(page, console, GAS)
            await page.get_by_role("button", name="Check and send").click()
            await page.get_by_role("button", name="Yes, send now").click()
            await page.wait_for_url(re.compile(r"/console/approvals/apr-"))
            await expect(page.locator("#approval-state")).to_have_text("pending")
            await expect(page.locator("#approve")).to_have_count(0)
            await expect(page.get_by_text("Someone else must approve this")).to_be_visible()
            held = page.url
            other = await admin.new_page()
            await sign_in(other, console, "admin")
            await other.goto(console.url + "approvals")
            await other.locator(f'a[href="{urlsplit(held).path}"]').click()
            await shot(other, shots, "approval")
            await other.locator("#approve").click()
            await other.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
            alert_id = alert_id_of(other)
            entries = await console.run.service.audit.entries(alert_id)
            approved = [e for e in entries if e["detail"].get("approval")]
            assert approved and approved[0]["detail"]["approval"]["approved_by"] == "admin"
            assert approved[0]["actor"] == "dana"
            await final_status(console, alert_id)
        finally:
            await dana.close()
            await admin.close()


class TestCancelAndAllClear:
    """From an alert's page: the all clear refers to it, and cancelling asks once."""

    async def test_all_clear_then_cancel(self, console: Console, page: Page,
                                         shots: Path) -> None:
        """The all clear is sent with a reference; the original is then cancelled."""
        await sign_in(page, console, "dana")
        await compose(page, console, GAS, zone="c")
        await page.get_by_role("button", name="Check and send").click()
        await page.get_by_role("button", name="Yes, send now").click()
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        first = alert_id_of(page)
        await page.get_by_role("link", name="Send the all clear").click()
        await expect(page.get_by_role("heading", name="Send the all clear")).to_be_visible()
        await expect(page.locator("#kind-all_clear")).to_be_checked()
        # The all clear starts from the alert: its zone and channels are already chosen.
        await expect(page.locator("#zone-c")).to_be_checked()
        await page.get_by_label("Message in English").fill(
            "All clear: the gas leak at the Chemistry Building is fixed. Normal activities resume.")
        await settled_total(page)
        await page.get_by_role("button", name="Check and send").click()
        await page.get_by_role("button", name="Yes, send now").click()
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        cleared = alert_id_of(page)
        assert cleared != first
        record = await console.run.service.alerts.get(cleared)
        assert record is not None and record.references_id == first
        await expect(page.get_by_role("link", name=f"alert {first}")).to_be_visible()
        await page.goto(console.url + f"alerts/{first}")
        await page.get_by_role("link", name="Cancel this alert").click()
        await page.get_by_label("Reason (kept in the record)").fill("sent to the wrong zone")
        await shot(page, shots, "cancel")
        await page.get_by_role("button", name="Yes, cancel the alert").click()
        await expect(page.locator("#alert-state")).to_have_text("cancelled")
        actions = [e["action"] for e in await console.run.service.audit.entries(first)]
        assert "alert.cancelled" in actions
        await final_status(console, cleared)


class TestFollowUps:
    """An update starts from its alert, and reaching more people is a choice the page names."""

    async def test_update_inherits_and_widening_is_explicit(self, console: Console,
                                                             page: Page) -> None:
        """Zone c's alert: the update form has zone c and its words; adding zone a is refused
        until "Also send to people the first alert did not reach" is ticked, and the
        confirmation lists what changed."""
        await sign_in(page, console, "dana")
        await compose(page, console, GAS, zone="c")
        await page.get_by_role("button", name="Check and send").click()
        await page.get_by_role("button", name="Yes, send now").click()
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        first = alert_id_of(page)
        record = await console.run.service.alerts.get(first)
        assert record is not None
        await page.get_by_role("link", name="Send an update").click()
        await expect(page.get_by_role("heading", name="Send an update")).to_be_visible()
        await expect(page.locator("#zone-c")).to_be_checked()
        await expect(page.locator("#zone-a")).not_to_be_checked()
        await expect(page.get_by_label("Message in English")).to_have_value(GAS)
        for kind in record.channels:
            await expect(page.locator(f"#channel-{kind.value}")).to_be_checked()
        await page.get_by_label("Message in English").fill(
            "Update: the gas leak at the Chemistry Building is contained. Keep away until told.")
        same = await settled_total(page)
        assert same == record.audience_counts["total"]
        await page.get_by_role("button", name="Check and send").click()
        await expect(page.locator("#confirm-question")).to_contain_text(f"Send to {same:,}")
        await expect(page.locator("#confirm-changes")).to_contain_text("Nothing")
        await page.get_by_role("button", name="No, go back and change it").click()
        await page.locator('.zone[data-zone="a"] polygon').click()
        await settled_total(page, not_equal=same)
        await expect(page.locator(".preview-problems")).to_contain_text("did not")
        await page.get_by_role("button", name="Check and send").click()
        await expect(page.locator(".error-summary a[href='#widen']")).to_be_visible()
        await page.get_by_label("Also send to people the first alert did not reach").check()
        await page.get_by_role("button", name="Check and send").click()
        changes = page.locator("#confirm-changes")
        await expect(changes).to_contain_text("Zones: c → a, c")
        await expect(changes).to_contain_text("the first alert did not")
        await page.get_by_role("button", name="Yes, send now").click()
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        update = await console.run.service.alerts.get(alert_id_of(page))
        assert update is not None and update.references_id == first
        assert update.zones == ("a", "c") and update.request.widen
        await final_status(console, update.id)


class TestChannelsByKind:
    """The boxes follow the kind's defaults; nothing sounds unless it is chosen."""

    async def test_timely_warning_started_as_emergency_sounds_nothing(
        self, console: Console, page: Page
    ) -> None:
        """Switching the kind to a timely warning leaves SMS, e-mail and push, and the
        confirmation names no siren or speaker."""
        await sign_in(page, console, "dana")
        await compose(page, console, FIXED)
        for loud in ("siren", "pa"):
            await expect(page.locator(f"#channel-{loud}")).not_to_be_checked()
        await expect(page.locator("#channel-signage")).to_be_checked()
        await page.locator("#kind-timely_warning").check()
        await page.get_by_role("button", name="Check and send").click()
        await expect(page.locator("#confirm-question")).to_contain_text("on 3 channels?")
        await expect(page.locator("#confirm-loud")).to_have_count(0)
        chosen = await page.locator(".summary-list dd").first.inner_text()
        assert sorted(chosen.split(", ")) == ["E-mail", "Push notification", "Text message (SMS)"]

    async def test_api_uses_the_same_table(self, console: Console) -> None:
        """An emergency naming no channels sounds no siren or speaker; naming them does."""
        body = {"kind": "emergency", "text": GAS, "zones": ["a"], "mode": "drill",
                "drill": {"description": "Channel defaults"}}
        quiet = await console.run.client.post("/v1/alerts", json=body, headers=AUTH)
        assert quiet.status in (200, 202), await quiet.text()
        record = await console.run.service.alerts.get((await quiet.json())["id"])
        assert record is not None
        assert {c.value for c in record.channels} == {"sms", "email", "push", "signage"}
        loud = await console.run.client.post(
            "/v1/alerts", json={**body, "channels": ["siren", "pa"]}, headers=AUTH)
        record = await console.run.service.alerts.get((await loud.json())["id"])
        assert record is not None
        assert {c.value for c in record.channels} == {"siren", "pa"}
        for alert_id in (record.id, (await quiet.json())["id"]):
            await final_status(console, alert_id)


class TestOperatorsDay:
    """Drills run now, the report downloads, a missing alert is a plain page."""

    async def test_run_drill_now(self, console: Console, page: Page) -> None:
        """The scheduled siren test runs at once, as the person, and its page is in drill mode."""
        await sign_in(page, console, "drew")
        await page.goto(console.url + "drills")
        await expect(page.get_by_role("heading", name="Monthly outdoor siren test")).to_be_visible()
        await page.get_by_role("button", name="Run “monthly-siren-test” now").click()
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        await expect(page.locator("body")).to_have_class(re.compile("drill-mode"))
        record = await console.run.service.alerts.get(alert_id_of(page))
        assert record is not None and record.mode.value == "test"
        assert record.created_by == "drew"
        await final_status(console, record.id)

    async def test_report_downloads(self, console: Console, page: Page,
                                    shots: Path) -> None:
        """The year's report comes as CSV and HTML files."""
        await sign_in(page, console, "vic")
        await shot(page, shots, "home")
        await page.goto(console.url + "reports")
        link = page.get_by_role("link", name="Download the records (CSV)")
        async with page.expect_download() as info:
            await link.click()
        download = await info.value
        assert download.suggested_filename.endswith(".csv")
        saved = await download.path()
        text = await asyncio.to_thread(Path(saved).read_text, encoding="utf-8")
        assert "," in text.splitlines()[0]

    async def test_missing_alert(self, console: Console, page: Page) -> None:
        """An unknown alert id answers 404 with a page, not JSON."""
        await sign_in(page, console, "vic")
        response = await page.goto(console.url + "alerts/0000")
        assert response is not None and response.status == 404
        await expect(page.get_by_role("heading", name="Page not found")).to_be_visible()


class TestRoles:
    """A viewer reads but never sends, whatever the request."""

    async def test_viewer_cannot_send(self, console: Console, page: Page) -> None:
        """No compose link, the compose page refuses, and a forged send is refused too."""
        await sign_in(page, console, "vic")
        await expect(page.get_by_role("link", name="Send an alert")).to_have_count(0)
        response = await page.goto(console.url + "compose")
        assert response is not None and response.status == 403
        await expect(page.get_by_role("heading", name="You cannot do this")).to_be_visible()
        csrf = await page.evaluate(
            "() => document.querySelector('input[name=csrf]').value")
        count = await console.run.service.db.fetchval("SELECT COUNT(*) FROM alerts")
        refused = await page.request.post(console.url + "send", form={
            "csrf": csrf, "kind": "emergency", "mode": "live", "text": GAS, "segment": "all",
            "channel": "email", "key": "forged-by-viewer",
        })
        assert refused.status == 403
        assert await console.run.service.db.fetchval("SELECT COUNT(*) FROM alerts") == count

    async def test_state_change_without_csrf_is_refused(self, console: Console,
                                                        page: Page) -> None:
        """A signed-in person's POST without the session's token changes nothing."""
        await sign_in(page, console, "dana")
        count = await console.run.service.db.fetchval("SELECT COUNT(*) FROM alerts")
        refused = await page.request.post(console.url + "send", form={
            "kind": "emergency", "mode": "drill", "text": GAS, "segment": "all",
            "channel": "email", "key": "no-csrf",
        })
        assert refused.status == 403
        assert await console.run.service.db.fetchval("SELECT COUNT(*) FROM alerts") == count


async def tab_to(page: Page, element_id: str, *, limit: int = 80) -> None:
    """Press Tab until the element with that id has the focus."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await page.evaluate("() => document.activeElement && document.activeElement.id") \
                == element_id:
            return
    raise AssertionError(f"#{element_id} never took the focus")


class TestKeyboard:
    """The whole send flow with the keyboard alone."""

    async def test_send_with_keyboard_only(self, console: Console, page: Page) -> None:
        """Sign in, pick a drill, type, tick a zone, check, confirm: never a click."""
        await page.goto(console.url)
        await tab_to(page, "name")
        await page.keyboard.type("dana")
        await page.keyboard.press("Tab")
        await page.keyboard.type(ACCOUNTS["dana"].password)
        await page.keyboard.press("Enter")
        await page.wait_for_url(console.url)
        await tab_to(page, "main-compose-link")
        await page.keyboard.press("Enter")
        await page.wait_for_url(console.url + "compose")
        await tab_to(page, "mode-live")
        await page.keyboard.press("ArrowDown")
        assert await page.locator("#mode-drill").is_checked()
        await tab_to(page, "text")
        await page.keyboard.type("Evacuation drill. Leave your building by the nearest exit now.")
        await tab_to(page, "zone-b")
        await page.keyboard.press("Space")
        assert await page.locator("#zone-b").is_checked()
        await settled_total(page)
        await tab_to(page, "review")
        await page.keyboard.press("Enter")
        await expect(page.locator("#confirm-question")).to_contain_text("Send to")
        await tab_to(page, "send-now")
        await page.keyboard.press("Enter")
        await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
        record = await console.run.service.alerts.get(alert_id_of(page))
        assert record is not None and record.mode.value == "drill"
        assert record.zones == ("b",) and record.created_by == "dana"
        await final_status(console, record.id)


class TestWithoutJavaScript:
    """The whole flow works with JavaScript off: forms post, the follow page refreshes."""

    async def test_send_without_javascript(self, console: Console, browser: Browser) -> None:
        """Template by button, check, confirm, follow: plain HTML all the way."""
        ctx = await browser.new_context(java_script_enabled=False)
        try:
            page = await ctx.new_page()
            await sign_in(page, console, "dana")
            await page.goto(console.url + "compose")
            await page.get_by_label("Template (optional)").select_option("evacuate")
            await page.get_by_role("button", name="Use this template").click()
            fields = page.locator("input[name^='field.']")
            assert await fields.count() > 0
            for index in range(await fields.count()):
                if not await fields.nth(index).input_value():
                    await fields.nth(index).fill("the Chemistry Building")
            await page.get_by_label("A drill (an exercise people take part in)").check()
            await page.get_by_label("Central Campus (academic core)").check()
            await page.get_by_role("button", name="Check and send").click()
            await expect(page.locator("#confirm-question")).to_contain_text("Send to")
            await expect(page.locator("#drill-banner")).to_be_visible()
            await page.get_by_role("button", name="Yes, send now").click()
            await page.wait_for_url(re.compile(r"/console/alerts/[0-9a-f]+$"))
            record = await console.run.service.alerts.get(alert_id_of(page))
            assert record is not None and record.request.template == "evacuate"
            assert record.zones == ("b",)
            await final_status(console, record.id)
            await page.reload()
            await expect(page.locator("#alert-state")).to_have_text("done")
        finally:
            await ctx.close()


class TestAccessibleAndSafe:
    """No WCAG 2.1 A/AA violations; strict headers; usable at phone width."""

    async def test_no_axe_violations(self, console: Console, browser: Browser) -> None:
        """axe-core finds nothing on the console's pages (its script let past the CSP)."""
        ctx = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        bypass_csp=True)
        try:
            page = await ctx.new_page()
            await page.goto(console.url)
            found: dict[str, Any] = {"sign-in": await axe_violations(page)}
            await sign_in(page, console, "admin")
            await page.goto(console.url + "compose")
            await page.get_by_label("Message in English").fill(NAMING)
            await expect(page.locator("#marked-en mark")).to_have_count(1)
            found["compose"] = await axe_violations(page)
            await page.get_by_role("button", name="Check and send").click()
            found["compose-errors"] = await axe_violations(page)
            for path in ("", "approvals", "devices", "drills", "history", "reports"):
                await page.goto(console.url + path)
                found[path or "home"] = await axe_violations(page)
            first = await console.run.service.db.fetchval(
                "SELECT id FROM alerts ORDER BY created_at LIMIT 1")
            if first:
                await page.goto(console.url + f"alerts/{first}")
                found["alert"] = await axe_violations(page)
            assert {k: v for k, v in found.items() if v} == {}
        finally:
            await ctx.close()

    async def test_headers_and_no_inline_code(self, console: Console, page: Page) -> None:
        """CSP without inline scripts or styles, frame-ancestors 'none'; pages obey it."""
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if "Content Security" in m.text
                else None)
        response = await page.goto(console.url + "sign-in")
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("Message in English").fill(GAS)
        await settled_total(page)
        html = await page.content()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
        assert " style=" not in html
        assert refused == []

    async def test_phone_width(self, console: Console, browser: Browser,
                               shots: Path) -> None:
        """At 390 px nothing scrolls sideways and the send button is reachable."""
        ctx = await browser.new_context(viewport={"width": 390, "height": 844},
                                        device_scale_factor=2, is_mobile=True, has_touch=True)
        try:
            page = await ctx.new_page()
            await sign_in(page, console, "dana")
            await page.goto(console.url + "compose")
            await page.get_by_label("Message in English").fill(GAS)
            await settled_total(page)
            width = await page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 391, width
            await expect(page.get_by_role("button", name="Check and send")).to_be_visible()
            await shot(page, shots, "phone-compose", full=False)
        finally:
            await ctx.close()



class TestAnswers:
    """An alert that asks a question shows its answers; who needs help only to allowed roles."""

    async def test_answer_counts_and_need_help_page(self, console: Console, browser: Browser,
                                                   shots: Path) -> None:
        """Counts on the alert page; the need-help page for a dispatcher (audited), not a viewer."""
        run = console.run
        resp = await run.post_alert({
            "kind": "emergency", "mode": "drill", "audience": "all", "channels": ["email"],
            "text": "Gas leak at the Chemistry Building. Evacuate now and avoid the area.",
            "ask": {"question": "Are you safe?"},
        })
        assert resp.status == 202, await resp.text()
        alert_id = (await resp.json())["id"]
        await final_status(console, alert_id)
        responses = run.service.responses
        await responses.record_answer(alert_id=alert_id, person_id="P000001", option="safe",
                                      channel="sms")
        await responses.record_answer(alert_id=alert_id, person_id="P000002",
                                      option="need_help", channel="sms")
        dana = await browser.new_context(viewport={"width": 1280, "height": 900})
        vic = await browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = await dana.new_page()
            await sign_in(page, console, "dana")
            await page.goto(console.url + f"alerts/{alert_id}")
            await expect(page.locator('[data-answer="safe"]')).to_have_text("1")
            await expect(page.locator('[data-answer="need_help"]')).to_contain_text("1")
            total = (await run.service.responses.tally(alert_id)).total.no_answer
            assert total > 0
            await expect(page.locator('[data-answer="no_answer"]')).to_have_text(f"{total:,}")
            await shot(page, shots, "answers")
            await page.get_by_role("link", name="who, where and how to reach them").click()
            await page.wait_for_url(re.compile(r"/need-help$"))
            await expect(page.locator("#need-help")).to_contain_text("Baivous Zykres")
            await expect(page.locator("#need-help")).to_contain_text("south-hall")
            entries = await run.service.audit.entries(alert_id)
            assert any(e["action"] == "responses.need_help_read" and e["actor"] == "dana"
                       for e in entries), [e["action"] for e in entries]
            other = await vic.new_page()
            await sign_in(other, console, "vic")
            await other.goto(console.url + f"alerts/{alert_id}")
            await expect(other.locator('[data-answer="need_help"]')).to_have_text("1")
            await expect(other.get_by_role("link", name="who, where and how to reach them")
                         ).to_have_count(0)
            refused = await other.goto(console.url + f"alerts/{alert_id}/need-help")
            assert refused is not None and refused.status == 403
            assert "Baivous" not in await other.content()
        finally:
            await dana.close()
            await vic.close()
