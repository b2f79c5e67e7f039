"""Partner data "created in Spark by other means": `POST /simulation/partner`'s random users,
and the bulk path that sets up very many eligible users for benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from random import Random

import numpy as np

from sandbox.directory import UserDirectory
from sandbox.neighbourhoods import NeighbourhoodMap
from sandbox.users import RESOURCE_TYPES, VEHICLE, Coordinates, Location, Resource

# Users per `POST /simulation/partner` (Spark does not say how many it makes).
SIMULATED_USERS = 10
# Where simulated locations outside every neighbourhood are put: southern Norway.
OUTSIDE_LATITUDES = (59.0, 63.0)
OUTSIDE_LONGITUDES = (6.0, 11.0)
BOUND_RESOURCE_TYPES = tuple(t for t in RESOURCE_TYPES if t != VEHICLE)
LOCATION_TYPES = ("Residential", "Residential", "Commercial", "Other")


def simulate_partner_data(
    directory: UserDirectory, *, rng: Random, now: datetime, new_id: Callable[[], str]
) -> list[str]:
    """Random users with locations, location-bound resources and vehicles; the first user
    lies in a neighbourhood (when there is one), the second outside all, the rest at random.
    Returns the new user ids."""
    nh_map = directory.neighbourhoods
    points = np.random.default_rng(rng.getrandbits(64))
    user_ids = [new_id() for _ in range(SIMULATED_USERS)]
    directory.add_users(user_ids, now, simulated=True)
    for index, user_id in enumerate(user_ids):
        inside = index == 0 or (index != 1 and rng.random() < 0.5)
        locations = [
            _random_location(
                user_id,
                inside=inside and number == 0,
                nh_map=nh_map,
                rng=rng,
                points=points,
                new_id=new_id,
            )
            for number in range(rng.randint(1, 2))
        ]
        directory.add_locations(locations, now)
        for location in locations:
            for _ in range(rng.randint(0, 2)):
                directory.add_resource(
                    Resource(
                        resource_id=new_id(),
                        resource_type=rng.choice(BOUND_RESOURCE_TYPES),
                        user_id=user_id,
                        location_id=location.location_id,
                        meter_point_id=location.meter_point_ids[0],
                    )
                )
        if rng.random() < 0.5:
            directory.add_resource(Resource(new_id(), VEHICLE, user_id))
    return user_ids


def _random_location(
    user_id: str,
    *,
    inside: bool,
    nh_map: NeighbourhoodMap,
    rng: Random,
    points: np.random.Generator,
    new_id: Callable[[], str],
) -> Location:
    location_type = rng.choice(LOCATION_TYPES)
    meter = random_meter_point_id(rng)
    if inside and nh_map.neighbourhoods:
        nh = rng.choice(nh_map.neighbourhoods)
        if nh.meter_point_ids and rng.random() < 0.5:
            # In by meter point; the coordinates, if any, say nothing about it.
            return Location(
                new_id(), user_id, location_type, None, (rng.choice(nh.meter_point_ids),)
            )
        longitudes, latitudes = nh_map.random_points_inside(nh.neighbourhood_id, 1, points)
        coordinates = Coordinates(float(latitudes[0]), float(longitudes[0]))
        return Location(new_id(), user_id, location_type, coordinates, (meter,))
    coordinates = Coordinates(rng.uniform(*OUTSIDE_LATITUDES), rng.uniform(*OUTSIDE_LONGITUDES))
    return Location(new_id(), user_id, location_type, coordinates, (meter,))


def random_meter_point_id(rng: Random) -> str:
    """An 18-digit Norwegian-style MPID (7070575 + 11 digits)."""
    return f"7070575{rng.randrange(10**11):011d}"


def bulk_add_users(
    directory: UserDirectory,
    count: int,
    *,
    prefix: str,
    now: datetime,
    seed: int,
    neighbourhood_id: str | None = None,
    announce: bool = False,
) -> list[str]:
    """`count` users `<prefix>0000000`, `<prefix>0000001`, ..., each with one location at a
    random point inside a neighbourhood (the given one, or all of them in turn).

    ValueError when there is no such neighbourhood; Conflict when an id is taken.
    """
    nh_map = directory.neighbourhoods
    if neighbourhood_id is None:
        targets = [nh.neighbourhood_id for nh in nh_map.neighbourhoods]
    elif nh_map.get(neighbourhood_id) is not None:
        targets = [neighbourhood_id]
    else:
        raise ValueError(f"no neighbourhood {neighbourhood_id!r}")
    if not targets:
        raise ValueError("there are no neighbourhoods to put users in")
    width = max(7, len(str(count - 1)))
    user_ids = [f"{prefix}{n:0{width}d}" for n in range(count)]
    longitudes = np.empty(count)
    latitudes = np.empty(count)
    points = np.random.default_rng(seed)
    for offset, target in enumerate(targets):
        rows = np.arange(offset, count, len(targets))
        xs, ys = nh_map.random_points_inside(target, len(rows), points)
        longitudes[rows] = xs
        latitudes[rows] = ys
    directory.add_users_at(user_ids, longitudes, latitudes, now, announce=announce)
    return user_ids
