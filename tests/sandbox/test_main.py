"""`python -m sandbox`: the command line starts a working sandbox and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def test_it_serves_until_terminated() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--port",
            "0",
            "--client-id",
            "cli-client",
            "--client-secret",
            "cli-secret",
            "--delivery-delays",
            "0.1,0.2",
            "--quiet",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()
        assert first_line.startswith("Spark sandbox listening on http://127.0.0.1:")
        root = first_line.rsplit(" ", 1)[1].strip()
        token = requests.post(
            root + "/connect/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "cli-client",
                "client_secret": "cli-secret",
            },
            timeout=5,
        ).json()["access_token"]
        events = requests.get(
            root + "/energy-coordination/v1/events",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
        )
        assert events.status_code == 200

        process.send_signal(signal.SIGTERM)

        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def test_it_rejects_malformed_arguments() -> None:
    bad_arguments = (
        ["--delivery-delays", "one,two"],
        ["--timezone", "Mars/Olympus"],
        ["--eligibility-window", "0"],
        ["--neighbourhoods", "/nonexistent/areas.json"],
        ["--daily-curve-hour", "24"],
        ["--changed-curve-probability", "2"],
        ["--report-grace-seconds", "-1"],
        ["--lpc-every", "10"],
    )
    for bad in bad_arguments:
        result = subprocess.run(
            [sys.executable, "-m", "sandbox", "--client-id", "a", "--client-secret", "b", *bad],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

        assert result.returncode == 2
        assert bad[0] in result.stderr


def test_it_requires_client_credentials() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--port", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 2
    assert "--client-id" in result.stderr
