"""CAP areas of this campus: each alert zone's polygon from the zones file, exclusions cut out."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from dispatcher.cap.format import CapArea
from dispatcher.settings import Settings
from segments.zones import load_zones


def areas_for_zones(
    zones: Collection[str], settings: Settings, exclude: Collection[str] = ()
) -> list[CapArea]:
    """CAP areas for an alert's zones, with polygons from the zones file when it can be read.

    An alert without zones covers the campus: the file's `campus` zone outline when it has
    one, else the institution's name alone. Excluded zones are cut out of the polygons (never
    silently dropped) and named in each area's description.
    """
    try:
        known = load_zones(settings.resolve(settings.directory.zones))
    except ValueError:
        known = {}
    cut = [known[z].polygon for z in exclude if z in known]
    suffix = f" (except {', '.join(known[z].name if z in known else z for z in exclude)})" \
        if exclude else ""
    wanted: list[tuple[str, tuple[tuple[float, float], ...], str]] = []
    if not zones:
        campus = known.get("campus")
        name = settings.service.institution or "Campus"
        wanted.append((name, campus.polygon if campus is not None else (), ""))
    for zone_id in zones:
        zone = known.get(zone_id)
        wanted.append((zone.name, zone.polygon, zone_id) if zone else (zone_id, (), zone_id))
    areas = []
    for name, polygon, zone_id in wanted:
        pieces = _subtract(polygon, cut) if polygon and cut else ([polygon] if polygon else [])
        areas.append(CapArea(name + suffix, pieces[0] if pieces else (), zone_id,
                             tuple(pieces[1:])))
    return areas


Ring = tuple[tuple[float, float], ...]


def _subtract(polygon: Ring, holes: Sequence[Ring]) -> list[Ring]:
    """polygon minus holes, as hole-free rings of (lat, lon) (CAP cannot draw holes)."""
    # GEOS loads with shapely: only alerts that exclude zones pay for it.
    from shapely import Polygon, unary_union
    from shapely.geometry import LineString
    from shapely.ops import split

    def shape(ring: Ring) -> Polygon:
        return Polygon([(lon, lat) for lat, lon in ring])

    rest = shape(polygon).difference(unary_union([shape(h) for h in holes]))
    todo = [g for g in getattr(rest, "geoms", [rest]) if isinstance(g, Polygon) and not g.is_empty]
    done: list[Ring] = []
    while todo:
        piece = todo.pop()
        if not piece.interiors:
            done.append(tuple((lat, lon) for lon, lat in piece.exterior.coords))
            continue
        # Cut through the first hole: both halves have one hole fewer.
        x = piece.interiors[0].centroid.x
        _, low, _, high = piece.bounds
        for part in split(piece, LineString([(x, low - 1), (x, high + 1)])).geoms:
            if isinstance(part, Polygon) and not part.is_empty:
                todo.append(part)
    return done
