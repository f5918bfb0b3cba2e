"""Directory import: normalization, bad rows with their row numbers, upserts and removals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from segments.directory import DirectoryFileError, RowProblem
from tests.segments.helpers import Campus, person


async def stored(campus: Campus, person_id: str) -> dict[str, object]:
    row = await campus.db.fetchone("SELECT * FROM people WHERE id = ?", (person_id,))
    assert row is not None
    mapping: Any = row
    return dict(mapping)


async def attributes(campus: Campus, person_id: str) -> set[tuple[str, str]]:
    rows = await campus.db.fetchall(
        "SELECT name, value FROM person_attributes WHERE person_id = ?", (person_id,)
    )
    return {(r["name"], r["value"]) for r in rows}


class TestNormalization:
    """Accepted rows are stored in one canonical form."""

    @pytest.mark.parametrize(
        "raw",
        ["(201) 555-0123", "201-555-0123", "+1 201 555 0123", "201.555.0123", "+12015550123",
         "1 (201) 555-0123"],
    )
    async def test_phones_become_e164(self, campus: Campus, raw: str) -> None:
        report = await campus.people([person("P1", phone=raw)])
        assert report.rejected == ()
        assert (await stored(campus, "P1"))["phone"] == "+12015550123"

    async def test_fields_are_normalized(self, campus: Campus) -> None:
        row = person(
            "P1", email="Tess.Q@Example.EDU", role="Student", building="North-Hall",
            language="es-MX", groups="Athletics; Band ;athletics", channels="push;email",
            opt_out="SMS", quiet_hours="22:00-7:00", class_year="2028",
        )
        report = await campus.people([row])
        assert (report.added, report.rejected, report.warnings) == (1, (), ())
        got = await stored(campus, "P1")
        assert got["email"] == "Tess.Q@example.edu"
        assert (got["role"], got["building"], got["campus"]) == ("student", "north-hall", "main")
        assert (got["language"], got["groups"]) == ("es", "athletics;band")
        assert (got["channels"], got["opt_out"], got["quiet_hours"]) == (
            "push;email", "sms", "22:00-07:00"
        )
        assert json.loads(str(got["attrs"])) == {"class_year": "2028"}
        assert await attributes(campus, "P1") == {
            ("group", "athletics"), ("group", "band"), ("class_year", "2028")
        }

    async def test_a_person_without_addresses_is_kept(self, campus: Campus) -> None:
        report = await campus.people([person("P1", email="", phone="", push="")])
        assert report.added == 1


class TestBadRows:
    """Bad rows are rejected with their row number and reason; the rest is imported."""

    async def test_each_reason_with_its_row(self, campus: Campus) -> None:
        rows = [
            person("P1"),                                    # row 2
            person("P2", email="not-an-address"),            # row 3
            person("P3", phone="555-0100"),                  # row 4
            person("P4", phone="call me"),                   # row 5
            person("", first_name="No Id"),                  # row 6
            person("P6", role=""),                           # row 7
            person("P7", language="english!"),               # row 8
            person("P8", channels="sms;fax"),                # row 9
            person("P9", opt_out="siren"),                   # row 10
            person("P10", quiet_hours="late"),               # row 11
            person("P11", push="not a url"),                 # row 12
            person("P1", first_name="Again"),                # row 13
            person("P13", role="Stu dent"),                  # row 14
            person("P14", email="a@b@example.edu"),          # row 15
            person("P15"),                                   # row 16
        ]
        report = await campus.people(rows)
        assert report.rows == 15
        assert report.added == 2
        assert list(report.rejected) == [
            RowProblem(3, "email is not a valid address"),
            RowProblem(4, "phone is not a valid number"),
            RowProblem(5, "phone is not a phone number"),
            RowProblem(6, "id is empty"),
            RowProblem(7, "role is empty (give a role column or --role)"),
            RowProblem(8, "language 'english!' is not a language code such as en or es"),
            RowProblem(9, "unknown channel 'fax' (sms, push, voice or email)"),
            RowProblem(10, "'siren' is a device channel, not a person's"),
            RowProblem(11, "quiet_hours must look like 22:00-07:00"),
            RowProblem(12, "push is not a notification URL (scheme://...)"),
            RowProblem(13, "id 'P1' is already on row 2"),
            RowProblem(14, "role 'stu dent': use lowercase letters, digits, '-' or '_'"),
            RowProblem(15, "email is not a valid address"),
        ]
        ids = {r["id"] for r in await campus.db.fetchall("SELECT id FROM people")}
        assert ids == {"P1", "P15"}

    async def test_reasons_never_echo_contact_details(self, campus: Campus) -> None:
        report = await campus.people([person("P1", phone="+1 999 555 1234", email="x@y")])
        assert len(report.rejected) == 1
        assert "999" not in report.rejected[0].reason and "x@y" not in report.rejected[0].reason

    async def test_csv_field_count_and_multiline_rows(self, campus: Campus) -> None:
        path = campus.base / "raw.csv"
        path.write_text(
            "id,first_name,last_name,email,role\n"
            "P1,Ana,Vel,ana@example.edu,student\n"
            'P2,"Two\nLines",Vel,two@example.edu,student\n'
            "P3,Too,Many,x@example.edu,student,extra\n"
            "P4,Too,Few\n"
            "\n"
            "P5,Last,Row,last@example.edu,staff\n",
            encoding="utf-8",
        )
        report = await campus.importer.import_people(path)
        assert report.added == 3
        assert list(report.rejected) == [
            RowProblem(5, "has 6 fields where the header has 5"),
            RowProblem(6, "has 3 fields where the header has 5"),
        ]

    async def test_undecodable_bytes_reject_only_their_row(self, campus: Campus) -> None:
        path = campus.base / "latin.csv"
        path.write_bytes(
            b"\xef\xbb\xbfid,first_name,role\nP1,Jos\xe9,student\nP2,Ana,student\n"
        )
        report = await campus.importer.import_people(path)
        assert report.added == 1
        assert list(report.rejected) == [RowProblem(2, "not valid UTF-8 text")]

    async def test_json_lines(self, campus: Campus) -> None:
        path = campus.base / "people.jsonl"
        lines = [
            json.dumps({"id": "J1", "role": "staff", "groups": ["police", "dining"],
                        "phone": 2015550123, "floor": 3}),
            "{not json",
            json.dumps(["a", "list"]),
            json.dumps({"id": "J4", "role": "staff", "address": {"street": "x"}}),
            "",
            json.dumps({"role": "staff"}),
            json.dumps({"id": "J7", "role": "staff", "email": "bad"}),
            json.dumps({"id": "J8", "role": "staff", "office": "B12", "zone": "a"}),
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        report = await campus.importer.import_people(path)
        assert report.added == 2
        assert list(report.warnings) == [RowProblem(8, "column 'zone' is reserved; ignored")]
        assert [(p.row, p.reason.split(" (")[0]) for p in report.rejected] == [
            (2, "not valid JSON"),
            (3, "not a JSON object"),
            (4, "field 'address': nested objects are not supported"),
            (6, "no 'id' field"),
            (7, "email is not a valid address"),
        ]
        got = await stored(campus, "J1")
        assert (got["groups"], got["phone"]) == ("police;dining", "+12015550123")
        assert ("floor", "3") in await attributes(campus, "J1")
        assert await attributes(campus, "J8") == {("office", "b12")}


class TestWholeFile:
    """Only a file that cannot be read at all fails as a whole."""

    async def test_no_id_column(self, campus: Campus) -> None:
        path = campus.base / "x.csv"
        path.write_text("name,role\nA,student\n", encoding="utf-8")
        with pytest.raises(DirectoryFileError, match="no 'id' column"):
            await campus.importer.import_people(path)

    async def test_unknown_extension(self, campus: Campus) -> None:
        path = campus.base / "x.xlsx"
        path.write_text("id\n", encoding="utf-8")
        with pytest.raises(DirectoryFileError, match=r"use a \.csv or \.jsonl file"):
            await campus.importer.import_people(path)

    async def test_empty_and_missing_files(self, campus: Campus) -> None:
        path = campus.base / "empty.csv"
        path.write_text("", encoding="utf-8")
        with pytest.raises(DirectoryFileError, match="empty"):
            await campus.importer.import_people(path)
        with pytest.raises(DirectoryFileError, match="no such file"):
            await campus.importer.import_people(campus.base / "missing.csv")

    async def test_duplicate_header(self, campus: Campus) -> None:
        path = campus.base / "dup.csv"
        path.write_text("id,role,Role\nP1,student,staff\n", encoding="utf-8")
        with pytest.raises(DirectoryFileError, match="'role' appears twice"):
            await campus.importer.import_people(path)


class TestWarnings:
    """Accepted rows can carry warnings that do not stop them."""

    async def test_unknown_building_and_reserved_column(self, campus: Campus) -> None:
        report = await campus.people([
            person("P1", building="annex-9", zone="b"),
            person("P2"),
        ])
        assert report.added == 2
        assert list(report.warnings) == [
            RowProblem(1, "column 'zone' is reserved; ignored"),
            RowProblem(2, "building 'annex-9' is not on the campus map (no zone)"),
        ]
        assert await attributes(campus, "P1") == set()


class TestUpsert:
    """Imports are upserts keyed by id that report added, changed, unchanged and removed."""

    async def test_reimport_change_and_remove(self, campus: Campus) -> None:
        rows = [person(f"P{i}") for i in range(1, 6)]
        first = await campus.people(rows)
        assert (first.added, first.changed, first.unchanged) == (5, 0, 0)
        again = await campus.people(rows)
        assert (again.added, again.changed, again.unchanged, again.removed) == (0, 0, 5, 0)
        edited = [*rows[:3], person("P4", groups="band"), person("P6")]
        report = await campus.people(edited, remove_missing=True)
        assert (report.added, report.changed, report.unchanged, report.removed) == (1, 1, 3, 1)
        ids = {r["id"] for r in await campus.db.fetchall("SELECT id FROM people")}
        assert ids == {"P1", "P2", "P3", "P4", "P6"}
        assert await attributes(campus, "P4") == {("group", "band")}

    async def test_changed_groups_replace_the_old_ones(self, campus: Campus) -> None:
        await campus.people([person("P1", groups="band;honors")])
        await campus.people([person("P1", groups="greek")])
        assert await attributes(campus, "P1") == {("group", "greek")}

    async def test_remove_missing_keeps_rejected_rows(self, campus: Campus) -> None:
        await campus.people([person("P1"), person("P2"), person("P3")])
        report = await campus.people(
            [person("P1"), person("P2", email="broken")], remove_missing=True
        )
        assert report.removed == 1
        assert (await stored(campus, "P2"))["email"] == "t.quorin2@example.edu"

    async def test_remove_missing_only_within_the_files_roles(self, campus: Campus) -> None:
        await campus.people([person("S1"), person("S2"), person("F1", role="faculty")])
        report = await campus.people([person("F2", role="faculty")], remove_missing=True)
        assert report.removed == 1
        ids = {r["id"] for r in await campus.db.fetchall("SELECT id FROM people")}
        assert ids == {"S1", "S2", "F2"}

    async def test_a_file_with_no_good_row_removes_no_one(self, campus: Campus) -> None:
        await campus.people([person("P1"), person("P2")])
        report = await campus.people([person("P3", email="bad")], remove_missing=True)
        assert report.removed == 0
        assert await campus.db.fetchval("SELECT COUNT(*) FROM people") == 2


class TestOptInLists:
    """Opt-in lists (parents, neighbours) import the same way with their own role."""

    async def test_role_fills_and_conflicts_are_rejected(self, campus: Campus) -> None:
        await campus.people([person("S1"), person("S2")])
        rows = [
            {"id": "N1", "email": "n1@example.org", "phone": "", "role": ""},
            {"id": "N2", "email": "n2@example.org", "phone": "", "role": "Neighbor"},
            {"id": "N3", "email": "n3@example.org", "phone": "", "role": "student"},
        ]
        path = campus.file(rows)
        report = await campus.importer.import_people(path, role="neighbor", remove_missing=True)
        assert report.added == 2
        assert list(report.rejected) == [
            RowProblem(4, "role 'student' differs from the imported role 'neighbor'")
        ]
        found = await campus.db.fetchall("SELECT id, role FROM people")
        roles = {r["id"]: r["role"] for r in found}
        assert roles == {"S1": "student", "S2": "student", "N1": "neighbor", "N2": "neighbor"}
        only = campus.file([{"id": "N2", "email": "n2@example.org"}])
        report = await campus.importer.import_people(only, role="neighbor", remove_missing=True)
        assert (report.unchanged, report.removed) == (1, 1)
        assert await campus.db.fetchval("SELECT COUNT(*) FROM people") == 3


class TestDevices:
    """Devices import with class, zone and coordinates, placed by the campus map."""

    async def test_the_campus_devices(self, campus: Campus) -> None:
        report = await campus.devices()
        assert (report.added, report.rejected) == (12, ())
        row = await campus.db.fetchone("SELECT * FROM devices WHERE id = 'pa-science'")
        assert row is not None
        assert (row["class"], row["zone"], row["building"]) == ("pa", "b", "science-center")
        assert (row["lat"], row["lon"]) == (40.001, -75.004)

    async def test_bad_devices(self, campus: Campus, tmp_path: Path) -> None:
        path = campus.file([
            {"id": "s1", "class": "siren", "zone": "", "lat": "40.0060", "lon": "-75.0040"},
            {"id": "s2", "class": "horn", "zone": "a", "lat": "", "lon": ""},
            {"id": "s3", "class": "siren", "zone": "", "lat": "10", "lon": "10"},
            {"id": "s4", "class": "siren", "zone": "zz", "lat": "", "lon": ""},
            {"id": "s5", "class": "pa", "zone": "", "lat": "40.0", "lon": ""},
            {"id": "s6", "class": "signage", "zone": "", "building": "chemistry-lab"},
            {"id": "s7", "class": "signage", "zone": "c", "building": "library"},
        ])
        report = await campus.importer.import_devices(path)
        assert report.added == 3
        assert list(report.rejected) == [
            RowProblem(3, "class 'horn' is not siren, signage, pa or desktop"),
            RowProblem(4, "the device is in no zone: give a zone or coordinates inside one"),
            RowProblem(5, "zone 'zz' is not in the zones file"),
            RowProblem(6, "lat and lon must both be given as valid coordinates"),
        ]
        assert list(report.warnings) == [RowProblem(8, "the coordinates are outside zone 'c'")]
        rows = await campus.db.fetchall("SELECT id, zone FROM devices")
        zones = {r["id"]: r["zone"] for r in rows}
        # Without a zone column the smallest zone covering the device is its zone.
        assert zones == {"s1": "a", "s6": "b-labs", "s7": "c"}

    async def test_remove_missing_devices(self, campus: Campus) -> None:
        await campus.devices()
        path = campus.file([{"id": "siren-north", "class": "siren", "zone": "a",
                             "lat": "40.007", "lon": "-75.003"}])
        report = await campus.importer.import_devices(path, remove_missing=True)
        assert report.removed == 11
        assert await campus.db.fetchval("SELECT COUNT(*) FROM devices") == 1
