"""Every benchmark, one after the other: `make bench` (the figures of docs/benchmarks.md; about an hour on two
cores) or `make bench-quick` (`--quick`: each on a small load with no timing criteria, a smoke run of a few
minutes that CI runs too). Each bench starts what it needs (fake upstreams, Daphne, workers) and a
throwaway PostgreSQL database on DATABASE_URL's server (default postgres://postgres@127.0.0.1:5432).

    .venv/bin/python benches/all.py [--quick] [--only NAME ...]

Exits non-zero if any bench did; prints each one's output and how long it took.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name: (the full run, the quick one)
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    name: (full.split(), quick.split())
    for name, full, quick in [
        ("images", "", "--repeat 2"),
        (
            "inflight",
            "--generations 1000 --concurrency 1000 --min-in-flight 0 --timeout 900",
            "--generations 20 --concurrency 20 --min-in-flight 20 --latency 2 --image flat",
        ),
        ("submit", "", "--quick"),
        ("overhead", "", "--quick"),
        ("bigimage", "", "--quick"),
        ("fanout", "", "--quick"),
        ("scaleout", "--concurrency 100 --image flat", "--quick"),
        ("load", "", "--clients 50 --max-p99 3600"),
        ("gallery", "--postgres", "--images 300 --requests 3"),
    ]
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), default=list(BENCHES))
    args = parser.parse_args()
    failed = []
    for name in args.only:
        full, quick = BENCHES[name]
        command = [sys.executable, str(ROOT / "benches" / f"{name}.py"), *(quick if args.quick else full)]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        began = time.monotonic()
        code = subprocess.call(command, cwd=ROOT)
        print(f"=== {name}: exit {code} in {time.monotonic() - began:.0f} s", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
