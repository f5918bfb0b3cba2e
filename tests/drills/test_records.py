"""Clery records and the yearly report: every required field, the warnings, follow-up notes,
retention that never touches the audit chain, and `clarion audit verify` catching tampering."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from structlog.testing import capture_logs

from dispatcher import cli
from dispatcher.access.auth import token_sha256
from dispatcher.clock import Clock
from dispatcher.records import CSV_COLUMNS, purge, year_bounds
from dispatcher.store.audit import AuditLog
from tests.conftest import SettingsFactory
from tests.drills.conftest import DRILL_TEXT, SMALL_AUDIENCE, start_at
from tests.support import AUTH, Running

EMERGENCY: dict[str, Any] = {
    "kind": "emergency",
    "text": "Gas leak at the Chemistry Building. Evacuate now and avoid the area.",
    "audience": SMALL_AUDIENCE,
    "channels": ["email"],
    "confirmed_by": {"name": "Dana Whitfield", "title": "Chief of Campus Police"},
    "delay_reason": "Held 4 minutes while the fire department confirmed the leak",
}
DRILL_FACTS: dict[str, Any] = {
    "description": "Spring evacuation exercise of the Dining Commons",
    "announced": False,
    "procedures_publicized": True,
}
DRILL: dict[str, Any] = {
    "kind": "emergency",
    "mode": "drill",
    "text": DRILL_TEXT,
    "audience": SMALL_AUDIENCE,
    "channels": ["email"],
    "drill": DRILL_FACTS,
}
NOTE = "All staff out in 4 minutes; the east door alarm did not sound, work order filed."


async def send(run: Running, body: dict[str, Any]) -> str:
    """POST an alert and wait until it is done; its id."""
    resp = await run.post_alert(body)
    assert resp.status == 202, await resp.text()
    alert_id: str = (await resp.json())["id"]
    assert (await run.wait_state(alert_id))["state"] == "done"
    return alert_id


def this_year() -> int:
    """The current calendar year (UTC, the default drills.timezone)."""
    return datetime.now(tz=UTC).year


async def report(run: Running, fmt: str = "json", year: int | None = None) -> Any:
    """GET /v1/reports/clery."""
    resp = await run.client.get(
        f"/v1/reports/clery?year={year or this_year()}&format={fmt}", headers=AUTH
    )
    assert resp.status == 200, await resp.text()
    return await resp.json() if fmt == "json" else await resp.text()


class TestReport:
    """The year's report holds every field the regulation asks for, in JSON, CSV and HTML."""

    async def test_every_required_field(self, running: Running) -> None:
        """Confirmation, choices, timing, delay, versions, audience, results, drill facts."""
        emergency = await send(running, EMERGENCY)
        drill = await send(running, DRILL)
        noted = await running.client.post(
            f"/v1/alerts/{drill}/notes", json={"text": NOTE}, headers=AUTH
        )
        assert noted.status == 201, await noted.text()

        doc = await report(running)
        by_id = {r["alert_id"]: r for r in doc["records"]}
        e, d = by_id[emergency], by_id[drill]
        assert e["category"] == "emergency_notification"
        assert e["confirmed_by"] == {"name": "Dana Whitfield", "title": "Chief of Campus Police"}
        assert e["confirmed_at"] and e["sending_began_at"] and e["ended_at"]
        assert e["audience_and_content_chosen_by"] == "admin-token"
        assert e["confirmation_to_sending_s"] is not None and e["confirmation_to_sending_s"] >= 0
        assert e["delay_reason"] == EMERGENCY["delay_reason"]
        assert [v["content"] for v in e["content_versions"]] == [EMERGENCY["text"]]
        total = e["audience"]["counts"]["total"]
        assert total > 0 and e["audience"]["expression"] == SMALL_AUDIENCE
        assert e["deliveries"]["email"]["total"] == total
        assert e["deliveries"]["email"]["accepted"] == total
        reached = e["delivery_timeline"]["reached"]["email"]
        assert reached[0] == [0, 0] and reached[-1][1] == total
        assert "drill" not in e

        assert d["category"] == "test"
        facts = d["drill"]
        assert facts["description"] == DRILL_FACTS["description"]
        assert facts["date"] == facts["start"][:10]
        assert facts["start"] and facts["end"] and facts["end"] >= facts["start"]
        assert facts["announced"] is False and facts["procedures_publicized"] is True
        assert [n["text"] for n in d["follow_up_notes"]] == [NOTE]
        assert doc["summary"]["qualifying_tests"] == 1
        assert doc["summary"]["emergency_notification"] == 1
        codes = {w["code"] for w in doc["warnings"]}
        assert not codes & {"no_qualifying_test", "no_publicized_test", "missing_confirmation"}

        rows = list(csv.DictReader(io.StringIO(await report(running, "csv"))))
        assert tuple(rows[0].keys()) == CSV_COLUMNS
        csv_by_id = {r["alert_id"]: r for r in rows if r["record"] == "alert"}
        ce, cd = csv_by_id[emergency], csv_by_id[drill]
        assert ce["confirmed_by_name"] == "Dana Whitfield"
        assert ce["confirmed_by_title"] == "Chief of Campus Police"
        assert ce["delay_reason"] == EMERGENCY["delay_reason"]
        assert EMERGENCY["text"] in ce["content"] and ce["content_versions"] == "1"
        assert f"email: total {total}" in ce["delivery_results"]
        assert cd["drill_description"] == DRILL_FACTS["description"]
        assert (cd["announced"], cd["procedures_publicized"], cd["qualifying_test"]) == (
            "no", "yes", "yes"
        )
        assert cd["drill_start"] and cd["drill_end"] and NOTE in cd["follow_up_notes"]

        page = await report(running, "html")
        assert page.count("<svg") == 2
        assert DRILL_FACTS["description"] in page and "Dana Whitfield" in page
        assert "Chief of Campus Police" in page and "east door alarm" in page
        # Self-contained: nothing for a browser to fetch.
        for outside in ("<script", "<link", " src=", "url(", "https://", "@import"):
            assert outside not in page, outside

    async def test_warnings(self, running: Running) -> None:
        """A real emergency is not a test; a test without publicized procedures is not enough."""
        await send(running, EMERGENCY)
        codes = {w["code"] for w in (await report(running))["warnings"]}
        assert {"no_qualifying_test", "no_publicized_test"} <= codes
        quiet = {**DRILL, "drill": {**DRILL_FACTS, "procedures_publicized": False}}
        await send(running, quiet)
        codes = {w["code"] for w in (await report(running))["warnings"]}
        assert "no_qualifying_test" not in codes and "no_publicized_test" in codes
        bare = {k: v for k, v in DRILL.items() if k != "drill"}
        bare_id = await send(running, bare)
        warnings = (await report(running))["warnings"]
        assert {"code": "test_without_description", "alert_id": bare_id} in [
            {"code": w["code"], "alert_id": w["alert_id"]} for w in warnings
        ]

    async def test_other_years_and_bad_parameters(self, running: Running) -> None:
        """A year without alerts is empty, with its warning; bad parameters are 422."""
        doc = await report(running, year=2001)
        assert doc["records"] == [] and "no_qualifying_test" in {w["code"] for w in
                                                                  doc["warnings"]}
        for query in ("year=nope", "year=12", "format=pdf"):
            resp = await running.client.get(f"/v1/reports/clery?{query}", headers=AUTH)
            assert resp.status == 422, query


DRILL_TOKEN = "drill-team-token-0123456789"
VIEWER_TOKEN = "viewer-token-0123456789"


class TestNotes:
    """Follow-up notes: kept with the record, audited by hash, guarded by role."""

    @pytest.fixture
    def tokens(self, make_settings: SettingsFactory) -> Any:
        """Settings with a drill token and a viewer token."""
        return make_settings(auth={"tokens": [
            {"name": "drill-team", "role": "drill", "sha256": token_sha256(DRILL_TOKEN)},
            {"name": "reader", "role": "viewer", "sha256": token_sha256(VIEWER_TOKEN)},
        ]})

    async def test_roles_and_audit(self, tokens: Any, services: list[Running]) -> None:
        """A drill token notes drills, not live alerts; a viewer notes nothing; each note is
        one audit entry holding the text's hash."""
        run = await start_at(tokens, Clock())
        services.append(run)
        live = await send(run, EMERGENCY)
        drill = await send(run, DRILL)

        def as_(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        body = {"text": NOTE}
        post = run.client.post
        assert (await post(f"/v1/alerts/{live}/notes", json=body,
                           headers=as_(DRILL_TOKEN))).status == 403
        assert (await post(f"/v1/alerts/{drill}/notes", json=body,
                           headers=as_(VIEWER_TOKEN))).status == 403
        assert (await post(f"/v1/alerts/{drill}/notes", json={"text": " "},
                           headers=AUTH)).status == 422
        assert (await post(f"/v1/alerts/{drill}/notes", json={"text": "x", "y": 1},
                           headers=AUTH)).status == 422
        assert (await post("/v1/alerts/nope/notes", json=body, headers=AUTH)).status == 404
        made = await post(f"/v1/alerts/{drill}/notes", json=body, headers=as_(DRILL_TOKEN))
        assert made.status == 201
        note = await made.json()
        assert note["author"] == "drill-team" and note["text"] == NOTE

        listed = await (await run.client.get(f"/v1/alerts/{drill}/notes", headers=AUTH)).json()
        assert [n["id"] for n in listed["items"]] == [note["id"]]
        entries = [e for e in await run.service.audit.entries(drill)
                   if e["action"] == "alert.note_added"]
        assert len(entries) == 1
        assert entries[0]["actor"] == "drill-team"
        assert NOTE not in json.dumps(entries[0]["detail"])
        assert len(entries[0]["detail"]["sha256"]) == 64
        record = await (await run.client.get(f"/v1/alerts/{drill}/record", headers=AUTH)).json()
        assert record["follow_up_notes"][0]["text"] == NOTE


def write_config(folder: Path, db: Path) -> Path:
    """A config file naming only the store."""
    path = folder / "clarion.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{db}"\n', encoding="utf-8")
    return path


async def clarion(*argv: str) -> int:
    """Run the `clarion` command (in a thread: it runs its own event loop)."""
    return await asyncio.to_thread(cli.main, list(argv))


class TestRetention:
    """Only what is past retention goes; the audit chain stays whole and records the purge."""

    async def test_purge_keeps_the_chain(
        self, running: Running, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An eight-year-old alert is removed with everything it owns; a new one stays."""
        service = running.service
        old = await send(running, EMERGENCY)
        new = await send(running, DRILL)
        await running.client.post(f"/v1/alerts/{old}/notes", json={"text": NOTE}, headers=AUTH)
        eight_years = 8 * 365 * 86_400_000
        await service.db.execute(
            "UPDATE alerts SET created_at = created_at - ? WHERE id = ?", (eight_years, old)
        )
        audit_before = await service.db.fetchval("SELECT COUNT(*) FROM audit")
        now = Clock().now_ms()

        dry = await purge(service.db, service.audit, retention_days=7 * 365, now_ms=now,
                          dry_run=True)
        assert dry.alert_ids == (old,) and dry.counts["deliveries"] > 0
        assert await service.db.fetchval("SELECT COUNT(*) FROM alerts") == 2

        with capture_logs() as logs:
            done = await purge(service.db, service.audit, retention_days=7 * 365, now_ms=now)
        assert done.alert_ids == (old,)
        assert done.counts == dry.counts and done.counts["notes"] == 1
        for table in ("alerts", "alert_versions", "deliveries", "receipts", "alert_notes"):
            column = "id" if table == "alerts" else "alert_id"
            left = await service.db.fetchval(
                f"SELECT COUNT(*) FROM {table} WHERE {column} = ?", (old,)
            )
            assert left == 0, table
        assert await service.alerts.get(new) is not None
        assert await service.db.fetchval("SELECT COUNT(*) FROM audit") == audit_before + 1
        assert (await AuditLog(service.db).verify()).ok
        (entry,) = [e for e in logs if e["event"] == "records.purged"]
        assert entry["alerts"] == 1 and entry["receipts"] == done.counts["receipts"]
        again = await purge(service.db, service.audit, retention_days=7 * 365, now_ms=now)
        assert again.alert_ids == ()

    async def test_cli_purge_verify_and_tampering(
        self, make_settings: SettingsFactory, tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`clarion purge`, `clarion report` and `clarion audit verify` on the store; an
        edited audit entry is then caught."""
        settings = make_settings()
        run = await start_at(settings, Clock())
        drill = await send(run, DRILL)
        await run.service.db.execute(
            "UPDATE alerts SET created_at = created_at - ? WHERE id = ?",
            (8 * 365 * 86_400_000, drill),
        )
        await run.client.close()
        db_path = Path(settings.store.url.removeprefix("sqlite:///"))
        config = write_config(tmp_path, db_path)

        assert await clarion("purge", "--dry-run", "--config", str(config)) == 0
        assert "would remove 1 alerts" in capsys.readouterr().out
        assert await clarion("purge", "--config", str(config)) == 0
        assert "removed 1 alerts" in capsys.readouterr().out
        assert await clarion("audit", "verify", "--config", str(config)) == 0
        assert "audit chain intact" in capsys.readouterr().out

        out = tmp_path / "report.csv"
        assert await clarion("report", "--year", str(this_year()), "--config", str(config),
                             "--out", str(out)) == 0
        assert "no_qualifying_test" in out.read_text(encoding="utf-8")

        from dispatcher.store.database import open_database

        db = await open_database(settings.store.url)
        try:
            await db.execute("UPDATE audit SET actor = 'someone-else' WHERE seq = 1")
        finally:
            await db.close()
        assert await clarion("audit", "verify", "--config", str(config)) == 1
        assert "broken at entry 1" in capsys.readouterr().out


class TestDrillCommands:
    """`clarion drill list` reads the config; `clarion drill run` goes through the API."""

    async def test_list_and_run(
        self, make_settings: SettingsFactory, tmp_path: Path,
        capsys: pytest.CaptureFixture[str], services: list[Running],
    ) -> None:
        """The listing shows the next times; a run through the API makes a drill alert."""
        config = tmp_path / "drills.toml"
        db = tmp_path / "clarion.db"
        config.write_text(
            f'[store]\nurl = "sqlite:///{db}"\n\n[drills]\ntimezone = "America/New_York"\n\n'
            '[drills.schedule.monthly-siren-test]\ncron = "0 12 1-7 * WED"\nmode = "test"\n'
            'text = "Siren test: this is only a test. Resume normal activity."\n'
            'channels = ["email"]\naudience = "group:dining"\n'
            'description = "Monthly test of the outdoor sirens"\n',
            encoding="utf-8",
        )
        assert await clarion("drill", "list", "--json", "--config", str(config)) == 0
        listed = json.loads(capsys.readouterr().out)
        (siren,) = listed["drills"]
        assert siren["name"] == "monthly-siren-test" and len(siren["next"]) == 3
        assert all(t.endswith(("-05:00", "-04:00")) for t in siren["next"])
        assert not db.exists(), "listing must not create a store"

        from dispatcher.settings import load_settings

        settings = load_settings(config).model_copy(update={
            "auth": make_settings().auth, "channels": make_settings().channels,
            "base_dir": make_settings().base_dir, "directory": make_settings().directory,
        })
        run = await start_at(settings, Clock())
        services.append(run)
        url = str(run.client.make_url("")).rstrip("/")
        token = "test-token-0123456789"
        assert await clarion("drill", "run", "monthly-siren-test", "--url", url, "--token",
                             token, "--no-wait") == 0
        assert "accepted" in capsys.readouterr().out
        mode = await run.service.db.fetchval("SELECT mode FROM alerts")
        assert mode == "test"
        assert await clarion("drill", "run", "nope", "--url", url, "--token", token,
                             "--no-wait") == 1


class TestYearBounds:
    """The calendar year in the institution's zone, up to the last year the API accepts."""

    def test_the_last_year_ends_after_its_31_december(self) -> None:
        """Year 9999 has no following 1 January in datetime; its bounds still span the year."""
        zone = ZoneInfo("America/New_York")
        start, end = year_bounds(9999, zone)
        assert end - start == 365 * 86_400_000
        assert datetime.fromtimestamp(start / 1000, tz=zone).timetuple()[:3] == (9999, 1, 1)
        assert year_bounds(2026, zone)[1] == year_bounds(2027, zone)[0]
