"""`python -m devstack.supervise`: the command is started again when it exits on its own, and
stopped for good by a stop signal, which it receives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.fixtures.services import REPO
from tests.waiting import wait_for

# A command that records each start, and each SIGTERM it receives, in a file; it exits with
# status 3 on its first two starts and then runs until SIGTERM (exiting 0).
COMMAND = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    log = Path(sys.argv[1])
    def term(signum, frame):
        # As Celery does once its warm shutdown is under way: a second SIGTERM (the group's
        # and the supervisor's copy) changes nothing.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with log.open("a") as f:
            f.write("term\\n")
        sys.exit(0)
    # The handler goes in before "start" is written: the test signals as soon as it reads
    # the third start, and a SIGTERM before the handler would kill the command (status 143).
    signal.signal(signal.SIGTERM, term)
    with log.open("a") as f:
        f.write("start\\n")
    starts = log.read_text().count("start")
    if starts <= 2:
        sys.exit(3)
    while True:
        time.sleep(0.05)
    """
)


def supervise(log: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "devstack.supervise", "--min-delay", "0.05", "--",
            sys.executable, "-c", COMMAND, str(log),
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        # Its own group, as honcho gives it: the signal below goes to the supervisor alone.
        start_new_session=True,
    )  # fmt: skip


def lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_it_starts_the_command_again_until_a_stop_signal_which_it_passes_on(
    tmp_path: Path,
) -> None:
    log = tmp_path / "starts"
    process = supervise(log)
    try:
        wait_for(lambda: lines(log) == ["start"] * 3, 20, "the third start")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)

    # The command got the SIGTERM (sent to the supervisor alone), exited 0, and was not
    # started again.
    assert lines(log) == ["start", "start", "start", "term"]
    assert process.returncode == 0
    assert stderr.count("exited with status 3") == 2
    assert "starting it again in 0.05s" in stderr
    assert "starting it again in 0.1s" in stderr


def test_it_stops_for_good_on_a_signal_to_the_whole_group(tmp_path: Path) -> None:
    # honcho stops a process by signalling its group: supervisor and command both receive it.
    log = tmp_path / "starts"
    process = supervise(log)
    try:
        wait_for(lambda: lines(log) == ["start"] * 3, 20, "the third start")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=20)

    assert lines(log)[:3] == ["start"] * 3
    assert set(lines(log)[3:]) == {"term"}
    assert process.returncode == 0
