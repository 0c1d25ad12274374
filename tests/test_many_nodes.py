"""Several machines' worth of studio on this one: two Daphne nodes and two workers, each with a data directory
of its own, and one beat, sharing only PostgreSQL, Redis, the broker (Redis, or RabbitMQ) and an S3 server
(moto's). A generation submitted on node A is watched live on node B; the worker drawing it is killed and the
other finishes it (redelivery, then the takeover: the deadlines of config.settings, scaled down); its image,
written by a worker into the bucket, is served by both nodes; /metrics on either node sees every process;
and no process keeps anything on its own disk."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import ExitStack, suppress
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from websockets.sync.client import connect

from accounts import ledger
from accounts.models import ApiKey, EntryKind, LedgerEntry
from studio.engine.queue import RUN_GENERATION
from studio.models import Generation, Status
from tests import s3
from tests.conftest import IN_CI
from tests.helpers import personal_membership
from tests.studio.api.conftest import serving_studio
from tests.websocket import session_headers
from tests.workers import WorkerProcess, database_url, new_queue, wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[1]
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
# The order config.settings requires (heartbeat < takeover < redelivery, takeover + redelivery < stale), in
# seconds instead of minutes.
QUICK_DEADLINES = {
    "CELERY_VISIBILITY_TIMEOUT": "3",
    "GENERATION_TAKEOVER_SECONDS": "2",
    "GENERATION_STALE_SECONDS": "100",
    "OPENAI_TIMEOUT_SECONDS": "0.2",
    "OPENAI_TIMEOUT_4K_SECONDS": "0.2",
    "GENERATION_RETRY_BACKOFF_SECONDS": "0.1",
}
METRICS_TOKEN = "many-nodes-metrics-token"


def broker_url(kind: str) -> str:
    if kind == "redis":
        return settings.CELERY_BROKER_URL
    host, port = "127.0.0.1", 5672
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as error:
        if IN_CI:
            pytest.fail(
                f"RabbitMQ is not reachable on {host}:{port} ({error}): CI runs the broker tests on it"
            )
        print(
            f"\n*** SKIPPING THE RABBITMQ BROKER TEST: nothing on {host}:{port} ({error}) ***\n",
            file=sys.stderr,
        )
        pytest.skip(f"RabbitMQ is not reachable on {host}:{port}")
    return RABBITMQ_URL


class Beat:
    """`celery -A config beat`, the deployment's one scheduler."""

    def __init__(self, data_dir: Path, schedule: Path, environment: dict[str, str]) -> None:
        env = {key: value for key, value in os.environ.items() if not key.startswith("OPENAI_")}
        env.update(DATABASE_URL=database_url(), REDIS_URL=settings.REDIS_URL, STUDIO_DATA_DIR=str(data_dir))
        env.update(environment)
        self.log = data_dir.parent / "beat.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                 "--schedule", str(schedule)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


class LiveCards(threading.Thread):
    """A page on one node: its websocket, every card it receives, with the time."""

    def __init__(self, url: str, headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.headers = {name.decode(): value.decode() for name, value in headers if name in (b"cookie",)}
        self.cards: list[tuple[str, str, str]] = []  # generation id, status, the card's html
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            origin = self.url.replace("ws://", "http://").split("/ws/")[0]
            with connect(self.url, additional_headers={**self.headers, "Origin": origin}) as socket_:
                self.connected.set()
                while not self.stop.is_set():
                    try:
                        message = socket_.recv(timeout=0.5)
                    except TimeoutError:
                        continue
                    for card in re.findall(r"<article [^>]*>.*?</article>", str(message), re.S):
                        found = re.search(r'id="generation-([0-9a-f-]+)"[^>]*data-status="(\w+)"', card)
                        if found:
                            self.cards.append((found.group(1), found.group(2), card))
        except BaseException as error:
            self.error = error
            self.connected.set()

    def statuses(self, generation_id: str) -> list[str]:
        return [status for gid, status, _ in self.cards if gid == generation_id]


def the_worker_running(workers: list[WorkerProcess]) -> WorkerProcess:
    """The worker whose log shows it received the generation's task (there is one task, and one taker)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        taken = [worker for worker in workers if f"{RUN_GENERATION}[" in worker.log]
        if len(taken) == 1:
            return taken[0]
        time.sleep(0.2)
    raise AssertionError(
        "no single worker took the generation:\n" + "\n---\n".join(w.log[-2000:] for w in workers)
    )


def forget_queue(broker: str, queue: str) -> None:
    """Leave nothing of the test's queue on the broker."""
    from celery import Celery

    # suppress: never declared, or gone already.
    with (
        Celery("many-nodes-cleanup", broker=broker).connection_for_write() as connection,
        suppress(Exception),
    ):
        connection.default_channel.queue_delete(queue)


def files_in(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_two_nodes_share_nothing_but_the_services(broker, alice, tmp_path):
    broker = broker_url(broker)
    queue = new_queue()
    ledger.adjust(user=alice, amount=1000, kind=EntryKind.GRANT, reason="many nodes")
    membership = personal_membership(alice)
    _, secret = ApiKey.issue(user=alice, workspace=membership.workspace, name="nodes")
    data = {name: tmp_path / name / "data" for name in ("node-a", "node-b", "worker-1", "worker-2", "beat")}
    for directory in data.values():
        directory.mkdir(parents=True)

    with ExitStack() as stack:
        stack.callback(forget_queue, broker, queue)
        endpoint = stack.enter_context(s3.s3_server())
        bucket = s3.bucket_settings(endpoint)
        common = {
            "SECRET_KEY": settings.SECRET_KEY,  # one deployment: one key on every node
            "CELERY_BROKER_URL": broker,
            "CELERY_QUEUE": queue,
            "CHANNELS_PREFIX": f"nodes-{uuid.uuid4().hex[:8]}",
            "METRICS_TOKEN": METRICS_TOKEN,
            "LOCAL_PROVIDER_STEP_SECONDS": "0.8",
            "MEDIA_ROOT": "",  # no local folder: the bucket
            **{
                name: str(bucket[name])
                for name in (
                    "AWS_STORAGE_BUCKET_NAME",
                    "AWS_S3_ENDPOINT_URL",
                    "AWS_S3_REGION_NAME",
                    "AWS_ACCESS_KEY_ID",
                    "AWS_SECRET_ACCESS_KEY",
                    "AWS_LOCATION",
                )
            },
            "MEDIA_SERVE": "redirect",
            **QUICK_DEADLINES,
        }
        node_a = stack.enter_context(
            serving_studio(tmp_path / "node-a", queue, **common, STUDIO_DATA_DIR=str(data["node-a"]))
        )
        node_b = stack.enter_context(
            serving_studio(tmp_path / "node-b", queue, **common, STUDIO_DATA_DIR=str(data["node-b"]))
        )
        workers = [
            WorkerProcess(
                queue, tmp_path / f"worker-{n}.log", **common, STUDIO_DATA_DIR=str(data[f"worker-{n}"])
            )
            for n in (1, 2)
        ]
        for worker in workers:
            stack.callback(worker.kill)
            worker.start()
        beat = Beat(data["beat"], tmp_path / "celerybeat-schedule", common)
        stack.callback(beat.stop)

        # A page open on node B.
        page = LiveCards(f"{node_b.replace('http://', 'ws://')}/ws/studio/?workspace={membership.workspace_id}",
                         session_headers(alice))  # fmt: skip
        page.start()
        stack.callback(page.stop.set)
        assert page.connected.wait(30) and page.error is None, page.error

        # Submitted on node A.
        submitted = httpx.post(
            f"{node_a}/api/v1/tasks",
            json={"prompt": "a lighthouse seen from two nodes", "size": "1024x1024", "partial_images": 3},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )
        assert submitted.status_code == 202, submitted.text
        generation = Generation.objects.get(pk=submitted.json()["id"])

        # Its worker is killed once it has drawn something; the other one finishes it.
        wait_until(generation, lambda g: g.partial_count >= 1, timeout=60, what="a worker to start drawing")
        first = the_worker_running(workers)
        first.kill()
        other = next(worker for worker in workers if worker is not first)
        wait_until(generation, lambda g: not g.is_active, timeout=120, what="the other worker to finish it")
        assert generation.status == Status.SUCCEEDED, generation.error
        other.wait_for_log(f"generation {generation.pk}: its worker went silent; running it again")

        # Node B's page saw it live, to the end.
        deadline = time.monotonic() + 15
        while "succeeded" not in page.statuses(str(generation.pk)) and time.monotonic() < deadline:
            time.sleep(0.2)
        seen = page.statuses(str(generation.pk))
        assert "running" in seen and seen[-1] == "succeeded", seen

        # The image a worker wrote into the bucket, served by both nodes to the signed-in author.
        image = generation.images.get()
        cookie = dict(header.split("=", 1) for header in [session_headers(alice)[0][1].decode()])
        for node in (node_a, node_b):
            answer = httpx.get(f"{node}/images/{image.pk}/", cookies=cookie, timeout=30)
            assert answer.status_code == 302 and answer.headers["location"].startswith(endpoint), answer.text
            fetched = httpx.get(answer.headers["location"], timeout=30)
            assert fetched.status_code == 200 and fetched.content.startswith(b"\x89PNG")
        assert f"studio/{image.file.name}" in s3.keys(endpoint, bucket["AWS_STORAGE_BUCKET_NAME"])

        # Either node's /metrics shows every process of the deployment (beat and both workers report through
        # Redis); wait for the snapshots the processes write when they start.
        def processes() -> set[str]:
            text = httpx.get(
                f"{node_b}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=30
            ).text
            return {role for role in re.findall(r'process="(\w+):', text)}

        deadline = time.monotonic() + 30
        while not {"web", "worker", "beat"} <= processes() and time.monotonic() < deadline:
            time.sleep(1)
        assert {"web", "worker", "beat"} <= processes()

    # Paid once, never refunded; and nothing of it on any process's disk.
    entries = LedgerEntry.objects.filter(reference=generation.ledger_reference)
    assert entries.filter(kind=EntryKind.SPEND).count() == 1 and not entries.filter(kind=EntryKind.REFUND)
    for name, directory in data.items():
        assert files_in(directory) == [], (name, files_in(directory))
