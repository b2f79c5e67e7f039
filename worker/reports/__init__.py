"""Reports: the energy-usage reports that answer price curves, which is what the partner is
paid for.

- `ledger`: the outbox in PostgreSQL, one row per report (pending -> due -> sending -> sent,
  retrying, rejected, missed, empty), and the sweep that moves it on: plan reports for new
  curves, take back reports whose sender died, make due what is complete or what the
  month's final sweeps must send, mark missed what is past its deadline and alert once.
- `builder`: builds a report set-wise in SQL from the readings and the curve.
- `sender`: claims a due report (FOR UPDATE SKIP LOCKED, with a lease), sends it once
  (no client-side retries) and records Spark's answer; retries are rows in PostgreSQL.
- `deadlines`: what is pending per month and how long is left.
- `compensation`: Spark's compensation feedback for users with reports this month.
- `tasks`: the Celery tasks; `worker/schedule.py` has their beat entries.

Policy on unknown outcomes. Spark has no way to ask whether it stored a report (no GET), so
an attempt whose answer never came (connection dropped, timeout, worker killed mid-send) is
recorded as ambiguous and the report is sent again, with the same body and the same
Idempotency-Key: a missing report costs the month's compensation, while a duplicate is
visible (`ambiguous_attempts`; every accepted attempt is kept) and carries the same numbers
(the sandbox counts the latest report per event and target; Spark does not document its
rule). An answer that arrives after its attempt was given up is still recorded; an
acceptance then marks the report sent.
"""
