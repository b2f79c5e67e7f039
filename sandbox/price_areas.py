"""Spark's price areas, the currency each one's curves are quoted in, and the area a
neighbourhood gets when its configuration names none."""

from __future__ import annotations

PRICE_AREA_CURRENCIES = {
    "NO1": "NOK",
    "NO2": "NOK",
    "NO3": "NOK",
    "NO4": "NOK",
    "NO5": "NOK",
    "SE1": "SEK",
    "SE2": "SEK",
    "SE3": "SEK",
    "SE4": "SEK",
    "DK1": "DKK",
    "DK2": "DKK",
    "FI": "EUR",
}
# Svalbard, where Spark's sandbox test areas lie, is priced with northern Norway.
DEFAULT_PRICE_AREA = "NO4"


def currency_of(price_area: str) -> str:
    return PRICE_AREA_CURRENCIES[price_area]
