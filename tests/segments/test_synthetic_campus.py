"""The synthetic campus generator: deterministic, fictitious, and valid for the importer."""

from __future__ import annotations

import csv
import itertools
import re
from collections import Counter
from pathlib import Path

import phonenumbers

from segments.synthetic import (
    PUSH_SINK,
    ZONES,
    fictional_area_codes,
    fictional_phone,
    generate_devices,
    generate_people,
    main,
)

CONFIG = Path(__file__).resolve().parents[2] / "config"


class TestPeople:
    """People rows are reproducible and look real without being real."""

    def test_same_seed_same_campus(self) -> None:
        assert list(generate_people(300, seed=7)) == list(generate_people(300, seed=7))
        assert list(generate_people(300, seed=7)) != list(generate_people(300, seed=8))

    def test_roles_languages_and_preferences_all_occur(self) -> None:
        rows = list(generate_people(3000))
        roles = Counter(r["role"] for r in rows)
        assert set(roles) == {"student", "staff", "faculty", "parent", "neighbor"}
        assert roles["student"] > roles["staff"] > roles["neighbor"]
        assert Counter(r["language"] for r in rows)["es"] > 200
        assert all(r["building"] == "" for r in rows if r["role"] in ("parent", "neighbor"))
        assert any(r["opt_out"] for r in rows) and any(r["quiet_hours"] for r in rows)
        assert any(r["channels"] for r in rows) and any(r["groups"] for r in rows)

    def test_contacts_are_fictitious_and_valid(self) -> None:
        rows = list(generate_people(2000))
        for row in rows:
            if row["email"]:
                assert re.fullmatch(r"[a-z.]+\d+@example\.(edu|org)", row["email"])
            if row["phone"]:
                number = phonenumbers.parse(row["phone"], "US")
                assert phonenumbers.is_valid_number(number)
                national = str(number.national_number)
                assert national[3:6] == "555" and 100 <= int(national[6:]) <= 199
            if row["push"]:
                assert row["push"] == f"{PUSH_SINK}{row['id']}"

    def test_phone_numbers_are_distinct_up_to_the_range(self) -> None:
        capacity = 100 * len(fictional_area_codes())
        assert capacity >= 44_000
        numbers = {fictional_phone(k) for k in range(capacity)}
        assert len(numbers) == capacity
        assert fictional_phone(capacity) == fictional_phone(0)


class TestDevices:
    """Devices: the named dozen first, every class at least twice."""

    def test_a_dozen(self) -> None:
        devices = generate_devices(12)
        assert Counter(d["class"] for d in devices) == {"siren": 4, "signage": 5, "pa": 3}
        assert {d["zone"] for d in devices} == {"a", "b", "c", "d"}

    def test_more_devices_cycle_through_the_classes(self) -> None:
        devices = generate_devices(30)
        assert len({d["id"] for d in devices}) == 30
        assert min(Counter(d["class"] for d in devices).values()) >= 8


class TestCommandLine:
    """`python -m segments.synthetic` writes the files the config points at."""

    def test_writes_the_campus(self, tmp_path: Path) -> None:
        assert main(["--people", "40", "--devices", "6", "--out", str(tmp_path / "c")]) == 0
        with (tmp_path / "c" / "people.csv").open(newline="") as fh:
            assert len(list(csv.DictReader(fh))) == 40
        for name in ("devices.csv", "buildings.csv", "zones.geojson"):
            assert (tmp_path / "c" / name).is_file()

    def test_the_example_campus_in_config(self) -> None:
        with (CONFIG / "campus" / "people.csv").open(newline="") as fh:
            people = list(csv.DictReader(fh))
        assert len(people) >= 3000
        # The example campus is the generator's output for its default seed.
        assert people[:50] == list(itertools.islice(generate_people(3000), 50))
        with (CONFIG / "campus" / "devices.csv").open(newline="") as fh:
            devices = list(csv.DictReader(fh))
        # The generator's twelve, then three desktop pop-ups added by hand after them.
        assert [d["id"] for d in devices[:12]] == [d["id"] for d in generate_devices(12)]
        assert [d["class"] for d in devices[12:]] == ["desktop"] * 3
        assert len(ZONES) >= 4
