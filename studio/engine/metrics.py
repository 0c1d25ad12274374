"""The engine's figures for Prometheus, and how a process without an HTTP endpoint (worker, beat) shows them.

Each process keeps its own counters (prometheus-client's registry) and writes a snapshot of them to Redis
every `SNAPSHOT_SECONDS`, under a key that expires after `SNAPSHOT_TTL_SECONDS`: a process that died drops out
on its own. The web's `/metrics` (config.metrics) merges every live snapshot, its own figures and the
database's, so any one node answers for the whole studio, however many machines it runs on.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator

from django.conf import settings
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

logger = logging.getLogger(__name__)
disable_created_metrics()  # no *_created series: a counter's start is not a figure anyone charts

SNAPSHOT_SECONDS = 15.0
SNAPSHOT_TTL_SECONDS = 60
SNAPSHOT_PREFIX = "studio:metrics:"

UPSTREAM_LATENCY = Histogram(
    "studio_upstream_latency_seconds",
    "Time of one upstream attempt, by provider account and outcome",
    ["account", "outcome"],
    buckets=(1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
ATTEMPTS = Counter(
    "studio_upstream_attempts", "Upstream attempts, by provider account and outcome", ["account", "outcome"]
)
IN_FLIGHT = Gauge("studio_generations_in_flight", "Generations this worker process is running")
QUEUE_WAIT = Histogram(
    "studio_queue_wait_seconds",
    "From a generation's submission to a worker's claim",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
)

# Kept here with the rest, so that every series exists (at zero) in every process, whatever it imported.
OPEN_SOCKETS = Gauge("studio_websocket_connections", "Open websocket connections of this web process")


def process_name(role: str) -> str:
    return f"{role}:{socket.gethostname()}:{os.getpid()}"


def _redis():  # type: ignore[no-untyped-def]
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def publish_snapshot(role: str) -> None:
    """This process's figures, for the web's /metrics to gather (never raises: metrics are not the job)."""
    try:
        _redis().set(SNAPSHOT_PREFIX + process_name(role), generate_latest(REGISTRY), ex=SNAPSHOT_TTL_SECONDS)
    except Exception:
        logger.warning("could not publish this process's metrics", exc_info=True)


def read_snapshots(skip: str = "") -> Iterator[tuple[str, str]]:
    """(process, exposition text) of every live process but `skip`."""
    client = _redis()
    names = sorted(key.decode() for key in client.scan_iter(match=SNAPSHOT_PREFIX + "*", count=500))
    names = [name for name in names if name != SNAPSHOT_PREFIX + skip]
    for name, text in zip(names, client.mget(names) if names else [], strict=True):
        if text is not None:  # expired between the scan and the read
            yield name.removeprefix(SNAPSHOT_PREFIX), text.decode()


_started: set[str] = set()
_started_lock = threading.Lock()


def start_snapshots(role: str) -> None:
    """Publish this process's figures now and every SNAPSHOT_SECONDS, from a daemon thread (once)."""
    with _started_lock:
        if role in _started:
            return
        _started.add(role)

    def loop() -> None:
        stop = threading.Event()
        while True:
            publish_snapshot(role)
            stop.wait(SNAPSHOT_SECONDS)

    threading.Thread(target=loop, name=f"metrics-{role}", daemon=True).start()
