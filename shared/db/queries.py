"""Named SQL queries, one `.sql` file per domain beside this module: `QUERIES["insert_event"]`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import LiteralString, cast

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    parts = _NAME.split(text)
    queries: dict[str, LiteralString] = {}
    # parts = [preamble, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        # The file is part of the package, not user input: it is as literal as inline SQL.
        queries[name] = cast(LiteralString, body.strip())
    return queries


def load_queries(*files: Path) -> dict[str, LiteralString]:
    queries: dict[str, LiteralString] = {}
    for path in files:
        for name, sql in parse_queries(path.read_text(encoding="utf-8")).items():
            if name in queries:
                raise ValueError(f"query {name!r} is defined in more than one file")
            queries[name] = sql
    return queries


QUERIES = load_queries(*sorted(Path(__file__).parent.glob("*.sql")))
