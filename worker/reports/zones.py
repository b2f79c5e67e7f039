"""The time zone whose month an event is reported in, by the event's price area.

Spark pays per month, and a report counts only if Spark has it by the end of its event's
month plus the grace. The month is the price area's: the Norwegian, Swedish and Danish areas
keep Central European time (CET/CEST), Finland keeps Eastern European time, so a Finnish
month ends an hour before an Oslo one. Areas not listed here use SPARK_TIMEZONE.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

# Price area prefix -> zone. The Nordic CET zones have kept the same rules since 1980, so any
# of them stands for CET/CEST; each country's own is named for readability.
AREA_ZONES: dict[str, str] = {
    "NO": "Europe/Oslo",
    "SE": "Europe/Stockholm",
    "DK": "Europe/Copenhagen",
    "FI": "Europe/Helsinki",
}


def area_zone(price_area: str, fallback: ZoneInfo) -> ZoneInfo:
    """The zone of `price_area`'s month; `fallback` (SPARK_TIMEZONE) for an unknown area."""
    for prefix, zone in AREA_ZONES.items():
        if price_area.upper().startswith(prefix):
            return ZoneInfo(zone)
    return fallback


def zone_params() -> dict[str, list[str]]:
    """AREA_ZONES for the named queries that pick a report's zone set-wise."""
    return {"area_prefixes": list(AREA_ZONES), "area_zones": list(AREA_ZONES.values())}
