"""`python -m bench --quick`: every benchmark runs at a tiny size and prints its baseline, its
figure and their ratio. Nothing here judges a figure: at these sizes they mean nothing, and
timings are never asserted (the benchmarks' targets are checked by `make bench`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from bench.__main__ import BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]


def test_it_runs_every_benchmark_and_prints_its_three_figures(
    redis_server_url: str, postgres_server_url: str
) -> None:
    parts = urlsplit(redis_server_url)
    command = [
        sys.executable, "-m", "bench", "--quick",
        "--redis-url", f"{parts.scheme}://{parts.netloc}",
        "--database-url", postgres_server_url,
    ]  # fmt: skip
    process = subprocess.run(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        timeout=1200,
        check=False,
    )
    # 2: a target missed, which at these sizes says nothing; 1 would be a benchmark failing.
    assert process.returncode in {0, 2}, process.stdout[-4000:]
    summary = process.stdout.split("=== summary", 1)[1]
    for module, _, _ in BENCHMARKS:
        kinds = [line.split()[1] for line in summary.splitlines() if line.startswith(module + " ")]
        assert kinds == ["baseline", "figure", "ratio"], (module, summary)
