"""Which chunks of a file may skip the row checks: `csv_import.is_plain`."""

from __future__ import annotations

import pytest

from worker.consumption.csv_import import is_plain, parse_header

HEADER = b"resourceId,locationId,start,end,kWh,readingId"
GOOD = b"ev-1,home,2026-03-03T10:00:00Z,2026-03-03T11:00:00+01:00,1.5,s-1\n"


def test_it_takes_rows_in_the_plain_spellings() -> None:
    pattern = parse_header(HEADER).plain_record()
    rows = [
        GOOD,
        b"ev-1,,2026-03-03 10:00:00.125-02:30,2026-03-03T11:00Z,0,\n",
        b"ev-1,home,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1e-3,\r\n",
    ]
    assert is_plain(b"".join(rows), pattern)


@pytest.mark.parametrize(
    "row",
    [
        b"ev-1,home,2026-03-03T10:00:00,2026-03-03T11:00:00Z,1,\n",  # no offset
        b"ev-1,home,2026-03-03T10:00:00Z,2026-03-03T11:00:00z,1,\n",  # lower-case z
        b'"ev-1",home,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1,\n',  # quoted
        b",home,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1,\n",  # no resource
        b"ev-1,home,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,,\n",  # no kWh
        b"ev-1,home,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,0x10,\n",  # hex
        b"ev-1,home,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,NaN,\n",
        b"ev-1,home,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1\n",  # a field short
        b"\n",  # blank
        b"x" * 201 + b",home,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1,\n",  # id too long
    ],
)
def test_it_sends_any_other_row_the_checked_way(row: bytes) -> None:
    pattern = parse_header(HEADER).plain_record()
    assert not is_plain(GOOD + row + GOOD, pattern)


def test_it_finds_the_one_odd_row_past_the_first_piece() -> None:
    pattern = parse_header(HEADER).plain_record()
    chunk = GOOD * 200 + GOOD.replace(b"Z,", b",", 1) + GOOD * 5
    assert is_plain(GOOD * 200, pattern, piece=1000)
    assert not is_plain(chunk, pattern, piece=1000)


def test_it_follows_the_header_order() -> None:
    pattern = parse_header(b"kWh,end,start,resourceId").plain_record()
    assert is_plain(b"1,2026-03-03T11:00:00Z,2026-03-03T10:00:00Z,ev-1\n", pattern)
    assert not is_plain(b"ev-1,2026-03-03T10:00:00Z,2026-03-03T11:00:00Z,1\n", pattern)
