"""A 4K generation in a worker: its peak memory, and whether its image work holds up the worker's others.

Starts a fake OpenAI Images API in this process (`--latency` 2 s) answering with realistic images (a
3840x2160 PNG of ~13 MB, a 1024x1024 one of ~1.7 MB), Daphne and `celery -A config worker --pool threads
--concurrency 20` on a throwaway PostgreSQL database, and then:

1. **Memory**: for each way of answering (plain JSON, and streamed with one partial image), one 3840x2160
   generation alone: the worker's peak RSS (`VmHWM`, reset through `/proc/<pid>/clear_refs` just before)
   over its RSS just before, against the decoded image (3840 x 2160 x 3 bytes = 24.9 MB). Three runs each,
   the largest kept.
2. **No stall**: a steady stream of 1024x1024 generations (`--small` at once, each submitted when the last
   ended) for `--seconds`, first alone, then while 4K generations run beside them (`--big` at once); the
   small ones' storage time (from the answer's arrival to the commit, `Generation.storage_ms`) and their
   upstream time, p50 / p95 / max, side by side.

    .venv/bin/python benches/bigimage.py
    .venv/bin/python benches/bigimage.py --quick      # one memory run each, 5 s of stream: a smoke run

DATABASE_URL names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432); REDIS_URL the Redis
(default redis://127.0.0.1:6379/14, else an embedded one). With `--max-ratio` it exits non-zero when a peak
is above that many decoded images.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from inflight import (  # noqa: E402
    DEFAULT_POSTGRES,
    BenchFailed,
    CountingUpstream,
    create_postgres_database,
    fake_upstream,
    proc_status,
    realistic_image,
    redis_url_for_bench,
)
from load import SEED, environment, manage, percentile, start_web, start_worker  # noqa: E402

DECODED_4K = 3840 * 2160 * 3


def kib(value: str) -> int:
    return int(value.split()[0]) * 1024


def submit(client: httpx.Client, key: str, size: str, partial_images: int = 0) -> str:
    response = client.post(
        "/api/v1/tasks",
        json={
            "prompt": f"a harbour, {size}",
            "size": size,
            "quality": "low",
            "partial_images": partial_images,
        },
        headers={"Authorization": f"Bearer {key}"},
    )
    if response.status_code != 202:
        raise BenchFailed(f"submitting {size}: {response.status_code} {response.text[:300]}")
    return response.json()["id"]


def wait_ended(database_url: str, ids: list[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as db:
        while time.monotonic() < deadline:
            (left,) = db.execute(
                "SELECT count(*) FROM studio_generation"
                " WHERE id = ANY(%s) AND status IN ('queued', 'running')",
                [ids],
            ).fetchone()
            if not left:
                (failed,) = db.execute(
                    "SELECT count(*) FROM studio_generation WHERE id = ANY(%s) AND status <> 'succeeded'",
                    [ids],
                ).fetchone()
                if failed:
                    raise BenchFailed(f"{failed} generation(s) did not succeed")
                return
            time.sleep(0.05)
    raise BenchFailed("generations did not end in time")


def peak_over_baseline(worker_pid: int, run) -> tuple[int, int]:
    """(peak RSS over the RSS just before, the RSS just before), in bytes, around `run()`."""
    time.sleep(0.5)
    Path(f"/proc/{worker_pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    before = kib(proc_status(worker_pid)["VmRSS"])
    run()
    return kib(proc_status(worker_pid)["VmHWM"]) - before, before


def small_stream(client, key, database_url, at_once: int, seconds: float, stop: threading.Event) -> list[str]:
    """Keep `at_once` 1024x1024 generations going for `seconds`; their ids."""
    ids: list[str] = []
    running: list[str] = []
    deadline = time.monotonic() + seconds
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as db:
        while time.monotonic() < deadline and not stop.is_set():
            if running:
                ended = {
                    str(row[0])
                    for row in db.execute(
                        "SELECT id FROM studio_generation WHERE id = ANY(%s)"
                        " AND status NOT IN ('queued', 'running')",
                        [running],
                    )
                }
                running = [generation for generation in running if generation not in ended]
            while len(running) < at_once:
                generation = submit(client, key, "1024x1024")
                running.append(generation)
                ids.append(generation)
            time.sleep(0.05)
    wait_ended(database_url, ids)
    return ids


def timings(database_url: str, ids: list[str]) -> dict[str, str]:
    with psycopg.connect(database_url.replace("postgres://", "postgresql://", 1), autocommit=True) as db:
        rows = db.execute(
            "SELECT storage_ms, upstream_latency_ms FROM studio_generation WHERE id = ANY(%s)", [ids]
        ).fetchall()

    def spread(values: list[float]) -> str:
        return (
            f"{statistics.median(values):.0f} / {percentile(values, 0.95):.0f} / {max(values):.0f} ms"
            if values
            else "-"
        )

    return {
        "generations": str(len(rows)),
        "storage p50 / p95 / max": spread([row[0] for row in rows if row[0] is not None]),
        "upstream p50 / p95 / max": spread([row[1] for row in rows if row[1] is not None]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--latency", type=float, default=2.0, help="seconds the fake upstream takes (2)")
    parser.add_argument("--runs", type=int, default=3, help="memory runs per way of answering (3)")
    parser.add_argument("--small", type=int, default=4, help="1024x1024 generations kept going at once (4)")
    parser.add_argument("--big", type=int, default=2, help="4K generations at once beside them (2)")
    parser.add_argument("--seconds", type=float, default=20, help="each half of the stall run (20)")
    parser.add_argument("--max-ratio", type=float, default=0, help="fail above this many decoded images")
    parser.add_argument("--quick", action="store_true", help="one memory run each, 5 s of stream")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seconds = 1, 5

    fake_upstream.make_image = realistic_image
    for size in ((3840, 2160), (1024, 1024)):  # drawn before any clock starts
        for colour in (*fake_upstream._PARTIAL_COLOURS, *fake_upstream._FINAL_COLOURS):
            realistic_image(size, "png", colour)
    figures: dict = {"cores": os.cpu_count(), "decoded 4K image MB": round(DECODED_4K / 1e6, 1)}
    problems = []
    with contextlib.ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="studio-bigimage-"))
        stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
        database_url, drop = create_postgres_database(os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES)
        stack.callback(drop)
        redis_url, _ = redis_url_for_bench(stack, data_dir)
        upstream = stack.enter_context(CountingUpstream(latency=args.latency))
        queue = f"bench-big-{uuid.uuid4().hex[:6]}"
        env = environment(database_url, redis_url, data_dir, queue, upstream.base_url)
        env["SIGNUP_BONUS_CREDITS"] = str(10**9)
        manage(env, "migrate", "--noinput")
        manage(env, "collectstatic", "--noinput")
        seeded = manage(env, "shell", "-c", SEED.format(users=1))
        key = json.loads(next(line for line in seeded.splitlines() if line.startswith("KEYS "))[5:])[0]

        worker = start_worker(env, data_dir, stack, concurrency=20)
        base = start_web(env, data_dir, stack)
        client = stack.enter_context(httpx.Client(base_url=base, timeout=60))

        # A warm-up of each size: imports, pools and Pillow's plugins are not the figure.
        wait_ended(database_url, [submit(client, key, "1024x1024"), submit(client, key, "3840x2160", 1)])

        memory = {}
        for label, partials in (("plain", 0), ("streamed, 1 partial image", 1)):
            peaks = []
            for _ in range(args.runs):
                peak, before = peak_over_baseline(
                    worker.pid,
                    lambda p=partials: wait_ended(database_url, [submit(client, key, "3840x2160", p)]),
                )
                peaks.append(peak)
            worst = max(peaks)
            memory[label] = {
                "peak over baseline MB (each run)": [round(peak / 1e6, 1) for peak in peaks],
                "decoded images": round(worst / DECODED_4K, 2),
                "RSS before MB": round(before / 1e6),
            }
            if args.max_ratio and worst / DECODED_4K > args.max_ratio:
                problems.append(f"{label}: peak {worst / DECODED_4K:.2f} decoded images > {args.max_ratio}")
        figures["memory per 4K generation"] = memory

        stop = threading.Event()
        alone = small_stream(client, key, database_url, args.small, args.seconds, stop)
        big_ids: list[str] = []

        def big_stream() -> None:
            with httpx.Client(base_url=base, timeout=60) as own:
                while not stop.is_set():
                    batch = [submit(own, key, "3840x2160", 1) for _ in range(args.big)]
                    big_ids.extend(batch)
                    wait_ended(database_url, batch)

        beside = threading.Thread(target=big_stream)
        beside.start()
        time.sleep(args.latency)  # the first 4K answers are due as the small stream starts
        together = small_stream(client, key, database_url, args.small, args.seconds, threading.Event())
        stop.set()
        beside.join()
        figures["1024x1024 generations"] = {
            "alone": timings(database_url, alone),
            f"beside {args.big} 4K at once": timings(database_url, together),
            "4K generations meanwhile": timings(database_url, big_ids),
        }

    print(json.dumps(figures, indent=2))
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
