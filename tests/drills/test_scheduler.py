"""Scheduled drills fire once, on time, across restarts; missed ones are reported, fired late
within the grace period and skipped after it; the drill role sends drills only."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from channels.sandbox.server import Sandbox
from dispatcher.access.auth import token_sha256
from dispatcher.drills.schedule import DrillSettings, ScheduledDrill, occurrences_after
from dispatcher.drills.scheduler import RunStatus, idempotency_key
from dispatcher.settings import Settings
from dispatcher.store.database import Database
from tests.conftest import SettingsFactory
from tests.drills.conftest import (
    DRILL_TEXT,
    MovableClock,
    drill,
    drill_section,
    start_at,
    utc,
)
from tests.support import AUTH, Running

DrillSettingsFactory = Callable[..., Settings]
NOON = utc(2026, 3, 4, 12, 0, 0)


async def drill_alerts(db: Database) -> list[Any]:
    """Every drill alert in the store, oldest first."""
    return await db.fetchall(
        "SELECT id, created_by, idempotency_key, mode, clery FROM alerts WHERE mode != 'live'"
        " ORDER BY created_at"
    )


async def runs(db: Database) -> list[Any]:
    """Every drill run in the store, oldest first."""
    return await db.fetchall(
        "SELECT drill_name, scheduled_for, source, status, missed, alert_id, detail"
        " FROM drill_runs ORDER BY scheduled_for"
    )


async def wait_for_runs(db: Database, count: int, timeout: float = 10) -> list[Any]:
    """Wait until the store holds `count` settled runs (the scheduler's first look at start)."""
    async with asyncio.timeout(timeout):
        while True:
            found = await runs(db)
            if len(found) >= count and not any(RunStatus(r["status"]).open for r in found):
                return found
            await asyncio.sleep(0.02)


class TestOnTime:
    """An occurrence is claimed, then sent through intake as the scheduler, once."""

    async def test_fires_once_at_its_time(
        self, drill_settings: DrillSettingsFactory, services: list[Running], sandbox: Sandbox
    ) -> None:
        """Before noon nothing; at noon one drill alert, marked, with its Clery details."""
        clock = MovableClock(utc(2026, 3, 4, 11, 59, 30))
        run = await start_at(drill_settings({"daily": drill()}), clock)
        services.append(run)
        assert await run.service.scheduler.tick() == []
        clock.set(utc(2026, 3, 4, 12, 0, 1))
        fired = await run.service.scheduler.tick()
        assert [(r.drill, r.status, r.missed) for r in fired] == [
            ("daily", RunStatus.FIRED, False)
        ]
        assert await run.service.scheduler.tick() == []
        alerts = await drill_alerts(run.service.db)
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert["id"] == fired[0].alert_id
        assert alert["created_by"] == "scheduler"
        assert alert["idempotency_key"] == "drill:daily:2026-03-04T12:00:00.000+00:00"
        assert '"description": "Daily evacuation exercise of the dining staff"' in alert["clery"]
        doc = await run.wait_state(alert["id"])
        assert doc["mode"] == "drill" and doc["state"] == "done"
        mails = sandbox.stats.of("email", alert["id"])
        assert len(mails) == doc["channels"]["email"]["total"] > 0
        assert all("[DRILL] THIS IS A TEST" in m.meta["subject"] for m in mails)

    async def test_idempotency_key_names_the_occurrence(self) -> None:
        """drill:<name>:<scheduled time, ISO UTC>."""
        ms = int(NOON.timestamp() * 1000)
        assert idempotency_key("siren-test", ms) == "drill:siren-test:2026-03-04T12:00:00.000+00:00"

    def test_first_wednesday_cron_reads_both_days(self) -> None:
        """`0 12 1-7 * WED` is the first Wednesday at noon in the drill's time zone."""
        settings = DrillSettings.model_validate(
            {"timezone": "America/New_York", "schedule": {"siren": drill(cron="0 12 1-7 * WED")}}
        )
        spec = settings.schedule["siren"]
        after = int(utc(2026, 1, 1).timestamp() * 1000)
        found = occurrences_after("siren", spec, settings.zone(spec), after, 3)
        moments = [datetime.fromtimestamp(ms / 1000, tz=UTC) for ms in found]
        assert [m.isoformat() for m in moments] == [
            "2026-01-07T17:00:00+00:00",  # noon EST
            "2026-02-04T17:00:00+00:00",
            "2026-03-04T17:00:00+00:00",
        ]


class TestRestart:
    """Across a restart on the same SQLite store, an occurrence still fires once."""

    async def test_restart_does_not_fire_again(
        self, drill_settings: DrillSettingsFactory, services: list[Running]
    ) -> None:
        """Fired at noon, stopped, started again at 12:00:05: still one alert and one run."""
        settings = drill_settings({"daily": drill()})
        first_clock = MovableClock(utc(2026, 3, 4, 11, 59, 50))
        first = await start_at(settings, first_clock)
        services.append(first)
        first_clock.set(utc(2026, 3, 4, 12, 0, 1))
        await first.service.scheduler.tick()
        await first.client.close()

        second_clock = MovableClock(utc(2026, 3, 4, 12, 0, 5))
        second = await start_at(settings, second_clock)
        services.append(second)
        await second.service.scheduler.tick()
        assert len(await drill_alerts(second.service.db)) == 1
        assert [r["status"] for r in await runs(second.service.db)] == ["fired"]
        second_clock.set(utc(2026, 3, 5, 12, 0, 2))
        await second.service.scheduler.tick()
        assert len(await drill_alerts(second.service.db)) == 2

    async def test_claim_of_a_dead_process_is_sent_once(
        self, drill_settings: DrillSettingsFactory, services: list[Running]
    ) -> None:
        """A claim left open by a crash (before or after its alert was made) is finished by
        the next process, with the Idempotency-Key keeping it to one alert."""
        settings = drill_settings({"daily": drill()})
        clock = MovableClock(utc(2026, 3, 4, 11, 59, 50))
        first = await start_at(settings, clock)
        services.append(first)
        clock.set(utc(2026, 3, 4, 12, 0, 1))
        await first.service.scheduler.tick()
        # Crash after the alert was made, before the run recorded it.
        await first.service.db.execute(
            "UPDATE drill_runs SET status = 'pending', alert_id = NULL, lease_until = ?",
            (2**60,),
        )
        # Crash after claiming the next day's occurrence, before sending it.
        tomorrow = int(utc(2026, 3, 5, 12).timestamp() * 1000)
        await first.service.db.execute(
            "INSERT INTO drill_runs (drill_name, scheduled_for, source, status, missed,"
            " claimed_by, claimed_at, lease_until) VALUES ('daily', ?, 'schedule', 'pending',"
            " 0, 'dead', ?, ?)",
            (tomorrow, tomorrow, 2**60),
        )
        await first.service.db.execute(
            "UPDATE drill_schedule SET checked_until = ?", (tomorrow + 1000,)
        )
        await first.client.close()

        second = await start_at(settings, MovableClock(utc(2026, 3, 5, 12, 0, 3)))
        services.append(second)
        found = await wait_for_runs(second.service.db, 2)
        assert [r["status"] for r in found] == ["fired", "fired"]
        alerts = await drill_alerts(second.service.db)
        assert len(alerts) == 2
        assert {r["alert_id"] for r in found} == {a["id"] for a in alerts}


class TestMissed:
    """Occurrences that passed while no process ran are reported, then fired late or skipped."""

    async def _down_between(
        self,
        settings: Settings,
        services: list[Running],
        stopped: tuple[int, ...],
        started: tuple[int, ...],
    ) -> tuple[Running, list[Any], list[MutableMapping[str, Any]]]:
        first = await start_at(settings, MovableClock(utc(*stopped)))
        services.append(first)
        await first.client.close()
        with capture_logs() as logs:
            second = await start_at(settings, MovableClock(utc(*started)))
            services.append(second)
            found = await wait_for_runs(second.service.db, 1)
        return second, found, logs

    async def test_within_grace_fires_late(
        self, drill_settings: DrillSettingsFactory, services: list[Running]
    ) -> None:
        """Down from 11:00 to 12:30 with an hour's grace: the noon drill goes out at start."""
        run, found, logs = await self._down_between(
            drill_settings({"daily": drill()}), services, (2026, 3, 4, 11), (2026, 3, 4, 12, 30)
        )
        assert [(r["status"], r["missed"]) for r in found] == [("fired_late", 1)]
        alerts = await drill_alerts(run.service.db)
        assert [a["id"] for a in alerts] == [found[0]["alert_id"]]
        events = [e["event"] for e in logs if e["event"].startswith("drill.")]
        assert "drill.missed" in events and "drill.fired_late" in events
        missed = next(e for e in logs if e["event"] == "drill.missed")
        assert missed["late_s"] == 1800 and missed["action"] == "fire_late"

    async def test_past_grace_is_skipped(
        self, drill_settings: DrillSettingsFactory, services: list[Running]
    ) -> None:
        """Down from 11:00 to 14:00 with an hour's grace: recorded and logged as skipped."""
        run, found, logs = await self._down_between(
            drill_settings({"daily": drill()}), services, (2026, 3, 4, 11), (2026, 3, 4, 14)
        )
        assert [(r["status"], r["missed"]) for r in found] == [("skipped", 1)]
        assert "past the grace period" in found[0]["detail"]
        assert await drill_alerts(run.service.db) == []
        events = [e["event"] for e in logs if e["event"].startswith("drill.")]
        assert "drill.missed" in events and "drill.skipped" in events
        assert "drill.fired_late" not in events

    async def test_only_the_latest_missed_fires(
        self, drill_settings: DrillSettingsFactory, services: list[Running]
    ) -> None:
        """Hourly, down 09:30 to 12:10: 10:00 and 11:00 skipped, 12:00 fired late, once."""
        settings = drill_settings({"hourly": drill(cron="0 * * * *")})
        run, _found, _logs = await self._down_between(
            settings, services, (2026, 3, 4, 9, 30), (2026, 3, 4, 12, 10)
        )
        found = await wait_for_runs(run.service.db, 3)
        assert [(r["status"], r["missed"]) for r in found] == [
            ("skipped", 1), ("skipped", 1), ("fired_late", 1)
        ]
        assert "superseded" in found[0]["detail"]
        assert len(await drill_alerts(run.service.db)) == 1

    async def test_per_drill_grace(
        self, drill_settings: DrillSettingsFactory, services: list[Running]
    ) -> None:
        """A drill's own grace_s wins over the section's."""
        settings = drill_settings({"daily": drill(grace_s=600)}, grace_s=7200)
        _run, found, _logs = await self._down_between(
            settings, services, (2026, 3, 4, 11), (2026, 3, 4, 12, 30)
        )
        assert [r["status"] for r in found] == ["skipped"]


DRILL_TOKEN = "drill-team-token-0123456789"
DRILL_AUTH = {"Authorization": f"Bearer {DRILL_TOKEN}"}
LIVE = {
    "kind": "emergency",
    "text": "Fire at Carver Hall. Evacuate now by the nearest exit and do not use elevators.",
    "channels": ["email"],
    "audience": "group:dining",
}


class TestDrillRole:
    """A drill token sends drills and tests, never a live alert."""

    @pytest.fixture
    def settings(self, make_settings: SettingsFactory) -> Settings:
        """A drill-role token beside the admin token, and one scheduled drill."""
        return make_settings(
            auth={"tokens": [{"name": "drill-team", "role": "drill",
                              "sha256": token_sha256(DRILL_TOKEN)}]},
            drills=drill_section({"daily": drill()}),
        )

    async def test_live_is_403_drill_is_202(
        self, settings: Settings, services: list[Running]
    ) -> None:
        """The same text as a live alert is refused; as a drill it is accepted."""
        run = await start_at(settings, MovableClock())
        services.append(run)
        live = await run.client.post("/v1/alerts", json=LIVE, headers=DRILL_AUTH)
        assert live.status == 403
        assert "drills and tests only" in (await live.json())["error"]
        drill_body = {**LIVE, "mode": "drill", "drill": {"description": "Tabletop"}}
        accepted = await run.client.post("/v1/alerts", json=drill_body, headers=DRILL_AUTH)
        assert accepted.status == 202, await accepted.text()
        assert await run.service.db.fetchval("SELECT COUNT(*) FROM alerts WHERE mode = 'live'") == 0

    async def test_run_now_as_the_caller(
        self, settings: Settings, services: list[Running]
    ) -> None:
        """POST /v1/drills/{name}/run fires the drill now; the record names who ran it."""
        run = await start_at(settings, MovableClock())
        services.append(run)
        resp = await run.client.post("/v1/drills/daily/run", headers=DRILL_AUTH)
        assert resp.status == 202, await resp.text()
        body = await resp.json()
        assert body["run"]["source"] == "manual" and body["run"]["status"] == "fired"
        created_by = await run.service.db.fetchval(
            "SELECT created_by FROM alerts WHERE id = ?", (body["id"],)
        )
        assert created_by == "drill-team"
        missing = await run.client.post("/v1/drills/nope/run", headers=DRILL_AUTH)
        assert missing.status == 404

    async def test_list_shows_next_times_and_runs(
        self, settings: Settings, services: list[Running]
    ) -> None:
        """GET /v1/drills: each drill's next three times and its recent runs."""
        run = await start_at(settings, MovableClock(utc(2026, 3, 4, 9)))
        services.append(run)
        await run.client.post("/v1/drills/daily/run", headers=AUTH)
        doc = await (await run.client.get("/v1/drills", headers=DRILL_AUTH)).json()
        (daily,) = doc["drills"]
        assert daily["next"] == [
            "2026-03-04T12:00:00.000+00:00",
            "2026-03-05T12:00:00.000+00:00",
            "2026-03-06T12:00:00.000+00:00",
        ]
        assert daily["description"] == "Daily evacuation exercise of the dining staff"
        assert [r["source"] for r in daily["recent_runs"]] == ["manual"]


class TestConfig:
    """A bad `[drills]` section is refused, naming what is wrong."""

    @pytest.mark.parametrize(
        ("patch", "message"),
        [
            ({"mode": "live"}, "never 'live'"),
            ({"cron": "61 * * * *"}, "not a cron expression"),
            ({"cron": "0 12 * *"}, "not a cron expression"),
            ({"timezone": "Mars/Olympus"}, "unknown time zone"),
            ({"text": None}, "text is required"),
            ({"channels": ["fax"]}, "channels"),
            ({"description": ""}, "description"),
            ({"color": "red"}, "color"),
        ],
    )
    def test_refused(self, patch: dict[str, Any], message: str) -> None:
        """Each mistake is a validation error that says what it is."""
        raw = drill(**patch)
        raw = {k: v for k, v in raw.items() if v is not None}
        with pytest.raises(ValidationError, match=message):
            ScheduledDrill.model_validate(raw)

    def test_bad_name_and_qualifying_mode(self) -> None:
        """Names are URL- and key-safe; a real emergency never counts as a test."""
        with pytest.raises(ValidationError, match="drill names"):
            DrillSettings.model_validate({"schedule": {"a b": drill()}})
        with pytest.raises(ValidationError, match="do not count"):
            DrillSettings.model_validate({"qualifying_modes": ["live"]})

    def test_request_carries_the_clery_details(self) -> None:
        """The alert request a drill sends: drill mode, its text, its Clery record."""
        request = ScheduledDrill.model_validate(drill(announced=False)).request()
        assert request.mode.value == "drill" and request.text == DRILL_TEXT
        assert request.drill is not None and request.drill.announced is False
        assert request.drill.procedures_publicized is True
