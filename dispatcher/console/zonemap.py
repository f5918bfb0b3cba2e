"""The campus zones as an SVG map, drawn on the server from the zones file (no tiles)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from segments.zones import Zone

WIDTH = 480
MARGIN = 8


@dataclass(frozen=True, slots=True)
class ZoneShape:
    """One zone as the map draws it: its SVG points, label position and whether chosen."""

    id: str
    name: str
    points: str
    label_x: float
    label_y: float
    chosen: bool
    area: float


@dataclass(frozen=True, slots=True)
class ZoneMap:
    """The map's size and its zones, largest first so the small ones stay clickable on top."""

    width: int
    height: int
    shapes: tuple[ZoneShape, ...]


def draw(zones: Mapping[str, Zone], chosen: Collection[str]) -> ZoneMap:
    """Project the zones (equirectangular, good enough for one campus) into the map."""
    if not zones:
        return ZoneMap(WIDTH, 0, ())
    lats = [lat for z in zones.values() for lat, _ in z.polygon]
    lons = [lon for z in zones.values() for _, lon in z.polygon]
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    span_lon = max(east - west, 1e-9)
    span_lat = max(north - south, 1e-9)
    scale = (WIDTH - 2 * MARGIN) / span_lon
    height = round(span_lat * scale + 2 * MARGIN)

    def xy(lat: float, lon: float) -> tuple[float, float]:
        return MARGIN + (lon - west) * scale, MARGIN + (north - lat) * scale

    shapes = []
    for zone in zones.values():
        points = [xy(lat, lon) for lat, lon in zone.polygon]
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        shapes.append(ZoneShape(
            id=zone.id,
            name=zone.name,
            points=" ".join(f"{x:.1f},{y:.1f}" for x, y in points),
            # Top-left inside the zone: nested zones then never hide their parent's label.
            label_x=round(min(xs) + 5, 1),
            label_y=round(min(ys) + 15, 1),
            chosen=zone.id in chosen,
            area=(max(xs) - min(xs)) * (max(ys) - min(ys)),
        ))
    shapes.sort(key=lambda s: -s.area)
    return ZoneMap(WIDTH, height, tuple(shapes))
