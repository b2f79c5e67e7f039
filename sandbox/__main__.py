"""`python -m sandbox`: run the local Spark sandbox until interrupted.

Everything comes from the command line; the sandbox reads no environment variables.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.app import SandboxConfig, serve
from sandbox.config import (
    DEFAULT_CHANGED_CURVE_PROBABILITY,
    DEFAULT_DAILY_CURVE_HOUR,
    DEFAULT_ELIGIBILITY_WINDOW,
    DEFAULT_REPORT_GRACE_SECONDS,
)
from sandbox.neighbourhoods import DEFAULT_NEIGHBOURHOODS, Neighbourhood, load_neighbourhoods


def _delays(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds like 1,2,4, got {text!r}") from None
    if any(value < 0 for value in values):
        raise argparse.ArgumentTypeError("delays cannot be negative")
    return values


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _lpc_every(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None
    if not 60 <= value <= 7 * 86400:
        raise argparse.ArgumentTypeError("must be from 60 to 604800 seconds")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("must be from 0 to 1")
    return value


def _hour(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 23:
        raise argparse.ArgumentTypeError(f"expected an hour from 0 to 23, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("cannot be negative")
    return value


def _timezone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown time zone {text!r}") from None
    return text


def _neighbourhoods(text: str) -> tuple[Neighbourhood, ...]:
    try:
        return load_neighbourhoods(Path(text))
    except (OSError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox", description="Local stand-in for Volue Spark's partner API."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100, help="0 picks a free port")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument(
        "--delivery-delays",
        type=_delays,
        default=(1.0, 2.0, 4.0),
        help="seconds between webhook delivery retries, comma separated (default 1,2,4)",
    )
    parser.add_argument(
        "--delivery-timeout", type=_positive, default=10.0, help="seconds per delivery attempt"
    )
    parser.add_argument(
        "--emit-every",
        type=_positive,
        default=None,
        metavar="SECONDS",
        help="simulate an event every SECONDS (user eligibility and price curve in turn)",
    )
    parser.add_argument("--token-ttl", type=_positive, default=3600.0, metavar="SECONDS")
    parser.add_argument("--timezone", type=_timezone, default="Europe/Oslo")
    parser.add_argument("--seed", type=int, default=None, help="seed for simulated data")
    parser.add_argument(
        "--neighbourhoods",
        type=_neighbourhoods,
        default=DEFAULT_NEIGHBOURHOODS,
        metavar="FILE.json",
        help='grid neighbourhoods, {"neighbourhoods": [...]} (default: two Svalbard areas)',
    )
    parser.add_argument(
        "--eligibility-window",
        type=_positive,
        default=DEFAULT_ELIGIBILITY_WINDOW,
        metavar="SECONDS",
        help="collect eligibility changes this long before sending one event (default 600)",
    )
    parser.add_argument(
        "--no-daily-curves",
        dest="daily_curves",
        action="store_false",
        help="do not send price curves when the sandbox clock passes the daily hour",
    )
    parser.add_argument(
        "--daily-curve-hour",
        type=_hour,
        default=DEFAULT_DAILY_CURVE_HOUR,
        metavar="HOUR",
        help="local hour of the daily price curves (default 13)",
    )
    parser.add_argument(
        "--changed-curve-probability",
        type=_probability,
        default=DEFAULT_CHANGED_CURVE_PROBABILITY,
        metavar="P",
        help="chance of a changed curve two hours after a daily one (default 0.2)",
    )
    parser.add_argument(
        "--report-grace-seconds",
        type=_seconds,
        default=DEFAULT_REPORT_GRACE_SECONDS,
        metavar="SECONDS",
        help="reports are accepted this long after the end of their event's month (default 1 day)",
    )
    parser.add_argument(
        "--lpc-every",
        type=_lpc_every,
        default=None,
        metavar="SECONDS",
        help="run the LPC schedule every SECONDS of sandbox time (default: off; at least 60)",
    )
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    config = SandboxConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_ttl=args.token_ttl,
        delivery_delays=args.delivery_delays,
        delivery_timeout=args.delivery_timeout,
        emit_every=args.emit_every,
        timezone=args.timezone,
        seed=args.seed,
        neighbourhoods=args.neighbourhoods,
        eligibility_window=args.eligibility_window,
        daily_curves=args.daily_curves,
        daily_curve_hour=args.daily_curve_hour,
        changed_curve_probability=args.changed_curve_probability,
        report_grace_seconds=args.report_grace_seconds,
        lpc_every=args.lpc_every,
    )
    try:
        running = serve(config, host=args.host, port=args.port, quiet=args.quiet)
    except OSError as exc:
        sys.stderr.write(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}\n")
        return 1
    stopping = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # Tests and scripts read this line to learn the port when started with --port 0.
    sys.stdout.write(
        f"Spark sandbox listening on {running.root_url}\n"
        f"  API base URL: {running.base_url}\n"
        f"  token URL:    {running.token_url}\n"
    )
    sys.stdout.flush()
    try:
        stopping.wait()
    finally:
        running.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
