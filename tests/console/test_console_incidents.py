"""The Clery coordinator's job in a real browser: incidents, the daily crime log, the
timely-warning decision and the yearly report; and two-person approval that tells people.

The private fields and the forms follow `permissions.py` exactly as the API does: the
permission tests ask both, as the same role, and expect the same answer.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Browser, Page, expect

from dispatcher.access.auth import Role
from dispatcher.console.accounts import CSRF_FIELD
from tests.console.conftest import APPROVERS, Console, axe_violations, sign_in
from tests.support import AUTH

pytestmark = pytest.mark.asyncio(loop_scope="session")

GAS = "Gas leak at the Chemistry Building. Evacuate now and avoid the area until told it is safe."


def local(console: Console, hours_ago: float = 0) -> str:
    """A datetime-local input's value: `hours_ago` in the institution's time zone."""
    now = datetime.now(console.run.service.incidents.zone)
    return (now - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M")


async def record(console: Console, **fields: Any) -> str:
    """An incident recorded through the API (the admin's token); its id."""
    body = {"reported_at": local(console, 2),
            "location": "Parking Lot C", "geography": "on_campus",
            "nature": "Theft of a parked car", **fields}
    resp = await console.run.client.post("/v1/incidents", json=body, headers=AUTH)
    assert resp.status == 201, await resp.text()
    incident_id: str = (await resp.json())["id"]
    return incident_id


async def token_for(console: Console, role: Role) -> dict[str, str]:
    """Authorization headers of an API token for a person of this role (made once)."""
    name = f"incidents-{role.value}"
    registry = console.run.service.token_registry
    issued = await registry.issue(name, person=name, role=role, segments=(),
                                  expires_in_days=None, actor="tests")
    return {"Authorization": f"Bearer {issued.token}"}


async def public_log(console: Console) -> list[dict[str, str]]:
    """The public crime log's first page, as JSON."""
    resp = await console.run.client.get("/public/crime-log?format=json")
    entries: list[dict[str, str]] = (await resp.json())["entries"]
    return entries


async def csrf_of(page: Page) -> str:
    """The session's CSRF token, from any signed-in page."""
    value: str = await page.evaluate(
        f"() => document.querySelector('input[name={CSRF_FIELD}]').value")
    return value


async def audited(console: Console, action: str, incident_id: str) -> int:
    """How many audit entries of this action name the incident."""
    count: int = await console.run.service.db.fetchval(
        "SELECT COUNT(*) FROM audit WHERE action = ? AND detail LIKE ?",
        (action, f"%{incident_id}%"))
    return count


class TestCrimeLog:
    """Adding to the log with GOV.UK-style errors; changing, holding back and releasing."""

    async def test_add_with_errors_then_recorded(self, console: Console, browser: Browser) -> None:
        """Empty fields and a named person are listed and linked; the fixed entry is public."""
        ctx = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        bypass_csp=True)
        try:
            page = await ctx.new_page()
            await sign_in(page, console, "dana")
            await page.get_by_role("link", name="Incidents", exact=True).click()
            await expect(page.get_by_role("heading", name="Incidents and the daily crime log",
                                          exact=True)).to_be_visible()
            assert await axe_violations(page) == []
            await page.get_by_role("link", name="Add to the crime log").click()
            await page.get_by_label("When it was reported").fill("")
            await page.get_by_role("button", name="Add to the crime log").click()
            summary = page.locator(".error-summary")
            await expect(summary.locator("li")).to_have_count(4)
            await expect(summary.locator("a[href='#nature']")).to_contain_text(
                "Enter the nature of the crime")
            await expect(page.locator("#geography-error")).to_be_visible()
            assert await axe_violations(page) == []
            await page.get_by_label("When it was reported").fill(
                local(console, 1))
            await page.get_by_label("Nature of the crime").fill(
                "Maria Lopez reported her bicycle stolen")
            await page.get_by_label("General location").fill("Bike rack at the gym")
            await page.get_by_label("Clery geography").select_option("on_campus")
            await page.get_by_label("Victim's name").fill("Maria Lopez")
            await page.get_by_role("button", name="Add to the crime log").click()
            await expect(summary.locator("a[href='#nature']")).to_contain_text(
                "Nature of the crime")
            # The private field keeps what was typed; the public one must not name her.
            await expect(page.get_by_label("Victim's name")).to_have_value("Maria Lopez")
            await page.get_by_label("Nature of the crime").fill("Theft of a bicycle")
            await page.get_by_role("button", name="Add to the crime log").click()
            await page.wait_for_url(re.compile(r"/console/incidents/inc_[0-9a-f]+\?"))
            await expect(page.locator(".notice.success")).to_contain_text(
                "Added to the daily crime log")
            await expect(page.locator("#incident-fields")).to_contain_text("Bike rack at the gym")
            assert await axe_violations(page) == []
            incident_id = urlsplit(page.url).path.rsplit("/", 1)[-1]
            stored = await console.run.service.incidents.get(incident_id)
            assert stored is not None and stored.incident.created_by == "dana"
            assert stored.incident.has_private
            assert "Theft of a bicycle" in [e["nature"] for e in await public_log(console)]
        finally:
            await ctx.close()

    async def test_disposition_hold_release(self, console: Console, page: Page) -> None:
        """The disposition's history grows; a held entry leaves the public log until released."""
        incident_id = await record(console, nature="Theft of a laptop from a study room",
                                   location="Science Library")
        await sign_in(page, console, "dana")
        await page.goto(console.url + f"incidents/{incident_id}")
        await page.get_by_label("Disposition").select_option("referred")
        await page.get_by_label("Note (kept in the history)").fill("Sent to the county")
        await page.get_by_role("button", name="Change the disposition").click()
        await expect(page.locator("#incident-disposition")).to_have_text("Referred")
        await expect(page.locator("#disposition-history")).to_contain_text("Sent to the county")
        await page.get_by_label("Reason for holding it back").fill("no")
        await page.get_by_role("button", name="Hold back").click()
        await expect(page.locator(".error-summary a[href='#hold-reason']")).to_be_visible()
        await page.get_by_label("Reason for holding it back").fill(
            "Releasing it would hamper the investigation")
        await page.get_by_role("button", name="Hold back").click()
        await expect(page.locator("#incident-public")).to_contain_text("held back")
        natures = [e["nature"] for e in await public_log(console)]
        assert "Theft of a laptop from a study room" not in natures
        await page.get_by_role("button", name="Release to the public log").click()
        await expect(page.locator("#incident-public")).to_have_text("shown")
        natures = [e["nature"] for e in await public_log(console)]
        assert "Theft of a laptop from a study room" in natures

    async def test_correct_the_public_text(self, console: Console, page: Page) -> None:
        """A correction is checked for names like a new entry; the old text is audited."""
        incident_id = await record(console, nature="Theft of a tablet", location="Union")
        await sign_in(page, console, "dana")
        await page.goto(console.url + f"incidents/{incident_id}")
        await page.get_by_label("Nature of the crime (public)").fill(
            "Jordan Smith reported a tablet stolen")
        await page.get_by_role("button", name="Correct the entry").click()
        await expect(page.locator(".error-summary a[href='#correct-nature']")).to_be_visible()
        await expect(page.get_by_label("Nature of the crime (public)")).to_have_value(
            "Jordan Smith reported a tablet stolen")
        await page.get_by_label("General location (public)").fill("")
        await page.get_by_role("button", name="Correct the entry").click()
        await expect(page.locator(".error-summary a[href='#correct-location']")).to_be_visible()
        await page.get_by_label("Nature of the crime (public)").fill("Theft of a tablet computer")
        await page.get_by_label("General location (public)").fill("Student Union, food court")
        await page.get_by_role("button", name="Correct the entry").click()
        await expect(page.locator(".notice.success")).to_have_text("Entry corrected")
        entry = next(e for e in await public_log(console)
                     if e["nature"] == "Theft of a tablet computer")
        assert entry["location"] == "Student Union, food court"
        assert await audited(console, "incident.corrected", incident_id) == 1


class TestPrivateFields:
    """Victim and reporter details: the same decision in the console as in the API."""

    async def test_admin_reads_them_audited(self, console: Console, browser: Browser) -> None:
        """The admin asks for them; the reading is audited; the page shows them."""
        incident_id = await record(console, victim={"name": "Sam Rivera", "phone": "+15555550199"})
        ctx = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        bypass_csp=True)
        try:
            page = await ctx.new_page()
            await sign_in(page, console, "admin")
            await page.goto(console.url + f"incidents/{incident_id}")
            await expect(page.locator("#private-details")).to_have_count(0)
            assert await audited(console, "incident.private_read", incident_id) == 0
            await page.locator("#show-private").click()
            await expect(page.locator("#private-details")).to_contain_text("Sam Rivera")
            assert await axe_violations(page) == []
            assert await audited(console, "incident.private_read", incident_id) == 1
            api = await console.run.client.get(
                f"/v1/incidents/{incident_id}?include=private", headers=AUTH)
            assert api.status == 200
            assert (await api.json())["private"]["victim"]["name"] == "Sam Rivera"
        finally:
            await ctx.close()

    async def test_dispatcher_refused_in_both(self, console: Console, page: Page) -> None:
        """A dispatcher is offered no link, and is refused by the console and the API alike."""
        incident_id = await record(console, victim={"name": "Sam Rivera"})
        await sign_in(page, console, "dana")
        await page.goto(console.url + f"incidents/{incident_id}")
        await expect(page.locator("#show-private")).to_have_count(0)
        await expect(page.locator("#private-withheld")).to_contain_text("may not read them")
        response = await page.goto(console.url + f"incidents/{incident_id}?private=yes")
        assert response is not None and response.status == 403
        assert "Sam Rivera" not in await page.content()
        assert await audited(console, "incident.private_refused", incident_id) == 1
        api = await console.run.client.get(
            f"/v1/incidents/{incident_id}?include=private",
            headers=await token_for(console, Role.DISPATCHER))
        assert api.status == 403

    async def test_viewer_and_drill_cannot_write_or_decide(self, console: Console,
                                                           page: Page) -> None:
        """A viewer may not add to the log and a drill user may not decide, here or in the
        API; the console offers neither."""
        incident_id = await record(console, category="robbery", nature="Robbery of a wallet")
        await sign_in(page, console, "vic")
        await page.goto(console.url + "incidents")
        await expect(page.locator("#add-incident")).to_have_count(0)
        before = await console.run.service.incidents.store.count()
        refused = await page.request.post(console.url + "incidents", form={
            CSRF_FIELD: await csrf_of(page), "reported_at": local(console),
            "nature": "Theft of a scooter", "location": "Gym", "geography": "on_campus"})
        assert refused.status == 403
        assert await console.run.service.incidents.store.count() == before
        api = await console.run.client.post(
            "/v1/incidents", headers=await token_for(console, Role.VIEWER),
            json={"reported_at": local(console), "nature": "Theft of a scooter",
                  "location": "Gym", "geography": "on_campus"})
        assert api.status == 403

        await page.context.clear_cookies()
        await sign_in(page, console, "drew")
        await page.goto(console.url + f"incidents/{incident_id}")
        await expect(page.locator("#decide")).to_have_count(0)
        response = await page.goto(console.url + f"incidents/{incident_id}/decision")
        assert response is not None and response.status == 403
        refused = await page.request.post(console.url + f"incidents/{incident_id}/decision",
                                          form={CSRF_FIELD: await csrf_of(page), "warn": "no",
                                                "reasons": "No ongoing threat"})
        assert refused.status == 403
        api = await console.run.client.post(
            f"/v1/incidents/{incident_id}/decision", headers=await token_for(console, Role.DRILL),
            json={"warn": False, "reasons": "No ongoing threat"})
        assert api.status == 403
        decision = await console.run.service.incidents.store.decision(incident_id)
        assert decision is not None and decision.open


class TestTimelyWarning:
    """Decide with a reason; "send" opens compose with the warning's draft."""

    async def test_send_opens_prefilled_compose(self, console: Console, browser: Browser) -> None:
        """Errors first; then a warning decision lands on compose, template and fields set."""
        incident_id = await record(console, category="robbery",
                                   nature="Robbery of a phone at knifepoint",
                                   location="the 300 block of Elm Street",
                                   geography="public_property")
        ctx = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        bypass_csp=True)
        try:
            page = await ctx.new_page()
            await sign_in(page, console, "dana")
            await page.goto(console.url + f"incidents/{incident_id}")
            await page.locator("#decide").click()
            assert await axe_violations(page) == []
            await page.get_by_role("button", name="Record the decision").click()
            summary = page.locator(".error-summary")
            await expect(summary.locator("li")).to_have_count(2)
            await expect(summary.locator("a[href='#warn-yes']")).to_be_visible()
            assert await axe_violations(page) == []
            await page.locator("#warn-yes").check()
            await page.get_by_label("Reasons").fill("Armed robbery near campus; suspect at large")
            await page.get_by_role("button", name="Record the decision").click()
            await page.wait_for_url(re.compile(r"/console/compose\?"))
            query = parse_qs(urlsplit(page.url).query)
            assert query["kind"] == ["timely_warning"] and query["template"] == ["robbery"]
            await expect(page.locator("#kind-timely_warning")).to_be_checked()
            await expect(page.locator("#template")).to_have_value("robbery")
            await expect(page.locator("#field-location")).to_have_value(
                "the 300 block of Elm Street")
            # The warning names its incident, so intake links the alert to it when it is sent.
            await expect(page.locator("input[name='incident']").first).to_have_value(incident_id)
            decision = await console.run.service.incidents.store.decision(incident_id)
            assert decision is not None and decision.warn is True
            assert decision.decided_by == "dana"
            await page.goto(console.url + f"incidents/{incident_id}")
            await expect(page.locator("#incident-decision")).to_contain_text(
                "a timely warning is sent")
            await expect(page.locator("#open-draft")).to_be_visible()
        finally:
            await ctx.close()

    async def test_not_send_keeps_the_reason(self, console: Console, page: Page) -> None:
        """"No" with a reason closes the decision and says so."""
        incident_id = await record(console, category="burglary",
                                   nature="Burglary of a storage room", location="Gym")
        await sign_in(page, console, "dana")
        await page.goto(console.url + f"incidents/{incident_id}/decision")
        await page.locator("#warn-no").check()
        await page.get_by_label("Reasons").fill("Suspect arrested on the spot")
        await page.get_by_role("button", name="Record the decision").click()
        await expect(page.locator(".notice.success")).to_have_text("Decided: no timely warning")
        await expect(page.locator("#incident-decision")).to_contain_text(
            "Suspect arrested on the spot")
        await expect(page.locator("#open-draft")).to_have_count(0)


class TestYearlyReport:
    """The crime part of the yearly report, and the report's files with it."""

    async def test_counts_and_files(self, console: Console, browser: Browser) -> None:
        """The page counts this year's Clery crimes; its HTML and CSV links carry the crimes."""
        ctx = await browser.new_context(viewport={"width": 1280, "height": 900},
                                        bypass_csp=True)
        try:
            page = await ctx.new_page()
            await sign_in(page, console, "admin")
            await page.goto(console.url + "incidents")
            await page.get_by_role("link", name="Crime statistics for the yearly report").click()
            year = datetime.now(console.run.service.incidents.zone).year
            heading = page.get_by_role("heading", name=f"Crime statistics {year}")
            await expect(heading).to_be_visible()
            await expect(page.locator("#crime-counts")).to_contain_text("Motor vehicle theft")
            assert await axe_violations(page) == []
            html_link = page.locator("#report-files a").first
            href = await html_link.get_attribute("href")
            assert href == f"/console/reports/clery-{year}.html"
            html = await page.request.get(console.url.removesuffix("/console/") + href)
            assert html.status == 200 and "Crime statistics" in await html.text()
            csv = await page.request.get(
                console.url.removesuffix("/console/") + f"/console/reports/clery-{year}.csv")
            assert csv.status == 200 and "crime_statistic" in await csv.text()
        finally:
            await ctx.close()


async def notice_for(console: Console, approval_id: str) -> str:
    """The approvers' e-mail about this request, once the sandbox relay has it."""
    async with asyncio.timeout(15):
        while True:
            for message in console.sandbox.stats.of("email"):
                if message.recipient == APPROVERS and approval_id in message.text:
                    return message.text
            await asyncio.sleep(0.05)


class TestApprovalTellsPeople:
    """Held alerts say so before sending, name their channels, and reach the approvers."""

    async def test_small_alert_is_not_held(self, console: Console, page: Page) -> None:
        """Below the approval threshold the confirmation says nothing about approval."""
        await sign_in(page, console, "dana")
        await page.goto(console.url + "compose")
        await page.get_by_label("Message in English").fill(GAS)
        await page.locator('.zone[data-zone="c"] polygon').click()
        await page.get_by_role("button", name="Check and send").click()
        await expect(page.locator("#confirm-question")).to_be_visible()
        await expect(page.locator("#confirm-held")).to_have_count(0)

    async def test_held_alert_told_everywhere(self, console: Console, browser: Browser) -> None:
        """The confirmation says it will be held; the approval page names sirens and PA and
        the count; the approvers get an e-mail and a banner on their home page."""
        dana = await browser.new_context(viewport={"width": 1280, "height": 900})
        admin = await browser.new_context(viewport={"width": 1280, "height": 900},
                                          bypass_csp=True)
        try:
            page = await dana.new_page()
            await sign_in(page, console, "dana")
            await page.goto(console.url + "compose")
            await page.get_by_label("Message in English").fill(GAS)
            # Sirens and PA only when chosen: the approver is to see that they will sound.
            await page.locator("#channel-siren").check()
            await page.locator("#channel-pa").check()
            await page.get_by_role("button", name="Check and send").click()
            await expect(page.locator("#confirm-held")).to_contain_text(
                "wait for a second person to approve it")
            await page.get_by_role("button", name="Yes, send now").click()
            await page.wait_for_url(re.compile(r"/console/approvals/apr-"))
            approval_id = urlsplit(page.url).path.rsplit("/", 1)[-1]
            record = await console.run.service.intake.approvals.get(approval_id)
            assert record is not None
            people = int(record.audience_counts["total"])
            await expect(page.locator("#approval-channels")).to_contain_text("Outdoor sirens")
            await expect(page.locator("#approval-channels")).to_contain_text(
                "Public address speakers")
            await expect(page.locator("#approval-loud")).to_contain_text("will sound")
            await expect(page.locator("#approval-count")).to_contain_text(f"{people:,} people")

            text = await notice_for(console, approval_id)
            assert f"/console/approvals/{approval_id}" in text
            assert f"People: {people:,}" in text and "siren" in text
            assert "outdoor sirens and PA speakers will sound" in text

            other = await admin.new_page()
            await sign_in(other, console, "admin")
            now = console.run.service.clock.now_ms()
            waiting = len(await console.run.service.intake.approvals.pending(now))
            banner = other.locator("#approval-banner")
            await expect(banner).to_contain_text(f"{waiting} alert")
            await expect(banner).to_contain_text("for your approval")
            assert await axe_violations(other) == []
            await other.goto(console.url + f"approvals/{approval_id}")
            assert await axe_violations(other) == []
            # The composer is not told to approve their own alert.
            await page.goto(console.url)
            mine = await console.run.service.intake.approvals.pending(now)
            if all(r.requested_by == "dana" for r in mine):
                await expect(page.locator("#approval-banner")).to_have_count(0)
            await other.get_by_label("Reason for rejecting").fill("Not needed after all")
            await other.get_by_role("button", name="Reject").click()
            await other.goto(console.url)
            if waiting == 1:
                await expect(other.locator("#approval-banner")).to_have_count(0)
        finally:
            await dana.close()
            await admin.close()


async def test_the_form_carries_its_incident() -> None:
    """A timely warning composed from an incident names it in the request intake checks."""
    from multidict import MultiDict

    from dispatcher.console.compose import ComposeForm

    form = ComposeForm.from_post(MultiDict({"kind": "timely_warning", "text": "Robbery.",
                                            "incident": "inc-1"}))
    assert form.request_body()["incident"] == "inc-1"
    assert "incident" not in ComposeForm.from_post(MultiDict({"text": "Gas leak."})).request_body()
