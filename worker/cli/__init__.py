"""`spark-partner`: the operator's command line. `--json` prints machine-readable output.

One module per command group; each is attached to `main` here.
"""

from __future__ import annotations

from worker.cli.base import main
from worker.cli.db import db
from worker.cli.events import dead_letters, events
from worker.cli.webhooks import webhooks

for group in (db, events, dead_letters, webhooks):
    main.add_command(group)

__all__ = ["main"]
