"""Limitation of power consumption (LPC): Spark's caps on resources and locations."""
