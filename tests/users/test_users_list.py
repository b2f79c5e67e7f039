"""`spark-partner users list`: the registry's users, filtered, in id order."""

from __future__ import annotations

import json

import pytest

from tests.users.helpers import cli, cli_json, execute

# (user_id, eligible, enrolled, consented, known_locally, delete_after_month, deleted)
USERS = [
    ("b-enrolled", True, True, True, True, None, False),
    ("a-eligible", True, False, False, True, None, False),
    ("Z-spark-only", True, False, False, False, None, False),
    ("ä-leaving", True, True, True, True, "2026-10-01", False),
    ("c-gone", True, True, True, True, None, True),
    ("d-plain", False, False, True, True, None, False),
]


@pytest.fixture
def populated(database_url: str) -> str:
    for user_id, eligible, enrolled, consented, known, month, gone in USERS:
        execute(
            database_url,
            "INSERT INTO users (user_id, eligible, enrolled, consented, known_locally,"
            " delete_after_month, deleted_at, synced_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, CASE WHEN %s THEN now() END, now())",
            (user_id, eligible, enrolled, consented, known, month, gone),
        )
    return database_url


def ids(items: list[dict[str, object]]) -> list[object]:
    return [item["userId"] for item in items]


def test_it_lists_users_in_byte_order_of_their_ids(populated: str) -> None:
    listed = cli_json(populated, "users", "list")

    assert ids(listed) == ["Z-spark-only", "a-eligible", "b-enrolled", "d-plain", "ä-leaving"]
    assert ids(listed) == sorted(ids(listed))  # type: ignore[type-var]
    assert listed[4] == {
        "userId": "ä-leaving",
        "eligible": True,
        "enrolled": True,
        "consented": True,
        "knownLocally": True,
        "synced": True,
        "syncError": None,
        "pendingDeletion": True,
        "deleteAfterMonth": "2026-10",
        "deleted": False,
    }
    assert listed[0]["knownLocally"] is False


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--eligible"], ["Z-spark-only", "a-eligible", "b-enrolled", "ä-leaving"]),
        (["--enrolled"], ["b-enrolled", "ä-leaving"]),
        (["--eligible", "--enrolled"], ["b-enrolled", "ä-leaving"]),
        (["--pending-deletion"], ["ä-leaving"]),
        (["--include-deleted", "--enrolled"], ["b-enrolled", "c-gone", "ä-leaving"]),
    ],
)
def test_it_filters(populated: str, flags: list[str], expected: list[str]) -> None:
    assert ids(cli_json(populated, "users", "list", *flags)) == expected


def test_it_prints_an_empty_json_array_and_a_table(database_url: str) -> None:
    assert cli_json(database_url, "users", "list") == []
    assert cli(database_url, "users", "list").stdout == "no users\n"
    execute(database_url, "INSERT INTO users (user_id, known_locally) VALUES ('x', false)")

    table = cli(database_url, "users", "list").stdout.splitlines()

    assert table[0].split() == ["USER", "ELIGIBLE", "ENROLLED", "CONSENTED", "NOTES"]
    assert table[1].split()[:4] == ["x", "no", "no", "no"]
    assert "not imported (listed by Spark)" in table[1]


def test_it_streams_many_users_as_valid_json(database_url: str) -> None:
    execute(
        database_url,
        "INSERT INTO users (user_id, eligible) SELECT 'user-' || lpad(n::text, 6, '0'), n % 2 = 0"
        " FROM generate_series(1, 12000) AS n",
    )

    result = cli(database_url, "users", "list", "--eligible", "--json")

    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert len(listed) == 6000
    assert ids(listed)[:2] == ["user-000002", "user-000004"]
