"""Every named query is found by its full name where it runs: no name is assembled at run time."""

from __future__ import annotations

from pathlib import Path

from shared.db.queries import QUERIES

REPO = Path(__file__).resolve().parents[2]


def test_it_names_every_query_in_full_where_it_runs() -> None:
    source = "\n".join(
        path.read_text(encoding="utf-8")
        for package in ("shared", "ingress", "worker")
        for path in (REPO / package).rglob("*.py")
    )

    unnamed = sorted(name for name in QUERIES if f'"{name}"' not in source)

    assert unnamed == []
