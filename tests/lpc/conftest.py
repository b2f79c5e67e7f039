"""Fixtures of the LPC tests: the partner's control system stand-in (the http dispatcher's
receiver), shared with the price-curve tests."""

from tests.curves.control import control

__all__ = ["control"]
