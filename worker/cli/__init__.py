"""`spark-partner`: the operator's command line. `--json` prints machine-readable output.

One module per command group; each is attached to `main` here.
"""

from __future__ import annotations

from worker.cli.base import main
from worker.cli.consumption import consumption
from worker.cli.curves import curves
from worker.cli.db import db
from worker.cli.eligibility import eligibility
from worker.cli.events import dead_letters, events
from worker.cli.lpc import lpc
from worker.cli.meters import meters
from worker.cli.reports import reports
from worker.cli.status import serve_metrics, status
from worker.cli.users import users
from worker.cli.webhooks import webhooks

for group in (db, events, dead_letters, webhooks):
    main.add_command(group)
main.add_command(users)
main.add_command(meters)
main.add_command(eligibility)
main.add_command(curves)
main.add_command(consumption)
main.add_command(reports)
main.add_command(lpc)
main.add_command(status)
main.add_command(serve_metrics)

__all__ = ["main"]
