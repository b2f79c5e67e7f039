"""`UserDirectory`: the partner's users, locations, resources and enrollments as Spark keeps
them, and each user's eligibility, maintained as the data changes.

A user is eligible while at least one of its locations lies in a grid neighbourhood. Every
location records the neighbourhoods it lies in when it is stored, and every user counts its
locations that lie in one, so a change costs one lookup for the location it touches; nothing
is recomputed over all users except when the neighbourhoods themselves are replaced.
Eligible user ids are kept sorted for paging.

Each change of a user's eligibility is also noted for the current announcement window: the
first change of a user in a window remembers what the user was before it, so
`take_eligibility_changes` can report the net change (a user that flips and flips back is in
neither list).

One lock guards everything, so a reader never sees a location without its effect on
eligibility. Methods raise `NotFound` or `Conflict`; the routes map those to Spark's answers.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np

from sandbox.neighbourhoods import NeighbourhoodMap
from sandbox.sorted_ids import SortedIds
from sandbox.users import Coordinates, DeletedUser, Enrollment, Location, Resource, User


class DirectoryError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DirectoryError):
    pass


class Conflict(DirectoryError):
    """An id that is already taken."""


@dataclass(slots=True)
class _Account:
    user: User
    locations: dict[str, Location] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)
    # Every enrollment period, oldest first; only the last can be active.
    enrollments: list[Enrollment] = field(default_factory=list)
    # How many of `locations` lie in a neighbourhood.
    eligible_locations: int = 0


class UserDirectory:
    """All methods are safe to call from any thread."""

    def __init__(self, neighbourhoods: NeighbourhoodMap) -> None:
        self._lock = threading.RLock()
        self._map = neighbourhoods
        self._accounts: dict[str, _Account] = {}
        self._user_ids = SortedIds()
        self._locations: dict[str, Location] = {}
        self._resources: dict[str, Resource] = {}
        self._eligible = SortedIds()
        # user id -> eligible before its first change in the current window
        self._pending: dict[str, bool] = {}
        self._pending_since: datetime | None = None
        self._deleted: list[DeletedUser] = []
        # Users with an active enrollment: the daily price curves look only at these.
        self._enrolled: set[str] = set()

    def reset(self, neighbourhoods: NeighbourhoodMap) -> None:
        with self._lock:
            self._map = neighbourhoods
            self._accounts = {}
            self._user_ids = SortedIds()
            self._locations = {}
            self._resources = {}
            self._eligible = SortedIds()
            self._pending = {}
            self._pending_since = None
            self._deleted = []
            self._enrolled = set()

    # Users

    def add_users(
        self, user_ids: Sequence[str], now: datetime, *, simulated: bool = False
    ) -> list[User]:
        """All or none: Conflict when an id exists or repeats."""
        with self._lock:
            seen: set[str] = set()
            for user_id in user_ids:
                if user_id in self._accounts or user_id in seen:
                    raise Conflict(f"User {user_id} already exists.")
                seen.add(user_id)
            users = [User(user_id, now, simulated=simulated) for user_id in user_ids]
            for user in users:
                self._accounts[user.user_id] = _Account(user)
            self._user_ids.update(user_ids)
            return users

    def get_user(self, user_id: str) -> User:
        with self._lock:
            return self._account(user_id).user

    def users_page(self, offset: int, limit: int) -> tuple[list[str], int]:
        """One page of user ids in id order, and the number of users."""
        with self._lock:
            return self._user_ids.page(offset, limit), len(self._user_ids)

    def simulated_user_ids(self) -> list[str]:
        with self._lock:
            return [uid for uid, account in self._accounts.items() if account.user.simulated]

    def delete_user(self, user_id: str, now: datetime) -> DeletedUser:
        """Remove a user with its locations, resources and enrollment; the record is kept."""
        with self._lock:
            account = self._account(user_id)
            for location_id in account.locations:
                del self._locations[location_id]
            for resource_id in account.resources:
                del self._resources[resource_id]
            if account.eligible_locations:
                self._eligible.discard(user_id)
                self._note(user_id, was_eligible=True, now=now)
            del self._accounts[user_id]
            self._user_ids.discard(user_id)
            self._enrolled.discard(user_id)
            deleted = DeletedUser(
                user=replace(account.user, deleted_at=now),
                locations=tuple(account.locations.values()),
                resources=tuple(account.resources.values()),
                enrollments=tuple(
                    replace(e, ended_at=now) if e.active else e for e in account.enrollments
                ),
            )
            self._deleted.append(deleted)
            return deleted

    def deleted_users(self) -> list[DeletedUser]:
        with self._lock:
            return list(self._deleted)

    def deleted_owner(self, resource_id: str, location_id: str) -> DeletedUser | None:
        """The deleted user a resource or location belonged to, unless it is in use again."""
        with self._lock:
            if resource_id in self._resources or location_id in self._locations:
                return None
            for deleted in reversed(self._deleted):
                if any(r.resource_id == resource_id for r in deleted.resources) or any(
                    loc.location_id == location_id for loc in deleted.locations
                ):
                    return deleted
            return None

    def find_location(self, location_id: str) -> Location | None:
        with self._lock:
            return self._locations.get(location_id)

    # Locations

    def add_locations(self, locations: Sequence[Location], now: datetime) -> list[Location]:
        """All or none: NotFound for an unknown user, Conflict for a location id in use."""
        with self._lock:
            seen: set[str] = set()
            for location in locations:
                if location.user_id not in self._accounts:
                    raise NotFound(f"User {location.user_id} was not found.")
                if location.location_id in self._locations or location.location_id in seen:
                    raise Conflict(f"Location {location.location_id} already exists.")
                seen.add(location.location_id)
            placed = [self._placed(location) for location in locations]
            for location in placed:
                self._put_location(location, now)
            return placed

    def get_location(self, user_id: str, location_id: str) -> Location:
        with self._lock:
            location = self._account(user_id).locations.get(location_id)
            if location is None:
                raise NotFound(f"Location {location_id} was not found.")
            return location

    def locations_of(self, user_id: str) -> list[Location]:
        with self._lock:
            return list(self._account(user_id).locations.values())

    def update_location(
        self,
        user_id: str,
        location_id: str,
        change: Callable[[Location], Location],
        now: datetime,
    ) -> Location:
        """Replace a location with `change(current)`; its id and user stay."""
        with self._lock:
            current = self.get_location(user_id, location_id)
            changed = replace(change(current), location_id=location_id, user_id=user_id)
            updated = self._placed(changed)
            self._put_location(updated, now)
            return updated

    def delete_location(self, user_id: str, location_id: str, now: datetime) -> None:
        """Remove a location and the resources bound to it."""
        with self._lock:
            location = self.get_location(user_id, location_id)
            account = self._accounts[user_id]
            del account.locations[location_id]
            del self._locations[location_id]
            for resource in list(account.resources.values()):
                if resource.location_id == location_id:
                    del account.resources[resource.resource_id]
                    del self._resources[resource.resource_id]
            self._recount(account, old=location, new=None, now=now)

    # Resources

    def add_resource(self, resource: Resource) -> Resource:
        """NotFound for an unknown user or location, Conflict for a resource id in use."""
        with self._lock:
            account = self._account(resource.user_id)
            if resource.location_id is not None and resource.location_id not in account.locations:
                raise NotFound(f"Location {resource.location_id} was not found.")
            if resource.resource_id in self._resources:
                raise Conflict(f"Resource {resource.resource_id} already exists.")
            account.resources[resource.resource_id] = resource
            self._resources[resource.resource_id] = resource
            return resource

    def get_resource(self, resource_id: str) -> Resource:
        with self._lock:
            resource = self._resources.get(resource_id)
            if resource is None:
                raise NotFound(f"Resource {resource_id} was not found.")
            return resource

    def resources_of(self, user_id: str) -> list[Resource]:
        with self._lock:
            return list(self._account(user_id).resources.values())

    def resources_at(self, user_id: str, location_id: str) -> list[Resource]:
        with self._lock:
            self.get_location(user_id, location_id)
            resources = self._accounts[user_id].resources.values()
            return [r for r in resources if r.location_id == location_id]

    def delete_resource(self, resource_id: str) -> None:
        with self._lock:
            resource = self.get_resource(resource_id)
            del self._resources[resource_id]
            del self._accounts[resource.user_id].resources[resource_id]

    # Enrollment

    def enrollment(self, user_id: str) -> Enrollment | None:
        """The user's active enrollment, if any."""
        with self._lock:
            enrollments = self._account(user_id).enrollments
            if enrollments and enrollments[-1].active:
                return enrollments[-1]
            return None

    def enrollments(self, user_id: str) -> list[Enrollment]:
        """Every enrollment period of a user, oldest first."""
        with self._lock:
            return list(self._account(user_id).enrollments)

    def enroll(self, user_id: str, enrollment_id: str, now: datetime) -> Enrollment:
        """Start an enrollment; an enrolled user keeps the one it has."""
        with self._lock:
            current = self.enrollment(user_id)
            if current is not None:
                return current
            enrollment = Enrollment(enrollment_id=enrollment_id, user_id=user_id, enrolled_at=now)
            self._accounts[user_id].enrollments.append(enrollment)
            self._enrolled.add(user_id)
            return enrollment

    def unenroll(self, user_id: str, now: datetime) -> None:
        with self._lock:
            current = self.enrollment(user_id)
            if current is not None:
                self._accounts[user_id].enrollments[-1] = replace(current, ended_at=now)
            self._enrolled.discard(user_id)

    # Price curve targets

    def curve_targets(self) -> dict[str, list[tuple[str, str]]]:
        """What the daily price curves target: neighbourhood id -> (resource id, location id)
        pairs, over the resources of enrolled users.

        A location-bound resource is targeted at its location when that lies in a
        neighbourhood, under the first neighbourhood it lies in (so overlapping NHs never
        target it twice). A vehicle has no location: it is paired with its user's first
        location (in order of creation) that lies in a neighbourhood, if any.
        """
        found: dict[str, list[tuple[str, str]]] = {}
        with self._lock:
            for user_id in sorted(self._enrolled):
                account = self._accounts[user_id]
                placed = (loc for loc in account.locations.values() if loc.in_neighbourhood)
                home = next(placed, None)
                for resource in account.resources.values():
                    if resource.location_id is None:
                        location = home
                    else:
                        location = account.locations.get(resource.location_id)
                    if location is None or not location.in_neighbourhood:
                        continue
                    pairs = found.setdefault(location.neighbourhood_ids[0], [])
                    pairs.append((resource.resource_id, location.location_id))
        return found

    def lpc_targets(self) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]]]:
        """What the LPC schedule may target, over enrolled users' locations that lie in a
        neighbourhood and have a meter point id: (resourceId, locationId, meterPointId) per
        resource, and (locationId, meterPointId) per meter point of such a location (Spark
        sends location LPC per MPID, behind the meter). A resource's meter point is its own,
        else its location's first; a vehicle is paired as in `curve_targets`. Sorted."""
        resources: list[tuple[str, str, str]] = []
        locations: list[tuple[str, str]] = []
        with self._lock:
            for user_id in sorted(self._enrolled):
                account = self._accounts[user_id]
                usable = [
                    loc
                    for loc in account.locations.values()
                    if loc.in_neighbourhood and loc.meter_point_ids
                ]
                home = usable[0] if usable else None
                for location in usable:
                    locations += ((location.location_id, m) for m in location.meter_point_ids)
                for resource in account.resources.values():
                    if resource.location_id is None:
                        found = home
                    else:
                        found = account.locations.get(resource.location_id)
                    if found is None or found not in usable:
                        continue
                    meter = resource.meter_point_id or found.meter_point_ids[0]
                    resources.append((resource.resource_id, found.location_id, meter))
        return sorted(resources), sorted(locations)

    # Eligibility

    @property
    def neighbourhoods(self) -> NeighbourhoodMap:
        with self._lock:
            return self._map

    def is_eligible(self, user_id: str) -> bool:
        with self._lock:
            return self._account(user_id).eligible_locations > 0

    def eligible_page(self, offset: int, limit: int) -> tuple[list[str], int]:
        """One page of eligible user ids in id order, and the number of eligible users."""
        with self._lock:
            return self._eligible.page(offset, limit), len(self._eligible)

    def meter_is_eligible(self, meter_point_id: str) -> bool:
        with self._lock:
            return self._map.meter_is_eligible(meter_point_id)

    def set_neighbourhoods(self, neighbourhoods: NeighbourhoodMap, now: datetime) -> int:
        """Place every location again; the number of locations whose neighbourhoods changed.

        Eligible ids are updated once at the end rather than per user: a change of
        neighbourhoods can move hundreds of thousands of users at a time.
        """
        with self._lock:
            self._map = neighbourhoods
            by_position = self._locate_all_by_position(neighbourhoods)
            was_eligible: dict[str, bool] = {}
            with _collector_paused():
                changed = self._move_locations(neighbourhoods, by_position, was_eligible)
            gained: list[str] = []
            lost: set[str] = set()
            for user_id, was in was_eligible.items():
                eligible = self._accounts[user_id].eligible_locations > 0
                if eligible == was:
                    continue
                if eligible:
                    gained.append(user_id)
                else:
                    lost.add(user_id)
                self._note(user_id, was_eligible=was, now=now)
            self._eligible.remove_many(lost)
            self._eligible.update(gained)
            return changed

    def _move_locations(
        self,
        neighbourhoods: NeighbourhoodMap,
        by_position: dict[str, tuple[str, ...]],
        was_eligible: dict[str, bool],
    ) -> int:
        """Give each location its new neighbourhoods, noting in `was_eligible` what each
        touched user was before; the number of locations that moved."""
        changed = 0
        for location in list(self._locations.values()):
            if location.meter_point_ids:
                found = neighbourhoods.locate(location.meter_point_ids, location.position)
            else:
                found = by_position.get(location.location_id, ())
            if found == location.neighbourhood_ids:
                continue
            changed += 1
            account = self._accounts[location.user_id]
            was_eligible.setdefault(location.user_id, account.eligible_locations > 0)
            moved = replace(location, neighbourhood_ids=found)
            account.locations[location.location_id] = moved
            self._locations[location.location_id] = moved
            account.eligible_locations += bool(found) - location.in_neighbourhood
        return changed

    def _locate_all_by_position(
        self, neighbourhoods: NeighbourhoodMap
    ) -> dict[str, tuple[str, ...]]:
        """Every location with coordinates, placed by them alone, in one pass per neighbourhood."""
        ids: list[str] = []
        longitudes: list[float] = []
        latitudes: list[float] = []
        for location in self._locations.values():
            if location.coordinates is not None:
                ids.append(location.location_id)
                longitudes.append(location.coordinates.longitude)
                latitudes.append(location.coordinates.latitude)
        found = neighbourhoods.locate_points(np.array(longitudes), np.array(latitudes))
        return dict(zip(ids, found, strict=True))

    def pending_since(self) -> datetime | None:
        """When the first eligibility change of the current window happened, if any did."""
        with self._lock:
            return self._pending_since

    def take_eligibility_changes(self) -> tuple[list[str], list[str]]:
        """Close the window: (users now eligible that were not, users no longer eligible)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            self._pending_since = None
            added, removed = [], []
            for user_id, was_eligible in pending.items():
                account = self._accounts.get(user_id)
                eligible = account is not None and account.eligible_locations > 0
                if eligible and not was_eligible:
                    added.append(user_id)
                elif was_eligible and not eligible:
                    removed.append(user_id)
            return sorted(added), sorted(removed)

    # Bulk

    def add_users_at(
        self,
        user_ids: Sequence[str],
        longitudes: np.ndarray,
        latitudes: np.ndarray,
        now: datetime,
        *,
        announce: bool,
    ) -> None:
        """Many users at once, each with one residential location `<userId>-location` at the
        given coordinates: the fast path for benchmarks. All or none (Conflict).

        `announce=False` keeps their eligibility out of the next event, as if Spark had
        always had them; a partner then learns of them from `/users/eligible`.
        """
        location_ids = [f"{user_id}-location" for user_id in user_ids]
        with self._lock:
            if len(set(user_ids)) != len(user_ids):
                raise Conflict("The user ids repeat.")
            for user_id, location_id in zip(user_ids, location_ids, strict=True):
                if user_id in self._accounts:
                    raise Conflict(f"User {user_id} already exists.")
                if location_id in self._locations:
                    raise Conflict(f"Location {location_id} already exists.")
            placements = self._map.locate_points(longitudes, latitudes)
            with _collector_paused():
                rows = zip(
                    user_ids,
                    location_ids,
                    longitudes.tolist(),
                    latitudes.tolist(),
                    placements,
                    strict=True,
                )
                eligible = self._insert_bulk(rows, now)
            self._user_ids.update(user_ids)
            self._eligible.update(eligible)
            if announce:
                for user_id in eligible:
                    self._note(user_id, was_eligible=False, now=now)

    def _insert_bulk(
        self, rows: Iterable[tuple[str, str, float, float, tuple[str, ...]]], now: datetime
    ) -> list[str]:
        """The loop of `add_users_at`: (user id, location id, longitude, latitude,
        neighbourhoods) rows in; the eligible ones among the new users out."""
        eligible: list[str] = []
        for user_id, location_id, longitude, latitude, found in rows:
            location = Location(
                location_id,
                user_id,
                "Residential",
                Coordinates(latitude, longitude),
                (),
                found,
            )
            self._accounts[user_id] = _Account(
                User(user_id, now),
                {location_id: location},
                eligible_locations=1 if found else 0,
            )
            self._locations[location_id] = location
            if found:
                eligible.append(user_id)
        return eligible

    # Internals (the lock is held)

    def _account(self, user_id: str) -> _Account:
        account = self._accounts.get(user_id)
        if account is None:
            raise NotFound(f"User {user_id} was not found.")
        return account

    def _placed(self, location: Location) -> Location:
        found = self._map.locate(location.meter_point_ids, location.position)
        return replace(location, neighbourhood_ids=found)

    def _put_location(self, location: Location, now: datetime) -> None:
        account = self._accounts[location.user_id]
        old = account.locations.get(location.location_id)
        account.locations[location.location_id] = location
        self._locations[location.location_id] = location
        self._recount(account, old=old, new=location, now=now)

    def _recount(
        self, account: _Account, *, old: Location | None, new: Location | None, now: datetime
    ) -> None:
        was_eligible = account.eligible_locations > 0
        if old is not None and old.in_neighbourhood:
            account.eligible_locations -= 1
        if new is not None and new.in_neighbourhood:
            account.eligible_locations += 1
        eligible = account.eligible_locations > 0
        if eligible == was_eligible:
            return
        user_id = account.user.user_id
        if eligible:
            self._eligible.add(user_id)
        else:
            self._eligible.discard(user_id)
        self._note(user_id, was_eligible=was_eligible, now=now)

    def _note(self, user_id: str, *, was_eligible: bool, now: datetime) -> None:
        if user_id in self._pending:
            return
        if not self._pending:
            self._pending_since = now
        self._pending[user_id] = was_eligible


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Creating millions of objects otherwise sets off repeated full garbage collections that
    each scan every object made so far; refcounting still frees everything meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
