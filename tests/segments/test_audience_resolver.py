"""The resolver: dedup, preferences and policy, language, streaming, counts and checks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import ClassVar

import pytest

from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.settings import config_dir
from dispatcher.store.database import open_database
from segments.audience import AudienceError, AudienceResolver, PlannedDelivery
from segments.settings import DirectorySettings
from segments.synthetic import PUSH_SINK
from tests.segments.helpers import LATE_MS, NOON_MS, PEOPLE_KINDS, Campus, person

ADVISORY = AlertKind.ADVISORY
EMERGENCY = AlertKind.EMERGENCY


def channels_of(planned: list[PlannedDelivery], recipient: str) -> dict[str, str | None]:
    return {p.channel.value: p.suppressed for p in planned if p.recipient == recipient}


class TestDedup:
    """Each person gets at most one delivery per channel, whatever they match."""

    async def test_overlapping_segments(self, campus: Campus) -> None:
        await campus.people([
            person("P1", groups="athletics;band"),
            person("P2", groups="band"),
            person("P3", role="staff", building="admin"),
        ])
        planned = await campus.plan(
            "group:athletics or group:band or role:student or building:north-hall or zone:a",
            channels=PEOPLE_KINDS,
        )
        pairs = Counter((p.recipient, p.channel) for p in planned)
        assert set(pairs.values()) == {1}
        assert {p.recipient for p in planned} == {"P1", "P2"}
        assert len(planned) == 6

    async def test_named_segments_overlap_too(self, campus: Campus) -> None:
        named = campus.with_settings(segments={
            "athletes": "group:athletics", "north": "building:north-hall and role:student",
        })
        await named.people([person("P1", groups="athletics"), person("P2", building="admin",
                                                                     groups="athletics")])
        planned = await named.plan("athletes or north or athletes", channels=[ChannelKind.SMS])
        assert sorted(p.recipient for p in planned) == ["P1", "P2"]

    async def test_repeated_channels_are_planned_once(self, campus: Campus) -> None:
        await campus.people([person("P1")])
        planned = await campus.plan(channels=[ChannelKind.SMS, ChannelKind.SMS])
        assert len(planned) == 1


class TestPreferences:
    """Channel choice follows preferences; mandatory kinds override where policy says."""

    ROWS: ClassVar = [
        person("OPT", opt_out="sms"),
        person("ALL", opt_out="all"),
        person("QUIET", quiet_hours="22:00-07:00"),
        person("PARENT", role="parent", building="", push="", opt_out="sms",
               quiet_hours="22:00-07:00"),
        person("NOPUSH", push=""),
        person("PLAIN"),
    ]

    @pytest.fixture
    async def filled(self, campus: Campus) -> Campus:
        report = await campus.people(self.ROWS)
        assert report.added == len(self.ROWS)
        return campus

    async def test_advisories_respect_opt_outs_and_quiet_hours(self, filled: Campus) -> None:
        planned = await filled.plan(kind=ADVISORY, channels=PEOPLE_KINDS, now_ms=LATE_MS)
        assert channels_of(planned, "OPT") == {"sms": "opt_out", "push": None, "email": None}
        assert channels_of(planned, "ALL") == dict.fromkeys(("sms", "push", "email"), "opt_out")
        assert channels_of(planned, "QUIET") == {
            "sms": "quiet_hours", "push": "quiet_hours", "email": None
        }
        assert channels_of(planned, "PARENT") == {
            "sms": "opt_out", "push": "no_address", "email": None
        }
        assert channels_of(planned, "NOPUSH") == {"sms": None, "push": "no_address", "email": None}
        assert channels_of(planned, "PLAIN") == dict.fromkeys(("sms", "push", "email"))

    async def test_quiet_hours_only_while_quiet(self, filled: Campus) -> None:
        planned = await filled.plan(kind=ADVISORY, channels=PEOPLE_KINDS, now_ms=NOON_MS)
        assert channels_of(planned, "QUIET") == dict.fromkeys(("sms", "push", "email"))

    @pytest.mark.parametrize("kind", [EMERGENCY, AlertKind.TIMELY_WARNING])
    async def test_mandatory_kinds_override_for_enrolled_roles(
        self, filled: Campus, kind: AlertKind
    ) -> None:
        planned = await filled.plan(kind=kind, channels=PEOPLE_KINDS, now_ms=LATE_MS)
        for enrolled in ("OPT", "ALL", "QUIET", "PLAIN"):
            assert channels_of(planned, enrolled) == dict.fromkeys(("sms", "push", "email"))
        # An opt-in list keeps its opt-outs; quiet hours give way to an emergency for everyone.
        assert channels_of(planned, "PARENT") == {
            "sms": "opt_out", "push": "no_address", "email": None
        }

    async def test_policy_is_configurable(self, filled: Campus) -> None:
        strict = filled.with_settings(mandatory_kinds=[], mandatory_roles=[])
        planned = await strict.plan(kind=EMERGENCY, channels=PEOPLE_KINDS, now_ms=LATE_MS)
        assert channels_of(planned, "OPT")["sms"] == "opt_out"
        assert channels_of(planned, "QUIET")["sms"] == "quiet_hours"
        everyone = filled.with_settings(mandatory_roles=["student", "parent"])
        planned = await everyone.plan(kind=EMERGENCY, channels=PEOPLE_KINDS, now_ms=LATE_MS)
        assert channels_of(planned, "PARENT")["sms"] is None

    async def test_channel_order_with_one_channel_for_advisories(self, campus: Campus) -> None:
        one = campus.with_settings(optional_channels=1)
        await one.people([
            person("EMAIL-FIRST", channels="email;push"),
            person("DEFAULT"),
            person("NO-PHONE", phone="", channels="sms;email"),
            person("SMS-OUT", channels="sms;push", opt_out="sms"),
        ])
        planned = await one.plan(kind=ADVISORY, channels=PEOPLE_KINDS, now_ms=NOON_MS)
        assert channels_of(planned, "EMAIL-FIRST") == {"email": None}
        assert channels_of(planned, "DEFAULT") == {"sms": None}
        assert channels_of(planned, "NO-PHONE") == {"sms": "no_address", "email": None}
        assert channels_of(planned, "SMS-OUT") == {"sms": "opt_out", "push": None}
        emergency = await one.plan(kind=EMERGENCY, channels=PEOPLE_KINDS)
        assert len(channels_of(emergency, "EMAIL-FIRST")) == 3

    async def test_addresses_match_the_channel(self, filled: Campus) -> None:
        planned = await filled.plan("id:PLAIN", channels=PEOPLE_KINDS)
        assert {p.channel: p.address for p in planned} == {
            ChannelKind.SMS: "+12015550100",
            ChannelKind.PUSH: f"{PUSH_SINK}PLAIN",
            ChannelKind.EMAIL: "t.quorin0@example.edu",
        }


class TestLanguage:
    """Each delivery carries the person's language."""

    ROWS: ClassVar = [person("E1"), person("S1", language="es"), person("Z1", language="zh")]

    async def test_language_per_person(self, campus: Campus) -> None:
        await campus.people(self.ROWS)
        planned = await campus.plan(channels=[ChannelKind.EMAIL])
        assert {p.recipient: p.language for p in planned} == {"E1": "en", "S1": "es", "Z1": "zh"}

    async def test_fallback_to_the_alerts_first_language(self, campus: Campus) -> None:
        await campus.people(self.ROWS)
        planned = await campus.plan(channels=[ChannelKind.EMAIL], languages=["en", "es"])
        assert {p.recipient: p.language for p in planned} == {"E1": "en", "S1": "es", "Z1": "en"}

    async def test_language_term(self, campus: Campus) -> None:
        await campus.people([person("E1"), person("S1", language="ES")])
        assert await campus.recipients("language:es") == {"S1"}


class TestStreaming:
    """Plans stream in bounded chunks, devices first, every person exactly once."""

    async def test_chunks_devices_first_and_complete(self, campus: Campus) -> None:
        await campus.devices()
        await campus.people([person(f"P{i:03d}") for i in range(53)])
        chunks: list[list[PlannedDelivery]] = []
        async for chunk in campus.resolver.plan("all", [], EMERGENCY, list(ChannelKind), chunk=7):
            chunks.append(chunk)
        assert all(0 < len(c) <= 7 for c in chunks)
        flat = [p for c in chunks for p in c]
        kinds = [p.channel for p in flat]
        first_person = next(i for i, k in enumerate(kinds) if not k.is_device)
        assert all(k.is_device for k in kinds[:first_person]) and first_person == 12
        assert all(not k.is_device for k in kinds[first_person:])
        assert Counter(p.channel for p in flat) == {
            ChannelKind.SIREN: 4, ChannelKind.SIGNAGE: 5, ChannelKind.PA: 3,
            ChannelKind.SMS: 53, ChannelKind.PUSH: 53, ChannelKind.VOICE: 53,
            ChannelKind.EMAIL: 53,
        }
        assert len({(p.recipient, p.channel) for p in flat}) == len(flat)

    async def test_sms_and_push_come_before_email_in_each_page(self, campus: Campus) -> None:
        await campus.people([person(f"P{i}") for i in range(5)])
        planned = await campus.plan(channels=[ChannelKind.EMAIL, ChannelKind.SMS])
        assert [p.channel for p in planned] == [ChannelKind.SMS] * 5 + [ChannelKind.EMAIL] * 5


class TestCount:
    """count() says exactly what plan() would do."""

    EXPRESSIONS: ClassVar = [
        "all", "role:student", "group:band or zone:d", "not role:student",
        "class:siren or role:parent", "zone:a and not group:band",
    ]

    @pytest.fixture
    async def filled(self, campus: Campus) -> Campus:
        await campus.devices()
        await campus.people([
            *TestPreferences.ROWS,
            person("B1", groups="band", building="medical-center", role="staff"),
            person("B2", groups="band", language="es", phone=""),
            person("D1", building="downtown-center", role="faculty", email=""),
        ])
        return campus

    @pytest.mark.parametrize("expression", EXPRESSIONS)
    @pytest.mark.parametrize("kind", [EMERGENCY, ADVISORY])
    async def test_count_matches_plan(
        self, filled: Campus, expression: str, kind: AlertKind
    ) -> None:
        channels = list(ChannelKind)
        planned = await filled.plan(expression, kind=kind, channels=channels, now_ms=LATE_MS)
        counts = await filled.resolver.count(expression, [], kind, channels, now_ms=LATE_MS)
        assert set(counts) == {"total", "by_role", "by_channel"}
        roles = {p.recipient: p.role for p in planned}
        assert counts["total"] == len(roles)
        assert counts["by_role"] == dict(sorted(Counter(roles.values()).items()))
        sent = Counter(p.channel.value for p in planned if p.suppressed is None)
        # Broadcast targets and webhook subscribers are no one's: the audience never has them.
        assert counts["by_channel"] == {
            c.value: sent.get(c.value, 0) for c in channels if not c.is_institutional
        }

    async def test_people_only_count_when_a_person_channel_is_asked(self, filled: Campus) -> None:
        counts = await filled.resolver.count("all", [], EMERGENCY, [ChannelKind.SIREN])
        assert counts == {"total": 4, "by_role": {"device": 4}, "by_channel": {"siren": 4}}


class TestCheck:
    """check() refuses what would silently select no one, or everyone under `not`."""

    @pytest.fixture
    async def filled(self, campus: Campus) -> Campus:
        await campus.people([person("P1", class_year="2028", department="History")])
        return campus

    @pytest.mark.parametrize(
        ("expression", "message"),
        [
            ("rol:student", "unknown attribute 'rol' at position 1"),
            ("all and not buidling:admin", "unknown attribute 'buidling' at position 13"),
            ("role:studnet", "unknown role 'studnet' at position 1"),
            ("class:horn", "unknown device class 'horn'"),
            ("building:annex", "unknown building 'annex'"),
            ("language:english", "language 'english' at position 1 is not a code"),
            ("zone:zz",
             "unknown zone 'zz' at position 1 (zones: a, b, b-labs, c, campus, d, d-med)"),
        ],
    )
    async def test_refused(self, filled: Campus, expression: str, message: str) -> None:
        with pytest.raises(AudienceError, match=message.replace("(", r"\(").replace(")", r"\)")):
            await filled.resolver.check(expression, [])

    @pytest.mark.parametrize(
        "expression",
        ["all", "role:neighbor", "class_year:2028", "department:history", "Department:HISTORY",
         "group:anything", "id:nobody", "campus:main", "building:stadium", "class:pa"],
    )
    async def test_accepted(self, filled: Campus, expression: str) -> None:
        await filled.resolver.check(expression, [])

    async def test_imported_columns_select(self, filled: Campus) -> None:
        await filled.people([person("P2", department="math"), person("P3", department="history")])
        assert await filled.recipients("department:history") == {"P1", "P3"}
        assert await filled.recipients("class_year:2028 or department:math") == {"P1", "P2"}
        assert await filled.recipients("department:history and not class_year:2028") == {"P3"}

    async def test_unknown_named_segment(self, filled: Campus) -> None:
        with pytest.raises(AudienceError, match="unknown segment 'residents'"):
            await filled.resolver.check("residents", [])


class TestLoadExample:
    """load_example() fills an empty store from the configured files, once."""

    async def test_embedded_campus(self, tmp_path: Path) -> None:
        db = await open_database(f"sqlite:///{tmp_path / 'c.db'}")
        try:
            resolver = AudienceResolver(db, DirectorySettings(), config_dir())
            await resolver.load_example()
            people = await db.fetchval("SELECT COUNT(*) FROM people")
            assert people >= 3000
            classes = Counter(r["class"] for r in await db.fetchall("SELECT class FROM devices"))
            assert sum(classes.values()) >= 12 and min(classes.values()) >= 2
            await db.execute("DELETE FROM person_attributes WHERE person_id = 'P000001'")
            await db.execute("DELETE FROM people WHERE id = 'P000001'")
            await resolver.load_example()
            assert await db.fetchval("SELECT COUNT(*) FROM people") == people - 1
            counts = await resolver.count("zone:b", [], EMERGENCY, list(ChannelKind))
            assert counts["total"] > 0
        finally:
            await db.close()

    async def test_disabled(self, tmp_path: Path) -> None:
        db = await open_database(f"sqlite:///{tmp_path / 'c.db'}")
        try:
            settings = DirectorySettings(import_on_start=False)
            await AudienceResolver(db, settings, config_dir()).load_example()
            assert await db.fetchval("SELECT COUNT(*) FROM people") == 0
        finally:
            await db.close()
