"""Consumption: the partner's readings of what its resources used, from three ways in
(`POST /consumption` on the ingress, `spark-partner consumption import FILE.csv`, and the
`consumption.ingest_readings` task for partner code), stored so that a re-sent reading
replaces the one before. Reports split them into a curve's periods (worker/reports).

`readings` has no imports beyond the standard library: the ingress uses it to check a body
without touching the worker or the database.
"""
