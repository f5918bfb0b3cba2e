"""Campus geography: zone polygons (GeoJSON), buildings with coordinates, point-in-zone tests."""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from shapely import Point, Polygon, unary_union
from shapely.prepared import PreparedGeometry, prep

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

LatLon = tuple[float, float]


class CampusDataError(ValueError):
    """A zones or buildings file cannot be used; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class Zone:
    """A named campus area: its outer ring (and holes) as (lat, lon) pairs, first = last."""

    id: str
    name: str
    polygon: tuple[LatLon, ...]
    holes: tuple[tuple[LatLon, ...], ...] = ()

    def cap_polygon(self) -> str:
        """The outer ring as CAP 1.2 writes it: space-separated "lat,lon" pairs."""
        return " ".join(f"{lat:.6f},{lon:.6f}" for lat, lon in self.polygon)

    def contains(self, lat: float, lon: float) -> bool:
        """True when the point is inside the zone or on its border."""
        return bool(_shape(self).covers(Point(lon, lat)))

    @property
    def area(self) -> float:
        """Area in squared degrees: enough to order nested zones from small to large."""
        return float(_shape(self).context.area)


@lru_cache(maxsize=4096)
def _shape(zone: Zone) -> PreparedGeometry:
    shell = [(lon, lat) for lat, lon in zone.polygon]
    holes = [[(lon, lat) for lat, lon in ring] for ring in zone.holes]
    return prep(Polygon(shell, holes))


def zones_for_point(zones: Mapping[str, Zone], lat: float, lon: float) -> tuple[str, ...]:
    """Ids of the zones covering a point, the smallest zone first."""
    point = Point(lon, lat)
    found = [z for z in zones.values() if _shape(z).covers(point)]
    found.sort(key=lambda z: (z.area, z.id))
    return tuple(z.id for z in found)


def _ring(raw: Any, where: str) -> tuple[LatLon, ...]:
    if not isinstance(raw, list) or len(raw) < 3:
        raise CampusDataError(f"{where}: a ring needs at least 3 [lon, lat] positions")
    ring: list[LatLon] = []
    for position in raw:
        if (
            not isinstance(position, list)
            or len(position) < 2
            or not all(isinstance(v, (int, float)) for v in position[:2])
        ):
            raise CampusDataError(f"{where}: positions are [lon, lat] numbers, got {position!r}")
        lon, lat = float(position[0]), float(position[1])
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise CampusDataError(f"{where}: [{lon}, {lat}] is not a [lon, lat] on Earth")
        ring.append((lat, lon))
    if ring[0] != ring[-1]:
        ring.append(ring[0])
    if len(ring) < 4:
        raise CampusDataError(f"{where}: a ring needs at least 3 distinct positions")
    return tuple(ring)


def parse_zones(document: Any, source: str = "zones") -> dict[str, Zone]:
    """Zones from a decoded GeoJSON FeatureCollection of Polygon features with id and name."""
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise CampusDataError(f"{source}: expected a GeoJSON FeatureCollection")
    features = document.get("features")
    if not isinstance(features, list):
        raise CampusDataError(f"{source}: 'features' must be a list")
    zones: dict[str, Zone] = {}
    for index, feature in enumerate(features):
        where = f"{source}: feature {index}"
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raise CampusDataError(f"{where}: not a GeoJSON Feature")
        props = feature.get("properties") or {}
        zone_id = str(props.get("id", "")).strip().lower()
        if not _ID.match(zone_id):
            raise CampusDataError(
                f"{where}: properties.id must be lowercase letters, digits, '-', '_' or '.'"
            )
        where = f"{source}: zone {zone_id!r}"
        if zone_id in zones:
            raise CampusDataError(f"{where}: the id is used twice")
        geometry = feature.get("geometry") or {}
        if geometry.get("type") != "Polygon":
            raise CampusDataError(
                f"{where}: geometry must be a Polygon, got {geometry.get('type')!r}"
            )
        rings = geometry.get("coordinates")
        if not isinstance(rings, list) or not rings:
            raise CampusDataError(f"{where}: a Polygon needs at least one ring")
        zone = Zone(
            id=zone_id,
            name=str(props.get("name") or zone_id),
            polygon=_ring(rings[0], where),
            holes=tuple(_ring(r, where) for r in rings[1:]),
        )
        if not _shape(zone).context.is_valid:
            raise CampusDataError(f"{where}: the polygon crosses itself")
        zones[zone_id] = zone
    return zones


def load_zones(path: Path) -> dict[str, Zone]:
    """Zones from a GeoJSON file; raises CampusDataError naming the bad feature."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CampusDataError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CampusDataError(f"{path}: not valid JSON: {exc}") from None
    return parse_zones(document, str(path))


@dataclass(frozen=True, slots=True)
class Building:
    """A campus building: where the people assigned to it are."""

    id: str
    name: str
    campus: str
    lat: float
    lon: float


def parse_coordinate(raw: str, low: float, high: float) -> float | None:
    """A latitude or longitude from text, or None when missing or out of range."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and low <= value <= high else None


def load_buildings(path: Path) -> dict[str, Building]:
    """Buildings from a CSV file with columns id, name, campus, lat, lon."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise CampusDataError(f"{path}: cannot read: {exc.strerror}") from None
    buildings: dict[str, Building] = {}
    for number, row in enumerate(rows, start=2):
        building_id = (row.get("id") or "").strip().lower()
        lat = parse_coordinate(row.get("lat") or "", -90, 90)
        lon = parse_coordinate(row.get("lon") or "", -180, 180)
        if not _ID.match(building_id) or lat is None or lon is None:
            raise CampusDataError(f"{path}: row {number}: needs an id and a valid lat and lon")
        if building_id in buildings:
            raise CampusDataError(f"{path}: row {number}: building {building_id!r} twice")
        buildings[building_id] = Building(
            building_id,
            (row.get("name") or building_id).strip(),
            (row.get("campus") or "").strip().lower(),
            lat,
            lon,
        )
    return buildings


def zones_overlapping(
    zones: Mapping[str, Zone], polygon: Iterable[LatLon]
) -> tuple[str, ...] | None:
    """The zones that select the people and devices inside a (lat, lon) polygon (a CAP area),
    sorted; None when the polygon covers every zone (it narrows nothing: the whole campus);
    () when it overlaps no zone or is not a polygon.

    Every zone the polygon overlaps, except one whose overlap the smaller overlapped zones
    already cover: a polygon inside a building zone selects that zone, not the whole campus
    zone around it, while one across the campus keeps what no smaller zone covers. Zones it
    only touches are not selected.
    """
    ring = [(lon, lat) for lat, lon in polygon]
    if len(set(ring)) < 3:
        return ()
    area = Polygon(ring).buffer(0)  # a self-crossing ring becomes its valid equivalent
    parts = {}
    for zone in zones.values():
        overlap = _shape(zone).context.intersection(area)
        if overlap.area > _COVERED:
            parts[zone.id] = (zone.area, overlap)
    if zones and len(parts) == len(zones) and all(
        abs(size - overlap.area) <= _COVERED for size, overlap in parts.values()
    ):
        return None
    chosen = []
    for zone_id, (size, overlap) in parts.items():
        smaller = [o for other, (s, o) in parts.items() if other != zone_id and s < size]
        if not smaller or overlap.difference(unary_union(smaller)).area > _COVERED:
            chosen.append(zone_id)
    return tuple(sorted(chosen))


# Squared degrees left over below which an overlap counts as covered (about 1 m^2).
_COVERED = 1e-10


@dataclass(frozen=True, slots=True)
class CampusMap:
    """Zones and buildings together, with each building's zones worked out once."""

    zones: dict[str, Zone] = field(default_factory=dict)
    buildings: dict[str, Building] = field(default_factory=dict)
    building_zones: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, zones: dict[str, Zone], buildings: dict[str, Building]) -> CampusMap:
        """Place every building in the zones that cover it."""
        placed = {b.id: zones_for_point(zones, b.lat, b.lon) for b in buildings.values()}
        return cls(zones, buildings, placed)

    @classmethod
    def load(cls, zones_path: Path, buildings_path: Path) -> CampusMap:
        """Read both files; a missing file means no zones or no buildings."""
        zones = load_zones(zones_path) if zones_path.is_file() else {}
        buildings = load_buildings(buildings_path) if buildings_path.is_file() else {}
        return cls.build(zones, buildings)

    def buildings_in(self, zone_ids: Iterable[str]) -> list[str]:
        """Ids of the buildings in any of the zones, sorted."""
        wanted = set(zone_ids)
        return sorted(b for b, zs in self.building_zones.items() if wanted.intersection(zs))

    def zones_at(self, lat: float | None, lon: float | None) -> tuple[str, ...]:
        """Zones covering a point (none when the point is unknown)."""
        if lat is None or lon is None:
            return ()
        return zones_for_point(self.zones, lat, lon)
