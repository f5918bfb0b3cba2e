"""A deterministic synthetic campus: people, buildings, zones and devices, for examples and tests.

Everything is made up. Names are built from syllables, not taken from any list of real
people. Phone numbers use the NANP range reserved for fiction, NXX-555-0100 to NXX-555-0199,
across the area codes that `phonenumbers` accepts as valid in the US and Canada (so the
importer's validation is exercised); that gives 44,000 distinct numbers, and a larger campus
reuses them. Email addresses are at example.edu (opt-in lists at example.org) and push
targets are Apprise `json://` URLs on the local sandbox (127.0.0.1:8026).

    python -m segments.synthetic --people 3000 --devices 12 --out config/campus \\
        --zones-out config/zones.geojson
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import phonenumbers

PEOPLE_HEADER = (
    "id", "first_name", "last_name", "email", "phone", "push", "role", "building", "campus",
    "language", "groups", "channels", "opt_out", "quiet_hours", "class_year", "department",
)
DEVICE_HEADER = ("id", "class", "zone", "building", "lat", "lon", "name")
PUSH_SINK = "json://127.0.0.1:8026/push/"


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """A zone of the synthetic campus: its id, name and (lat, lon) outline."""

    id: str
    name: str
    outline: tuple[tuple[float, float], ...]


def _box(south: float, west: float, north: float, east: float) -> tuple[tuple[float, float], ...]:
    return ((south, west), (south, east), (north, east), (north, west))


ZONES = (
    ZoneSpec("campus", "Whole campus", _box(39.990, -75.008, 40.010, -74.988)),
    ZoneSpec("a", "North Campus (residence halls)", (
        (40.004, -75.006), (40.004, -74.996), (40.007, -74.996), (40.0085, -75.001),
        (40.007, -75.006),
    )),
    ZoneSpec("b", "Central Campus (academic core)", _box(39.998, -75.006, 40.004, -74.996)),
    ZoneSpec("b-labs", "Science Quad", _box(39.999, -75.005, 40.002, -75.001)),
    ZoneSpec("c", "South Campus (athletics)", _box(39.992, -75.006, 39.998, -74.996)),
    ZoneSpec("d", "East Campus", _box(39.992, -74.996, 40.008, -74.990)),
    ZoneSpec("d-med", "Medical Center", _box(39.998, -74.995, 40.002, -74.991)),
)


@dataclass(frozen=True, slots=True)
class BuildingSpec:
    """A building of the synthetic campus and the zones it was placed in."""

    id: str
    name: str
    campus: str
    lat: float
    lon: float
    zones: frozenset[str]


def _b(
    building_id: str, name: str, lat: float, lon: float, *zones: str, campus: str = "main"
) -> BuildingSpec:
    return BuildingSpec(building_id, name, campus, lat, lon, frozenset(zones))


BUILDINGS = (
    _b("north-hall", "North Hall", 40.0060, -75.0040, "campus", "a"),
    _b("west-hall", "West Hall", 40.0055, -75.0050, "campus", "a"),
    _b("east-hall", "East Hall", 40.0055, -74.9980, "campus", "a"),
    _b("dining-commons", "Dining Commons", 40.0065, -75.0010, "campus", "a"),
    _b("admin", "Administration Building", 40.0030, -74.9990, "campus", "b"),
    _b("library", "Main Library", 40.0025, -75.0000, "campus", "b"),
    _b("carver-hall", "Carver Hall", 40.0035, -75.0045, "campus", "b"),
    _b("student-union", "Student Union", 39.9985, -74.9985, "campus", "b"),
    _b("science-center", "Science Center", 40.0010, -75.0040, "campus", "b", "b-labs"),
    _b("chemistry-lab", "Chemistry Laboratories", 40.0005, -75.0020, "campus", "b", "b-labs"),
    _b("athletics-center", "Athletics Center", 39.9950, -75.0030, "campus", "c"),
    _b("south-hall", "South Hall", 39.9940, -74.9990, "campus", "c"),
    _b("stadium", "Stadium", 39.9930, -75.0050, "campus", "c"),
    _b("health-sciences", "Health Sciences", 40.0050, -74.9930, "campus", "d"),
    _b("parking-east", "East Parking Deck", 39.9950, -74.9930, "campus", "d"),
    _b("medical-center", "Medical Center", 40.0000, -74.9930, "campus", "d", "d-med"),
    _b("downtown-center", "Downtown Center", 39.9800, -75.0500, campus="downtown"),
)
BUILDING_ZONES = {b.id: b.zones for b in BUILDINGS}

RESIDENCES = ("north-hall", "west-hall", "east-hall", "south-hall")
ACADEMIC = ("carver-hall", "library", "science-center", "chemistry-lab", "health-sciences",
            "downtown-center")
WORKPLACES = ("admin", "library", "dining-commons", "student-union", "medical-center",
              "parking-east", "athletics-center", "downtown-center", "stadium")
OFFICES = ("carver-hall", "science-center", "chemistry-lab", "health-sciences",
           "medical-center", "downtown-center")

# (id, class, zone, building, lat, lon, name): two or more of each class, every main zone.
FIXED_DEVICES = (
    ("siren-north", "siren", "a", "", 40.0070, -75.0030, "North Campus siren"),
    ("siren-central", "siren", "b", "", 40.0015, -74.9985, "Central Campus siren"),
    ("siren-south", "siren", "c", "", 39.9955, -75.0000, "South Campus siren"),
    ("siren-east", "siren", "d", "", 40.0030, -74.9925, "East Campus siren"),
    ("sign-union", "signage", "b", "student-union", None, None, "Union lobby display"),
    ("sign-library", "signage", "b", "library", None, None, "Library entrance display"),
    ("sign-dining", "signage", "a", "dining-commons", None, None, "Dining hall display"),
    ("sign-athletics", "signage", "c", "athletics-center", None, None, "Arena concourse display"),
    ("sign-medical", "signage", "d", "medical-center", None, None, "Medical Center display"),
    ("pa-science", "pa", "b", "science-center", None, None, "Science Center PA"),
    ("pa-north-hall", "pa", "a", "north-hall", None, None, "North Hall PA"),
    ("pa-medical", "pa", "d", "medical-center", None, None, "Medical Center PA"),
)

_ONSET = ("b", "d", "f", "g", "k", "l", "m", "n", "r", "s", "t", "v", "z", "br", "dr", "kr",
          "st", "th", "sh", "qu", "y", "j")
_VOWEL = ("a", "e", "i", "o", "u", "ai", "ei", "ou", "y")
_CODA = ("", "", "", "n", "r", "l", "s", "th", "nd", "x", "m")
ROLES = (("student", 0.68), ("staff", 0.12), ("faculty", 0.09), ("parent", 0.07),
         ("neighbor", 0.04))
PHONE_SHARE = {"student": 0.88, "staff": 0.85, "faculty": 0.8, "parent": 0.75, "neighbor": 0.6}
STUDENT_GROUPS = (("athletics", 0.08), ("band", 0.05), ("honors", 0.10), ("greek", 0.10),
                  ("international", 0.05), ("residence-life", 0.03))
STAFF_GROUPS = (("facilities", 0.2), ("police", 0.05), ("dining", 0.1), ("lab-safety", 0.05))
FACULTY_GROUPS = (("senate", 0.1), ("lab-safety", 0.3))
DEPARTMENTS = ("chemistry", "biology", "history", "mathematics", "nursing", "music")
STAFF_DEPARTMENTS = ("facilities", "it", "athletics", "dining", "public-safety", "registrar")
ORDERS = ("push;sms;email", "email;push", "sms;email", "push;email;sms")


@cache
def fictional_area_codes() -> tuple[int, ...]:
    """NANP area codes (US first, then Canada) where NXX-555-01XX numbers are valid."""
    found: dict[str, list[int]] = {"US": [], "CA": []}
    for npa in range(200, 1000):
        number = phonenumbers.parse(f"+1{npa}5550150")
        region = phonenumbers.region_code_for_number(number)
        if region in found and phonenumbers.is_valid_number(number):
            found[region].append(npa)
    return (*found["US"], *found["CA"])


def fictional_phone(k: int) -> str:
    """The k-th fictional number as E.164; distinct for k below 100 per area code."""
    codes = fictional_area_codes()
    npa = codes[k % len(codes)]
    line = 100 + (k // len(codes)) % 100
    return f"+1{npa}555{line:04d}"


def _styled(e164: str, rng: random.Random) -> str:
    npa, line = e164[2:5], e164[8:]
    style = rng.randrange(5)
    if style == 0:
        return f"({npa}) 555-{line}"
    if style == 1:
        return f"{npa}-555-{line}"
    if style == 2:
        return f"+1 {npa} 555 {line}"
    if style == 3:
        return f"{npa}.555.{line}"
    return e164


def _name(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(_ONSET) + rng.choice(_VOWEL) for _ in range(syllables)]
    return ("".join(parts) + rng.choice(_CODA)).capitalize()


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    roll = rng.random()
    for value, weight in weighted:
        if roll < weight:
            return value
        roll -= weight
    return weighted[-1][0]


def generate_people(count: int, seed: int = 2026) -> Iterator[dict[str, str]]:
    """`count` synthetic people as CSV-ready rows (PEOPLE_HEADER), the same for the same seed."""
    rng = random.Random(seed)
    phones = 0
    for n in range(1, count + 1):
        role = _pick(rng, ROLES)
        first, last = _name(rng, rng.randint(1, 2)), _name(rng, rng.randint(2, 3))
        person_id = f"P{n:06d}"
        row = dict.fromkeys(PEOPLE_HEADER, "")
        row.update(id=person_id, first_name=first, last_name=last, role=role)
        local = f"{first}.{last}{n}".lower()
        opt_in = role in ("parent", "neighbor")
        if rng.random() < 0.98:
            row["email"] = f"{local}@{'example.org' if opt_in else 'example.edu'}"
        if rng.random() < PHONE_SHARE[role]:
            row["phone"] = _styled(fictional_phone(phones), rng)
            phones += 1
        if not opt_in and rng.random() < 0.8:
            row["push"] = PUSH_SINK + person_id
        roll = rng.random()
        spanish = 0.2 if role == "parent" else 0.12
        row["language"] = (
            "es" if roll < spanish else "zh" if roll < spanish + 0.02
            else "vi" if roll < spanish + 0.03 else "en"
        )
        groups: list[str] = []
        if role == "student":
            row["building"] = (
                rng.choice(RESIDENCES) if rng.random() < 0.65
                else rng.choice(ACADEMIC) if rng.random() < 0.7 else ""
            )
            row["class_year"] = str(rng.randint(2027, 2030))
            groups = [g for g, share in STUDENT_GROUPS if rng.random() < share]
        elif role == "staff":
            row["building"] = rng.choice(WORKPLACES)
            row["department"] = rng.choice(STAFF_DEPARTMENTS)
            groups = [g for g, share in STAFF_GROUPS if rng.random() < share]
        elif role == "faculty":
            row["building"] = rng.choice(OFFICES)
            row["department"] = rng.choice(DEPARTMENTS)
            groups = [g for g, share in FACULTY_GROUPS if rng.random() < share]
        if row["building"]:
            row["campus"] = "downtown" if row["building"] == "downtown-center" else "main"
        row["groups"] = ";".join(groups)
        if rng.random() < 0.15:
            row["channels"] = rng.choice(ORDERS)
        roll = rng.random()
        row["opt_out"] = "sms" if roll < 0.05 else "push" if roll < 0.07 else (
            "all" if roll < 0.08 else ""
        )
        roll = rng.random()
        row["quiet_hours"] = (
            "22:00-07:00" if roll < 0.10 else "23:30-06:00" if roll < 0.13 else ""
        )
        yield row


def generate_devices(count: int) -> list[dict[str, str]]:
    """`count` devices: the twelve named ones first, then more of each class in turn."""
    places = {b.id: b for b in BUILDINGS}
    rows = []
    for i in range(count):
        if i < len(FIXED_DEVICES):
            device_id, cls, zone, building, lat, lon, name = FIXED_DEVICES[i]
        else:
            cls = ("siren", "signage", "pa")[i % 3]
            spec = BUILDINGS[i % (len(BUILDINGS) - 1)]
            device_id, building, name = f"{cls}-{i + 1:04d}", spec.id, f"{spec.name} {cls}"
            zone = min(spec.zones - {"campus"}, key=len, default="")
            lat, lon = None, None
        if lat is None and building:
            lat, lon = places[building].lat, places[building].lon
        rows.append({
            "id": device_id, "class": cls, "zone": zone, "building": building,
            "lat": f"{lat:.6f}", "lon": f"{lon:.6f}", "name": name,
        })
    return rows


def zones_geojson() -> dict[str, Any]:
    """The campus zones as a GeoJSON FeatureCollection ([lon, lat] positions)."""
    features = []
    for zone in ZONES:
        ring = [[lon, lat] for lat, lon in zone.outline]
        ring.append(ring[0])
        features.append({
            "type": "Feature",
            "properties": {"id": zone.id, "name": zone.name},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        })
    return {"type": "FeatureCollection", "features": features}


def write_csv(path: Path, header: Sequence[str], rows: Iterable[dict[str, str]]) -> int:
    """Write rows under a header; returns how many."""
    written = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(header), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            written += 1
    return written


def write_campus(
    out: Path, people: int, devices: int, *, seed: int = 2026, zones_out: Path | None = None
) -> dict[str, Path]:
    """Write people.csv, devices.csv, buildings.csv and the zones file; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "people": out / "people.csv",
        "devices": out / "devices.csv",
        "buildings": out / "buildings.csv",
        "zones": zones_out or out / "zones.geojson",
    }
    write_csv(paths["people"], PEOPLE_HEADER, generate_people(people, seed))
    write_csv(paths["devices"], DEVICE_HEADER, generate_devices(devices))
    write_csv(paths["buildings"], ("id", "name", "campus", "lat", "lon"), [
        {"id": b.id, "name": b.name, "campus": b.campus, "lat": f"{b.lat:.6f}",
         "lon": f"{b.lon:.6f}"}
        for b in BUILDINGS
    ])
    paths["zones"].parent.mkdir(parents=True, exist_ok=True)
    paths["zones"].write_text(json.dumps(zones_geojson(), indent=1) + "\n", encoding="utf-8")
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a synthetic campus to a folder."""
    parser = argparse.ArgumentParser(
        prog="python -m segments.synthetic", description="Write a synthetic campus directory."
    )
    parser.add_argument("--people", type=int, default=3000, help="number of people")
    parser.add_argument("--devices", type=int, default=12, help="number of devices")
    parser.add_argument(
        "--seed", type=int, default=2026, help="random seed (same seed, same campus)"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSV files")
    parser.add_argument(
        "--zones-out", type=Path, help="zones GeoJSON path (default OUT/zones.geojson)"
    )
    args = parser.parse_args(argv)
    if args.people < 0 or args.devices < 0:
        parser.error("--people and --devices must not be negative")
    paths = write_campus(args.out, args.people, args.devices, seed=args.seed,
                         zones_out=args.zones_out)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
