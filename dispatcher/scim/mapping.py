"""A SCIM User and its groups as a directory person, checked by the same rules as an import.

| SCIM                                   | directory                                   |
| -------------------------------------- | ------------------------------------------- |
| `id`                                   | person id                                   |
| `name.givenName`, `name.familyName`    | first and last name                         |
| `emails` (primary, else work, else 1st)| e-mail                                      |
| `phoneNumbers` of type `mobile`        | phone (SMS and voice); other types are kept |
|                                        | in SCIM only                                |
| `preferredLanguage` (`es-MX`)          | language (`es`)                             |
| `userType`, when one of the roles      | role (otherwise `DEFAULT_ROLE`)             |
| enterprise `department`                | attribute `department`                      |
| enterprise `employeeNumber`            | attribute `employee_number`                 |
| groups' `displayName`                  | groups (segment term `group:<name>`)        |
| `active` false                         | no person: removed from every audience      |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from scim2_models import InvalidValueException

from dispatcher.scim.resources import ENTERPRISE
from dispatcher.store.directory import DirectoryRow
from segments.directory import PersonRules, RowError, normalize_email, normalize_phone
from segments.settings import DirectorySettings
from segments.zones import CampusMap

# The role of a provisioned person whose userType names none of the directory's roles.
DEFAULT_ROLE = "staff"
# Directory attributes filled from the enterprise extension, by its attribute names.
ENTERPRISE_ATTRIBUTES = (("department", "department"), ("employeeNumber", "employee_number"))
# A language tag whose primary subtag the directory keeps (`es-MX`, `zh_Hant`).
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:[-_][a-z0-9]{2,8})*$")


class PersonMapping:
    """Turns a stored User (its JSON) and its groups' names into a directory row."""

    def __init__(self, settings: DirectorySettings, campus: Callable[[], CampusMap]) -> None:
        self._settings = settings
        self._campus = campus
        self._checker: PersonRules | None = None
        self._region = settings.default_region
        self._roles = frozenset(settings.roles)
        self._default_role = (
            DEFAULT_ROLE if DEFAULT_ROLE in self._roles or not settings.roles
            else settings.roles[0]
        )

    def __call__(
        self, user_id: str, body: Mapping[str, Any], groups: Sequence[str]
    ) -> DirectoryRow | None:
        """The person's row, or None for a disabled user."""
        return self.person(user_id, body, groups)[0]

    def person(
        self, user_id: str, body: Mapping[str, Any], groups: Sequence[str]
    ) -> tuple[DirectoryRow | None, tuple[str, ...]]:
        """The person's row (None for a disabled user) and the contact fields left out because
        their values cannot be used; raises InvalidValueException for any other bad value.

        A person whose number is wrong is still reached by e-mail: an unusable address or
        number is left out of the directory (the SCIM resource keeps it), not the person.
        """
        if body.get("active") is False:
            return None, ()
        name = body.get("name") or {}
        enterprise = body.get(ENTERPRISE) or {}
        user_type = str(body.get("userType") or "").strip().lower()
        raw = {
            "id": user_id,
            "first_name": str(name.get("givenName") or ""),
            "last_name": str(name.get("familyName") or ""),
            "email": _email(body.get("emails") or []),
            "phone": _mobile(body.get("phoneNumbers") or []),
            "role": user_type if user_type in self._roles else self._default_role,
            "language": str(body.get("preferredLanguage") or ""),
            # A group's name is one value of the directory's `;`-separated list.
            "groups": ";".join(g.replace(";", " ") for g in groups),
        }
        for scim_name, column in ENTERPRISE_ATTRIBUTES:
            raw[column] = str(enterprise.get(scim_name) or "")
        dropped = self._usable(raw)
        try:
            record, _ = self._rules().check(raw, [column for _, column in ENTERPRISE_ATTRIBUTES])
        except RowError as exc:
            raise InvalidValueException(detail=str(exc)) from None
        return DirectoryRow(record.fields(), record.digest(), record.attributes()), dropped

    def _rules(self) -> PersonRules:
        # The campus map is read on first use, as the audience resolver reads it.
        if self._checker is None:
            self._checker = PersonRules(self._settings, self._campus())
        return self._checker

    def _usable(self, raw: dict[str, str]) -> tuple[str, ...]:
        """Blank the contact values that cannot be used; their field names."""
        dropped = []
        checks: dict[str, Callable[[str], str]] = {
            "email": normalize_email,
            "phone": lambda v: normalize_phone(v, self._region),
        }
        for field, check in checks.items():
            if raw[field]:
                try:
                    check(raw[field])
                except RowError:
                    raw[field] = ""
                    dropped.append(field)
        if raw["language"] and not _LANGUAGE.match(raw["language"].strip().lower()):
            raw["language"] = ""
            dropped.append("language")
        return tuple(dropped)


def _email(emails: Sequence[Mapping[str, Any]]) -> str:
    for test in (lambda e: e.get("primary") is True, lambda e: e.get("type") == "work",
                 lambda e: True):
        for entry in emails:
            if entry.get("value") and test(entry):
                return str(entry["value"])
    return ""


def _mobile(numbers: Sequence[Mapping[str, Any]]) -> str:
    mobiles = [n for n in numbers if n.get("type") == "mobile" and n.get("value")]
    mobiles.sort(key=lambda n: n.get("primary") is not True)
    return str(mobiles[0]["value"]) if mobiles else ""
