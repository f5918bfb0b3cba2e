"""Deprovisioning on both store dialects: a deleted or disabled user leaves the directory, their
queued deliveries are suppressed (the counters stay exact), and each SCIM action is audited
without a name, an address or a number."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from dispatcher.clock import Clock
from dispatcher.domain import ChannelKind
from dispatcher.scim.mapping import PersonMapping
from dispatcher.scim.provisioning import Provisioning
from dispatcher.store.audit import AuditLog
from dispatcher.store.database import Database, open_database
from dispatcher.store.directory import DirectoryRow, DirectoryStore
from dispatcher.store.ledger import DeliveryLedger, RetryPolicy
from dispatcher.store.scim import ScimKind, ScimStore
from segments.audience import PlannedDelivery
from segments.settings import DirectorySettings
from segments.zones import CampusMap
from tests.pg import PostgresCluster, pg_cluster

__all__ = ["pg_cluster"]

BASE = "https://clarion.example.edu/scim/v2"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CONTACTS = ("dee.ray@example.edu", "+12015550177", "2015550177", "Dee", "Ray")


class FixedClock(Clock):
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.ms = 1_800_000_000_000

    def now_ms(self) -> int:
        """The time set."""
        return self.ms


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated store of each dialect."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'scim.db'}"
    else:
        cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
        url = await cluster.create_database()
    store = await open_database(url)
    yield store
    await store.close()


def _provisioning(db: Database) -> Provisioning:
    mapping = PersonMapping(DirectorySettings(), lambda: CampusMap())
    return Provisioning(ScimStore(db, AuditLog(db), mapping), mapping, FixedClock())


def _user(active: bool = True) -> dict[str, Any]:
    return {
        "schemas": [USER], "userName": CONTACTS[0], "active": active,
        "name": {"givenName": CONTACTS[3], "familyName": CONTACTS[4]},
        "emails": [{"value": CONTACTS[0], "primary": True}],
        "phoneNumbers": [{"value": CONTACTS[1], "type": "mobile"}],
    }


async def _queued_alert(db: Database, person_id: str) -> DeliveryLedger:
    """An alert with a queued SMS and e-mail for the person, and one for someone else."""
    await db.execute(
        "INSERT INTO alerts (id, kind, mode, state, audience, zones, channels, created_by,"
        " created_at, expires_at, request_sha256) VALUES ('a1', 'emergency', 'live',"
        " 'dispatching', 'all', '{}', '[]', 't', 0, 9999999999999, 'x')"
    )
    ledger = DeliveryLedger(db, RetryPolicy(1, 10))
    await ledger.enqueue("a1", [
        PlannedDelivery(ChannelKind.SMS, person_id, CONTACTS[1], "en", "staff"),
        PlannedDelivery(ChannelKind.EMAIL, person_id, CONTACTS[0], "en", "staff"),
        PlannedDelivery(ChannelKind.SMS, "someone-else", "+12015550100", "en", "staff"),
    ], 1)
    return ledger


async def _states(db: Database) -> dict[tuple[str, str], tuple[str, str | None]]:
    rows = await db.fetchall("SELECT recipient, channel, state, detail FROM deliveries")
    return {(r["recipient"], r["channel"]): (r["state"], r["detail"]) for r in rows}


async def _person(db: Database, person_id: str) -> bool:
    return await db.fetchone("SELECT id FROM people WHERE id = ?", (person_id,)) is not None


@pytest.mark.parametrize("how", ["delete", "disable"])
async def test_deprovisioning_suppresses_queued_deliveries(db: Database, how: str) -> None:
    """The person's queued deliveries become suppressed ('deprovisioned'); others stay."""
    scim = _provisioning(db)
    created = await scim.create(ScimKind.USER, _user(), "entra", BASE)
    person = created["id"]
    assert await _person(db, person)
    ledger = await _queued_alert(db, person)
    if how == "delete":
        await scim.delete(ScimKind.USER, person, "entra")
    else:
        await scim.patch(ScimKind.USER, person, {
            "schemas": [PATCH], "Operations": [{"op": "replace", "path": "active",
                                                "value": False}]}, "entra", BASE)
    assert not await _person(db, person)
    assert await _states(db) == {
        (person, "sms"): ("suppressed", "deprovisioned"),
        (person, "email"): ("suppressed", "deprovisioned"),
        ("someone-else", "sms"): ("queued", None),
    }
    assert await ledger.counts("a1") == await ledger.recount("a1")


async def test_a_user_created_disabled_has_no_person(db: Database) -> None:
    """active false from the start: the resource is kept, the directory has no one."""
    scim = _provisioning(db)
    created = await scim.create(ScimKind.USER, _user(active=False), "okta", BASE)
    assert created["active"] is False
    assert not await _person(db, created["id"])


async def test_unusable_numbers_leave_the_person_reachable(db: Database) -> None:
    """A mobile number that is not one is left out of the directory, not the person."""
    scim = _provisioning(db)
    body = _user()
    body["phoneNumbers"] = [{"value": "12345", "type": "mobile"}]
    created = await scim.create(ScimKind.USER, body, "entra", BASE)
    row = await db.fetchone("SELECT email, phone FROM people WHERE id = ?", (created["id"],))
    assert row is not None and (row["email"], row["phone"]) == (CONTACTS[0], "")
    assert created["phoneNumbers"] == [{"value": "12345", "type": "mobile"}]


async def test_group_changes_rewrite_the_people_they_concern(db: Database) -> None:
    """Renaming a group renames the term of every member; a member leaving loses it."""
    scim = _provisioning(db)
    first = await scim.create(ScimKind.USER, _user(), "entra", BASE)
    other = _user()
    other["userName"] = "eli.ray@example.edu"
    second = await scim.create(ScimKind.USER, other, "entra", BASE)
    group = await scim.create(ScimKind.GROUP, {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Deans",
        "members": [{"value": first["id"]}, {"value": second["id"]}]}, "entra", BASE)
    leaving = second["id"]
    await scim.patch(ScimKind.GROUP, group["id"], {"schemas": [PATCH], "Operations": [
        {"op": "replace", "path": "displayName", "value": "Provosts"}]}, "entra", BASE)
    await scim.patch(ScimKind.GROUP, group["id"], {"schemas": [PATCH], "Operations": [
        {"op": "remove", "path": f'members[value eq "{leaving}"]'}]}, "entra", BASE)
    rows = await db.fetchall(
        "SELECT person_id, value FROM person_attributes WHERE name = 'group' ORDER BY value")
    assert [(r["person_id"], r["value"]) for r in rows] == [(first["id"], "provosts")]
    row = await db.fetchone("SELECT groups FROM people WHERE id = ?", (first["id"],))
    assert row is not None and row["groups"] == "provosts"


async def test_a_file_import_never_removes_a_provisioned_person(db: Database) -> None:
    """`--remove-missing` of a role removes the imported people missing from the file, not
    the ones an identity provider keeps."""
    scim = _provisioning(db)
    created = await scim.create(ScimKind.USER, _user(), "entra", BASE)
    await DirectoryStore(db).upsert_people([DirectoryRow(
        ("from-file", "", "", "", "", "", "staff", "", "", "en", "", "", "", "", "{}"), "d",
    )], 1)
    assert await DirectoryStore(db).remove_people("staff", keep=set()) == 1
    assert await _person(db, created["id"])
    assert not await _person(db, "from-file")


async def test_every_action_is_audited_without_contact_data(db: Database) -> None:
    """Create, patch, group changes and delete each leave one audit entry naming the actor
    and the resource id, and no entry holds a name, an address or a number."""
    scim = _provisioning(db)
    user = await scim.create(ScimKind.USER, _user(), "entra", BASE)
    await scim.patch(ScimKind.USER, user["id"], {
        "schemas": [PATCH], "Operations": [{"op": "add", "path": "title", "value": "Dean"}]},
        "entra", BASE)
    group = await scim.create(ScimKind.GROUP, {
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Deans",
        "members": [{"value": user["id"]}]}, "entra", BASE)
    await scim.delete(ScimKind.GROUP, group["id"], "entra")
    await scim.delete(ScimKind.USER, user["id"], "entra")
    rows = await db.fetchall("SELECT actor, action, detail FROM audit ORDER BY seq")
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("entra", "scim.user_created"), ("entra", "scim.user_patched"),
        ("entra", "scim.group_created"), ("entra", "scim.group_deleted"),
        ("entra", "scim.user_deleted"),
    ]
    assert [json.loads(r["detail"])["id"] for r in rows] == [
        user["id"], user["id"], group["id"], group["id"], user["id"]]
    text = json.dumps([dict(zip(("actor", "action", "detail"), tuple(r), strict=True))
                       for r in rows])
    for value in CONTACTS:
        assert value not in text
