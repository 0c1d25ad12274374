"""Start the whole studio: web (Daphne), Celery worker, Celery beat, and an embedded Redis when REDIS_URL is
not set. Ctrl-C (SIGINT) or SIGTERM stops every child; if one child dies, the others are stopped too."""

import fcntl
import os
import signal
import subprocess
import sys
import time
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from studio.management.embedded_redis import EmbeddedRedis

STOP_GRACE_SECONDS = 10


class Command(BaseCommand):
    help = "Run web, worker, beat (and an embedded Redis) together, as `make run` does."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--concurrency", type=int, default=settings.CELERY_WORKER_CONCURRENCY)
        parser.add_argument("--no-beat", action="store_true", help="Do not start Celery beat.")

    def handle(
        self, *args: Any, host: str, port: int, concurrency: int, no_beat: bool, **options: Any
    ) -> None:
        # One studio per data directory: a second would share (and pull away) the first one's embedded Redis.
        lock = open(settings.DATA_DIR / "runstudio.lock", "w")  # noqa: SIM115  (held for the whole run)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise CommandError(f"Another studio is already running on {settings.DATA_DIR}.") from error
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        redis_server = None
        env = dict(os.environ)
        if not os.environ.get("REDIS_URL"):
            redis_server = EmbeddedRedis(settings.DATA_DIR / "redis").start()
            env["REDIS_URL"] = redis_server.url
            self.stdout.write(f"embedded Redis on {redis_server.socket}")
        env["STUDIO_DATA_DIR"] = str(settings.DATA_DIR)

        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        exit_code = 0
        try:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)
            python = sys.executable
            self._spawn(
                "web", [python, "-m", "daphne", "-b", host, "-p", str(port), "config.asgi:application"], env
            )
            self._spawn(
                "worker",
                [python, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO",
                 "--pool", settings.CELERY_WORKER_POOL, "--concurrency", str(concurrency),
                 "--hostname", f"worker-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
                env,
            )  # fmt: skip
            if not no_beat:
                self._spawn(
                    "beat",
                    [python, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                     "--schedule", settings.CELERY_BEAT_SCHEDULE_FILENAME],
                    env,
                )  # fmt: skip
            database = "PostgreSQL" if "postgres" in settings.DATABASES["default"]["ENGINE"] else "SQLite"
            self.stdout.write(
                self.style.SUCCESS(
                    f"Studio is running at http://{host}:{port}/ (provider: {settings.STUDIO_PROVIDER}, "
                    f"database: {database}). Press Ctrl-C to stop."
                )
            )
            while not self.stopping:
                for name, process in self.children:
                    if process.poll() is not None:
                        self.stderr.write(
                            f"{name} exited with code {process.returncode}; stopping the studio"
                        )
                        exit_code = 1
                        self.stopping = True
                        break
                time.sleep(0.5)
        finally:
            self._stop_children()
            if redis_server:
                redis_server.stop()
        if exit_code:
            sys.exit(exit_code)

    def _spawn(self, name: str, command: list[str], env: dict) -> None:
        # Each child leads its own process group, so stopping it stops whatever it started too.
        process = subprocess.Popen(command, env=env, start_new_session=True)
        self.children.append((name, process))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _stop_children(self) -> None:
        for _, process in self.children:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, process in self.children:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} did not stop in time; killing it")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.stdout.write("Studio stopped.")
