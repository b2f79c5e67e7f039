"""Grid neighbourhoods (NHs): the pre-screened areas that make a user eligible for Spark.

A location is inside an NH when one of its meter point ids is on the NH's list, or when its
coordinates fall inside (or on the edge of) the NH's polygon. NHs are plain data
(`Neighbourhood`, JSON via `parse_neighbourhoods` / `Neighbourhood.to_json`);
`NeighbourhoodMap` turns them into prepared shapely geometries and answers "which NHs contain
this location" quickly, one location at a time or a whole array of points at once.

The JSON form, used by `--neighbourhoods FILE.json` and `POST /_sandbox/neighbourhoods`:

    {"neighbourhoods": [{"id": "area-1", "name": "Area 1 (Svalbard)",
                         "meterPointIds": ["707057500000100001"],
                         "polygon": [[[lon, lat], [lon, lat], ...], [hole ring], ...],
                         "priceArea": "NO4"}]}

`polygon` lists rings of [longitude, latitude] pairs (GeoJSON order): the outer ring first,
then any holes. A ring need not repeat its first point at the end. `priceArea` (optional,
default NO4) is the price area of the daily price curves the NH's users get.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from sandbox.price_areas import DEFAULT_PRICE_AREA, PRICE_AREA_CURRENCIES

JSONObject = dict[str, Any]
Ring = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Neighbourhood:
    neighbourhood_id: str
    name: str
    meter_point_ids: tuple[str, ...]
    # Rings of (longitude, latitude): the outer ring, then holes.
    polygon: tuple[Ring, ...]
    # The area whose prices the NH's daily price curves follow (and so their currency).
    price_area: str = DEFAULT_PRICE_AREA

    def to_json(self) -> JSONObject:
        return {
            "id": self.neighbourhood_id,
            "name": self.name,
            "meterPointIds": list(self.meter_point_ids),
            "polygon": [[[lon, lat] for lon, lat in ring] for ring in self.polygon],
            "priceArea": self.price_area,
        }


def _octagon(longitude: float, latitude: float, half_width: float, half_height: float) -> Ring:
    """An octagon around a centre, in degrees: a polygon that is not its own bounding box."""
    corners = []
    for step in range(8):
        angle = math.radians(22.5 + 45 * step)
        corners.append(
            (
                round(longitude + half_width * math.cos(angle), 6),
                round(latitude + half_height * math.sin(angle), 6),
            )
        )
    return tuple(corners)


# Spark's sandbox test areas. At 79°N a degree of longitude is about 20 km, so each area is a
# few tens of kilometres across. Area 2 contains the coordinates in the spec's PATCH example.
DEFAULT_NEIGHBOURHOODS = (
    Neighbourhood(
        neighbourhood_id="area-1",
        name="Area 1 (Svalbard)",
        meter_point_ids=("707057500000100001", "707057500000100002", "707057500000100003"),
        polygon=(_octagon(15.97611317258921, 79.51913682860402, 0.5, 0.1),),
    ),
    Neighbourhood(
        neighbourhood_id="area-2",
        name="Area 2 (Longyearbyen)",
        meter_point_ids=("707057500000200001", "707057500000200002", "707057500000200003"),
        polygon=(_octagon(15.6267, 78.2232, 0.25, 0.06),),
    ),
)


# Parsing


def parse_neighbourhoods(data: Any) -> tuple[Neighbourhood, ...]:
    """`{"neighbourhoods": [...]}` to Neighbourhoods; ValueError says what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("neighbourhoods"), list):
        raise ValueError('expected an object with a "neighbourhoods" array')
    parsed = tuple(_parse_one(item, index) for index, item in enumerate(data["neighbourhoods"]))
    ids = [nh.neighbourhood_id for nh in parsed]
    if len(set(ids)) != len(ids):
        raise ValueError("neighbourhood ids must be unique")
    return parsed


def load_neighbourhoods(path: Path) -> tuple[Neighbourhood, ...]:
    """Read a neighbourhoods JSON file; OSError or ValueError when it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    return parse_neighbourhoods(data)


def _parse_one(item: Any, index: int) -> Neighbourhood:
    where = f"neighbourhoods[{index}]"
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be an object")
    nh_id, name = item.get("id"), item.get("name", item.get("id"))
    if not isinstance(nh_id, str) or not nh_id.strip():
        raise ValueError(f"{where}.id must be a non-empty string")
    if not isinstance(name, str):
        raise ValueError(f"{where}.name must be a string")
    mpids = item.get("meterPointIds", [])
    if not isinstance(mpids, list) or not all(isinstance(m, str) and m for m in mpids):
        raise ValueError(f"{where}.meterPointIds must be an array of non-empty strings")
    rings = item.get("polygon")
    if not isinstance(rings, list) or not rings:
        raise ValueError(f"{where}.polygon must be a non-empty array of rings")
    polygon = tuple(_parse_ring(ring, f"{where}.polygon[{n}]") for n, ring in enumerate(rings))
    price_area = item.get("priceArea", DEFAULT_PRICE_AREA)
    if price_area not in PRICE_AREA_CURRENCIES:
        raise ValueError(
            f"{where}.priceArea must be one of {', '.join(sorted(PRICE_AREA_CURRENCIES))}"
        )
    geometry = shapely.Polygon(polygon[0], polygon[1:])
    if not shapely.is_valid(geometry) or geometry.area == 0:
        raise ValueError(
            f"{where}.polygon is not a valid polygon: {shapely.is_valid_reason(geometry)}"
        )
    return Neighbourhood(
        neighbourhood_id=nh_id,
        name=name,
        meter_point_ids=tuple(dict.fromkeys(mpids)),
        polygon=polygon,
        price_area=price_area,
    )


def _parse_ring(ring: Any, where: str) -> Ring:
    if not isinstance(ring, list) or len(ring) < 3:
        raise ValueError(f"{where} must be an array of at least 3 [longitude, latitude] pairs")
    points = []
    for point in ring:
        if (
            not isinstance(point, list)
            or len(point) != 2
            or not all(_is_number(v) for v in point)
            or not (-180 <= point[0] <= 180 and -90 <= point[1] <= 90)
        ):
            raise ValueError(f"{where} holds {point!r}, not a [longitude, latitude] pair")
        points.append((float(point[0]), float(point[1])))
    return tuple(points)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# Lookups


@dataclass(frozen=True)
class _Area:
    neighbourhood_id: str
    geometry: shapely.Polygon
    bounds: tuple[float, float, float, float]


class NeighbourhoodMap:
    """Immutable: a change of neighbourhoods builds a new map. Safe to share between threads."""

    def __init__(self, neighbourhoods: Sequence[Neighbourhood]) -> None:
        self.neighbourhoods = tuple(neighbourhoods)
        # GEOS builds a prepared geometry's indexes lazily on first use, so concurrent
        # queries on one geometry are not safe; every shapely call below holds this lock.
        self._geos = threading.Lock()
        self._areas: list[_Area] = []
        self._by_meter: dict[str, tuple[str, ...]] = {}
        for nh in self.neighbourhoods:
            geometry = shapely.Polygon(nh.polygon[0], nh.polygon[1:])
            # Prepared geometries make repeated point-in-polygon tests much faster.
            shapely.prepare(geometry)
            minx, miny, maxx, maxy = geometry.bounds
            self._areas.append(_Area(nh.neighbourhood_id, geometry, (minx, miny, maxx, maxy)))
            for mpid in nh.meter_point_ids:
                self._by_meter[mpid] = (*self._by_meter.get(mpid, ()), nh.neighbourhood_id)

    def get(self, neighbourhood_id: str) -> Neighbourhood | None:
        for nh in self.neighbourhoods:
            if nh.neighbourhood_id == neighbourhood_id:
                return nh
        return None

    def meter_is_eligible(self, meter_point_id: str) -> bool:
        return meter_point_id in self._by_meter

    def locate(
        self, meter_point_ids: Sequence[str], coordinates: tuple[float, float] | None
    ) -> tuple[str, ...]:
        """The ids of the NHs containing a location, in configuration order.

        `coordinates` is (longitude, latitude).
        """
        found: set[str] = set()
        for mpid in meter_point_ids:
            found.update(self._by_meter.get(mpid, ()))
        if coordinates is not None:
            lon, lat = coordinates
            for area in self._areas:
                minx, miny, maxx, maxy = area.bounds
                if not (minx <= lon <= maxx and miny <= lat <= maxy):
                    continue
                with self._geos:
                    inside = bool(shapely.intersects_xy(area.geometry, lon, lat))
                if inside:
                    found.add(area.neighbourhood_id)
        if not found:
            return ()
        return tuple(a.neighbourhood_id for a in self._areas if a.neighbourhood_id in found)

    def locate_points(
        self, longitudes: NDArray[np.float64], latitudes: NDArray[np.float64]
    ) -> list[tuple[str, ...]]:
        """`locate` by coordinates alone for whole arrays of points (one shapely call per NH)."""
        codes = np.zeros(len(longitudes), dtype=np.int64)
        for bit, area in enumerate(self._areas):
            with self._geos:
                inside = shapely.intersects_xy(area.geometry, longitudes, latitudes)
            codes |= inside.astype(np.int64) << bit
        # Few distinct combinations exist, so each location shares one interned tuple.
        combinations: dict[int, tuple[str, ...]] = {}
        for code in np.unique(codes).tolist():
            combinations[code] = tuple(
                a.neighbourhood_id for bit, a in enumerate(self._areas) if code >> bit & 1
            )
        return [combinations[code] for code in codes.tolist()]

    def random_points_inside(
        self, neighbourhood_id: str, count: int, rng: np.random.Generator
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """`count` uniformly random (longitudes, latitudes) strictly inside one NH's polygon."""
        area = next(a for a in self._areas if a.neighbourhood_id == neighbourhood_id)
        minx, miny, maxx, maxy = area.bounds
        lons: list[NDArray[np.float64]] = []
        lats: list[NDArray[np.float64]] = []
        missing = count
        while missing > 0:
            # Sample the bounding box and keep what falls inside; a little extra for the misses.
            batch = max(missing * 2, 64)
            xs = rng.uniform(minx, maxx, batch)
            ys = rng.uniform(miny, maxy, batch)
            with self._geos:
                keep = shapely.contains_xy(area.geometry, xs, ys)
            lons.append(xs[keep][:missing])
            lats.append(ys[keep][:missing])
            missing -= len(lons[-1])
        return np.concatenate(lons), np.concatenate(lats)
