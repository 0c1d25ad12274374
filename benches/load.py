"""Launch day: a thousand clients at once against one web process and one worker, on PostgreSQL and Redis.

Starts Daphne and `celery -A config worker --pool threads --concurrency 100` as compose.yaml does (each
with its pool of DB_POOL_MAX_SIZE connections), on a throwaway PostgreSQL database with ten users whose
credits pay for 400 images in all, then opens `--clients` connections at the same moment, each submitting
one generation through `POST /api/v1/tasks`. It samples the database's connections every 50 ms, waits
until every accepted generation has ended, and checks the money.

The images come from a fake OpenAI Images API in this process (`--engine upstream`, the default, answering
after `--upstream-latency` seconds), as in production, where the upstream's drawing costs this machine
nothing; `--engine local` has the offline engine draw them in the worker, on the same two cores as the web
process it is measuring.

It prints the figures and exits non-zero unless: no 5xx, no connection reset or timeout, every paid-for
submission accepted (402 only for those really short of credits), submit p99 <= `--max-p99` seconds,
every generation ended, the connections within `--max-connections`, and every balance equal to its ledger.

    .venv/bin/python benches/load.py --clients 1000

DATABASE_URL names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432); REDIS_URL the Redis
(default redis://127.0.0.1:6379/14, else an embedded one). docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
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
    BenchFailed,
    FakeUpstream,
    create_postgres_database,
    redis_url_for_bench,
    stop_process,
)

USERS = 10
IMAGES_PER_USER = 40  # credits for 400 images in all
PRICE = 100

SEED = """
import json
from accounts.models import ApiKey
from accounts.services import personal_workspace, user_signup
keys = []
for n in range({users}):
    user = user_signup(username=f"load{{n}}", email=f"load{{n}}@example.com", password="load bench secret 1")
    _, secret = ApiKey.issue(user=user, workspace=personal_workspace(user), name="load")
    keys.append(secret)
print("KEYS " + json.dumps(keys))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(
    database_url: str, redis_url: str, data_dir: Path, queue: str, upstream_url: str = ""
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OPENAI_", "DB_POOL"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        STUDIO_DATA_DIR=str(data_dir),
        CELERY_QUEUE=queue,
        STUDIO_PROVIDER="local",
        LOCAL_PROVIDER_STEP_SECONDS="0.05",
        API_RATE_LIMIT_PER_MINUTE="1000000",
        SIGNUP_BONUS_CREDITS=str(IMAGES_PER_USER * PRICE),
        CREDITS_PER_IMAGE=str(PRICE),
        DB_POOL_MAX_SIZE=os.environ.get("DB_POOL_MAX_SIZE", "20"),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(ROOT),
    )
    if upstream_url:
        env.update(STUDIO_PROVIDER="openai", OPENAI_API_KEY="bench", OPENAI_BASE_URL=upstream_url)
    return env


def manage(env: dict[str, str], *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode:
        raise BenchFailed(f"manage.py {' '.join(arguments)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


def wait_for(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise BenchFailed(f"{url} never answered:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def start_web(env: dict[str, str], data_dir: Path, stack: contextlib.ExitStack) -> str:
    """Daphne serving the studio (listen backlog 2,048), stopped with the stack; its URL once it answers."""
    port = free_port()
    log = data_dir / "web.log"
    web = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-e", f"tcp:port={port}:interface=127.0.0.1:backlog=2048",
         "config.asgi:application"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    stack.callback(stop_process, web)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/healthz", web, log)
    return base


def start_worker(env: dict[str, str], data_dir: Path, stack: contextlib.ExitStack, concurrency: int):
    """`celery -A config worker --pool threads` on the bench's queue (CELERY_QUEUE), stopped with the stack"""
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "threads",
         "--concurrency", str(concurrency), "-Q", env["CELERY_QUEUE"], "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=(data_dir / "worker.log").open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    stack.callback(stop_process, worker)
    return worker


class ConnectionSampler(threading.Thread):
    """The database's connections (all processes) every 50 ms, from a connection of its own."""

    def __init__(self, database_url: str) -> None:
        super().__init__(daemon=True)
        self.database_url = database_url.replace("postgres://", "postgresql://", 1)
        self.name_of_database = database_url.rsplit("/", 1)[1]
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            while not self.stopped.is_set():
                (count,) = connection.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                    [self.name_of_database],
                ).fetchone()
                self.peak = max(self.peak, count)
                time.sleep(0.05)


async def submit_all(base: str, keys: list[str], clients: int) -> list[tuple[str, float]]:
    """Every client opens its own connection and submits at the same moment; (outcome, seconds) each."""
    start = asyncio.Event()
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=0)

    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one(number: int) -> tuple[str, float]:
            await start.wait()
            began = time.monotonic()
            try:
                response = await client.post(
                    "/api/v1/tasks",
                    json={"prompt": f"a lantern number {number}", "size": "1024x1024", "quality": "low"},
                    headers={"Authorization": f"Bearer {keys[number % len(keys)]}"},
                )
                outcome = str(response.status_code)
                if not response.headers.get("content-type", "").startswith("application/json"):
                    outcome += " (not JSON)"
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            return outcome, time.monotonic() - began

        tasks = [asyncio.create_task(one(number)) for number in range(clients)]
        await asyncio.sleep(0.5)
        start.set()
        return await asyncio.gather(*tasks)


def settle(database_url: str, timeout: float) -> tuple[Counter, float]:
    """Wait until no generation is queued or running; the statuses, and how long it took."""
    began = time.monotonic()
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as db:
        while True:
            statuses = Counter(dict(db.execute("SELECT status, count(*) FROM studio_generation GROUP BY 1")))
            if not statuses.get("queued") and not statuses.get("running"):
                return statuses, time.monotonic() - began
            if time.monotonic() - began > timeout:
                return statuses, time.monotonic() - began
            time.sleep(0.5)


def ledger_mismatches(database_url: str) -> list[str]:
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as db:
        rows = db.execute(
            "SELECT u.username, u.credits, coalesce(sum(l.amount), 0) FROM accounts_user u"
            " LEFT JOIN accounts_ledgerentry l ON l.user_id = u.id GROUP BY u.id ORDER BY u.username"
        ).fetchall()
    return [f"{name}: balance {credits}, ledger {total}" for name, credits, total in rows if credits != total]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--max-p99", type=float, default=2.0)
    parser.add_argument("--max-connections", type=int, default=80, help="of PostgreSQL's 100")
    parser.add_argument("--engine", choices=("upstream", "local"), default="upstream")
    parser.add_argument("--upstream-latency", type=float, default=2.0, help="seconds (2)")
    args = parser.parse_args()

    with contextlib.ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="studio-load-"))
        database_url, drop = create_postgres_database(os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES)
        stack.callback(drop)
        redis_url, redis_kind = redis_url_for_bench(stack, data_dir)
        queue = f"bench-load-{uuid.uuid4().hex[:6]}"
        upstream_url = ""
        if args.engine == "upstream":
            upstream = stack.enter_context(FakeUpstream(latency=args.upstream_latency))
            upstream_url = upstream.base_url
        env = environment(database_url, redis_url, data_dir, queue, upstream_url)
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        seeded = manage(env, "shell", "-c", SEED.format(users=USERS))
        keys = json.loads(next(line for line in seeded.splitlines() if line.startswith("KEYS "))[5:])

        start_worker(env, data_dir, stack, concurrency=100)
        base = start_web(env, data_dir, stack)

        sampler = ConnectionSampler(database_url)
        sampler.start()
        began = time.monotonic()
        results = asyncio.run(submit_all(base, keys, args.clients))
        submit_wall = time.monotonic() - began
        statuses, settle_seconds = settle(database_url, timeout=600)
        sampler.stopped.set()
        sampler.join()
        mismatches = ledger_mismatches(database_url)

    outcomes = Counter(outcome for outcome, _ in results)
    latencies = [seconds for _, seconds in results]
    affordable = min(args.clients, USERS * IMAGES_PER_USER)
    figures = {
        "clients": args.clients,
        "answers": dict(sorted(outcomes.items())),
        "submit p50 s": round(statistics.median(latencies), 3),
        "submit p99 s": round(percentile(latencies, 0.99), 3),
        "submit max s": round(max(latencies), 3),
        "submit wall s": round(submit_wall, 2),
        "generations": dict(statuses),
        "all ended after s": round(settle_seconds, 1),
        "peak database connections": sampler.peak,
        "balances equal to ledgers": not mismatches,
        "redis": redis_kind,
        "engine": args.engine if args.engine == "local" else f"fake upstream, {args.upstream_latency} s",
    }
    print(json.dumps(figures, indent=2))
    problems = []
    if any(
        outcome.startswith("5") or not outcome[:1].isdigit() or "not JSON" in outcome for outcome in outcomes
    ):
        problems.append(f"5xx, non-JSON or failed connections: {dict(outcomes)}")
    if outcomes.get("202", 0) != affordable:
        problems.append(f"{outcomes.get('202', 0)} accepted, {affordable} were paid for")
    if outcomes.get("402", 0) != args.clients - affordable:
        problems.append(f"{outcomes.get('402', 0)} answered 402, {args.clients - affordable} were short")
    if figures["submit p99 s"] > args.max_p99:
        problems.append(f"submit p99 {figures['submit p99 s']} s > {args.max_p99} s")
    if statuses.get("queued") or statuses.get("running") or statuses.get("succeeded", 0) != affordable:
        problems.append(f"generations did not all end drawn: {dict(statuses)}")
    if sampler.peak > args.max_connections:
        problems.append(f"{sampler.peak} database connections > {args.max_connections}")
    problems += mismatches
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
