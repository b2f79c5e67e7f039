"""`spark-partner users sync`: the registry pushed to Spark (the sandbox), idempotently."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from shared.db import connect
from shared.spark_api import SparkClient
from tests.fixtures.sandbox import SandboxHandle
from tests.spec import spec_checked_json
from tests.users.helpers import (
    ELIGIBLE_MPID,
    OTHER_MPID,
    api_requests,
    assert_requests_match_spec,
    calls,
    cli,
    cli_json,
    execute,
    rows,
    user_document,
    write_json,
)
from worker.users.importer import import_path
from worker.users.sync import SyncReport, sync_registry


def import_users(database_url: str, tmp_path: Path, users: list[dict[str, Any]]) -> None:
    path = write_json(tmp_path / f"users-{len(list(tmp_path.iterdir()))}.json", users)
    cli_json(database_url, "users", "import", str(path), "--no-sync")


def spark_get(sandbox: SandboxHandle, path: str) -> Any:
    response = sandbox.api("GET", path)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return spec_checked_json(response)


def unsynced(database_url: str) -> list[str]:
    found = rows(
        database_url,
        "SELECT 'user ' || user_id AS row FROM users WHERE synced_at IS NULL"
        " UNION ALL SELECT 'location ' || location_id FROM locations WHERE synced_at IS NULL"
        " UNION ALL SELECT 'resource ' || resource_id FROM resources WHERE synced_at IS NULL"
        " ORDER BY 1",
    )
    return [row["row"] for row in found]


REGISTRY = [
    user_document("u-1", mpids=(ELIGIBLE_MPID,), resources=(("u-1-tank", "HotWaterTank"),),
                  vehicles=("u-1-car",)),
    user_document("u-2", mpids=(OTHER_MPID,)),
    {"userId": "u-3", "locations": [{"locationId": "u-3-cabin", "locationType": "Other",
                                      "coordinates": {"latitude": 78.2232, "longitude": 15.6267}}]},
]  # fmt: skip


def test_it_pushes_the_registry_in_batches_and_a_second_run_sends_nothing(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    import_users(database_url, tmp_path, REGISTRY)

    report = cli_json(database_url, "users", "sync", sandbox=sandbox)

    assert report == {
        "users": 3, "locations": 3, "resources": 2, "failed": 0, "errors": [],
        "complete": True, "busy": False, "aborted": None,
    }  # fmt: skip
    sent = api_requests(sandbox)
    assert calls(sent) == [
        ("POST", "/users/batch"),
        ("POST", "/users/locations/batch"),
        ("POST", "/users/u-1/vehicles"),
        ("POST", "/users/u-1/locations/u-1-home/resources"),
    ]
    assert_requests_match_spec(sent)
    assert sorted(u["userId"] for u in spark_get(sandbox, "/users")["users"]) == [
        "u-1", "u-2", "u-3",
    ]  # fmt: skip
    (cabin,) = spark_get(sandbox, "/users/u-3/locations")
    assert cabin["locationType"] == "Other"
    assert cabin["coordinates"] == {"latitude": 78.2232, "longitude": 15.6267}
    assert spark_get(sandbox, "/users/u-1/locations/u-1-home")["meterPointIds"] == [ELIGIBLE_MPID]
    resources = spark_get(sandbox, "/users/u-1/resources")["resources"]
    assert {(r["resourceId"], r["resourceType"], r["locationId"]) for r in resources} == {
        ("u-1-tank", "HotWaterTank", "u-1-home"),
        ("u-1-car", "Vehicle", None),
    }
    assert unsynced(database_url) == []

    sandbox.control.clear_requests()
    again = cli_json(database_url, "users", "sync", sandbox=sandbox)

    assert (again["users"], again["locations"], again["resources"]) == (0, 0, 0)
    assert api_requests(sandbox) == []


def test_it_makes_what_spark_already_has_match_the_registry(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    # Spark already has the user, an outdated version of its location and of a resource.
    assert sandbox.api("POST", "/users", json={"userId": "u-1"}).status_code == 201
    old_location = {"locationId": "u-1-home", "locationType": "Unknown", "meterPointIds": []}
    assert sandbox.api("POST", "/users/u-1/locations", json=old_location).status_code == 201
    old_tank = {"resourceId": "u-1-tank", "resourceType": "Generic"}
    created = sandbox.api("POST", "/users/u-1/locations/u-1-home/resources", json=old_tank)
    assert created.status_code == 201
    import_users(database_url, tmp_path, REGISTRY[:2])
    sandbox.control.clear_requests()

    report = cli_json(database_url, "users", "sync", sandbox=sandbox)

    assert (report["users"], report["locations"], report["resources"]) == (2, 2, 2)
    assert report["failed"] == 0
    sent = api_requests(sandbox)
    assert_requests_match_spec(sent)
    made = calls(sent)
    # Each batch was refused for the id Spark had, then sent one by one.
    assert made[:5] == [
        ("POST", "/users/batch"),
        ("POST", "/users"),
        ("GET", "/users/u-1"),
        ("POST", "/users"),
        ("POST", "/users/locations/batch"),
    ]
    assert ("PUT", "/users/u-1/locations/u-1-home") in made
    assert ("DELETE", "/resources/u-1-tank") in made
    home = spark_get(sandbox, "/users/u-1/locations/u-1-home")
    assert (home["locationType"], home["meterPointIds"]) == ("Residential", [ELIGIBLE_MPID])
    assert spark_get(sandbox, "/resources/u-1-tank")["resourceType"] == "HotWaterTank"
    assert unsynced(database_url) == []


def test_it_recreates_a_user_spark_no_longer_has(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    import_users(database_url, tmp_path, REGISTRY[:1])
    cli_json(database_url, "users", "sync", sandbox=sandbox)
    # Someone deleted the user at Spark; then the registry's location changed.
    assert sandbox.api("DELETE", "/users/u-1").status_code == 204
    import_users(database_url, tmp_path, [user_document("u-1", mpids=(OTHER_MPID,))])
    sandbox.control.clear_requests()

    report = cli_json(database_url, "users", "sync", sandbox=sandbox)

    assert report["locations"] == 1
    assert report["failed"] == 0
    made = calls(api_requests(sandbox))
    assert made == [
        ("POST", "/users/locations/batch"),
        ("POST", "/users/u-1/locations"),
        ("POST", "/users"),
        ("POST", "/users/u-1/locations"),
    ]
    assert spark_get(sandbox, "/users/u-1/locations/u-1-home")["meterPointIds"] == [OTHER_MPID]


def test_it_falls_back_to_one_by_one_when_a_batch_is_refused(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    import_users(database_url, tmp_path, REGISTRY)
    sandbox.control.add_faults("POST", "/users/batch", [{"status": 409}])

    report = cli_json(database_url, "users", "sync", sandbox=sandbox)

    assert report["users"] == 3
    assert calls(api_requests(sandbox))[:4] == [("POST", "/users/batch")] + [("POST", "/users")] * 3
    assert unsynced(database_url) == []


def test_it_keeps_a_refusal_on_the_row_until_asked_to_retry(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    import_users(database_url, tmp_path, REGISTRY[:2])
    sandbox.control.add_faults("POST", "/users/locations/batch", [{"status": 400}])
    sandbox.control.add_faults(
        "POST", "/users/u-2/locations", [{"status": 400, "body": "meter point rejected"}]
    )

    result = cli(database_url, "users", "sync", "--json", sandbox=sandbox)

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["failed"] == 1
    assert report["errors"] == ['location u-2-home: Spark answered 400: "meter point rejected"']
    stored = rows(database_url, "SELECT sync_error FROM locations WHERE location_id = 'u-2-home'")
    assert stored == [{"sync_error": 'Spark answered 400: "meter point rejected"'}]
    assert unsynced(database_url) == ["location u-2-home"]

    sandbox.control.clear_requests()
    quiet = cli_json(database_url, "users", "sync", sandbox=sandbox)
    assert (quiet["locations"], quiet["failed"]) == (0, 0)
    assert api_requests(sandbox) == []

    retried = cli_json(database_url, "users", "sync", "--retry-errors", sandbox=sandbox)
    assert retried["locations"] == 1
    assert unsynced(database_url) == []


def test_it_stops_without_blaming_rows_when_spark_refuses_our_credentials(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    import_users(database_url, tmp_path, REGISTRY)
    sandbox.control.add_faults("POST", "/users/batch", [{"status": 403}])

    result = cli(database_url, "users", "sync", "--json", sandbox=sandbox)

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["complete"] is False
    assert "403" in report["aborted"]
    assert rows(database_url, "SELECT count(*) AS n FROM users WHERE sync_error IS NOT NULL") == [
        {"n": 0}
    ]
    assert cli_json(database_url, "users", "sync", sandbox=sandbox)["users"] == 3
    assert unsynced(database_url) == []


def test_it_pushes_again_what_changed_while_its_push_was_in_flight(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    import_users(database_url, tmp_path, [user_document("u-1", mpids=(ELIGIBLE_MPID,))])
    changed = write_json(tmp_path / "changed.json", [user_document("u-1", mpids=(OTHER_MPID,))])
    # Spark takes a second to answer the location batch; the registry changes meanwhile.
    sandbox.control.add_faults("POST", "/users/locations/batch", [{"delay": 1.0}])
    reports: list[SyncReport] = []

    def sync_in_background() -> None:
        with connect(database_url) as conn, spark_client(sandbox) as client:
            reports.append(sync_registry(conn, client))

    worker = threading.Thread(target=sync_in_background)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while ("POST", "/users/locations/batch") not in calls(api_requests(sandbox)):
            assert time.monotonic() < deadline, "the location batch never reached Spark"
            time.sleep(0.02)
        with connect(database_url) as conn:
            import_path(conn, changed)
    finally:
        worker.join(timeout=30)

    assert reports[0].pushed["locations"] == 0
    assert unsynced(database_url) == ["location u-1-home"]
    assert spark_get(sandbox, "/users/u-1/locations/u-1-home")["meterPointIds"] == [ELIGIBLE_MPID]

    again = cli_json(database_url, "users", "sync", sandbox=sandbox)

    assert again["locations"] == 1
    assert spark_get(sandbox, "/users/u-1/locations/u-1-home")["meterPointIds"] == [OTHER_MPID]
    assert unsynced(database_url) == []


def spark_client(sandbox: SandboxHandle) -> SparkClient:
    return SparkClient(
        sandbox.base_url, sandbox.token_url, sandbox.client_id, sandbox.client_secret
    )


def test_it_does_not_push_a_resource_whose_meter_point_is_not_its_locations(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    import_users(database_url, tmp_path, REGISTRY[:2])
    # Changed in the registry behind the import's back.
    execute(database_url, "UPDATE resources SET meter_point_id = %s WHERE resource_id = 'u-1-tank'",
            (OTHER_MPID,))  # fmt: skip

    result = cli(database_url, "users", "sync", "--json", sandbox=sandbox)

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["errors"] == [
        f"resource u-1-tank: meterPointId {OTHER_MPID} is not one of the meter point ids of "
        f"location u-1-home ({ELIGIBLE_MPID}); fix the resource or the location"
    ]
    assert sandbox.api("GET", "/resources/u-1-tank").status_code == 404
