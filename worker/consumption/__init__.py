"""Consumption: the partner's readings of what its resources used, from three ways in
(`POST /consumption` on the ingress, `spark-partner consumption import FILE.csv`, and the
`consumption.ingest_readings` task for partner code), stored so that a re-sent reading
replaces the one before. Reports split them into a curve's periods (worker/reports).

What a valid reading is lives in `shared/readings.py` (standard library only), so that the
ingress checks a body by the same rules without importing the worker.
"""
