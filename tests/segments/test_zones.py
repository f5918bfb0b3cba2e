"""Zones: GeoJSON polygons, point-in-zone, and include/exclude on people and devices alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dispatcher.domain import AlertKind, ChannelKind
from segments.audience import AudienceError
from segments.synthetic import BUILDING_ZONES, BUILDINGS, FIXED_DEVICES
from segments.zones import (
    CampusDataError,
    Zone,
    load_buildings,
    load_zones,
    zones_for_point,
    zones_overlapping,
)
from tests.segments.helpers import Campus, person

# One student in each building of the synthetic campus, id "S-<building>".
STUDENTS = [person(f"S{i}", building=b.id) for i, b in enumerate(BUILDINGS)]
BY_BUILDING = {f"S{i}": b.id for i, b in enumerate(BUILDINGS)}
DEVICES = {d[0]: d for d in FIXED_DEVICES}


def people_in(*zones: str, minus: tuple[str, ...] = ()) -> set[str]:
    """Independently of shapely: the students whose building was placed in the zones."""
    return {
        pid for pid, b in BY_BUILDING.items()
        if BUILDING_ZONES[b] & set(zones) and not BUILDING_ZONES[b] & set(minus)
    }


def square(zone_id: str, south: float, west: float, north: float, east: float) -> dict[str, object]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Feature", "properties": {"id": zone_id, "name": zone_id.upper()},
            "geometry": {"type": "Polygon", "coordinates": [ring]}}


def write_zones(path: Path, *features: dict[str, object]) -> Path:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": list(features)}))
    return path


class TestZoneFile:
    """load_zones reads Polygon features into (lat, lon) rings and refuses anything else."""

    def test_polygon_is_lat_lon_and_closed(self, tmp_path: Path) -> None:
        zones = load_zones(write_zones(tmp_path / "z.geojson", square("Q", 1, 2, 3, 4)))
        zone = zones["q"]
        assert (zone.id, zone.name) == ("q", "Q")
        assert zone.polygon == ((1, 2), (1, 4), (3, 4), (3, 2), (1, 2))
        assert zone.cap_polygon().split()[:2] == ["1.000000,2.000000", "1.000000,4.000000"]
        assert zone.contains(2, 3) and not zone.contains(3.5, 3)

    def test_holes_are_outside(self, tmp_path: Path) -> None:
        feature = square("ring", 0, 0, 10, 10)
        feature["geometry"]["coordinates"].append(  # type: ignore[index]
            [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]
        )
        zones = load_zones(write_zones(tmp_path / "z.geojson", feature))
        assert zones_for_point(zones, 1, 1) == ("ring",)
        assert zones_for_point(zones, 5, 5) == ()

    def test_smallest_zone_first(self, tmp_path: Path) -> None:
        zones = load_zones(write_zones(
            tmp_path / "z.geojson", square("big", 0, 0, 10, 10), square("small", 1, 1, 2, 2)
        ))
        assert zones_for_point(zones, 1.5, 1.5) == ("small", "big")
        assert zones_for_point(zones, 5, 5) == ("big",)
        assert zones_for_point(zones, 50, 50) == ()

    @pytest.mark.parametrize(
        ("feature", "message"),
        [
            ({"type": "Feature", "properties": {"id": "p"},
              "geometry": {"type": "Point", "coordinates": [0, 0]}}, "must be a Polygon"),
            ({"type": "Feature", "properties": {"id": "Bad Id"},
              "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 1]]]}},
             "properties.id"),
            ({"type": "Feature", "properties": {"id": "bow"},
              "geometry": {"type": "Polygon",
                           "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}},
             "crosses itself"),
            ({"type": "Feature", "properties": {"id": "far"},
              "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 95], [1, 0]]]}},
             "not a [lon, lat]"),
        ],
    )
    def test_bad_features(self, tmp_path: Path, feature: dict[str, object], message: str) -> None:
        with pytest.raises(CampusDataError, match=message.replace("[", r"\[")):
            load_zones(write_zones(tmp_path / "z.geojson", feature))

    def test_duplicate_ids(self, tmp_path: Path) -> None:
        path = write_zones(tmp_path / "z.geojson", square("a", 0, 0, 1, 1), square("A", 2, 2, 3, 3))
        with pytest.raises(CampusDataError, match="used twice"):
            load_zones(path)

    def test_the_synthetic_campus_places_buildings_where_it_says(self, campus: Campus) -> None:
        zones = load_zones(campus.base / "zones.geojson")
        assert len(zones) >= 4
        for building in load_buildings(campus.base / "buildings.csv").values():
            found = set(zones_for_point(zones, building.lat, building.lon))
            assert found == BUILDING_ZONES[building.id], building.id

    def test_the_example_config_has_its_zones(self) -> None:
        config = Path(__file__).resolve().parents[2] / "config"
        zones = load_zones(config / "zones.geojson")
        assert {"a", "b", "c", "d"} <= set(zones)


@pytest.fixture
async def zoned(campus: Campus) -> Campus:
    report = await campus.people([*STUDENTS, person("PARENT", role="parent", building="")])
    assert report.rejected == ()
    await campus.devices()
    return campus


class TestIncludeExclude:
    """Alert zones include, exclude_zones exclude, on people and devices, never dropped."""

    async def test_zone_selects_its_people_and_devices(self, zoned: Campus) -> None:
        reached = await zoned.recipients("all", ["b"])
        devices = {"siren-central", "sign-union", "sign-library", "pa-science"}
        assert reached == people_in("b") | devices

    async def test_zone_term_selects_the_same(self, zoned: Campus) -> None:
        assert await zoned.recipients("zone:b") == await zoned.recipients("all", ["b"])

    async def test_include_zone_exclude_subzone(self, zoned: Campus) -> None:
        reached = await zoned.recipients("all", ["b"], exclude_zones=["b-labs"])
        assert reached == people_in("b", minus=("b-labs",)) | {
            "siren-central", "sign-union", "sign-library"
        }
        assert "pa-science" not in reached
        assert not reached & people_in("b-labs")

    async def test_exclude_everything(self, zoned: Campus) -> None:
        assert await zoned.plan("all", exclude_zones=["campus"]) != []  # downtown and parents
        reached = await zoned.recipients("all", ["b"], exclude_zones=["campus"])
        assert reached == set()
        counts = await zoned.resolver.count(
            "all", ["b"], AlertKind.EMERGENCY, list(ChannelKind), exclude_zones=["campus"]
        )
        assert counts["total"] == 0

    async def test_exclude_without_include_keeps_everyone_else(self, zoned: Campus) -> None:
        reached = await zoned.recipients("all", exclude_zones=["d"])
        everyone = set(BY_BUILDING) | {"PARENT"} | set(DEVICES)
        devices_in_d = {"siren-east", "sign-medical", "pa-medical"}
        assert reached == everyone - people_in("d") - devices_in_d

    async def test_not_on_a_segment_term(self, zoned: Campus) -> None:
        reached = await zoned.recipients("zone:campus and not zone:b and not zone:d-med")
        expected_people = people_in("campus", minus=("b", "d-med"))
        expected_devices = {
            d for d, spec in DEVICES.items() if spec[2] not in ("b",)
        } - {"sign-medical", "pa-medical"}
        assert reached == expected_people | expected_devices

    async def test_exclude_applies_to_named_segments_and_or(self, zoned: Campus) -> None:
        named = zoned.with_settings(segments={"central": "zone:b or zone:a"})
        reached = await named.recipients("central or role:parent", exclude_zones=["a", "b-labs"])
        assert reached == people_in("b", minus=("a", "b-labs")) | {"PARENT"} | {
            "siren-central", "sign-union", "sign-library"
        }

    async def test_several_zones_are_a_union(self, zoned: Campus) -> None:
        reached = await zoned.recipients("role:student", ["a", "c"])
        assert reached == people_in("a", "c")

    async def test_unknown_zones_are_errors_never_ignored(self, zoned: Campus) -> None:
        with pytest.raises(AudienceError, match="exclude_zones: unknown zone 'bb'"):
            await zoned.resolver.check("all", ["b"], ["bb"])
        with pytest.raises(AudienceError, match="zones: unknown zone 'q'"):
            await zoned.resolver.check("all", ["q"])
        with pytest.raises(AudienceError, match="unknown zone 'q' at position 9") as caught:
            await zoned.resolver.check("all and zone:q", [])
        assert caught.value.position == 9


class TestDevicesByZone:
    """Devices are placed by their coordinates (and their own zone) and selected like people."""

    @pytest.mark.parametrize(
        ("zone", "expected"),
        [
            ("a", {"siren-north", "sign-dining", "pa-north-hall"}),
            ("b-labs", {"pa-science"}),
            ("d-med", {"sign-medical", "pa-medical"}),
            ("c", {"siren-south", "sign-athletics"}),
        ],
    )
    async def test_devices_in_zone(self, zoned: Campus, zone: str, expected: set[str]) -> None:
        planned = await zoned.plan(f"zone:{zone} and not role:student and not role:parent")
        assert {p.recipient for p in planned} == expected
        assert all(p.role == "device" for p in planned)
        assert all(p.address == DEVICES[p.recipient][2] for p in planned)

    async def test_class_and_channel_select_devices(self, zoned: Campus) -> None:
        planned = await zoned.plan("class:siren or class:pa", channels=[ChannelKind.SIREN])
        assert {p.recipient for p in planned} == {
            "siren-north", "siren-central", "siren-south", "siren-east"
        }
        assert {p.channel for p in planned} == {ChannelKind.SIREN}

    async def test_person_terms_select_no_device(self, zoned: Campus) -> None:
        planned = await zoned.plan("role:student", channels=list(ChannelKind))
        assert not [p for p in planned if p.channel.is_device]


class TestPolygonAreas:
    """A CAP polygon selects the zones holding what is inside it, the most specific ones."""

    @pytest.fixture
    def zones(self) -> dict[str, Zone]:
        """The example campus zones."""
        return load_zones(Path(__file__).resolve().parents[2] / "config" / "zones.geojson")

    @pytest.mark.parametrize(
        ("polygon", "expected"),
        [
            # Inside the labs, inside zone b, inside the campus: the labs only.
            ([(39.9992, -75.0045), (39.9992, -75.0035), (39.9996, -75.0035),
              (39.9996, -75.0045)], ("b-labs",)),
            # Inside zone a only.
            ([(40.0045, -75.0045), (40.0045, -75.0035), (40.0055, -75.0035)], ("a",)),
            # Across the middle: the zones it crosses, and the campus zone for the strip
            # between them that no smaller zone covers.
            ([(39.997, -75.02), (39.997, -74.98), (40.0, -74.98), (40.0, -75.02)],
             ("b", "b-labs", "c", "campus", "d", "d-med")),
            # Around the whole campus: nothing to narrow.
            ([(39.98, -75.02), (39.98, -74.98), (40.02, -74.98), (40.02, -75.02)], None),
            # Touching zone a's southern edge from outside the campus: nothing.
            ([(40.02, -75.005), (40.02, -74.997), (40.03, -74.997)], ()),
            # A county far away, and rings that are no polygon.
            ([(35.1, -97.5), (35.2, -97.5), (35.2, -97.3)], ()),
            ([(40.0, -75.0), (40.0, -75.0), (40.0, -75.0)], ()),
        ],
    )
    def test_zones_selected(
        self, zones: dict[str, Zone], polygon: list[tuple[float, float]],
        expected: tuple[str, ...] | None,
    ) -> None:
        """Each polygon selects the expected zones."""
        assert zones_overlapping(zones, polygon) == expected
