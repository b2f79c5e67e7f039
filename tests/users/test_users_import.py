"""`spark-partner users import FILE`: CSV and JSON into the registry, row by row."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fixtures.sandbox import SandboxHandle
from tests.users.helpers import (
    OTHER_MPID,
    cli,
    cli_json,
    execute,
    rows,
    user_document,
    write_csv,
    write_json,
)
from worker.users.import_formats import iter_json_array
from worker.users.importer import IMPORT_LOCK_KEY

MPID_A = "707057500000000001"
MPID_B = "707057500000000002"

# The same registry content in both formats.
CSV_ROWS: list[dict[str, Any]] = [
    {"user_id": "u-1", "consented": "yes", "location_id": "u-1-home",
     "location_type": "Residential", "meter_point_ids": f"{MPID_A}; {MPID_B}",
     "latitude": "78.2232", "longitude": "15.6267", "resource_id": "u-1-tank",
     "resource_type": "HotWaterTank", "meter_point_id": MPID_A},
    {"user_id": "u-1", "location_id": "u-1-home", "resource_id": "u-1-charger",
     "resource_type": "Charger"},
    {"user_id": "u-1", "resource_id": "u-1-car", "resource_type": "Vehicle"},
    {"user_id": "u-2", "consented": "no"},
]  # fmt: skip
JSON_USERS: list[dict[str, Any]] = [
    {
        "userId": "u-1",
        "consented": True,
        "locations": [
            {
                "locationId": "u-1-home",
                "locationType": "Residential",
                "meterPointIds": [MPID_A, MPID_B],
                "coordinates": {"latitude": 78.2232, "longitude": 15.6267},
                "resources": [
                    {"resourceId": "u-1-tank", "resourceType": "HotWaterTank",
                     "meterPointId": MPID_A},
                    {"resourceId": "u-1-charger", "resourceType": "Charger"},
                ],
            }
        ],
        "vehicles": [{"resourceId": "u-1-car"}],
    },
    {"userId": "u-2", "consented": False},
]  # fmt: skip


def registry(database_url: str) -> dict[str, list[dict[str, Any]]]:
    return {
        "users": rows(
            database_url,
            "SELECT user_id, consented, known_locally, synced_at FROM users ORDER BY user_id",
        ),
        "locations": rows(
            database_url,
            "SELECT location_id, user_id, location_type, meter_point_ids, latitude, longitude,"
            " synced_at FROM locations ORDER BY location_id",
        ),
        "resources": rows(
            database_url,
            "SELECT resource_id, user_id, location_id, resource_type, meter_point_id, synced_at"
            " FROM resources ORDER BY resource_id",
        ),
    }


EXPECTED_REGISTRY = {
    "users": [
        {"user_id": "u-1", "consented": True, "known_locally": True, "synced_at": None},
        {"user_id": "u-2", "consented": False, "known_locally": True, "synced_at": None},
    ],
    "locations": [
        {"location_id": "u-1-home", "user_id": "u-1", "location_type": "Residential",
         "meter_point_ids": [MPID_A, MPID_B], "latitude": 78.2232, "longitude": 15.6267,
         "synced_at": None},
    ],
    "resources": [
        {"resource_id": "u-1-car", "user_id": "u-1", "location_id": None,
         "resource_type": "Vehicle", "meter_point_id": None, "synced_at": None},
        {"resource_id": "u-1-charger", "user_id": "u-1", "location_id": "u-1-home",
         "resource_type": "Charger", "meter_point_id": None, "synced_at": None},
        {"resource_id": "u-1-tank", "user_id": "u-1", "location_id": "u-1-home",
         "resource_type": "HotWaterTank", "meter_point_id": MPID_A, "synced_at": None},
    ],
}  # fmt: skip


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_it_imports_a_file_and_importing_it_again_changes_nothing(
    database_url: str, tmp_path: Path, kind: str
) -> None:
    path = (
        write_csv(tmp_path / "users.csv", CSV_ROWS)
        if kind == "csv"
        else write_json(tmp_path / "users.json", JSON_USERS)
    )

    first = cli_json(database_url, "users", "import", str(path), "--no-sync")
    assert registry(database_url) == EXPECTED_REGISTRY
    assert first["import"]["users"] == {"total": 2, "inserted": 2, "updated": 0, "unchanged": 0}
    assert first["import"]["locations"]["inserted"] == 1
    assert first["import"]["resources"]["inserted"] == 3
    assert first["import"]["errorCount"] == 0
    stamps = rows(database_url, "SELECT user_id, updated_at FROM users ORDER BY user_id")

    again = cli_json(database_url, "users", "import", str(path), "--no-sync")
    for name, total in (("users", 2), ("locations", 1), ("resources", 3)):
        assert again["import"][name] == {
            "total": total, "inserted": 0, "updated": 0, "unchanged": total,
        }  # fmt: skip
    assert registry(database_url) == EXPECTED_REGISTRY
    assert rows(database_url, "SELECT user_id, updated_at FROM users ORDER BY user_id") == stamps


def test_it_reports_bad_csv_rows_by_line_and_imports_the_good_ones(
    database_url: str, tmp_path: Path
) -> None:
    execute(database_url, "INSERT INTO users (user_id) VALUES ('owner')")
    execute(
        database_url,
        "INSERT INTO locations (location_id, user_id) VALUES ('taken', 'owner')",
    )
    path = write_csv(
        tmp_path / "users.csv",
        [
            {"user_id": "good", "consented": "true", "location_id": "good-home",
             "meter_point_ids": MPID_A},                                      # line 2
            {"user_id": "bad-bool", "consented": "maybe"},                    # line 3
            {"user_id": "bad-coords", "location_id": "x", "latitude": "78"},  # line 4
            {"user_id": "bad-type", "location_id": "y", "location_type": "Castle"},  # line 5
            {"user_id": "bad-resource", "location_id": "z", "resource_id": "r"},  # line 6
            {"user_id": "good", "consented": "false"},                        # line 7
            {"user_id": "good", "location_id": "good-home",
             "meter_point_ids": MPID_B},                                      # line 8
            {"user_id": "thief", "location_id": "taken", "location_type": "Other"},  # line 9
            {"user_id": "vehicle", "resource_id": "car", "resource_type": "Charger"},  # line 10
        ],
    )  # fmt: skip

    result = cli(database_url, "users", "import", str(path), "--no-sync", "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)["import"]
    errors = {error["row"]: error["message"] for error in report["errors"]}
    assert sorted(errors) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert report["errorCount"] == 8
    assert "consented" in errors[3]
    assert "latitude" in errors[4]
    assert "location_type" in errors[5]
    assert "resource_type" in errors[6]
    assert "contradicts row 2" in errors[7]
    assert "described differently in row 2" in errors[8]
    assert "belongs to user owner" in errors[9]
    assert "vehicle" in errors[10]
    users = rows(database_url, "SELECT user_id, consented FROM users ORDER BY user_id")
    assert users == [
        {"user_id": "good", "consented": True},
        {"user_id": "owner", "consented": False},
    ]
    assert rows(database_url, "SELECT location_id, user_id, meter_point_ids FROM locations"
                " ORDER BY location_id") == [
        {"location_id": "good-home", "user_id": "good", "meter_point_ids": [MPID_A]},
        {"location_id": "taken", "user_id": "owner", "meter_point_ids": []},
    ]  # fmt: skip


def test_it_reports_bad_json_users_by_position(database_url: str, tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "users.json",
        [
            user_document("ok"),
            {"userId": "typo", "locatoins": []},
            {"consented": True},
            "not a user",
            {"userId": "bad-mpid", "locations": [{"locationId": "l", "meterPointIds": ["a b"]}]},
            {"userId": "bad-vehicle", "vehicles": [{"resourceId": "v", "resourceType": "HVAC"}]},
        ],
    )

    result = cli(database_url, "users", "import", str(path), "--no-sync", "--json")

    assert result.exit_code == 1
    errors = {e["row"]: e["message"] for e in json.loads(result.stdout)["import"]["errors"]}
    assert sorted(errors) == [2, 3, 4, 5, 6]
    assert errors[2].startswith("user typo: ")
    assert "locatoins" in errors[2]
    assert "userId" in errors[3]
    assert "locations.0.meterPointIds.0" in errors[5]
    assert "vehicles.0.resourceType" in errors[6]
    assert [r["user_id"] for r in rows(database_url, "SELECT user_id FROM users")] == ["ok"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("users.csv", "user_id,consent\nu,yes\n", "unknown column(s) 'consent'"),
        ("users.csv", "consented\nyes\n", "user_id column is required"),
        ("users.json", '{"userId": "u"}', "one array of users"),
        ("users.json", '[{"userId": "u"}, {"userId": ', "element 2 is not valid JSON"),
        ("users.json", '[{"userId": "u"}] trailing', "unexpected data after the array"),
        ("users.xml", "<users/>", "expected a .csv or .json file"),
    ],
)
def test_it_refuses_a_file_it_cannot_read_and_imports_nothing(
    database_url: str, tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")

    result = cli(database_url, "users", "import", str(path), "--no-sync")

    assert result.exit_code == 1
    assert message in result.stderr
    assert rows(database_url, "SELECT user_id FROM users") == []


def test_it_marks_only_what_changed_for_the_next_sync(database_url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "users.csv", CSV_ROWS)
    cli_json(database_url, "users", "import", str(path), "--no-sync")
    for table in ("users", "locations", "resources"):
        execute(database_url, f"UPDATE {table} SET synced_at = now()")  # noqa: S608
    changed = [dict(row) for row in CSV_ROWS]
    changed[0]["meter_point_ids"] = MPID_A  # the location loses a meter point
    changed[1]["resource_type"] = "HVAC"  # the charger is really a heat pump
    changed[3]["consented"] = "yes"  # consent is not Spark's business

    report = cli_json(database_url, "users", "import", str(write_csv(path, changed)), "--no-sync")

    assert report["import"]["users"]["updated"] == 1
    assert report["import"]["locations"]["updated"] == 1
    assert report["import"]["resources"]["updated"] == 1
    unsynced = rows(
        database_url,
        "SELECT 'location ' || location_id AS row FROM locations WHERE synced_at IS NULL"
        " UNION ALL SELECT 'resource ' || resource_id FROM resources WHERE synced_at IS NULL"
        " UNION ALL SELECT 'user ' || user_id FROM users WHERE synced_at IS NULL ORDER BY 1",
    )
    assert [r["row"] for r in unsynced] == ["location u-1-home", "resource u-1-charger"]
    assert rows(database_url, "SELECT consented FROM users WHERE user_id = 'u-2'") == [
        {"consented": True}
    ]


def test_it_leaves_alone_what_blank_cells_do_not_state(database_url: str, tmp_path: Path) -> None:
    cli_json(database_url, "users", "import", str(write_csv(tmp_path / "a.csv", CSV_ROWS)),
             "--no-sync")  # fmt: skip
    # A later file only adds a resource to the known location and says nothing about consent.
    addition = write_csv(
        tmp_path / "b.csv",
        [{"user_id": "u-1", "location_id": "u-1-home", "resource_id": "u-1-pv",
          "resource_type": "SolarInverter"}],
    )  # fmt: skip

    report = cli_json(database_url, "users", "import", str(addition), "--no-sync")

    assert report["import"]["resources"]["inserted"] == 1
    assert report["import"]["locations"] == {
        "total": 1, "inserted": 0, "updated": 0, "unchanged": 1,
    }  # fmt: skip
    assert rows(
        database_url,
        "SELECT u.consented, l.location_type, l.meter_point_ids FROM users u"
        " JOIN locations l USING (user_id) WHERE u.user_id = 'u-1'",
    ) == [{"consented": True, "location_type": "Residential", "meter_point_ids": [MPID_A, MPID_B]}]


def test_it_skips_users_deleted_earlier_and_says_so(database_url: str, tmp_path: Path) -> None:
    execute(database_url, "INSERT INTO users (user_id, deleted_at) VALUES ('u-2', now())")
    path = write_csv(tmp_path / "users.csv", CSV_ROWS)

    result = cli(database_url, "users", "import", str(path), "--no-sync")

    assert result.exit_code == 0, result.output
    assert "user u-2 was deleted on" in result.stderr
    assert rows(database_url, "SELECT consented, deleted_at IS NOT NULL AS gone FROM users"
                " WHERE user_id = 'u-2'") == [{"consented": False, "gone": True}]  # fmt: skip


def test_it_warns_about_locations_without_a_meter_point(database_url: str, tmp_path: Path) -> None:
    path = write_json(
        tmp_path / "users.json",
        [user_document("metered"), user_document("unmetered", mpids=())],
    )

    result = cli(database_url, "users", "import", str(path), "--no-sync")

    assert result.exit_code == 0, result.output
    assert (
        "1 location(s) have no meterPointIds and will not be compensated: "
        "unmetered-home (user unmetered)"
    ) in result.stderr
    assert "metered-home (user metered)" not in result.stderr


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_it_shows_progress_on_large_files_only(
    database_url: str, tmp_path: Path, kind: str
) -> None:
    count = 16_000 if kind == "csv" else 4_000
    if kind == "csv":
        big = write_csv(
            tmp_path / "big.csv",
            [{"user_id": f"user-{n:06d}", "consented": "yes", "location_id": f"loc-{n:06d}",
              "location_type": "Residential", "meter_point_ids": OTHER_MPID,
              "latitude": "78.2", "longitude": "15.6"} for n in range(count)],
        )  # fmt: skip
    else:
        big = write_json(
            tmp_path / "big.json", [user_document(f"user-{n:06d}") for n in range(count)]
        )
    assert big.stat().st_size > 1024 * 1024
    small = write_json(tmp_path / "small.json", [user_document("one")])

    large_run = cli(database_url, "users", "import", str(big), "--no-sync")
    small_run = cli(database_url, "users", "import", str(small), "--no-sync")

    assert large_run.exit_code == 0, large_run.output
    assert f"reading {big.name}: 100%" in large_run.stderr
    assert f"reading {big.name}: 50%" in large_run.stderr
    assert "saving to the registry: 100%" in large_run.stderr
    assert "reading" not in small_run.stderr
    assert rows(database_url, "SELECT count(*) AS n FROM locations") == [{"n": count + 1}]


class _CountingText(io.TextIOBase):
    """An endless JSON array of users that counts what is read from it."""

    def __init__(self) -> None:
        self.read_chars = 0
        self._chunks = itertools.chain(
            ["["], (json.dumps(user_document(f"u-{n}")) + "," for n in itertools.count())
        )
        self._pending = ""

    def read(self, size: int | None = -1) -> str:
        limit = 65536 if size is None or size < 0 else size
        while len(self._pending) < limit:
            self._pending += next(self._chunks)
        chunk, self._pending = self._pending[:limit], self._pending[limit:]
        self.read_chars += len(chunk)
        return chunk


def test_it_reads_json_one_user_at_a_time() -> None:
    stream = _CountingText()

    first = list(itertools.islice(iter_json_array(stream), 3))

    assert [(position, user["userId"]) for position, user in first] == [
        (1, "u-0"), (2, "u-1"), (3, "u-2"),
    ]  # fmt: skip
    # An endless file: reading it whole would never return.
    assert stream.read_chars <= 2 * 65536


def test_it_pushes_to_spark_after_importing(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "users.csv", CSV_ROWS)

    result = cli(database_url, "users", "import", str(path), sandbox=sandbox)

    assert result.exit_code == 0, result.output
    assert "sync: pushed 2 user(s), 1 location(s), 3 resource(s); 0 failed" in result.stdout
    assert sandbox.api("GET", "/users/u-1/locations/u-1-home").status_code == 200
    assert rows(database_url, "SELECT count(*) AS n FROM users WHERE synced_at IS NULL") == [
        {"n": 0}
    ]


@pytest.mark.parametrize(("policy", "expected"), [("consented", ["now-ours", "now-yes"]),
                                                  ("off", [])])  # fmt: skip
def test_it_enrolls_eligible_users_whose_consent_is_new_under_consented(
    sandbox: SandboxHandle, database_url: str, tmp_path: Path, policy: str, expected: list[str]
) -> None:
    # now-ours: Spark listed it as eligible before the registry knew it (the reconcile's doing).
    assert sandbox.api("POST", "/users", json={"userId": "now-ours"}).status_code == 201
    execute(
        database_url,
        "INSERT INTO users (user_id, known_locally, eligible) VALUES ('now-ours', false, true)",
    )
    before = write_json(tmp_path / "before.json", [user_document("now-yes", consented=False)])
    cli_json(database_url, "users", "import", str(before), sandbox=sandbox)
    execute(database_url, "UPDATE users SET eligible = true WHERE user_id = 'now-yes'")
    after = write_json(
        tmp_path / "after.json",
        [user_document(u, consented=True) for u in ("now-ours", "now-yes", "not-eligible")],
    )

    report = cli_json(
        database_url, "users", "import", str(after), sandbox=sandbox, SPARK_AUTO_ENROLL=policy
    )

    assert sorted(r["userId"] for r in report["enrollment"]) == expected
    found = rows(database_url, "SELECT user_id FROM users WHERE enrolled ORDER BY user_id")
    assert [row["user_id"] for row in found] == expected
    for user_id in expected:
        enrollment = sandbox.api("GET", f"/users/{user_id}/enrollment").json()
        assert enrollment["isEnrolled"] is True


def test_it_runs_one_import_at_a_time(database_url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "users.csv", CSV_ROWS)
    with psycopg.connect(database_url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (IMPORT_LOCK_KEY,))

        busy = cli(database_url, "users", "import", str(path), "--no-sync")

    assert busy.exit_code == 1
    assert "another import is running" in busy.stderr
    assert rows(database_url, "SELECT user_id FROM users") == []
    assert cli(database_url, "users", "import", str(path), "--no-sync").exit_code == 0


def test_it_refuses_a_resource_whose_meter_point_is_not_its_locations(
    database_url: str, tmp_path: Path
) -> None:
    # Spark would not credit such a resource: its reports' payloads would be left out.
    execute(database_url, "INSERT INTO users (user_id) VALUES ('owner')")
    execute(database_url, "INSERT INTO locations (location_id, user_id, meter_point_ids)"
            " VALUES ('known', 'owner', %s)", ([MPID_A],))  # fmt: skip
    path = write_csv(
        tmp_path / "users.csv",
        [
            {"user_id": "u", "location_id": "home", "meter_point_ids": MPID_A,
             "resource_id": "ok", "resource_type": "Charger", "meter_point_id": MPID_A},  # 2
            {"user_id": "u", "location_id": "home",
             "resource_id": "wrong", "resource_type": "Charger", "meter_point_id": MPID_B},  # 3
            {"user_id": "owner", "location_id": "known",
             "resource_id": "stale", "resource_type": "HVAC", "meter_point_id": MPID_B},  # 4
        ],
    )  # fmt: skip

    result = cli(database_url, "users", "import", str(path), "--no-sync", "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)["import"]
    errors = {error["row"]: error["message"] for error in report["errors"]}
    assert errors == {
        3: f"resource wrong: meterPointId {MPID_B} is not one of the meter point ids of "
        f"location home ({MPID_A})",
        4: f"resource stale: meterPointId {MPID_B} is not one of the meter point ids of "
        f"location known ({MPID_A})",
    }
    assert [r["resource_id"] for r in rows(database_url, "SELECT resource_id FROM resources")] == [
        "ok"
    ]
