"""Every benchmark in turn: `python -m bench [--quick]` (what `make bench` runs).

Each runs in a process of its own and prints its baseline, its figure and their ratio from
one run (bench.support.print_result); the ratios are repeated at the end. --quick runs tiny
sizes: it shows that each benchmark runs, and its figures mean nothing.
Exits 0 when every benchmark ran and met its target, 2 when one missed it, 1 when one failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

# (module, its options at full size, its options for --quick); each module's defaults are the
# sizes the issue names (100k targets, 1M users, 10,000 reports, ...).
BENCHMARKS: list[tuple[str, list[str], list[str]]] = [
    ("bench.ingress", [], ["--seconds", "1", "--warmup", "0.5", "--rounds", "1"]),
    ("bench.processing", [], ["--events", "40", "--rounds", "1"]),
    ("bench.consumption", [], ["--resources", "200", "--hours", "2", "--rounds", "1"]),
    ("bench.reports", [], ["--targets", "300", "--rounds", "1"]),
    ("bench.eligibility", [], ["--users", "2000"]),
    ("bench.sweep", [], ["--reports", "30"]),
    ("bench.curves", [], ["--targets", "300"]),
]
REDIS_DATABASES = {"bench.ingress": 14, "bench.processing": 12, "bench.curves": 13}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379", help="no database")
    parser.add_argument("--only", action="append", help="run only this one (e.g. bench.sweep)")
    args = parser.parse_args(argv)

    summary: list[str] = []
    worst = 0
    for module, full, quick in BENCHMARKS:
        if args.only and module not in args.only:
            continue
        command = [sys.executable, "-m", module, *(quick if args.quick else full)]
        if module in REDIS_DATABASES:
            command += ["--redis-url", f"{args.redis_url.rstrip('/')}/{REDIS_DATABASES[module]}"]
        if module != "bench.ingress":
            command += ["--database-url", args.database_url]
        print(f"\n=== {module} ({time.strftime('%H:%M:%S')})", flush=True)
        process = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        sys.stdout.write(process.stdout)
        lines = [line for line in process.stdout.splitlines() if line.startswith(module + "  ")]
        summary += lines or [f"{module}  FAILED (exit {process.returncode})"]
        worst = max(worst, {0: 0, 2: 2}.get(process.returncode, 1) if lines else 1)
    print("\n=== summary")
    print("\n".join(summary))
    return 1 if worst == 1 else worst


if __name__ == "__main__":
    raise SystemExit(main())
