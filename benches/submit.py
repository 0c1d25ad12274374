"""How fast one web process takes generations, and how many open requests it holds while they are drawn.

1. **Submissions a second**: one Daphne process on a throwaway PostgreSQL database and Redis; `--clients`
   (32) keep-alive connections, in a load process of their own, post `POST /api/v1/tasks` back to back for
   `--seconds` (10), spread over ten users' keys. No worker runs meanwhile, so the web process has the
   machine's cores to itself but for PostgreSQL, Redis and the load. Then the money is checked: as many
   generations, spends and queued task messages as 202 answers, every balance equal to its ledger.
2. **Open requests**: a worker (`--pool threads --concurrency --waiters`) and a fake OpenAI Images API
   answering after `--latency` seconds (5) with a flat image; `--waiters` (1,000) OpenAI-API requests
   (`POST /v1/images/generations`, which wait for their image) opened at once, while a probe reads
   `GET /api/v1/tasks/<id>` every 100 ms. Reports answers by status, end-to-end p50 / p99 / max, and the
   probe's worst wait (a stall of the web process shows there).

    .venv/bin/python benches/submit.py                 # both parts
    .venv/bin/python benches/submit.py --quick         # 3 s of submissions and 50 waiters: a smoke run

DATABASE_URL names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432); REDIS_URL the Redis
(default redis://127.0.0.1:6379/14, else an embedded one). Exits non-zero when the money does not add up,
an answer is a 5xx or a connection fails, or (with `--min-rate`) the rate is under it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from inflight import (  # noqa: E402
    DEFAULT_POSTGRES,
    CountingUpstream,
    _forget_queue,
    create_postgres_database,
    redis_url_for_bench,
)
from load import (  # noqa: E402
    SEED,
    environment,
    ledger_mismatches,
    manage,
    percentile,
    settle,
    start_web,
    start_worker,
)

USERS = 10


def _hammer(base: str, keys: list[str], clients: int, seconds: float, out) -> None:
    """In a process of its own: `clients` connections submitting back to back for `seconds`."""

    async def run() -> tuple[Counter, list[float], float]:
        outcomes: Counter = Counter()
        latencies: list[float] = []
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            began = time.monotonic()
            deadline = began + seconds

            async def one(number: int) -> None:
                key = keys[number % len(keys)]
                sent = 0
                while time.monotonic() < deadline:
                    sent += 1
                    started = time.monotonic()
                    try:
                        response = await client.post(
                            "/api/v1/tasks",
                            json={"prompt": f"a kite {number}-{sent}", "size": "1024x1024", "quality": "low"},
                            headers={"Authorization": f"Bearer {key}"},
                        )
                        outcomes[str(response.status_code)] += 1
                    except httpx.HTTPError as error:
                        outcomes[type(error).__name__] += 1
                    latencies.append(time.monotonic() - started)

            await asyncio.gather(*(one(number) for number in range(clients)))
            return outcomes, latencies, time.monotonic() - began

    outcomes, latencies, wall = asyncio.run(run())
    out.send((dict(outcomes), latencies, wall))


def submissions(
    base: str, keys: list[str], clients: int, seconds: float
) -> tuple[Counter, list[float], float]:
    receiving, sending = multiprocessing.Pipe(duplex=False)
    load = multiprocessing.get_context("spawn").Process(
        target=_hammer, args=(base, keys, clients, seconds, sending)
    )
    load.start()
    outcomes, latencies, wall = receiving.recv()
    load.join()
    return Counter(outcomes), latencies, wall


async def waiters(base: str, keys: list[str], count: int) -> tuple[Counter, list[float], float]:
    """`count` OpenAI-API requests opened at once, each waiting for its image; a probe reads a task's status
    every 100 ms meanwhile. (answers, seconds each, the probe's longest wait)"""
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=600) as client:
        probe = await client.post(
            "/api/v1/tasks", json={"prompt": "a probe", "quality": "low"}, headers=_bearer(keys[0])
        )
        probe_id = probe.json()["id"]
        done = asyncio.Event()
        worst = 0.0

        async def watch() -> None:
            nonlocal worst
            while not done.is_set():
                started = time.monotonic()
                await client.get(f"/api/v1/tasks/{probe_id}", headers=_bearer(keys[0]))
                worst = max(worst, time.monotonic() - started)
                await asyncio.sleep(0.1)

        async def one(number: int) -> tuple[str, float]:
            started = time.monotonic()
            try:
                response = await client.post(
                    "/v1/images/generations",
                    json={"model": "gpt-image-2", "prompt": f"a boat {number}", "size": "1024x1024"},
                    headers=_bearer(keys[number % len(keys)]),
                )
                outcome = str(response.status_code)
                if response.status_code != 200:
                    outcome += " " + response.text[:160]
                elif not response.json()["data"][0].get("b64_json"):
                    outcome = "200 without an image"
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            return outcome, time.monotonic() - started

        prober = asyncio.create_task(watch())
        results = await asyncio.gather(*(one(number) for number in range(count)))
        done.set()
        await prober
    return Counter(outcome for outcome, _ in results), [seconds for _, seconds in results], worst


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def money(database_url: str, redis_url: str, queue: str) -> dict[str, int]:
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as db:
        (generations,) = db.execute("SELECT count(*) FROM studio_generation").fetchone()
        (spends,) = db.execute("SELECT count(*) FROM accounts_ledgerentry WHERE amount < 0").fetchone()
    from kombu import Connection

    from config.settings import _celery_broker_url

    with Connection(_celery_broker_url(redis_url)) as broker:
        queued = broker.default_channel.client.llen(queue)
    return {"generations": generations, "spends": spends, "queued task messages": queued}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--waiters", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=5.0, help="seconds the fake upstream takes (5)")
    parser.add_argument("--min-rate", type=float, default=0, help="fail under this many a second (0: report)")
    parser.add_argument("--quick", action="store_true", help="3 s of submissions, 50 waiters")
    parser.add_argument("--waiters-only", action="store_true", help="skip the submissions a second")
    parser.add_argument("--submissions-only", action="store_true", help="skip the open requests")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.waiters = 3, 50

    figures: dict = {"cores": os.cpu_count()}
    problems: list[str] = []
    with contextlib.ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="studio-submit-"))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        database_url, drop = create_postgres_database(os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES)
        stack.callback(drop)
        redis_url, _ = redis_url_for_bench(stack, data_dir)
        upstream = stack.enter_context(CountingUpstream(latency=args.latency))
        queue = f"bench-submit-{uuid.uuid4().hex[:6]}"
        stack.callback(_forget_queue, redis_url, queue)
        env = environment(database_url, redis_url, data_dir, queue, upstream.base_url)
        env["SIGNUP_BONUS_CREDITS"] = str(10**9)
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        seeded = manage(env, "shell", "-c", SEED.format(users=USERS))
        keys = json.loads(next(line for line in seeded.splitlines() if line.startswith("KEYS "))[5:])

        base = start_web(env, data_dir, stack)

        if not args.waiters_only:
            problems += part_submissions(args, figures, base, keys, database_url, redis_url, queue)
        if not args.submissions_only:
            problems += part_waiters(args, figures, base, keys, database_url, env, data_dir, stack, upstream)

    print(json.dumps(figures, indent=2))
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def part_submissions(args, figures, base, keys, database_url, redis_url, queue) -> list[str]:
    """Submissions a second, with no worker running."""
    problems = []
    outcomes, latencies, wall = submissions(base, keys, args.clients, args.seconds)
    accepted = outcomes.get("202", 0)
    figures["submissions"] = {
        "clients": args.clients,
        "answers": dict(outcomes),
        "accepted per second": round(accepted / wall, 1),
        "latency p50 / p99 ms": [round(statistics.median(latencies) * 1000, 1),
                                 round(percentile(latencies, 0.99) * 1000, 1)],
    }  # fmt: skip
    counted = money(database_url, redis_url, queue)
    figures["submissions"]["money"] = counted
    if set(outcomes) - {"202"}:
        problems.append(f"submissions answered other than 202: {dict(outcomes)}")
    if counted != {"generations": accepted, "spends": accepted, "queued task messages": accepted}:
        problems.append(f"{accepted} accepted, but {counted}")
    problems += ledger_mismatches(database_url)
    if args.min_rate and accepted / wall < args.min_rate:
        problems.append(f"{accepted / wall:.0f} submissions a second < {args.min_rate:.0f}")
    _forget_queue(redis_url, queue)
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as db:
        db.execute("UPDATE studio_generation SET status = 'canceled' WHERE status = 'queued'")

    return problems


def part_waiters(args, figures, base, keys, database_url, env, data_dir, stack, upstream) -> list[str]:
    """Open requests waiting for their images, a worker drawing them."""
    problems = []
    start_worker(env, data_dir, stack, concurrency=args.waiters + 10)
    time.sleep(3)
    began = time.monotonic()
    answers, seconds, worst = asyncio.run(waiters(base, keys, args.waiters))
    figures["open requests"] = {
        "requests": args.waiters,
        "upstream latency s": args.latency,
        "answers": dict(answers),
        "peak upstream requests in flight": upstream.peak_open,
        "end to end p50 / p99 / max s": [round(statistics.median(seconds), 2),
                                         round(percentile(seconds, 0.99), 2), round(max(seconds), 2)],
        "wall s": round(time.monotonic() - began, 1),
        "probe's longest wait s": round(worst, 3),
    }  # fmt: skip
    if set(answers) - {"200"}:
        problems.append(f"open requests answered other than 200: {dict(answers)}")
    statuses, _ = settle(database_url, timeout=120)
    figures["open requests"]["generations"] = dict(statuses)
    if statuses.get("queued") or statuses.get("running"):
        problems.append(f"generations left unfinished: {dict(statuses)}")
    problems += ledger_mismatches(database_url)
    return problems


if __name__ == "__main__":
    sys.exit(main())
