"""LDAP / Active Directory sync: people and their group membership read with `ldap3`.

People are searched page by page (the Simple Paged Results control, which Active Directory
needs past its 1,000-entry limit) and mapped to directory rows by `[directory.ldap]
attributes`. Membership comes from each person's `memberOf` (Active Directory, or OpenLDAP
with its memberof overlay) and, when `group_base_dn` is set, from the groups' own `member`
lists (OpenLDAP's groupOfNames). `roles` turns a group into a directory role (the first that
matches wins); people in no mapped group take `default_role`, or are skipped. The rows then go
through the same checks, plan and safety brake as a file import (`segments/imports.py`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog
from ldap3 import NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException
from ldap3.utils.dn import parse_dn

from dispatcher.access.credentials import reveal
from segments.directory import ProgressFn, RowOrProblem, RowProblem
from segments.imports import DirectoryImports, ImportOutcome
from segments.sync_settings import LdapSettings

log = structlog.get_logger("clarion.directory")

SOURCE = "ldap"
_GROUP_NAME = re.compile(r"[^a-z0-9_.-]+")

EntriesFn = Callable[[int], None]


class LdapSyncError(Exception):
    """The directory server could not be read; the message names no password or person."""


@dataclass(frozen=True, slots=True)
class LdapPeople:
    """What one read of the server gave: a row per person, the entries skipped (in no mapped
    group), each row's person id for the report, the roles the sync speaks for, and a
    fingerprint of it all (an unchanged server is not imported again)."""

    rows: tuple[RowOrProblem, ...]
    skipped: int
    names: dict[int, str]
    roles: frozenset[str]
    fingerprint: str


def _dn_key(dn: str) -> str:
    """A DN compared as the server would: attribute names and values case-folded, spaces
    around separators dropped."""
    try:
        return ",".join(f"{a.strip().lower()}={v.strip().lower()}" for a, v, _ in parse_dn(dn))
    except LDAPException:
        return dn.strip().lower()


def _cn(dn: str) -> str:
    try:
        parts = parse_dn(dn)
    except LDAPException:
        return dn
    return str(parts[0][1]) if parts else dn


def _values(entry: dict[str, Any], name: str) -> list[str]:
    raw = entry.get(name)
    if raw is None:
        return []
    items = raw if isinstance(raw, list) else [raw]
    out = []
    for item in items:
        if isinstance(item, bytes):
            item = item.decode("utf-8", errors="replace")
        text = str(item).strip()
        if text:
            out.append(text)
    return out


class LdapReader:
    """Reads people and groups from one server with the settings' account and filters."""

    def __init__(self, settings: LdapSettings, base_dir: Path) -> None:
        self._settings = settings
        self._base_dir = base_dir

    def _server(self) -> Server:
        parts = urlsplit(self._settings.url)
        secure = parts.scheme == "ldaps"
        tls = None
        if secure or self._settings.start_tls:
            ca = self._settings.ca_file
            tls = Tls(
                validate=ssl.CERT_REQUIRED,
                ca_certs_file=str(self._base_dir / ca) if ca else None,
            )
        return Server(
            parts.hostname or "", port=parts.port or (636 if secure else 389), use_ssl=secure,
            tls=tls, get_info=NONE, connect_timeout=self._settings.timeout_s,
        )

    def _connection(self) -> Connection:
        settings = self._settings
        return Connection(
            self._server(), user=settings.bind_dn or None,
            password=reveal(settings.bind_password) or None,
            # ldap3 hands this to setsockopt, which takes whole seconds.
            receive_timeout=max(1, round(settings.timeout_s)), read_only=True,
            raise_exceptions=True, auto_referrals=False,
        )

    def _bind(self, conn: Connection) -> None:
        conn.open()
        if self._settings.start_tls:
            conn.start_tls()
        conn.bind()

    def _search(
        self, conn: Connection, base: str, search: str, attributes: list[str]
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        found = conn.extend.standard.paged_search(
            base, search, search_scope=SUBTREE, attributes=attributes,
            paged_size=self._settings.page_size, generator=True,
        )
        for item in found:
            if item.get("type") == "searchResEntry":
                yield str(item["dn"]), dict(item.get("attributes") or {})

    def read(self, entries: EntriesFn | None = None) -> LdapPeople:
        """Every person under `base_dn`, with roles and groups; raises LdapSyncError."""
        conn = self._connection()
        try:
            try:
                self._bind(conn)
            except LDAPException as exc:
                raise LdapSyncError(
                    f"cannot bind to {self._settings.url}: {_reason(exc)}"
                ) from None
            try:
                return self._read(conn, entries)
            except LDAPException as exc:
                raise LdapSyncError(
                    f"searching {self._settings.url} failed: {_reason(exc)}"
                ) from None
        finally:
            _close(conn)

    def _read(self, conn: Connection, entries: EntriesFn | None) -> LdapPeople:
        settings = self._settings
        members: dict[str, list[str]] = {}
        if settings.group_base_dn:
            for group_dn, attrs in self._search(
                conn, settings.group_base_dn, settings.group_filter, [settings.group_member]
            ):
                for member in _values(attrs, settings.group_member):
                    members.setdefault(_dn_key(member), []).append(group_dn)
        wanted = sorted({*settings.attributes.values(), *(
            [settings.member_of] if settings.member_of else []
        )})
        roles = [(key.strip().lower(), role) for key, role in settings.roles.items()]
        rows: list[RowOrProblem] = []
        names: dict[int, str] = {}
        skipped = 0
        found: list[tuple[str, str, dict[str, str]]] = []
        for dn, attrs in self._search(conn, settings.base_dn, settings.filter, wanted):
            listed = [*(_values(attrs, settings.member_of) if settings.member_of else []),
                      *members.get(_dn_key(dn), [])]
            groups = list({_dn_key(g): g for g in listed}.values())
            role = _role(groups, roles) or settings.default_role
            if not role:
                skipped += 1
                continue
            row = {
                column: (_values(attrs, attribute) or [""])[0]
                for column, attribute in settings.attributes.items()
            }
            row["role"] = role
            if settings.groups:
                row["groups"] = ";".join(sorted(
                    {name for name in (_group_name(g) for g in groups) if name}
                ))
            found.append((row.get("id", ""), dn, row))
            if entries is not None and len(found) % 100 == 0:
                entries(len(found))
        if entries is not None:
            entries(len(found))
        # In id order, whatever order the server answered in: the rows' numbers in the report
        # and the fingerprint stay the same from one sync to the next.
        found.sort(key=lambda item: (item[0], item[1]))
        digest = hashlib.sha256()
        for number, (person_id, dn, row) in enumerate(found, start=1):
            names[number] = person_id or dn
            digest.update(json.dumps(row, sort_keys=True).encode())
            if not person_id:
                attribute = settings.attributes["id"]
                rows.append((number, RowProblem(number, f"no {attribute} (the id)"), ""))
            else:
                rows.append((number, row, person_id))
        spoken = {role for _, role in roles}
        if settings.default_role:
            spoken.add(settings.default_role)
        return LdapPeople(tuple(rows), skipped, names, frozenset(spoken), digest.hexdigest())


def _close(conn: Connection) -> None:
    try:
        conn.unbind()
    except LDAPException as exc:
        # Closing a connection the server already dropped: nothing is left to release.
        log.debug("directory.ldap_close_failed", error=type(exc).__name__)


def _reason(exc: LDAPException) -> str:
    """The server's result name and diagnostic (ldap3 keeps them apart from what we sent, so
    the password never shows)."""
    name = str(getattr(exc, "description", "") or type(exc).__name__)
    message = str(getattr(exc, "message", "") or "").strip()
    return f"{name} ({message})" if message else name


def _role(groups: list[str], roles: list[tuple[str, str]]) -> str:
    keys = {_dn_key(g) for g in groups} | {_cn(g).strip().lower() for g in groups}
    for key, role in roles:
        if key in keys or _dn_key(key) in keys:
            return role
    return ""


def _group_name(dn: str) -> str:
    return _GROUP_NAME.sub("-", _cn(dn).lower()).strip("-")


async def sync_ldap(
    imports: DirectoryImports,
    settings: LdapSettings,
    base_dir: Path,
    *,
    brake: bool = True,
    skip_unchanged: bool = False,
    entries: EntriesFn | None = None,
    writing: ProgressFn | None = None,
) -> ImportOutcome | None:
    """Read the server and import its people through the safety brake. With
    `skip_unchanged`, a server that gives what the last import from it had is not imported
    again (None). Raises LdapSyncError after keeping the failure."""
    try:
        people = await asyncio.to_thread(LdapReader(settings, base_dir).read, entries)
    except LdapSyncError as exc:
        await imports.failed(SOURCE, str(exc), detail=settings.url)
        raise
    if skip_unchanged:
        latest = await imports.store.latest(SOURCE)
        if latest is not None and latest.fingerprint == people.fingerprint:
            return None
    return await imports.run(
        SOURCE, people.rows, detail=settings.url, fingerprint=people.fingerprint,
        remove_missing=settings.remove_missing, roles=people.roles, skipped=people.skipped,
        names=people.names, brake=brake, writing=writing,
    )
