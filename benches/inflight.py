"""Many in flight: one Celery worker process holding a hundred generations at once.

Starts, as production does, `celery -A config worker --pool threads --concurrency 120` as a subprocess,
points its `openai` provider at a fake OpenAI Images API that answers every request after `--latency`
seconds, submits `--generations` generations through `studio.engine.services.generation_submit`, and samples
every half second:

- generations running (their status in the database),
- requests the fake upstream holds open at that moment (what really is in flight),
- database connections held by the worker (PostgreSQL: `pg_stat_activity` rows whose application_name is
  `studio-worker`, not idle in its pool; SQLite: the worker's open file descriptors on the database file,
  an upper bound),
- the worker's resident memory, CPU time and thread count (`/proc/<pid>/status` and `stat`).

It prints a markdown table and exits non-zero if fewer than `--min-in-flight` requests were in flight at
the peak, if any generation did not succeed, or if the worker held more than `--max-waiting-connections`
database connections while its generations were waiting on the upstream.

    .venv/bin/python benches/inflight.py --generations 100 --latency 20

Database: a throwaway PostgreSQL database `studio_bench_<random>`, migrated with `manage.py migrate` and
dropped at the end, on the server DATABASE_URL names (default postgres://postgres@127.0.0.1:5432);
`--database sqlite` uses a throwaway SQLite file instead. Redis: REDIS_URL (for example the embedded one
`python -m studio.management.embedded_redis` starts), else redis://127.0.0.1:6379/14, else an embedded Redis
started here. The worker consumes a queue of its own, so it never takes another process's tasks. Everything
(worker, fake upstream, database, Redis keys, temporary directory) is cleaned up, on failure and on timeout
too. docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import fake_upstream  # noqa: E402
from tests.fake_upstream import FakeUpstream, _Handler  # noqa: E402

# The fake draws every answer with Pillow (~25 ms a 1024x1024 PNG, twice per streamed request). A hundred
# answers due at the same moment would queue ~5 s on this process's GIL and be charged to the worker; the
# images depend only on size, format and colour, so draw each once.
_flat_image = functools.lru_cache(maxsize=64)(fake_upstream.make_image)


@functools.lru_cache(maxsize=64)
def realistic_image(size: tuple[int, int], output_format: str, colour: tuple[int, int, int]) -> bytes:
    """What the model sends: a picture that compresses like a photograph, ~2 MB as a 1024x1024 PNG (a
    gradient under noise), not a flat square of a few kilobytes. Drawn once per size, format and colour."""
    import io

    from PIL import Image, ImageChops

    gradient = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 20)
    tint = [ImageChops.add(gradient, noise.point(lambda v, k=k: v // k)) for k in (8, 6)]
    picture = Image.merge("RGB", (*tint, ImageChops.add(noise, gradient.point(lambda v: v // 4))))
    picture = ImageChops.multiply(picture, Image.new("RGB", size, tuple(128 + c // 2 for c in colour)))
    buffer = io.BytesIO()
    picture.save(buffer, {"jpeg": "JPEG", "webp": "WEBP"}.get(output_format, "PNG"))
    return buffer.getvalue()


fake_upstream.make_image = _flat_image

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
WORKER_APP = "studio-worker"
BENCH_APP = "studio-bench"
# Room for every worker connection arriving at once; socketserver's default listen backlog is 5.
LISTEN_BACKLOG = 1024


class BenchFailed(Exception):
    pass


class CriteriaNotMet(BenchFailed):
    """The run went through, and its figures miss the mark."""


class HardTimeout(BaseException):
    """Raised by SIGALRM; a BaseException so no `except Exception` on the way swallows it."""


# The fake upstream, counting what it holds open.


class _CountingHandler(_Handler):
    def do_POST(self) -> None:
        upstream: CountingUpstream = self.server.upstream  # type: ignore[assignment]
        started = time.monotonic()
        upstream.request_started()
        try:
            super().do_POST()
        finally:
            upstream.request_finished(time.monotonic() - started)


class CountingUpstream(FakeUpstream):
    """tests.fake_upstream.FakeUpstream that also times the requests it is answering, and when the most were
    open at once. (Its own counters are named apart from FakeUpstream's `in_flight`, which counts too.)"""

    def __init__(self, **options):
        super().__init__(**options)
        self.open_requests = 0
        self.peak_open = 0
        self.started = 0
        self.finished = 0
        self.durations: list[float] = []
        # time.monotonic() of the first request, and of the moment the peak was first reached.
        self.first_request_at = 0.0
        self.peak_reached_at = 0.0
        self._count_lock = threading.Lock()

    def start(self) -> CountingUpstream:
        super().start()
        assert self._server is not None
        # Swapped before any request can arrive; the server reads it per request.
        self._server.RequestHandlerClass = _CountingHandler
        self._server.socket.listen(LISTEN_BACKLOG)
        return self

    def request_started(self) -> None:
        with self._count_lock:
            self.started += 1
            self.open_requests += 1
            now = time.monotonic()
            self.first_request_at = self.first_request_at or now
            if self.open_requests > self.peak_open:
                self.peak_open, self.peak_reached_at = self.open_requests, now

    def request_finished(self, seconds: float) -> None:
        with self._count_lock:
            self.open_requests -= 1
            self.finished += 1
            self.durations.append(seconds)


# Processes and resources, each undone by the cleanup stack.


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def create_postgres_database(server_url: str) -> tuple[str, callable]:
    """A fresh database `studio_bench_<random>` on the server of `server_url`; returns its URL and a drop."""
    import psycopg

    parts = urlsplit(server_url)
    name = f"studio_bench_{uuid.uuid4().hex[:8]}"
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    admin_url = urlunsplit((scheme, parts.netloc, "/postgres", parts.query, ""))
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        raise BenchFailed(
            f"cannot create a database on {parts.hostname}:{parts.port or 5432} ({error}). "
            "Set DATABASE_URL to a PostgreSQL server, or use --database sqlite."
        ) from error

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, "")), drop


def redis_url_for_bench(stack: contextlib.ExitStack, data_dir: Path) -> tuple[str, str]:
    """REDIS_URL if set, else the local server on a database of its own, else an embedded Redis."""
    import redis

    if url := os.environ.get("REDIS_URL"):
        return url, f"REDIS_URL ({urlsplit(url).scheme})"
    try:
        redis.Redis.from_url(DEFAULT_REDIS, socket_connect_timeout=1).ping()
        return DEFAULT_REDIS, "local server"
    except redis.RedisError:
        from studio.management.embedded_redis import EmbeddedRedis

        server = stack.enter_context(EmbeddedRedis(data_dir / "redis"))
        return server.url, "embedded (started by the bench)"


def stop_process(process: subprocess.Popen, grace: float = 10) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def proc_status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def rss_mib(pid: int) -> float:
    value = proc_status(pid).get("VmRSS", "0 kB").split()[0]
    return int(value) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process, all its threads, so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files_on(pid: int, path: Path) -> int:
    """File descriptors of `pid` on the SQLite database (one per connection)."""
    count = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(entry.path) == str(path):
                    count += 1
    return count


# Measurements.


@dataclass
class Sample:
    at: float
    running: int
    finished: int
    upstream_in_flight: int
    worker_connections: int
    rss_mib: float
    cpu_seconds: float
    threads: int
    redis_clients: int


@dataclass
class Run:
    samples: list[Sample] = field(default_factory=list)
    # The first submission, or with --backlog the worker's start.
    started_at: float = 0.0
    submit_seconds: float = 0.0
    finished_at: float = 0.0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--generations", type=int, default=100, help="generations to submit (100)")
    parser.add_argument("--latency", type=float, default=20.0, help="seconds the upstream takes (20)")
    parser.add_argument("--partial-images", type=int, default=1, choices=(0, 1, 2, 3), help="(1)")
    parser.add_argument(
        "--image",
        choices=("realistic", "flat"),
        default="realistic",
        help="what the fake answers: a ~2 MB 1024x1024 PNG like the model's (default), or a flat square",
    )
    parser.add_argument("--concurrency", type=int, default=120, help="worker threads (120)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, each --concurrency (1)")
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--min-in-flight", type=int, default=100, help="fail below this peak (100)")
    parser.add_argument(
        "--max-waiting-connections",
        type=int,
        default=5,
        help="fail if the worker holds more DB connections while its generations wait upstream (5)",
    )
    parser.add_argument(
        "--backlog",
        action="store_true",
        help="submit everything first, then start the worker (a restart onto a full queue)",
    )
    parser.add_argument(
        "--skip-waiting-check",
        action="store_true",
        help="do not require a moment when every generation waited upstream at once (a throughput run)",
    )
    parser.add_argument("--interval", type=float, default=0.5, help="sampling interval in seconds (0.5)")
    parser.add_argument("--timeout", type=float, default=180, help="hard limit for the whole run (180 s)")
    args = parser.parse_args(argv)
    if args.min_in_flight > args.generations:
        parser.error("--min-in-flight cannot exceed --generations")

    def on_alarm(signum, frame):
        raise HardTimeout(f"the bench hit its hard timeout of {args.timeout:.0f} s")

    def on_stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_stop)
    signal.alarm(int(args.timeout))
    try:
        with contextlib.ExitStack() as stack:
            try:
                return bench(args, stack)
            finally:
                signal.alarm(0)  # the cleanup that follows must not be cut short
    except (BenchFailed, HardTimeout) as failure:
        print(f"\nFAILED: {failure}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; cleaned up", file=sys.stderr)
        return 130


def bench(args: argparse.Namespace, stack: contextlib.ExitStack) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    stack.callback(shutil.rmtree, data_dir, ignore_errors=True)
    tag = uuid.uuid4().hex[:8]

    fake_upstream.make_image = realistic_image if args.image == "realistic" else _flat_image
    # Drawn now, once: drawn on first use, every request due at the same moment would draw its own copy.
    for colour in (*fake_upstream._PARTIAL_COLOURS, *fake_upstream._FINAL_COLOURS):
        fake_upstream.make_image((1024, 1024), "png", colour)
    upstream = CountingUpstream(latency=args.latency, partial_images_sent=args.partial_images)
    stack.enter_context(upstream)

    redis_url, redis_source = redis_url_for_bench(stack, data_dir)
    if args.database == "postgres":
        database_url, drop = create_postgres_database(os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES)
        stack.callback(drop)
        sqlite_path = None
        database = f"PostgreSQL, throwaway database {urlsplit(database_url).path[1:]}"
        worker_database_url = _with_query(database_url, application_name=WORKER_APP)
        bench_database_url = _with_query(database_url, application_name=BENCH_APP)
    else:
        sqlite_path = (data_dir / "studio.sqlite3").resolve()
        database = "SQLite (WAL), throwaway file"
        worker_database_url = bench_database_url = ""

    queue = f"bench-{tag}"
    settings_env = {
        "STUDIO_DATA_DIR": str(data_dir),
        "REDIS_URL": redis_url,
        "CHANNELS_PREFIX": f"bench{tag}",
        "OPENAI_API_KEY": "bench",
        "OPENAI_BASE_URL": upstream.base_url,
        "STUDIO_PROVIDER": "openai",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    # Nothing of the caller's may point the bench elsewhere: a NAME_FILE wins over NAME in the settings.
    replaced = {*settings_env, "DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT"}
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in replaced and key.removesuffix("_FILE") not in replaced
    }
    env.update(settings_env)
    worker_env = dict(env)
    if worker_database_url:
        worker_env["DATABASE_URL"] = worker_database_url
        env["DATABASE_URL"] = bench_database_url

    print(f"database: {database}; redis: {redis_source}; upstream: {upstream.base_url}", file=sys.stderr)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=worker_env,
        check=True,
        timeout=120,
    )

    # This process submits, as the web process would: same settings, its own connection name.
    os.environ.clear()
    os.environ.update(env)
    import django

    django.setup()
    from django.db import connection, connections

    stack.callback(connections.close_all)
    from config.celery import app as celery_app

    # The settings' name is what Celery reads (CELERY namespace): set both.
    celery_app.conf.update(CELERY_TASK_DEFAULT_QUEUE=queue, task_default_queue=queue)
    stack.callback(_forget_queue, redis_url, queue)

    log_path = data_dir / "worker.log"
    worker = WorkerGroup(
        [
            WorkerProcess(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO",
                 "--pool", "threads", "--concurrency", str(args.concurrency), "--queues", queue,
                 "--hostname", f"bench-{tag}-{number}@%h",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                env=worker_env,
                log_path=log_path if number == 0 else data_dir / f"worker-{number}.log",
            )
            for number in range(args.workers)
        ]
    )  # fmt: skip
    stack.callback(worker.stop)
    try:
        run = measure(args, upstream, worker, sqlite_path, redis_url)
        return report(args, run, upstream, database, redis_source)
    except CriteriaNotMet:
        raise
    except BaseException:
        connection.close()
        if log_path.exists():
            print(f"\n--- last lines of the worker log ({log_path}) ---", file=sys.stderr)
            lines = log_path.read_text(errors="replace").splitlines()[-25:]
            print("\n".join(line[:300] for line in lines), file=sys.stderr)
        raise


class WorkerProcess:
    """`celery -A config worker` as a subprocess leading its own process group, logging to a file."""

    def __init__(self, command: list[str], *, env: dict[str, str], log_path: Path):
        self.command, self.env, self.log_path = command, env, log_path
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def check_alive(self, when: str) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise BenchFailed(f"the worker exited with code {self.process.returncode} {when}")

    def wait_until_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive("before it was ready")
            if " ready." in self.log_path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        raise BenchFailed("the worker was not ready within a minute")

    def stop(self, grace: float = 10) -> None:
        if self.process is not None:
            stop_process(self.process, grace)


class WorkerGroup:
    """Several WorkerProcess on one queue, started, watched and stopped together; the figures are summed."""

    def __init__(self, workers: list[WorkerProcess]):
        self.workers = workers

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]

    def start(self) -> None:
        for worker in self.workers:
            worker.start()

    def wait_until_ready(self, timeout: float = 60) -> None:
        for worker in self.workers:
            worker.wait_until_ready(timeout)

    def check_alive(self, when: str) -> None:
        for worker in self.workers:
            worker.check_alive(when)

    def stop(self, grace: float = 10) -> None:
        for worker in self.workers:
            worker.stop(grace)


def _forget_queue(redis_url: str, queue: str) -> None:
    """Remove the bench queue's keys, and the messages of a worker stopped mid-task, from the broker."""
    import json

    from kombu import Connection

    from config.settings import _celery_broker_url

    with contextlib.suppress(Exception), Connection(_celery_broker_url(redis_url)) as broker:
        client = broker.default_channel.client
        # The queue itself (and kombu's priority lists beside it) and its bindings.
        client.delete(
            *[queue + suffix for suffix in ("", "\x06\x163", "\x06\x166", "\x06\x169")],
            f"_kombu.binding.{queue}",
            f"_kombu.binding_permanent.{queue}",
        )
        # Tasks the worker held unacknowledged (acks_late) when it was stopped: kombu would restore them to
        # a queue nobody consumes.
        for tag, payload in client.hscan_iter("unacked"):
            with contextlib.suppress(ValueError, TypeError):
                _message, exchange, routing_key = json.loads(payload)
                if queue in (exchange, routing_key):
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)


def measure(args, upstream: CountingUpstream, worker: WorkerGroup, sqlite_path, redis_url: str) -> Run:
    import redis
    from django.db import connection
    from django.db.models import Count

    from accounts import ledger
    from accounts.models import EntryKind
    from accounts.services import user_signup
    from studio.engine.services import generation_submit, price_list
    from studio.engine.spec import GenerationSpec
    from studio.models import ACTIVE_STATUSES, Generation, Status

    if not args.backlog:
        worker.start()
        worker.wait_until_ready()
    redis_client = (
        redis.Redis(unix_socket_path=urlsplit(redis_url).path)
        if redis_url.startswith("unix://")
        else redis.Redis.from_url(redis_url)
    )

    user = user_signup(
        username=f"bench-{uuid.uuid4().hex[:6]}", email="bench@example.com", password=uuid.uuid4().hex
    )
    membership = user.memberships.select_related("workspace", "user").get(workspace__is_personal=True)
    spec = GenerationSpec.build(prompt="a lighthouse at dusk, bench", partial_images=args.partial_images)
    ledger.adjust(
        user=user, amount=price_list().cost(spec) * args.generations, kind=EntryKind.GRANT, reason="bench"
    )

    def worker_connections() -> int:
        if sqlite_path is not None:
            return sum(open_files_on(pid, sqlite_path) for pid in worker.pids)
        with connection.cursor() as cursor:
            cursor.execute(
                # Held: in a query or a transaction. An idle one sits in the worker's pool, held by no one.
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = %s AND state <> 'idle'",
                [WORKER_APP],
            )
            return cursor.fetchone()[0]

    run = Run()
    submitting = time.monotonic()
    for number in range(args.generations):
        generation_submit(membership=membership, spec=spec, idempotency_key=f"bench-{number}")
    run.submit_seconds = time.monotonic() - submitting
    print(f"submitted {args.generations} generations in {run.submit_seconds:.1f} s", file=sys.stderr)
    if args.backlog:
        # A worker (re)starting onto a full queue: every task is claimed at once.
        run.started_at = time.monotonic()
        worker.start()
    else:
        run.started_at = submitting

    while True:
        tick = time.monotonic()
        worker.check_alive("during the run")
        counts = dict(
            Generation.objects.filter(author=user).values_list("status").annotate(n=Count("pk")).order_by()
        )
        statuses = [proc_status(pid) for pid in worker.pids]
        if sqlite_path is not None:
            connection.close()  # the sampler's own connection must not hold SQLite's files or locks
        sample = Sample(
            at=tick - run.started_at,
            running=counts.get(Status.RUNNING, 0),
            finished=sum(n for key, n in counts.items() if key not in ACTIVE_STATUSES),
            upstream_in_flight=upstream.open_requests,
            worker_connections=worker_connections(),
            rss_mib=sum(rss_mib(pid) for pid in worker.pids),
            cpu_seconds=sum(cpu_seconds(pid) for pid in worker.pids),
            threads=sum(int(status.get("Threads", "0")) for status in statuses),
            redis_clients=int(redis_client.info("clients").get("connected_clients", 0)),
        )
        run.samples.append(sample)
        print(
            f"t={sample.at:5.1f}s running={sample.running:3d} upstream={sample.upstream_in_flight:3d} "
            f"done={sample.finished:3d} worker_db={sample.worker_connections:3d} "
            f"rss={sample.rss_mib:.0f}MiB threads={sample.threads} redis_clients={sample.redis_clients}",
            file=sys.stderr,
        )
        if sample.finished >= args.generations:
            run.finished_at = time.monotonic()
            break
        time.sleep(max(0.0, args.interval - (time.monotonic() - tick)))
    redis_client.close()
    return run


def report(args, run: Run, upstream: CountingUpstream, database: str, redis_source: str) -> int:
    from django.db.models import Count

    from studio.models import Generation, Status

    generations = list(Generation.objects.order_by("created_at"))
    outcomes = dict(Generation.objects.values_list("status").annotate(n=Count("pk")).order_by())
    succeeded = outcomes.get(Status.SUCCEEDED, 0)
    total = [(g.finished_at - g.created_at).total_seconds() for g in generations if g.finished_at]
    queued = [(g.started_at - g.created_at).total_seconds() for g in generations if g.started_at]
    upstream_ms = [g.upstream_latency_ms / 1000 for g in generations if g.upstream_latency_ms is not None]
    attempts = sum(g.attempts for g in generations)

    samples = run.samples
    # "Waiting": every submitted generation's request is open upstream; nothing else happens meanwhile.
    waiting = [
        s for s in samples if s.upstream_in_flight >= min(args.generations, args.concurrency * args.workers)
    ]
    peak_connections = max(s.worker_connections for s in samples)
    mean_connections = statistics.fmean(s.worker_connections for s in samples)
    waiting_peak = max((s.worker_connections for s in waiting), default=0)
    waiting_mean = statistics.fmean(s.worker_connections for s in waiting) if waiting else 0.0
    wall = run.finished_at - run.started_at
    cpu = samples[-1].cpu_seconds - samples[0].cpu_seconds

    def dist(values: list[float]) -> str:
        if not values:
            return "n/a"
        return (
            f"p50 {percentile(values, 0.5):.1f} s, p90 {percentile(values, 0.9):.1f} s, "
            f"p99 {percentile(values, 0.99):.1f} s, max {max(values):.1f} s"
        )

    image_megabytes = len(fake_upstream.make_image((1024, 1024), "png", (200, 30, 30))) / 1e6
    rows = [
        ("Generations submitted / succeeded", f"{args.generations} / {succeeded}"),
        ("Upstream attempts (requests answered)", f"{attempts} ({upstream.finished})"),
        ("Upstream latency (fake, per request)", f"{args.latency:g} s, partial images {args.partial_images}"),
        ("Upstream image (1024x1024 PNG)", f"{image_megabytes:.2f} MB ({args.image})"),
        ("Worker", f"{args.workers} process(es), `--pool threads --concurrency {args.concurrency}` each"),
        ("**Peak upstream requests in flight**", f"**{upstream.peak_open}**"),
        ("Peak generations running (status)", str(max(s.running for s in samples))),
        (
            "**Worker DB connections while waiting** (peak / mean)",
            f"**{waiting_peak} / {waiting_mean:.2f}** over {len(waiting)} samples",
        ),
        ("Worker DB connections, whole run (peak / mean)", f"{peak_connections} / {mean_connections:.2f}"),
        (
            "**Wall time**, " + ("worker start" if args.backlog else "first submit") + " to last finished",
            f"**{wall:.1f} s**",
        ),
        (
            "**Throughput** (generations finished a second over the wall time)",
            f"**{args.generations / wall:.2f}**",
        ),
        (f"Submitting ({args.generations} transactions, enqueue on commit)", f"{run.submit_seconds:.1f} s"),
        (
            "Peak in flight reached after / first upstream request to last finished",
            f"{upstream.peak_reached_at - run.started_at:.1f} s / "
            f"{run.finished_at - upstream.first_request_at:.1f} s",
        ),
        ("Per generation: created to finished", dist(total)),
        ("Per generation: queued (created to started)", dist(queued)),
        ("Per generation: upstream latency (recorded by the runner)", dist(upstream_ms)),
        ("Per request: open at the fake upstream", dist(upstream.durations)),
        (
            "Worker RSS (start of run / peak / end)",
            f"{samples[0].rss_mib:.0f} / {max(s.rss_mib for s in samples):.0f} / "
            f"{samples[-1].rss_mib:.0f} MiB",
        ),
        (
            "Worker CPU time during the run (per generation)",
            f"{cpu:.1f} s ({cpu / args.generations * 1000:.0f} ms) on {os.cpu_count()} cores",
        ),
        ("Worker threads (peak)", str(max(s.threads for s in samples))),
        ("Redis clients, whole server (peak)", str(max(s.redis_clients for s in samples))),
        ("Database / Redis", f"{database} / {redis_source}"),
    ]
    print(f"THROUGHPUT {args.generations / wall:.4f}", file=sys.stderr)
    print()
    print("| Measure | Value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print()

    problems = []
    if upstream.peak_open < args.min_in_flight:
        problems.append(f"only {upstream.peak_open} requests were in flight at the peak")
    if succeeded != args.generations:
        failures = [
            f"{g.status}: {g.error_code} {g.error}" for g in generations if g.status != Status.SUCCEEDED
        ]
        problems.append(f"{args.generations - succeeded} generations did not succeed: {failures[:5]}")
    if not waiting:
        if not args.skip_waiting_check:
            problems.append("no sample saw every generation waiting on the upstream at once")
    elif waiting_peak > args.max_waiting_connections:
        problems.append(
            f"the worker held {waiting_peak} DB connections while its generations waited "
            f"(limit {args.max_waiting_connections})"
        )
    if problems:
        raise CriteriaNotMet("; ".join(problems))
    print("PASSED", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
