"""A generated 50,000-person campus: import, then counts checked by a separate computation."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from dispatcher.domain import AlertKind, ChannelKind
from dispatcher.store.database import open_database
from segments.settings import DirectorySettings
from segments.synthetic import BUILDING_ZONES, write_campus
from tests.segments.helpers import LATE_MS, PEOPLE_KINDS, Campus

PEOPLE = 50_000
Row = dict[str, str]
Predicate = Callable[[Row], bool]
MANDATORY_ROLES = {"student", "staff", "faculty"}

BAD_ROWS = [
    # (row fields, reason) appended after the generated rows
    ({"id": "X1", "role": "student", "email": "nobody@"}, "email is not a valid address"),
    ({"id": "X2", "role": "student", "phone": "123"}, "phone is not a valid number"),
    ({"id": "P000007", "role": "staff"}, "id 'P000007' is already on row 8"),
    ({"id": "X4", "role": ""}, "role is empty (give a role column or --role)"),
    ({"id": "X5", "role": "staff", "quiet_hours": "25:00-07:00"},
     "quiet_hours must look like 22:00-07:00"),
]


def zones(row: Row) -> frozenset[str]:
    return BUILDING_ZONES.get(row["building"], frozenset())


def groups(row: Row) -> set[str]:
    return set(filter(None, row["groups"].split(";")))


EXPRESSIONS: dict[str, Predicate] = {
    "all": lambda r: True,
    "role:student and zone:a": lambda r: r["role"] == "student" and "a" in zones(r),
    "group:athletics or group:band": lambda r: bool(groups(r) & {"athletics", "band"}),
    "not role:student and zone:b and not zone:b-labs":
        lambda r: r["role"] != "student" and "b" in zones(r) and "b-labs" not in zones(r),
    "(role:faculty or role:staff) and not campus:downtown":
        lambda r: r["role"] in ("faculty", "staff") and r["campus"] != "downtown",
    "department:chemistry or group:lab-safety":
        lambda r: r["department"] == "chemistry" or "lab-safety" in groups(r),
    "language:es and (zone:d or role:parent)":
        lambda r: r["language"] == "es" and ("d" in zones(r) or r["role"] == "parent"),
    "class_year:2028 and not group:honors":
        lambda r: r["class_year"] == "2028" and "honors" not in groups(r),
}


def expected(rows: list[Row], match: Predicate, kind: AlertKind) -> dict[str, object]:
    """The counts worked out from the raw rows, without the resolver's code."""
    chosen = [r for r in rows if match(r)]
    by_channel: Counter[str] = Counter({c.value: 0 for c in PEOPLE_KINDS})
    for r in chosen:
        refused = set(r["opt_out"].split(";")) if r["opt_out"] != "all" else {
            "sms", "push", "email"
        }
        mandatory = kind is not AlertKind.ADVISORY
        if mandatory and r["role"] in MANDATORY_ROLES:
            refused = set()
        # LATE_MS is 23:30 on campus: inside both quiet windows the generator uses.
        quiet = not mandatory and bool(r["quiet_hours"])
        for channel, column in (("sms", "phone"), ("push", "push"), ("email", "email")):
            if r[column] and channel not in refused and not (quiet and channel != "email"):
                by_channel[channel] += 1
    return {
        "total": len(chosen),
        "by_role": dict(sorted(Counter(r["role"] for r in chosen).items())),
        "by_channel": dict(by_channel),
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def big(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Campus, list[Row]]]:
    base = tmp_path_factory.mktemp("big")
    paths = write_campus(base, PEOPLE, 12)
    with paths["people"].open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
        header = list(rows[0])
    with paths["people"].open("a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, lineterminator="\n")
        for fields, _reason in BAD_ROWS:
            writer.writerow({k: fields.get(k, "") for k in header})
    db = await open_database(f"sqlite:///{base / 'clarion.db'}")
    settings = DirectorySettings(people="people.csv", devices="devices.csv",
                                 buildings="buildings.csv")
    try:
        yield Campus(base, db, settings), rows
    finally:
        await db.close()


pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_import_50000(big: tuple[Campus, list[Row]]) -> None:
    campus, _rows = big
    report = await campus.importer.import_people(campus.base / "people.csv")
    assert report.rows == PEOPLE + len(BAD_ROWS)
    assert report.added == PEOPLE
    first_bad = PEOPLE + 2
    assert [(p.row, p.reason) for p in report.rejected] == [
        (first_bad + i, reason) for i, (_fields, reason) in enumerate(BAD_ROWS)
    ]
    assert await campus.db.fetchval("SELECT COUNT(*) FROM people") == PEOPLE
    phones = {r["phone"] for r in await campus.db.fetchall(
        "SELECT phone FROM people WHERE phone <> '' AND phone NOT LIKE '+1___55501__'"
    )}
    assert phones == set()


@pytest.mark.parametrize("expression", list(EXPRESSIONS))
@pytest.mark.parametrize("kind", [AlertKind.TIMELY_WARNING, AlertKind.ADVISORY])
async def test_counts_match_a_separate_computation(
    big: tuple[Campus, list[Row]], expression: str, kind: AlertKind
) -> None:
    campus, rows = big
    counts = await campus.resolver.count(expression, [], kind, PEOPLE_KINDS, now_ms=LATE_MS)
    assert counts == expected(rows, EXPRESSIONS[expression], kind)


async def test_alert_zones_match_a_separate_computation(big: tuple[Campus, list[Row]]) -> None:
    campus, rows = big
    counts = await campus.resolver.count(
        "all", ["campus", "d"], AlertKind.EMERGENCY, PEOPLE_KINDS, exclude_zones=["c", "d-med"]
    )

    def inside(r: Row) -> bool:
        return bool(zones(r) & {"campus", "d"}) and not zones(r) & {"c", "d-med"}

    assert counts == expected(rows, inside, AlertKind.EMERGENCY)


async def test_plan_streams_what_count_says(big: tuple[Campus, list[Row]]) -> None:
    campus, rows = big
    expression = "role:student or group:dining"
    counts = await campus.resolver.count(
        expression, ["campus"], AlertKind.EMERGENCY, list(ChannelKind)
    )
    seen: set[tuple[str, ChannelKind]] = set()
    sent: Counter[str] = Counter()
    roles: dict[str, str] = {}
    largest = 0
    async for chunk in campus.resolver.plan(
        expression, ["campus"], AlertKind.EMERGENCY, list(ChannelKind), chunk=500
    ):
        largest = max(largest, len(chunk))
        for p in chunk:
            assert (p.recipient, p.channel) not in seen
            seen.add((p.recipient, p.channel))
            roles[p.recipient] = p.role
            if p.suppressed is None:
                sent[p.channel.value] += 1
    assert largest <= 500
    assert len(roles) == counts["total"]
    assert {k: v for k, v in counts["by_channel"].items() if v} == dict(sent)
    plain = sum(
        1 for r in rows
        if (r["role"] == "student" or "dining" in groups(r)) and "campus" in zones(r)
    )
    assert len(roles) == plain
