"""Directory import: people and devices from CSV or JSON Lines, upserted by id.

Every row is checked on its own: a bad row is reported with its row number and reason and the
rest of the file is imported. A rejected row leaves that person's stored record as it was
(and `--remove-missing` does not remove them), so a typo in this week's export never drops
someone from the alert list. Row numbers are the file's line numbers (the CSV header is 1).
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import phonenumbers

from dispatcher.domain import ChannelKind
from dispatcher.store.database import Database
from dispatcher.store.directory import DirectoryRow, DirectoryStore
from segments.expression import KEYWORDS
from segments.preferences import QuietHours, parse_channels
from segments.settings import DirectorySettings
from segments.zones import CampusMap, parse_coordinate

PERSON_COLUMNS = (
    "id", "first_name", "last_name", "email", "phone", "push", "role", "building", "campus",
    "language", "groups", "channels", "opt_out", "quiet_hours",
)
DEVICE_COLUMNS = ("id", "class", "zone", "building", "lat", "lon", "topic", "name")
DEVICE_CLASSES = (ChannelKind.SIREN, ChannelKind.SIGNAGE, ChannelKind.PA, ChannelKind.DESKTOP)
# Names a segment term gives its own meaning: an imported column cannot take them over.
RESERVED_ATTRIBUTES = frozenset({"zone", "class", "group"}) | KEYWORDS
GROUP = "group"

BATCH = 500
ProgressFn = Callable[[int, int], None]

_ID = re.compile(r"^[^\s\x00-\x1f]{1,100}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_COLUMN = re.compile(r"^[a-z0-9_][a-z0-9_-]*$")
_LANGUAGE = re.compile(r"^([a-z]{2,3})(?:[-_][a-z0-9]{2,8})*$")
_PUSH = re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE)
_EMAIL = re.compile(
    r"^(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})$"
)


class DirectoryFileError(ValueError):
    """The file as a whole cannot be imported (unreadable, no id column, unknown format)."""


class RowError(ValueError):
    """One row cannot be imported; the message is the reason shown to the operator."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A row that was rejected, or accepted with a warning, and why."""

    row: int
    reason: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did: counts, and every rejected row with its reason."""

    kind: Literal["people", "devices"]
    rows: int
    added: int
    changed: int
    unchanged: int
    removed: int
    rejected: tuple[RowProblem, ...] = ()
    warnings: tuple[RowProblem, ...] = ()
    # Entries of the source that are not for the directory (an LDAP account in no mapped group).
    skipped: int = 0

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        data = asdict(self)
        data["rejected"] = [asdict(p) for p in self.rejected]
        data["warnings"] = [asdict(p) for p in self.warnings]
        return data

    @classmethod
    def of_json(cls, data: dict[str, Any]) -> ImportReport:
        """The report `to_json` wrote."""
        return cls(
            kind=data["kind"], rows=data["rows"], added=data["added"],
            changed=data["changed"], unchanged=data["unchanged"], removed=data["removed"],
            rejected=tuple(RowProblem(**p) for p in data["rejected"]),
            warnings=tuple(RowProblem(**p) for p in data["warnings"]),
            skipped=data.get("skipped", 0),
        )


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """One person as stored: contact addresses normalized, values lowercased for matching."""

    id: str
    first_name: str
    last_name: str
    email: str
    phone: str
    push: str
    role: str
    building: str
    campus: str
    language: str
    groups: tuple[str, ...]
    channels: str
    opt_out: str
    quiet_hours: str
    attrs: tuple[tuple[str, str], ...]

    def fields(self) -> tuple[Any, ...]:
        """Values for the people table, in `PEOPLE_FIELDS` order, up to the digest."""
        return (
            self.id, self.first_name, self.last_name, self.email, self.phone, self.push,
            self.role, self.building, self.campus, self.language, ";".join(self.groups),
            self.channels, self.opt_out, self.quiet_hours,
            json.dumps(dict(self.attrs), sort_keys=True),
        )

    def digest(self) -> str:
        """A fingerprint of every field, to tell changed rows from unchanged ones."""
        return _digest(self.fields())

    def attributes(self) -> tuple[tuple[str, str], ...]:
        """(name, value) pairs for segment terms: the groups, then the imported columns."""
        return tuple((GROUP, g) for g in self.groups) + self.attrs

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (a held import keeps its records so)."""
        return asdict(self)

    @classmethod
    def of_json(cls, data: dict[str, Any]) -> PersonRecord:
        """The record `to_json` wrote."""
        values = dict(data)
        values["groups"] = tuple(values["groups"])
        values["attrs"] = tuple((str(k), str(v)) for k, v in values["attrs"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One siren, sign or speaker as stored."""

    id: str
    device_class: str
    zone: str
    building: str
    lat: float | None
    lon: float | None
    topic: str
    name: str
    attrs: tuple[tuple[str, str], ...]

    def fields(self) -> tuple[Any, ...]:
        """Values for the devices table, in `DEVICE_FIELDS` order, up to the digest."""
        return (
            self.id, self.device_class, self.zone, self.building, self.lat, self.lon,
            self.topic, self.name, json.dumps(dict(self.attrs), sort_keys=True),
        )

    def digest(self) -> str:
        """A fingerprint of every field, to tell changed rows from unchanged ones."""
        return _digest(self.fields())


def _digest(fields: tuple[Any, ...]) -> str:
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


# -- reading files ----------------------------------------------------------------------------


def _column(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


class _Lines:
    """Decoded lines of a file, counting bytes for progress and remembering undecodable lines."""

    def __init__(self, path: Path, progress: ProgressFn | None) -> None:
        self.path = path
        self.total = path.stat().st_size
        self.done = 0
        self.line = 0
        self.bad: set[int] = set()
        self._progress = progress

    def __iter__(self) -> Iterator[str]:
        with self.path.open("rb") as fh:
            for raw in fh:
                self.line += 1
                self.done += len(raw)
                if self._progress is not None and self.line % 1000 == 0:
                    self._progress(self.done, self.total)
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    self.bad.add(self.line)
                    text = raw.decode("utf-8", errors="replace")
                if self.line == 1:
                    text = text.removeprefix("\ufeff")
                yield text
        if self._progress is not None:
            self._progress(self.total, self.total)


# (row number, the record or why it cannot be read, the row's id when it can be told)
RowOrProblem = tuple[int, dict[str, str] | RowProblem, str]


def read_rows(
    path: Path,
    progress: ProgressFn | None = None,
    *,
    columns: Mapping[str, str] | None = None,
    delimiter: str = ",",
) -> Iterator[RowOrProblem]:
    """(row number, record or problem, id) for every data row of a CSV or JSON Lines file.

    `columns` maps directory columns to a CSV export's own headers (`id = "SPRIDEN_ID"`):
    only those columns are read, so the rest of a student-system export never reaches the
    directory.
    """
    suffix = path.suffix.lower()
    if not path.is_file():
        raise DirectoryFileError(f"{path}: no such file")
    lines = _Lines(path, progress)
    if suffix in (".csv", ".txt") or columns:
        if suffix not in (".csv", ".txt"):
            raise DirectoryFileError(f"{path}: a column map applies to .csv files only")
        return _csv_rows(lines, columns, delimiter)
    if suffix in (".jsonl", ".ndjson"):
        return _json_rows(lines)
    raise DirectoryFileError(f"{path}: use a .csv or .jsonl file (got {suffix or 'no extension'})")


def _csv_rows(
    lines: _Lines, columns: Mapping[str, str] | None = None, delimiter: str = ","
) -> Iterator[RowOrProblem]:
    reader = csv.reader(iter(lines), delimiter=delimiter)
    header: list[str] | None = None
    previous_end = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # A quote never closed swallows the rest of the file into one field, past the
            # csv module's size limit: what follows cannot be read safely.
            line = reader.line_num
            raise DirectoryFileError(
                f"{lines.path}: line {line}: not readable as CSV ({exc})"
            ) from None
        start, previous_end = previous_end + 1, reader.line_num
        if not fields or all(not f.strip() for f in fields):
            continue
        if header is None:
            header = [_column(f) for f in fields]
            header = _map_header(lines.path, header, columns)
            continue
        guess = fields[header.index("id")].strip() if len(fields) > header.index("id") else ""
        if lines.bad.intersection(range(start, previous_end + 1)):
            yield start, RowProblem(start, "not valid UTF-8 text"), guess
        elif len(fields) != len(header):
            problem = f"has {len(fields)} fields where the header has {len(header)}"
            yield start, RowProblem(start, problem), guess
        else:
            yield start, {
                name: value for name, value in zip(header, fields, strict=True) if name
            }, guess
    if header is None:
        raise DirectoryFileError(f"{lines.path}: the file is empty (no header row)")


def _map_header(path: Path, header: list[str], columns: Mapping[str, str] | None) -> list[str]:
    """The header in directory column names ('' for a column the map leaves out)."""
    theirs = {_column(their): ours for ours, their in (columns or {}).items()}
    seen: set[str] = set()
    for name in header:
        # An export may repeat a column it does not map (two FILLER columns): never read.
        if name in seen and (not columns or name in theirs):
            raise DirectoryFileError(f"{path}: column {name!r} appears twice in the header")
        seen.add(name)
    if columns:
        missing = [their for their in theirs if their not in seen]
        if missing:
            where = ", ".join(repr(m) for m in missing)
            raise DirectoryFileError(
                f"{path}: line 1: the column map names {where}, not in the header"
            )
        header = [theirs.get(name, "") for name in header]
    if "id" not in header:
        raise DirectoryFileError(f"{path}: line 1: the header has no 'id' column")
    return header


def _json_rows(lines: _Lines) -> Iterator[RowOrProblem]:
    for text in lines:
        number = lines.line
        if not text.strip():
            continue
        if number in lines.bad:
            yield number, RowProblem(number, "not valid UTF-8 text"), ""
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            reason = f"not valid JSON ({exc.msg} at column {exc.colno})"
            yield number, RowProblem(number, reason), ""
            continue
        if not isinstance(data, dict):
            yield number, RowProblem(number, "not a JSON object"), ""
            continue
        record: dict[str, str] = {}
        problem = ""
        for key, value in data.items():
            name = _column(str(key))
            if isinstance(value, dict) or (
                isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)
            ):
                problem = f"field {name!r}: nested objects are not supported"
                break
            record[name] = _text(value)
        guess = record.get("id", "").strip()
        if problem:
            yield number, RowProblem(number, problem), guess
        elif "id" not in record:
            yield number, RowProblem(number, "no 'id' field"), ""
        else:
            yield number, record, guess


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(_text(v) for v in value)
    return str(value)


# -- checking rows ----------------------------------------------------------------------------


def normalize_email(raw: str) -> str:
    """A checked address with its domain lowercased; raises RowError."""
    value = raw.strip()
    match = _EMAIL.match(value)
    if match is None or len(value) > 254 or len(match.group("local")) > 64:
        raise RowError("email is not a valid address")
    return f"{match.group('local')}@{match.group('domain').lower()}"


def normalize_phone(raw: str, region: str) -> str:
    """The number in E.164 (`+15551234567`); raises RowError without echoing the number."""
    try:
        number = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        raise RowError("phone is not a phone number") from None
    # Checking the default region first is the same answer, found faster for most numbers.
    if not (
        phonenumbers.is_valid_number_for_region(number, region)
        or phonenumbers.is_valid_number(number)
    ):
        raise RowError("phone is not a valid number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _language(raw: str, default: str) -> str:
    value = raw.strip().lower()
    if not value:
        return default
    match = _LANGUAGE.match(value)
    if match is None:
        raise RowError(f"language {raw.strip()!r} is not a language code such as en or es")
    return match.group(1)


def _value(raw: str, what: str) -> str:
    value = " ".join(raw.split()).lower()
    if len(value) > 200:
        raise RowError(f"{what} is longer than 200 characters")
    return value


class PersonRules:
    """Turns a raw row into a PersonRecord, or says why it cannot."""

    def __init__(
        self, settings: DirectorySettings, campus: CampusMap, role: str | None = None
    ) -> None:
        self._settings = settings
        self._campus = campus
        self._role = role

    def extra_columns(self, columns: Iterable[str]) -> tuple[list[str], list[str]]:
        """Imported columns that become attributes, and those ignored (reserved names)."""
        extra = [c for c in columns if c not in PERSON_COLUMNS]
        kept = [c for c in extra if c not in RESERVED_ATTRIBUTES and _COLUMN.match(c)]
        return kept, [c for c in extra if c not in kept]

    def check(self, raw: dict[str, str], extra: Sequence[str]) -> tuple[PersonRecord, list[str]]:
        """The record and its warnings; raises RowError."""
        warnings: list[str] = []
        person_id = raw.get("id", "").strip()
        if not person_id:
            raise RowError("id is empty")
        if not _ID.match(person_id):
            raise RowError("id must be 1-100 characters without spaces")
        role = _value(raw.get("role", ""), "role")
        if self._role is not None:
            if role and role != self._role:
                raise RowError(f"role {role!r} differs from the imported role {self._role!r}")
            role = self._role
        if not role:
            raise RowError("role is empty (give a role column or --role)")
        if not _NAME.match(role):
            raise RowError(f"role {role!r}: use lowercase letters, digits, '-' or '_'")
        email = raw.get("email", "").strip()
        phone = raw.get("phone", "").strip()
        push = raw.get("push", "").strip()
        if email:
            email = normalize_email(email)
        if phone:
            phone = normalize_phone(phone, self._settings.default_region)
        if push and not _PUSH.match(push):
            raise RowError("push is not a notification URL (scheme://...)")
        building = _value(raw.get("building", ""), "building")
        campus = _value(raw.get("campus", ""), "campus")
        if building and self._campus.buildings:
            known = self._campus.buildings.get(building)
            if known is None:
                warnings.append(f"building {building!r} is not on the campus map (no zone)")
            elif not campus:
                campus = known.campus
        try:
            channels = ";".join(parse_channels(raw.get("channels", "")))
            opt_out = ";".join(parse_channels(raw.get("opt_out", ""), allow_all=True))
        except ValueError as exc:
            raise RowError(str(exc)) from None
        try:
            quiet = QuietHours.parse(raw.get("quiet_hours", ""))
        except ValueError as exc:
            raise RowError(str(exc)) from None
        groups = tuple(dict.fromkeys(
            _value(g, "a group") for g in raw.get("groups", "").split(";") if g.strip()
        ))
        attrs = tuple(
            (c, _value(raw[c], c)) for c in extra if raw.get(c, "").strip()
        )
        record = PersonRecord(
            id=person_id,
            first_name=raw.get("first_name", "").strip(),
            last_name=raw.get("last_name", "").strip(),
            email=email,
            phone=phone,
            push=push,
            role=role,
            building=building,
            campus=campus,
            language=_language(raw.get("language", ""), self._settings.default_language),
            groups=groups,
            channels=channels,
            opt_out=opt_out,
            quiet_hours=str(quiet) if quiet else "",
            attrs=attrs,
        )
        return record, warnings


class DeviceRules:
    """Turns a raw row into a DeviceRecord, or says why it cannot."""

    def __init__(self, campus: CampusMap) -> None:
        self._campus = campus

    def check(self, raw: dict[str, str], extra: Sequence[str]) -> tuple[DeviceRecord, list[str]]:
        """The record and its warnings; raises RowError."""
        warnings: list[str] = []
        device_id = raw.get("id", "").strip()
        if not device_id or not _ID.match(device_id):
            raise RowError("id must be 1-100 characters without spaces")
        device_class = raw.get("class", "").strip().lower()
        if device_class not in {c.value for c in DEVICE_CLASSES}:
            raise RowError(f"class {device_class!r} is not siren, signage, pa or desktop")
        building = _value(raw.get("building", ""), "building")
        lat_text, lon_text = raw.get("lat", "").strip(), raw.get("lon", "").strip()
        lat = parse_coordinate(lat_text, -90, 90) if lat_text else None
        lon = parse_coordinate(lon_text, -180, 180) if lon_text else None
        if (lat_text or lon_text) and (lat is None or lon is None):
            raise RowError("lat and lon must both be given as valid coordinates")
        if building and self._campus.buildings:
            known = self._campus.buildings.get(building)
            if known is None:
                warnings.append(f"building {building!r} is not on the campus map")
            elif lat is None:
                lat, lon = known.lat, known.lon
        zone = raw.get("zone", "").strip().lower()
        if zone:
            if self._campus.zones and zone not in self._campus.zones:
                raise RowError(f"zone {zone!r} is not in the zones file")
            placed = self._campus.zones_at(lat, lon)
            if self._campus.zones and lat is not None and zone not in placed:
                warnings.append(f"the coordinates are outside zone {zone!r}")
        else:
            found = self._campus.zones_at(lat, lon)
            if not found:
                raise RowError("the device is in no zone: give a zone or coordinates inside one")
            zone = found[0]
        attrs = tuple(
            (c, raw[c].strip()) for c in extra if raw.get(c, "").strip()
        )
        record = DeviceRecord(
            id=device_id,
            device_class=device_class,
            zone=zone,
            building=building,
            lat=lat,
            lon=lon,
            topic=raw.get("topic", "").strip(),
            name=raw.get("name", "").strip(),
            attrs=attrs,
        )
        return record, warnings


# -- writing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeoplePlan:
    """A people import checked and counted, nothing written yet: its records, the ids it saw
    (rejected rows' too, so a bad row never removes anyone), the roles whose missing people
    it removes, its report as it would be, and the share of the people it concerns that it
    would change or remove (what the safety brake weighs)."""

    records: tuple[PersonRecord, ...]
    keep: frozenset[str]
    remove_roles: frozenset[str]
    report: ImportReport
    share: float

    def to_parts(self, size: int = BATCH) -> list[str]:
        """The plan as JSON texts of at most `size` records each, its header first."""
        head = {
            "keep": sorted(self.keep), "remove_roles": sorted(self.remove_roles),
            "report": self.report.to_json(), "share": self.share,
        }
        parts = [json.dumps(head)]
        for start in range(0, len(self.records), size):
            parts.append(json.dumps([r.to_json() for r in self.records[start : start + size]]))
        return parts

    @classmethod
    def of_parts(cls, parts: Sequence[str]) -> PeoplePlan:
        """The plan `to_parts` wrote."""
        head = json.loads(parts[0])
        records = tuple(
            PersonRecord.of_json(r) for part in parts[1:] for r in json.loads(part)
        )
        return cls(
            records=records, keep=frozenset(head["keep"]),
            remove_roles=frozenset(head["remove_roles"]),
            report=ImportReport.of_json(head["report"]), share=float(head["share"]),
        )

@dataclass
class _Tally:
    rows: int = 0
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    rejected: list[RowProblem] = field(default_factory=list)
    warnings: list[RowProblem] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)

    def report(self, kind: Literal["people", "devices"]) -> ImportReport:
        return ImportReport(
            kind, self.rows, self.added, self.changed, self.unchanged, self.removed,
            tuple(self.rejected), tuple(self.warnings),
        )


class DirectoryImporter:
    """Upserts people and devices into the store from the files the institution exports."""

    def __init__(self, db: Database, settings: DirectorySettings, campus: CampusMap) -> None:
        self._store = DirectoryStore(db)
        self._settings = settings
        self._campus = campus

    async def import_people(
        self,
        path: Path,
        *,
        role: str | None = None,
        remove_missing: bool = False,
        progress: ProgressFn | None = None,
    ) -> ImportReport:
        """Import a people file (CSV or JSON Lines); `role` imports an opt-in list.

        With `remove_missing`, people whose role appears in the file (or is `role`) and whose
        id does not are removed: importing the parents list never removes students.
        """
        plan = await self.plan_people(
            read_rows(path, progress), role=role, remove_missing=remove_missing,
            header_row=path.suffix.lower() == ".csv",
        )
        return await self.apply_people(plan)

    async def plan_people(
        self,
        rows: Iterable[RowOrProblem],
        *,
        role: str | None = None,
        remove_missing: bool = False,
        roles: Iterable[str] = (),
        header_row: bool = False,
    ) -> PeoplePlan:
        """Check every row and count what writing them would do, writing nothing.

        `roles` adds roles the source speaks for (an LDAP sync's mapped roles): with
        `remove_missing`, their people missing from the rows are removed too. `header_row`
        says reserved column names are reported on line 1 (a CSV header), not per row.
        """
        if role is not None:
            role = role.strip().lower()
            if not _NAME.match(role):
                raise DirectoryFileError(
                    f"role {role!r}: use lowercase letters, digits, '-' or '_'"
                )
        rules = PersonRules(self._settings, self._campus, role)
        tally = _Tally()
        scope: set[str] = {role} if role else set()
        scope.update(roles)
        records: list[PersonRecord] = []
        ignored: set[str] = set()
        for number, item, guess in rows:
            tally.rows += 1
            if isinstance(item, RowProblem):
                tally.rejected.append(item)
                if guess:
                    tally.seen.setdefault(guess, number)
                continue
            # Per row: JSON Lines records need not all have the same fields.
            extra, reserved = rules.extra_columns(item)
            for name in reserved:
                if name not in ignored:
                    ignored.add(name)
                    where = 1 if header_row else number
                    reason = f"column {name!r} is reserved; ignored"
                    tally.warnings.append(RowProblem(where, reason))
            if _duplicate(tally, item.get("id", "").strip(), number):
                continue
            try:
                record, warnings = rules.check(item, extra)
            except RowError as exc:
                tally.rejected.append(RowProblem(number, str(exc)))
                continue
            tally.warnings.extend(RowProblem(number, w) for w in warnings)
            scope.add(record.role)
            records.append(record)
        stored = await self._store.people_fingerprints()
        changed: set[str] = set()
        for record in records:
            before = stored.get(record.id)
            if before is None:
                tally.added += 1
            elif before[1] == record.digest():
                tally.unchanged += 1
            else:
                tally.changed += 1
                changed.add(record.id)
        removing = remove_missing and bool(records)
        if removing:
            tally.removed = sum(
                1 for pid, (r, _) in stored.items() if r in scope and pid not in tally.seen
            )
        concerned = changed | {pid for pid, (r, _) in stored.items() if r in scope}
        share = (tally.changed + tally.removed) / len(concerned) if concerned else 0.0
        return PeoplePlan(
            records=tuple(records),
            keep=frozenset(tally.seen),
            remove_roles=frozenset(scope) if removing else frozenset(),
            report=tally.report("people"),
            share=share,
        )

    async def apply_people(
        self, plan: PeoplePlan, progress: ProgressFn | None = None
    ) -> ImportReport:
        """Write a plan: upsert its records, then remove the missing people of its roles.

        The counts are those of the writing, which may differ from the plan's when the
        directory changed since it was made (a held import confirmed later). `progress` is
        told the records written so far, after each batch.
        """
        tally = _Tally()
        total = len(plan.records)
        for start in range(0, total, BATCH):
            await self._write_people(list(plan.records[start : start + BATCH]), tally)
            if progress is not None:
                progress(min(start + BATCH, total), total)
        for each in sorted(plan.remove_roles):
            tally.removed += await self._store.remove_people(each, keep=plan.keep)
        if tally.added or tally.changed or tally.removed:
            await self._store.refresh_people_statistics()
        return replace(
            plan.report, added=tally.added, changed=tally.changed,
            unchanged=tally.unchanged, removed=tally.removed,
        )

    async def _write_people(self, records: list[PersonRecord], tally: _Tally) -> None:
        counts = await self._store.upsert_people(
            [DirectoryRow(r.fields(), r.digest(), r.attributes()) for r in records],
            int(time.time() * 1000),
        )
        tally.added += counts.added
        tally.changed += counts.changed
        tally.unchanged += counts.unchanged

    async def import_devices(
        self,
        path: Path,
        *,
        remove_missing: bool = False,
        progress: ProgressFn | None = None,
    ) -> ImportReport:
        """Import a devices file (CSV or JSON Lines): id, class, zone, building, lat, lon, topic."""
        rules = DeviceRules(self._campus)
        tally = _Tally()
        records: list[DeviceRecord] = []
        extra: list[str] | None = None
        for number, item, guess in read_rows(path, progress):
            tally.rows += 1
            if isinstance(item, RowProblem):
                tally.rejected.append(item)
                if guess:
                    tally.seen.setdefault(guess, number)
                continue
            if extra is None:
                extra = [c for c in item if c not in DEVICE_COLUMNS]
            if _duplicate(tally, item.get("id", "").strip(), number):
                continue
            try:
                record, warnings = rules.check(item, extra)
            except RowError as exc:
                tally.rejected.append(RowProblem(number, str(exc)))
                continue
            tally.warnings.extend(RowProblem(number, w) for w in warnings)
            records.append(record)
        counts = await self._store.write_devices(
            [DirectoryRow(r.fields(), r.digest()) for r in records],
            int(time.time() * 1000),
            remove_except=tally.seen if remove_missing and records else None,
        )
        tally.added += counts.added
        tally.changed += counts.changed
        tally.unchanged += counts.unchanged
        tally.removed = counts.removed
        return tally.report("devices")


def _duplicate(tally: _Tally, record_id: str, number: int) -> bool:
    if not record_id:
        return False
    first = tally.seen.get(record_id)
    if first is not None:
        tally.rejected.append(RowProblem(number, f"id {record_id!r} is already on row {first}"))
        return True
    # Rejected rows count as seen too: a bad row must not get its person removed.
    tally.seen[record_id] = number
    return False
