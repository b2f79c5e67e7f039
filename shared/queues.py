"""Queue and task names that the ingress and the worker must agree on.

Task names are explicit and stable: renaming one would strand the messages already queued.
"""

from __future__ import annotations

# Short tasks that store incoming events; prefetch several, they finish in milliseconds.
INGEST_QUEUE = "ingest"
# Calls to Spark and other slow or rate-limited work; one message per process at a time.
SPARK_QUEUE = "spark"
# Handing price-curve plans to the partner's control system. Only one dispatch runs at a time
# (worker/curves/dispatch.py), so a slow or hanging control system holds up this queue and at
# most one worker process, never Spark calls or ingestion.
DISPATCH_QUEUE = "dispatch"

INGEST_EVENT_TASK = "events.ingest_event"
