"""`python -m devstack.supervise -- COMMAND...`: run COMMAND, and start it again whenever it
exits without having been asked to stop.

The Procfile runs the worker and beat under this, because honcho (and foreman) stop every
process when one exits: a worker that dies of an unrecoverable broker error (kombu's Redis
transport, after Redis was killed under load) would otherwise take the whole `make run` down
with it. Compose needs none of this: Docker restarts its containers (`restart:
unless-stopped`). honcho has no restart option of its own.

- The command runs in this process group, so honcho's SIGTERM to the group reaches it
  directly; a SIGTERM, SIGQUIT or SIGHUP sent to this process alone is passed on as the same
  signal (SIGHUP as SIGTERM: to Celery, SIGHUP means "restart yourself"). Which of the two
  happened cannot be told apart, so a group signal reaches the command twice, within
  milliseconds: harmless to Celery, whose warm shutdown is then under way. (Passing it on
  only a second later, if the command still ran, was tried: the second copy then landed
  while Celery's Python was exiting, its handlers reset, and killed it: status 143.)
- SIGINT is not passed on: it comes from the terminal's Ctrl-C, which the command received
  too, and a second one would turn Celery's warm shutdown into a cold one.
- After a stop signal the command is not started again; this exits with its status.
- Restarts back off from 1 s to 30 s, and back to 1 s after a run of a minute or more, so a
  command that cannot start (Redis refusing connections, say) does not spin.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType

import click

Say = Callable[[str], None]

# Signals that stop the supervised command for good, and what it is sent for each.
_FORWARDED = {
    signal.SIGTERM: signal.SIGTERM,
    signal.SIGQUIT: signal.SIGQUIT,
    signal.SIGHUP: signal.SIGTERM,
    signal.SIGINT: None,
}


def _say(message: str) -> None:
    click.echo(f"supervise: {message}", err=True)


def supervise(
    command: Sequence[str],
    *,
    min_delay: float = 1.0,
    max_delay: float = 30.0,
    healthy_after: float = 60.0,
    say: Say = _say,
) -> int:
    """Run `command` until a stop signal; returns its last exit status."""
    stop = threading.Event()
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        stop.set()
        passed_on = _FORWARDED[signal.Signals(signum)]
        if passed_on is not None and child is not None and child.poll() is None:
            child.send_signal(passed_on)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        delay = min_delay
        status = 0
        name = command[0]
        while not stop.is_set():
            started = time.monotonic()
            child = subprocess.Popen(list(command))
            if stop.is_set():
                # A stop signal that arrived while the command was being started.
                child.send_signal(signal.SIGTERM)
            status = child.wait()
            if status < 0:  # killed by a signal: report it as a shell would
                status = 128 - status
            if stop.is_set():
                break
            ran = time.monotonic() - started
            if ran >= healthy_after:
                delay = min_delay
            say(
                f"{name} (pid {child.pid}) exited with status {status} after {ran:.0f}s;"
                f" starting it again in {delay:g}s"
            )
            if stop.wait(delay):
                break
            delay = min(delay * 2, max_delay)
        return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("--min-delay", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--max-delay", type=click.FloatRange(min=0), default=30.0, show_default=True)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def main(min_delay: float, max_delay: float, command: tuple[str, ...]) -> None:
    """Run COMMAND, and run it again when it exits on its own."""
    sys.exit(supervise(command, min_delay=min_delay, max_delay=max(min_delay, max_delay)))


if __name__ == "__main__":
    main()
