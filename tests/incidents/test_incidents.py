"""Incidents, the daily crime log and timely-warning decisions on a real store."""

from __future__ import annotations

import asyncio
import csv
import io
import random
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.access.auth import token_sha256
from dispatcher.access.permissions import Permissions
from dispatcher.alerting.lint import lint_one
from dispatcher.alerting.request import AlertRequest
from dispatcher.api.app import build_app
from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind
from dispatcher.incidents.calendar import entry_deadline
from dispatcher.incidents.cli import local_times
from dispatcher.incidents.registry import IncidentRegistry
from dispatcher.refusals import Invalid
from dispatcher.service import Service
from dispatcher.settings import Settings
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import open_database
from dispatcher.store.incidents import IncidentStore
from tests.conftest import SettingsFactory
from tests.drills.conftest import MovableClock
from tests.pg import PostgresCluster, server_binary, start_cluster
from tests.support import AUTH

ZONE = ZoneInfo("America/New_York")
VIEWER = {"Authorization": "Bearer viewer-token-0123456789"}
DISPATCHER = {"Authorization": "Bearer dispatcher-token-0123456789"}
THANKSGIVING_MONDAY = date(2026, 11, 23)  # a configured holiday for the tests
VICTIM = {"name": "Jordan Quillfeather", "phone": "+15555550199",
          "email": "jordan.quillfeather@example.edu"}
REPORTER = {"name": "Casey Brightwater", "email": "casey.brightwater@example.edu"}
HOLD_REASON = "Release would compromise the ongoing investigation"


def local(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A time in the institution's zone."""
    return datetime(year, month, day, hour, minute, tzinfo=ZONE)


@pytest.fixture(scope="module")
def cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server for this module."""
    if server_binary("initdb") is None:
        pytest.skip("PostgreSQL's initdb is not installed (Debian package `postgresql`)")
    found = start_cluster()
    try:
        yield found
    finally:
        found.stop()


class Desk:
    """A running service with a movable clock and a client."""

    def __init__(self, service: Service, client: TestClient, clock: MovableClock) -> None:
        self.service = service
        self.client = client
        self.clock = clock

    async def add(self, headers: dict[str, str] | None = None, **fields: Any) -> Any:
        """POST /v1/incidents."""
        body = {"reported_at": local(2026, 11, 25, 9).isoformat(), "location": "Parking Lot C",
                "geography": "on_campus", "nature": "Theft of a parked car",
                "category": "motor_vehicle_theft", **fields}
        return await self.client.post("/v1/incidents", json=body, headers=headers or AUTH)

    async def added(self, **fields: Any) -> dict[str, Any]:
        """POST /v1/incidents that must succeed; the incident."""
        resp = await self.add(**fields)
        assert resp.status == 201, await resp.text()
        doc: dict[str, Any] = await resp.json()
        return doc

    async def public(self, fmt: str = "json", page: int = 1) -> Any:
        """The public crime log (no token)."""
        resp = await self.client.get(f"/public/crime-log?format={fmt}&page={page}")
        assert resp.status == 200
        return await resp.json() if fmt == "json" else await resp.text()


def _settings(make_settings: SettingsFactory, tmp_path: Path, url: str | None) -> Settings:
    settings = make_settings(
        incidents={"timezone": "America/New_York", "holidays": [str(THANKSGIVING_MONDAY)],
                   "generated_key_path": str(tmp_path / "incidents.key"),
                   "seed_example": False, "decision_overdue_s": 3600},
        auth={"tokens": [
            {"name": "viewer1", "role": "viewer",
             "sha256": token_sha256(VIEWER["Authorization"].removeprefix("Bearer "))},
            {"name": "dispatcher1", "role": "dispatcher",
             "sha256": token_sha256(DISPATCHER["Authorization"].removeprefix("Bearer "))},
        ]},
    )
    if url is not None:
        settings = settings.model_copy(update={"store": settings.store.model_copy(
            update={"url": url})})
    return settings


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def desk(
    request: pytest.FixtureRequest, make_settings: SettingsFactory, tmp_path: Path
) -> AsyncIterator[Desk]:
    """The service on SQLite, then on PostgreSQL; the clock on Wednesday, Nov. 25, 2026."""
    url = None
    if request.param == "postgres":
        cluster: PostgresCluster = request.getfixturevalue("cluster")
        url = await cluster.create_database()
    clock = MovableClock(local(2026, 11, 25, 15))
    service = await Service.open(_settings(make_settings, tmp_path, url), clock=clock)
    client = TestClient(TestServer(build_app(service), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Desk(service, client, clock)
    finally:
        await client.close()


class TestCalendar:
    """The entry deadline counts business days after the day of the report."""

    def test_weekend_and_holiday_push_the_deadline(self) -> None:
        """Reported on a Friday: due Tuesday, or Wednesday when Monday is a holiday."""
        friday = date(2026, 11, 20)
        assert entry_deadline(friday, 2, ()) == date(2026, 11, 24)
        assert entry_deadline(friday, 2, {THANKSGIVING_MONDAY}) == date(2026, 11, 25)
        assert entry_deadline(date(2026, 11, 24), 2, ()) == date(2026, 11, 26)


class TestCrimeLog:
    """Recording, the late-entry warning, holding back, the disposition history."""

    async def test_late_entry_counts_business_days_and_the_holiday(self, desk: Desk) -> None:
        """Reported Friday: on time on Wednesday (Monday a holiday), late on Thursday."""
        friday = local(2026, 11, 20, 10).isoformat()
        on_time = await desk.added(reported_at=friday)
        assert on_time["late_entry"] is False
        assert on_time["entry_due"] == "2026-11-25"
        desk.clock.set(local(2026, 11, 26, 9))
        late = await desk.added(reported_at=friday, nature="Theft of a second parked car")
        assert late["late_entry"] is True
        assert any("after it was due" in w for w in late["warnings"])
        listed = await (await desk.client.get("/v1/incidents", headers=AUTH)).json()
        assert listed["late_entries"] == [late["id"]]

    async def test_held_entry_is_left_out_until_released(self, desk: Desk) -> None:
        """A held entry is not in the public log, with its reason on file; released, it is."""
        incident = await desk.added()
        resp = await desk.client.post(f"/v1/incidents/{incident['id']}/hold",
                                      json={"reason": HOLD_REASON}, headers=AUTH)
        assert resp.status == 200
        held = await resp.json()
        assert held["held"] is True and held["held_reason"] == HOLD_REASON
        assert [e["case"] for e in (await desk.public())["entries"]] == []
        assert HOLD_REASON not in await desk.public("html")
        resp = await desk.client.post(f"/v1/incidents/{incident['id']}/release", headers=AUTH)
        assert resp.status == 200
        assert (await resp.json())["released_by"] == "admin-token"
        assert [e["case"] for e in (await desk.public())["entries"]] == [
            incident["case_number"]]
        again = await desk.client.post(f"/v1/incidents/{incident['id']}/release", headers=AUTH)
        assert again.status == 409

    async def test_disposition_changes_are_kept(self, desk: Desk) -> None:
        """Each PATCH adds to the history; the log shows the latest disposition."""
        incident = await desk.added()
        for disposition in ("under_investigation", "cleared_by_arrest"):
            resp = await desk.client.patch(f"/v1/incidents/{incident['id']}",
                                           json={"disposition": disposition}, headers=AUTH)
            assert resp.status == 200
        doc = await (await desk.client.get(f"/v1/incidents/{incident['id']}",
                                           headers=AUTH)).json()
        assert [c["disposition"] for c in doc["disposition_history"]] == [
            "open", "under_investigation", "cleared_by_arrest"]
        assert (await desk.public())["entries"][0]["disposition"] == "cleared by arrest"
        bad = await desk.client.patch(f"/v1/incidents/{incident['id']}",
                                      json={"disposition": "solved"}, headers=AUTH)
        assert bad.status == 422

    async def test_text_naming_a_person_is_refused_with_located_violations(
        self, desk: Desk
    ) -> None:
        """The public fields pass the confidentiality policy or the incident is refused."""
        nature = "Ms. Garcia reported her laptop stolen"
        resp = await desk.add(nature=nature, location="the dorm room of Maria Lopez")
        assert resp.status == 422
        violations = (await resp.json())["violations"]
        by_field = {v["field"]: v for v in violations}
        assert set(by_field) == {"nature", "location"}
        name = by_field["nature"]
        assert name["rule"] == "confidentiality.name"
        assert nature[name["start"]:name["end"]].startswith("Ms. Garcia")
        assert await desk.service.db.fetchval("SELECT COUNT(*) FROM incidents") == 0


class TestCaseNumbers:
    """The public log's case numbers: readable, one sequence per year reported, never an id."""

    async def test_a_sequence_per_year_in_the_order_entered(self, desk: Desk) -> None:
        """Two crimes of 2026 and one reported late on New Year's Eve 2025, local time."""
        first = await desk.added()
        eve = await desk.added(reported_at=local(2025, 12, 31, 23, 30).isoformat(),
                               nature="Theft of a bicycle")
        second = await desk.added(reported_at=local(2026, 11, 25, 10).isoformat(),
                                  nature="Theft of a second parked car")
        assert [first["case_number"], eve["case_number"], second["case_number"]] == [
            "2026-000001", "2025-000001", "2026-000002"]
        entries = (await desk.public())["entries"]
        assert [e["case"] for e in entries] == ["2026-000002", "2026-000001"]
        page = await desk.public("html")
        assert "Case 2026-000002" in page and first["id"] not in page

    async def test_crimes_recorded_at_once_get_distinct_numbers(self, desk: Desk) -> None:
        """Five incidents recorded concurrently take the numbers one to five of their year."""
        added = await asyncio.gather(*(desk.added(nature=f"Theft of parked car {n}")
                                       for n in "ABCDE"))
        assert sorted(a["case_number"] for a in added) == [
            f"2026-{n:06d}" for n in range(1, 6)]

    async def test_incidents_stored_before_numbering_are_numbered_by_the_migration(
        self, desk: Desk
    ) -> None:
        """A store from before the case numbers: its incidents numbered in the order entered."""
        ids = [(await desk.added(nature=f"Theft of parked car {n}"))["id"] for n in "AB"]
        ids.append((await desk.added(reported_at=local(2025, 6, 1).isoformat(),
                                     nature="Theft of a bicycle"))["id"])
        db = desk.service.db
        for statement in ("DROP INDEX incidents_case_number", "DROP TABLE incident_case_counters",
                          "ALTER TABLE incidents DROP COLUMN case_number",
                          "DELETE FROM schema_migrations WHERE name = '0016_case_numbers.sql'"):
            await db.execute(statement)
        await db.migrate()
        numbers = [(await (await desk.client.get(f"/v1/incidents/{i}", headers=AUTH)).json())[
            "case_number"] for i in ids]
        assert numbers == ["2026-000001", "2026-000002", "2025-000001"]
        assert (await desk.added())["case_number"] == "2026-000003"


class TestPrivacy:
    """Victim and reporter details: sealed, shown to allowed roles, every read audited."""

    async def test_public_log_has_no_private_field(self, desk: Desk) -> None:
        """None of the private values appear in the HTML, CSV or JSON log."""
        incident = await desk.added(victim=VICTIM, reporter=REPORTER, category="robbery",
                                    nature="Robbery of a phone", location="the Student Union")
        pages = [await desk.public("html"), await desk.public("csv"),
                 str(await desk.public("json"))]
        assert all(incident["case_number"] in page for page in pages)
        assert not any(incident["id"] in page for page in pages)
        secrets = [*VICTIM.values(), *REPORTER.values(), "Quillfeather", "Brightwater",
                   "5555550199", "robbery"]
        for page in pages:
            for secret in secrets:
                assert secret not in page
        sealed = await desk.service.db.fetchval(
            "SELECT private_sealed FROM incidents WHERE id = ?", (incident["id"],))
        assert "Quillfeather" not in sealed and "Brightwater" not in sealed

    async def test_private_reads_are_audited_and_refused_without_the_role(
        self, desk: Desk
    ) -> None:
        """The admin reads the details; viewer and dispatcher are refused; all audited."""
        incident = await desk.added(victim=VICTIM, reporter=REPORTER)
        path = f"/v1/incidents/{incident['id']}?include=private"
        resp = await desk.client.get(path, headers=AUTH)
        assert resp.status == 200
        assert (await resp.json())["private"]["victim"] == VICTIM
        for headers in (VIEWER, DISPATCHER):
            refused = await desk.client.get(path, headers=headers)
            assert refused.status == 403
            assert "Quillfeather" not in await refused.text()
        plain = await (await desk.client.get(f"/v1/incidents/{incident['id']}",
                                             headers=VIEWER)).json()
        assert "private" not in plain and "Quillfeather" not in str(plain)
        rows = await desk.service.db.fetchall(
            "SELECT actor, action FROM audit WHERE action LIKE 'incident.private%' ORDER BY seq")
        assert [(r["actor"], r["action"]) for r in rows] == [
            ("admin-token", "incident.private_read"),
            ("viewer1", "incident.private_refused"),
            ("dispatcher1", "incident.private_refused"),
        ]
        check = await desk.service.audit.verify()
        assert check.ok


class TestDecision:
    """Every Clery crime on Clery geography opens a decision someone closes."""

    async def test_warning_is_linked_and_passes_the_policy(self, desk: Desk) -> None:
        """Warn: the draft is sent through POST /v1/alerts and linked to the incident."""
        incident = await desk.added(
            category="robbery", nature="Robbery of a phone by a male in a gray hoodie",
            location="the 200 block of Oak Street", geography="public_property",
            occurred_from=local(2026, 11, 24, 21).isoformat(),
            reported_at=local(2026, 11, 24, 22).isoformat(), victim=VICTIM,
        )
        assert incident["decision"]["state"] == "open"
        assert incident["decision"]["overdue"] is False
        desk.clock.set(local(2026, 11, 25, 17))
        listed = await (await desk.client.get("/v1/incidents", headers=AUTH)).json()
        assert listed["overdue_decisions"] == [incident["id"]]
        refused = await desk.client.post(f"/v1/incidents/{incident['id']}/decision",
                                         json={"warn": True, "reasons": "Serious threat"},
                                         headers=VIEWER)
        assert refused.status == 403
        resp = await desk.client.post(
            f"/v1/incidents/{incident['id']}/decision",
            json={"warn": True, "reasons": "Suspect not caught; a continuing threat"},
            headers=DISPATCHER)
        assert resp.status == 200, await resp.text()
        doc = await resp.json()
        assert doc["decision"]["state"] == "warn"
        assert doc["decision"]["decided_by"] == "dispatcher1"
        draft = doc["alert_request"]
        assert draft["template"] == "robbery" and draft["incident"] == incident["id"]
        assert draft["fields"]["date"] == "Tuesday, Nov. 24"
        assert draft["fields"]["time"] == "9 PM"
        verdict = lint_one(draft, desk.service.settings)
        assert verdict["ok"], verdict["violations"]
        assert "Quillfeather" not in str(draft)
        once = {**DISPATCHER, "Idempotency-Key": "warning-1"}
        sent = await desk.client.post("/v1/alerts", json=draft, headers=once)
        assert sent.status == 202, await sent.text()
        alert_id = (await sent.json())["id"]
        replay = await desk.client.post("/v1/alerts", json=draft, headers=once)
        assert (await replay.json())["id"] == alert_id
        shown = await (await desk.client.get(f"/v1/incidents/{incident['id']}",
                                             headers=AUTH)).json()
        assert shown["alerts"] == [alert_id]
        listed = await (await desk.client.get("/v1/incidents", headers=AUTH)).json()
        assert listed["overdue_decisions"] == []
        report = await (await desk.client.get("/v1/reports/clery?year=2026",
                                              headers=AUTH)).json()
        (entry,) = [d for d in report["timely_warning_decisions"]
                    if d["incident_id"] == incident["id"]]
        assert entry["decision"] == "warn" and entry["decided_by"] == "dispatcher1"
        assert entry["alerts"] == [alert_id] and alert_id in str(report["records"])
        assert "Quillfeather" not in str(report["timely_warning_decisions"])
        page = await (await desk.client.get("/v1/reports/clery?year=2026&format=html",
                                            headers=AUTH)).text()
        assert "Timely-warning decisions" in page and alert_id in page
        sheet = await (await desk.client.get("/v1/reports/clery?year=2026&format=csv",
                                             headers=AUTH)).text()
        rows = list(csv.DictReader(io.StringIO(sheet)))
        (decided,) = [r for r in rows if r["record"] == "timely_warning_decision"
                      and r["incident_id"] == incident["id"]]
        assert decided["decision"] == "warn" and decided["decided_by"] == "dispatcher1"
        assert decided["alert_id"] == alert_id and decided["geography"] == "public_property"
        counted = [r for r in rows if r["record"] == "crime_statistic"
                   and r["crime"] == "robbery" and r["geography"] == "public_property"
                   and r["year"] == "2026"]
        assert counted and int(counted[0]["count"]) >= 1
        assert "Quillfeather" not in sheet
        twice = await desk.client.post(f"/v1/incidents/{incident['id']}/decision",
                                       json={"warn": False, "reasons": "Changed my mind"},
                                       headers=AUTH)
        assert twice.status == 409

    async def test_no_decision_outside_clery_geography_or_crimes(self, desk: Desk) -> None:
        """A crime off Clery geography, or no Clery crime at all, opens no decision."""
        off = await desk.added(geography="none")
        plain = await desk.added(category=None, nature="Theft of a bicycle")
        assert off["decision"] is None and plain["decision"] is None
        unknown = await desk.client.post("/v1/alerts", json={
            "kind": "timely_warning", "template": "robbery", "incident": "inc_missing",
            "fields": {"date": "Monday", "time": "9 PM", "location": "Lot C"}}, headers=AUTH)
        assert unknown.status == 422


    async def test_unknown_or_closed_incident_is_refused_and_nothing_stored(
        self, desk: Desk
    ) -> None:
        """An alert naming an unknown or closed incident gets 422 at `incident`, and neither
        an alert, a link nor an audit entry is written."""
        incident = await desk.added(category="burglary", nature="Burglary of an office",
                                    location="the Science Building")
        closed = await desk.client.patch(f"/v1/incidents/{incident['id']}", headers=AUTH,
                                         json={"disposition": "closed", "note": "solved"})
        assert closed.status == 200, await closed.text()
        db = desk.service.db
        before = await db.fetchval("SELECT COUNT(*) FROM audit")
        body = {"kind": "timely_warning", "channels": ["email"],
                "text": "Burglary reported at the Science Building. Lock office doors."}
        for named, says in ((incident["id"], "closed"), ("inc_missing", "no incident")):
            resp = await desk.client.post("/v1/alerts", json={**body, "incident": named},
                                          headers=DISPATCHER)
            assert resp.status == 422, await resp.text()
            (problem,) = (await resp.json())["problems"]
            assert problem["field"] == "incident" and says in problem["message"]
        assert await db.fetchval("SELECT COUNT(*) FROM alerts") == 0
        assert await db.fetchval("SELECT COUNT(*) FROM incident_alerts") == 0
        assert await db.fetchval("SELECT COUNT(*) FROM audit") == before
        reopened = await desk.client.patch(f"/v1/incidents/{incident['id']}", headers=AUTH,
                                           json={"disposition": "open", "note": "reopened"})
        assert reopened.status == 200
        sent = await desk.client.post("/v1/alerts", json={**body, "incident": incident["id"]},
                                      headers=DISPATCHER)
        assert sent.status == 202, await sent.text()
        alert_id = (await sent.json())["id"]
        linked = await db.fetchall("SELECT alert_id, linked_by FROM incident_alerts")
        assert [(r["alert_id"], r["linked_by"]) for r in linked] == [(alert_id, "dispatcher1")]

    async def test_link_is_checked_in_the_alert_transaction(self, desk: Desk) -> None:
        """An incident closed after intake's check still refuses the alert when it is
        written: the alert, its version and its audit entry are rolled back with the link."""
        incident = await desk.added(category="burglary", nature="Burglary of an office",
                                    location="the Science Building")
        await desk.client.patch(f"/v1/incidents/{incident['id']}", headers=AUTH,
                                json={"disposition": "unfounded", "note": "no crime"})
        request = AlertRequest.model_validate(
            {"kind": "timely_warning", "text": "Burglary at the Science Building.",
             "incident": incident["id"]})
        with pytest.raises(Invalid) as refused:
            await desk.service.alerts.create(
                request, {}, actor="dispatcher1", now_ms=desk.clock.now_ms(),
                expires_ms=desk.clock.now_ms() + 60_000, channels=[ChannelKind.EMAIL],
                idempotency_key=None, audience_counts={}, clery={}, audit_detail={},
                incident=incident["id"])
        assert refused.value.problems[0].field == "incident"
        db = desk.service.db
        for table in ("alerts", "alert_versions", "incident_alerts"):
            assert await db.fetchval(f"SELECT COUNT(*) FROM {table}") == 0
        actions = [r["action"] for r in await db.fetchall("SELECT action FROM audit")]
        assert "alert.created" not in actions

async def test_warning_held_for_approval_is_linked_once_approved(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    """A warning held for a second person is linked to its incident when approved."""
    settings = _settings(make_settings, tmp_path, None)
    approval = settings.auth.approval.model_copy(update={"enabled": True, "min_audience": 1})
    settings = settings.model_copy(update={"auth": settings.auth.model_copy(
        update={"approval": approval})})
    service = await Service.open(settings, clock=MovableClock(local(2026, 11, 25, 15)))
    client = TestClient(TestServer(build_app(service), host="127.0.0.1"))
    await client.start_server()
    desk = Desk(service, client, MovableClock())
    try:
        incident = await desk.added(category="burglary", nature="Burglary of an office",
                                    location="the Science Building")
        resp = await client.post(f"/v1/incidents/{incident['id']}/decision", headers=AUTH,
                                 json={"warn": True, "reasons": "Offices entered overnight"})
        draft = (await resp.json())["alert_request"]
        held = await client.post("/v1/alerts", json=draft, headers=AUTH)
        assert held.status == 202
        held_doc = await held.json()
        assert held_doc["approval_required"] is True
        shown = await (await client.get(f"/v1/incidents/{incident['id']}", headers=AUTH)).json()
        assert shown["alerts"] == []
        approved = await client.post(f"/v1/approvals/{held_doc['id']}/approve",
                                     headers=DISPATCHER)
        assert approved.status == 202, await approved.text()
        shown = await (await client.get(f"/v1/incidents/{incident['id']}", headers=AUTH)).json()
        assert shown["alerts"] == [(await approved.json())["id"]]
    finally:
        await client.close()


GEOGRAPHIES = ("on_campus", "on_campus_housing", "noncampus", "public_property", "none")
CATEGORIES = ("robbery", "burglary", "aggravated_assault", "stalking", "arrest_drug",
              "referral_liquor", None)
COLUMNS = {"on_campus": ("on_campus",), "on_campus_housing": ("on_campus", "on_campus_housing"),
           "noncampus": ("noncampus",), "public_property": ("public_property",), "none": ()}
SECTION = {"robbery": "criminal_offenses", "burglary": "criminal_offenses",
           "aggravated_assault": "criminal_offenses", "stalking": "vawa_offenses",
           "arrest_drug": "arrests", "referral_liquor": "referrals"}


class TestStatistics:
    """Three calendar years of counts, checked against a count made here."""

    async def test_the_last_year_the_api_allows(self, desk: Desk) -> None:
        """Year 9999 is answered (its year ends without a 1 January after it)."""
        resp = await desk.client.get("/v1/crime-statistics?year=9999", headers=AUTH)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["crime_statistics"]["years"] == [9997, 9998, 9999]

    async def test_three_years_against_an_independent_count(self, desk: Desk) -> None:
        """Per category and geography; unfounded apart; the year before the three left out."""
        rng = random.Random(7)
        made = []
        for n in range(36):
            year = rng.choice((2023, 2024, 2025, 2026))
            cat = rng.choice(CATEGORIES)
            geo = rng.choice(GEOGRAPHIES)
            disposition = "unfounded" if n % 7 == 0 else "closed"
            reported = local(year, rng.randint(1, 11), rng.randint(1, 28), rng.randint(0, 23))
            await desk.added(category=cat, geography=geo, disposition=disposition,
                             reported_at=reported.isoformat(), nature=f"Case number {n}")
            made.append((year, cat, geo, disposition))
        hate = await desk.added(category="intimidation", bias="race", geography="on_campus",
                                reported_at=local(2025, 3, 3).isoformat(),
                                nature="Threatening notes with slurs")
        assert hate["sections"] == ["hate_crimes"]
        expected: dict[str, dict[str, dict[str, dict[str, int]]]] = {}
        unfounded: dict[str, int] = {}
        for year, cat, geo, disposition in made:
            if year == 2023 or cat is None or geo == "none":
                continue
            if disposition == "unfounded":
                unfounded[str(year)] = unfounded.get(str(year), 0) + 1
                continue
            for col in COLUMNS[geo]:
                cell = expected.setdefault(SECTION[cat], {}).setdefault(cat, {}).setdefault(
                    col, {})
                cell[str(year)] = cell.get(str(year), 0) + 1
        expected.setdefault("hate_crimes", {})["intimidation/race"] = {"on_campus": {"2025": 1}}
        await desk.client.post("/v1/crime-statistics/requests", headers=AUTH, json={
            "year": 2026, "requested_on": "2026-10-01", "agency": "City Police Department",
            "response": "Statistics received 2026-10-20"})
        doc = await (await desk.client.get("/v1/crime-statistics?year=2026",
                                           headers=AUTH)).json()
        stats = doc["crime_statistics"]
        assert stats["years"] == [2024, 2025, 2026]
        assert stats["counts"] == expected
        assert {y: sum(by.values()) for y, by in stats["unfounded"].items() if by} == unfounded
        assert [r["agency"] for r in doc["law_enforcement_requests"]] == [
            "City Police Department"]
        report = await (await desk.client.get("/v1/reports/clery?year=2026",
                                              headers=AUTH)).json()
        assert report["crime_statistics"] == stats
        html = await (await desk.client.get("/v1/reports/clery?year=2026&format=html",
                                            headers=AUTH)).text()
        assert "City Police Department" in html and "intimidation/race" in html


def printed(out: str) -> Any:
    """The JSON document a command printed last (service logs share stdout in tests)."""
    import json

    lines = out.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")
    end = max(i for i, line in enumerate(lines) if line == "}")
    return json.loads("\n".join(lines[start:end + 1]))


class TestCommandLine:
    """`clarion incident ...` against a running service."""

    async def test_add_decide_and_send(
        self, desk: Desk, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Add a burglary, decide to warn with --send: the alert is linked to the incident."""
        import asyncio

        from dispatcher.cli import main

        url = str(desk.client.make_url("/"))
        token = ["--url", url, "--token", AUTH["Authorization"].removeprefix("Bearer ")]
        code = await asyncio.to_thread(main, [
            "incident", "add", "--reported-at", local(2026, 11, 25, 8).isoformat(),
            "--location", "the Science Building", "--geography", "on_campus",
            "--category", "burglary", "--nature", "Burglary of an office", *token])
        assert code == 0
        incident = printed(capsys.readouterr().out)
        # Moments print as local date-times, not epoch milliseconds.
        assert datetime.fromisoformat(incident["reported_at"]) == local(2026, 11, 25, 8)
        assert datetime.fromisoformat(incident["entered_at"]).utcoffset() is not None
        assert incident["case_number"] == "2026-000001"
        code = await asyncio.to_thread(main, [
            "incident", "decide", incident["id"], "--warn", "--reasons",
            "Several offices entered; a continuing threat", "--send", *token])
        out = printed(capsys.readouterr().out)
        assert code == 0, out
        shown = await (await desk.client.get(f"/v1/incidents/{incident['id']}",
                                             headers=AUTH)).json()
        assert shown["alerts"] == [out["alert"]["id"]]
        code = await asyncio.to_thread(main, ["incident", "show", "inc_missing", *token])
        assert code == 1
        capsys.readouterr()


class TestLocalTimes:
    """The incident CLI's moments: epoch milliseconds in, local date-times out."""

    def test_every_moment_nested_or_not_and_nothing_else(self) -> None:
        """`..._at`, `at` and the occurred range become local times; counts and flags stay."""
        ms = int(local(2026, 11, 25, 9).timestamp() * 1000)
        doc = {"reported_at": ms, "occurred_from": ms, "occurred_to": None, "late_entry": True,
               "decision": {"opened_at": ms, "overdue": False},
               "disposition_history": [{"at": ms, "note": "12"}], "items": [], "count": ms}
        assert local_times(doc, ZONE) == {
            "reported_at": "2026-11-25 09:00:00-05:00",
            "occurred_from": "2026-11-25 09:00:00-05:00", "occurred_to": None, "late_entry": True,
            "decision": {"opened_at": "2026-11-25 09:00:00-05:00", "overdue": False},
            "disposition_history": [{"at": "2026-11-25 09:00:00-05:00", "note": "12"}],
            "items": [], "count": ms}


class TestExample:
    """`make run`'s example incidents and the generated key."""

    async def test_example_seeded_into_an_empty_store_once(
        self, make_settings: SettingsFactory, tmp_path: Path
    ) -> None:
        """Five examples, a key beside the SQLite file, no audit entries, not seeded twice."""
        settings = make_settings(incidents={"timezone": "America/New_York"})
        for _ in range(2):
            service = await Service.open(settings)
            client = TestClient(TestServer(build_app(service), host="127.0.0.1"))
            await client.start_server()
            try:
                log = await (await client.get("/public/crime-log?format=json")).json()
                html = await (await client.get("/public/crime-log")).text()
            finally:
                await client.close()
            assert len(log["entries"]) == 5
            assert "Example Victim" not in html and "reporter@example.edu" not in html
        assert (tmp_path / "incidents.key").is_file()
        service = await Service.open(settings)
        try:
            audited = await service.db.fetchval(
                "SELECT COUNT(*) FROM audit WHERE action LIKE 'incident.%'")
            assert audited == 0
        finally:
            await service.db.close()

    async def test_two_nodes_on_an_empty_store_load_the_examples_once(
        self, make_settings: SettingsFactory, tmp_path: Path
    ) -> None:
        """Two registries seeding one empty store at the same moment: five examples, not ten."""
        settings = make_settings(incidents={"timezone": "America/New_York"})
        db = await open_database(settings.store.url)
        try:
            audit = AuditLog(db)
            permissions = Permissions(settings.auth, settings.directory.segments,
                                      settings.incidents)
            nodes = [IncidentRegistry(settings, IncidentStore(db, audit), Clock(), permissions)
                     for _ in range(2)]
            loaded = await asyncio.gather(*(n.seed_example() for n in nodes))
            assert sorted(loaded) == [0, 5]
            assert await nodes[0].store.count() == 5
        finally:
            await db.close()
