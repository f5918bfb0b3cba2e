"""LDAP / Active Directory sync against a real OpenLDAP server (slapd) on a free port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from ldap3 import Connection, Server
from pydantic import ValidationError
from structlog.testing import capture_logs

from dispatcher.cli import main as cli_main
from dispatcher.store.audit import AuditLog
from dispatcher.store.imports import ImportState
from segments.audience import load_campus
from segments.imports import DirectoryImports
from segments.ldap_sync import LdapSyncError, sync_ldap
from segments.sync_settings import LdapSettings
from segments.synthetic import write_campus
from tests.segments.helpers import Campus
from tests.segments.slapd import (
    ADMIN_DN,
    ADMIN_PASSWORD,
    READER_DN,
    READER_PASSWORD,
    SUFFIX,
    Slapd,
    available,
)

PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    """slapd with the campus LDIF: five people in groups and one service account."""
    assert available(), "slapd and ldap-utils are missing: run `make tools`"
    server = Slapd(tmp_path / "slapd")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ldap_settings(slapd: Slapd, **changes: Any) -> LdapSettings:
    raw: dict[str, Any] = {
        "url": slapd.url,
        "bind_dn": READER_DN,
        "bind_password": READER_PASSWORD,
        "base_dn": PEOPLE,
        "filter": "(objectClass=inetOrgPerson)",
        # The server answers at most three entries to a search that is not paged.
        "page_size": 2,
        "attributes": {
            "id": "uid", "first_name": "givenName", "last_name": "sn", "email": "mail",
            "phone": "mobile", "language": "preferredLanguage",
            "department": "departmentNumber",
        },
        "member_of": "",
        "group_base_dn": GROUPS,
        "roles": {"Students": "student", f"cn=Faculty,{GROUPS}": "faculty"},
    }
    raw.update(changes)
    return LdapSettings.model_validate(raw)


def imports_of(campus: Campus, share: float = 0.10) -> DirectoryImports:
    settings = campus.with_settings(safety_brake={"max_change_share": share}).settings
    campus_map = load_campus(settings, campus.base)
    return DirectoryImports(campus.db, settings, lambda: campus_map, audit=AuditLog(campus.db))


async def people(campus: Campus) -> dict[str, dict[str, Any]]:
    rows = await campus.db.fetchall("SELECT * FROM people ORDER BY id")
    return {r["id"]: dict(r) for r in rows}  # type: ignore[call-overload]


@contextmanager
def admin(slapd: Slapd) -> Iterator[Connection]:
    """The administrator's connection, changing the campus as its registrar would."""
    conn = Connection(Server(slapd.url), ADMIN_DN, ADMIN_PASSWORD, auto_bind=True)
    try:
        yield conn
    finally:
        # ldap3's own `with` leaves a connection open that was bound before it.
        conn.unbind()


class TestSync:
    """People, their roles and groups come from the server, page by page."""

    async def test_people_roles_and_groups_from_group_members(
        self, campus: Campus, slapd: Slapd
    ) -> None:
        outcome = await sync_ldap(imports_of(campus), ldap_settings(slapd), campus.base)
        assert outcome is not None and outcome.state is ImportState.APPLIED
        report = outcome.report
        # Six entries: more than one unpaged answer holds, so paging was needed.
        assert (report.rows, report.added, report.skipped) == (5, 4, 1)
        assert [(p.reason) for p in report.rejected] == [
            "s1004: email is not a valid address"
        ]
        stored = await people(campus)
        assert sorted(stored) == ["f2001", "s1001", "s1002", "s1003"]
        ana = stored["s1001"]
        assert (ana["role"], ana["phone"], ana["email"], ana["language"]) == (
            "student", "+12015550101", "ana.alvarez@example.edu", "es"
        )
        assert ana["groups"] == "marching-band;students"
        assert json.loads(ana["attrs"]) == {"department": "biology"}
        assert stored["f2001"]["role"] == "faculty"
        assert await campus.recipients("group:marching-band") == {"s1001", "f2001"}

    async def test_member_of_as_active_directory_gives_it(
        self, campus: Campus, slapd: Slapd
    ) -> None:
        settings = ldap_settings(slapd, member_of="memberOf", group_base_dn="", groups=False)
        outcome = await sync_ldap(imports_of(campus), settings, campus.base)
        assert outcome is not None
        stored = await people(campus)
        assert {k: v["role"] for k, v in stored.items()} == {
            "f2001": "faculty", "s1001": "student", "s1002": "student", "s1003": "student"
        }
        assert stored["s1001"]["groups"] == ""

    async def test_a_default_role_takes_people_in_no_group(
        self, campus: Campus, slapd: Slapd
    ) -> None:
        settings = ldap_settings(slapd, default_role="staff")
        outcome = await sync_ldap(imports_of(campus), settings, campus.base)
        assert outcome is not None and outcome.report.skipped == 0
        assert (await people(campus))["svc-backup"]["role"] == "staff"

    async def test_an_unchanged_server_is_not_imported_again(
        self, campus: Campus, slapd: Slapd
    ) -> None:
        imports, settings = imports_of(campus), ldap_settings(slapd)
        assert await sync_ldap(imports, settings, campus.base, skip_unchanged=True)
        assert await sync_ldap(imports, settings, campus.base, skip_unchanged=True) is None
        again = await sync_ldap(imports, settings, campus.base)
        assert again is not None and again.report.unchanged == 4


class TestSafetyBrake:
    """A sync that would remove or change too many people waits for a person."""

    async def test_people_gone_from_ldap_are_held_then_confirmed(
        self, campus: Campus, slapd: Slapd
    ) -> None:
        imports, settings = imports_of(campus), ldap_settings(slapd)
        await sync_ldap(imports, settings, campus.base)
        with admin(slapd) as conn:
            assert conn.delete(f"uid=s1002,{PEOPLE}")
        held = await sync_ldap(imports, settings, campus.base)
        assert held is not None and held.held
        # One of the four people of the mapped roles: over the 10% the brake allows.
        assert (held.share, held.report.removed) == (0.25, 1)
        assert "s1002" in await people(campus)
        # An hour later the server cannot be reached: that changed nothing.
        with pytest.raises(LdapSyncError):
            await sync_ldap(imports, ldap_settings(slapd, bind_password="expired"), campus.base)
        entry = await imports.confirm(held.id, actor="alex")
        assert (entry.state, entry.decided_by, entry.report["removed"]) == (
            ImportState.CONFIRMED, "alex", 1
        )
        assert "s1002" not in await people(campus)
        audit = await campus.db.fetchall("SELECT actor, action FROM audit")
        assert [(r["actor"], r["action"]) for r in audit] == [
            ("alex", "directory.import_confirmed")
        ]

    async def test_changes_within_the_share_are_written(
        self, campus: Campus, slapd: Slapd
    ) -> None:
        imports = imports_of(campus, share=0.5)
        settings = ldap_settings(slapd)
        await sync_ldap(imports, settings, campus.base)
        with admin(slapd) as conn:
            assert conn.modify(f"uid=s1003,{PEOPLE}", {"mobile": [("MODIFY_ADD", ["2015550103"])]})
            assert conn.delete(f"uid=s1002,{PEOPLE}")
        outcome = await sync_ldap(imports, settings, campus.base)
        assert outcome is not None and not outcome.held
        assert (outcome.report.changed, outcome.report.removed) == (1, 1)
        assert (await people(campus))["s1003"]["phone"] == "+12015550103"

    async def test_a_search_that_finds_no_one_removes_no_one(
        self, campus: Campus, slapd: Slapd
    ) -> None:
        imports = imports_of(campus, share=1.0)
        await sync_ldap(imports, ldap_settings(slapd), campus.base)
        empty = ldap_settings(slapd, filter="(uid=nobody-here)")
        outcome = await sync_ldap(imports, empty, campus.base)
        assert outcome is not None and outcome.report.removed == 0
        assert len(await people(campus)) == 4


class TestPrivacy:
    """A sync's logs name people by id and count them, never by address or number."""

    async def test_no_contact_data_in_the_logs(self, campus: Campus, slapd: Slapd) -> None:
        imports = imports_of(campus)
        with capture_logs() as logs:
            await sync_ldap(imports, ldap_settings(slapd), campus.base)
            with admin(slapd) as conn:
                assert conn.delete(f"uid=s1002,{PEOPLE}")
            held = await sync_ldap(imports, ldap_settings(slapd), campus.base)
            assert held is not None
            await imports.confirm(held.id, actor="alex")
        assert {e["event"] for e in logs} >= {
            "directory.imported", "directory.import_held", "directory.import_confirmed"
        }
        text = json.dumps(logs, default=str)
        for contact in ("@example.edu", "555", "+1201"):
            assert contact not in text

    def test_an_enabled_sync_needs_a_base(self) -> None:
        with pytest.raises(ValidationError, match="needs base_dn"):
            LdapSettings(enabled=True)


class TestFailures:
    """A server that cannot be read fails the sync and removes no one."""

    async def test_a_wrong_password_is_kept_without_the_password(
        self, campus: Campus, slapd: Slapd
    ) -> None:
        imports = imports_of(campus)
        settings = ldap_settings(slapd, bind_password="not-the-password")
        with pytest.raises(LdapSyncError) as caught:
            await sync_ldap(imports, settings, campus.base)
        assert "invalidCredentials" in str(caught.value)
        assert "not-the-password" not in str(caught.value)
        latest = await imports.store.latest("ldap")
        assert latest is not None and latest.state is ImportState.FAILED
        assert latest.error == str(caught.value)

    async def test_a_wrong_base_fails_and_removes_no_one(
        self, campus: Campus, slapd: Slapd
    ) -> None:
        imports = imports_of(campus, share=1.0)
        await sync_ldap(imports, ldap_settings(slapd), campus.base)
        wrong = ldap_settings(slapd, base_dn=f"ou=peeple,{SUFFIX}")
        with pytest.raises(LdapSyncError, match="noSuchObject"):
            await sync_ldap(imports, wrong, campus.base)
        assert len(await people(campus)) == 4


class TestCommand:
    """`clarion directory sync ldap` as an operator runs it."""

    def test_sync_then_held(
        self, tmp_path: Path, slapd: Slapd, capsys: pytest.CaptureFixture[str]
    ) -> None:
        write_campus(tmp_path, 0, 0)
        config = tmp_path / "clarion.toml"
        config.write_text(
            f'[store]\nurl = "sqlite:///{tmp_path / "clarion.db"}"\n\n'
            '[directory]\nbuildings = "buildings.csv"\n\n'
            f'[directory.ldap]\nurl = "{slapd.url}"\nbind_dn = "{READER_DN}"\n'
            f'bind_password = "{READER_PASSWORD}"\nbase_dn = "{PEOPLE}"\n'
            f'member_of = ""\ngroup_base_dn = "{GROUPS}"\npage_size = 2\n'
            'roles = { Students = "student", Faculty = "faculty" }\n',
            encoding="utf-8",
        )
        args = ["directory", "sync", "ldap", "--config", str(config)]
        assert cli_main(args) == 1
        out = capsys.readouterr().out
        assert out.splitlines()[:3] == [
            "people: 5 rows: 4 added, 0 changed, 0 unchanged, 0 removed, 1 rejected, 1 skipped",
            "rejected:",
            "  row 5: s1004: email is not a valid address",
        ]
        with admin(slapd) as conn:
            assert conn.delete(f"uid=s1001,{PEOPLE}")
        assert cli_main(args) == 3
        assert "held as import 2: it would change or remove 25%" in capsys.readouterr().out
        assert cli_main([*args, "--confirmed"]) == 1
        assert "1 removed" in capsys.readouterr().out
