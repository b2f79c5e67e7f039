"""`spark-partner status` and `spark-partner serve-metrics`."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from worker.cli.base import print_json, settings_or_fail


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """One line per thing to watch, each ok, warn or act. Exit 0 all ok, 1 warn, 2 act."""
    from worker.ops.health import exit_code, judge, overall, snapshot_now

    settings = settings_or_fail()
    now = datetime.now(UTC)
    lines = judge(snapshot_now(settings, now), settings)
    if as_json:
        print_json(
            {"at": now, "level": overall(lines), "checks": [line.to_json() for line in lines]}
        )
    else:
        width = max((len(line.name) for line in lines), default=0)
        for line in lines:
            click.echo(f"{line.level:<4}  {line.name:<{width}}  {line.summary}")
    raise SystemExit(exit_code(lines))


@click.command("serve-metrics")
@click.option("--host", default=None, help="Address to bind (default: METRICS_HOST).")
@click.option("--port", default=None, type=int, help="Port (default: METRICS_PORT, 9102).")
def serve_metrics(host: str | None, port: int | None) -> None:
    """Serve the ledgers, queues and beat's heartbeat as Prometheus metrics, read at each
    scrape from PostgreSQL and Redis, on http://HOST:PORT/metrics."""
    from prometheus_client import CollectorRegistry, start_http_server

    from worker.ops.health import snapshot_now
    from worker.ops.ledger_metrics import LedgerCollector

    settings = settings_or_fail()
    registry = CollectorRegistry()
    registry.register(LedgerCollector(lambda now: snapshot_now(settings, now)))
    address = host or settings.metrics_host
    server, thread = start_http_server(
        settings.metrics_port if port is None else port, address, registry
    )
    click.echo(f"serving metrics on http://{address}:{server.server_port}/metrics", err=True)
    thread.join()
