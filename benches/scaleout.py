"""Scale-out: the same work over one worker process and over several, on this machine; the throughput ratio.

Runs benches/inflight.py twice, each in a process of its own on a throwaway PostgreSQL database: first
`--generations` over one worker process, then `--workers` times as many over `--workers` processes (each
`--concurrency` threads), every generation submitted before the workers start (`--backlog`), so the
throughput (generations finished a second, from the workers' start to the last one finished) is the
workers', not the submitting's. Prints both and their ratio; with `--min-ratio` it exits non-zero under it.

    .venv/bin/python benches/scaleout.py                       # 1,000 on 1 process, 4,000 on 4
    .venv/bin/python benches/scaleout.py --quick               # 40 on 1, 160 on 4, 2 s upstream: a smoke run

On a machine with fewer cores than worker processes the ratio shows where the CPU ends: with the upstream's
time long next to the CPU each generation costs, processes add capacity in flight and the ratio nears
`--workers`; with realistic 2 MB images and a thousand in flight per process, two cores are the limit.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(generations: int, workers: int, args: argparse.Namespace) -> float:
    command = [
        sys.executable, str(ROOT / "benches" / "inflight.py"), "--backlog",
        "--generations", str(generations), "--workers", str(workers),
        "--concurrency", str(args.concurrency), "--latency", str(args.latency),
        "--partial-images", str(args.partial_images), "--image", args.image,
        "--min-in-flight", "0", "--max-waiting-connections", str(10 * workers), "--skip-waiting-check",
        "--timeout", str(args.timeout),
    ]  # fmt: skip
    print(f"$ {' '.join(command[1:])}", flush=True)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    print(result.stdout)
    found = re.search(r"^THROUGHPUT ([0-9.]+)$", result.stderr, re.MULTILINE)
    if result.returncode or not found:
        print(result.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"the run with {workers} worker(s) failed")
    return float(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--generations", type=int, default=1000, help="for one process (1,000)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=1000, help="threads per worker process (1,000)")
    parser.add_argument("--latency", type=float, default=20.0)
    parser.add_argument("--partial-images", type=int, default=1, choices=(0, 1, 2, 3))
    parser.add_argument("--image", choices=("realistic", "flat"), default="realistic")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--min-ratio", type=float, default=0)
    parser.add_argument("--quick", action="store_true", help="40 generations a process, 2 s upstream")
    args = parser.parse_args()
    if args.quick:
        args.generations, args.concurrency, args.latency, args.image = 40, 40, 2.0, "flat"

    one = run(args.generations, 1, args)
    many = run(args.generations * args.workers, args.workers, args)
    ratio = many / one
    print(
        f"throughput: {one:.2f}/s on 1 process, {many:.2f}/s on {args.workers}: ratio {ratio:.2f} "
        f"({args.image} images, {args.latency:g} s upstream, {args.concurrency} threads a process)"
    )
    if args.min_ratio and ratio < args.min_ratio:
        print(f"FAILED: ratio {ratio:.2f} < {args.min_ratio}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
