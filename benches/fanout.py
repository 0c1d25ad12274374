"""Live fan-out: a thousand pages watching one workspace while its generations change fifty times a second.

Starts Daphne on a throwaway PostgreSQL database and Redis, with one workspace, `--viewers` members (one
owner, the rest viewers and editors), each logged in with a session of their own, and `--generations`
generations in it. A client process of its own opens one websocket per member to `/ws/studio/` (as the page
does, with the session cookie) and records every card it receives; a publisher process, set up as a worker is
(`studio.engine.events.start_publisher`), writes `--rate` changes a second to the generations for `--seconds`
and publishes each with `publish_generation_changed`, as the runner does, then ends every generation
(succeeded) and publishes that.

A change counts as received by a viewer when it gets that generation's card at that seq or a later one (the
feed sends the latest state of what changed in its window). It prints, over every viewer and every change:
p50, p99 and the maximum of publish-to-receipt (wall clocks of one machine), how many viewers missed a
generation's final state, and the web process's CPU (seconds per second) and peak RSS over the run.

Exits non-zero if any viewer could not connect or missed a final state, or if p99 exceeds `--max-p99`.

    .venv/bin/python benches/fanout.py          # 1,000 viewers, 50 changes a second for 20 s
    .venv/bin/python benches/fanout.py --quick  # 50 viewers, 10 a second for 5 s, no timing criterion

DATABASE_URL names the PostgreSQL server (default postgres://postgres@127.0.0.1:5432); REDIS_URL the Redis
(default redis://127.0.0.1:6379/14, else an embedded one). docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benches"))

from inflight import (  # noqa: E402
    DEFAULT_POSTGRES,
    BenchFailed,
    create_postgres_database,
    redis_url_for_bench,
    rss_mib,
    stop_process,
)
from load import environment, manage, percentile, start_web  # noqa: E402

SEED = """
import json
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.hashers import make_password
from django.contrib.sessions.backends.db import SessionStore
from accounts import ledger
from accounts.models import EntryKind, Membership, Role, User, Workspace
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Status

viewers, generations = {viewers}, {generations}
users = User.objects.bulk_create(
    User(username=f"fan{{n}}", email=f"fan{{n}}@example.com", password=make_password(None))
    for n in range(viewers)
)
owner = users[0]
workspace = Workspace.objects.create(name="Fan-out", slug="fan-out", created_by=owner)
roles = [Role.OWNER] + [Role.VIEWER if n % 3 else Role.EDITOR for n in range(1, viewers)]
Membership.objects.bulk_create(
    Membership(workspace=workspace, user=user, role=role) for user, role in zip(users, roles)
)
ledger.adjust(user=owner, amount=100 * generations, kind=EntryKind.GRANT, reason="fan-out bench")
membership = Membership.objects.get(workspace=workspace, user=owner)
ids = [
    generation_submit(membership=membership, spec=GenerationSpec.build(prompt=f"watched {{n}}")).pk
    for n in range(generations)
]
Generation.objects.filter(pk__in=ids).update(status=Status.RUNNING, stage="Drawing")
sessions = []
for user in users:
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    sessions.append(store.session_key)
seqs = dict(Generation.objects.filter(pk__in=ids).values_list("pk", "seq"))
print("SEED " + json.dumps({{"workspace": workspace.pk, "sessions": sessions,
                            "generations": {{str(k): v for k, v in seqs.items()}}}}))
"""

# Writes and publishes changes as the runner does; the log holds (generation, seq, time published).
PUBLISH = """
import json, time
from django.db.models import F
from django.utils import timezone
from studio.engine.events import publish_generation_changed, start_publisher
from studio.models import Generation, Status

start_publisher()
seqs = json.loads({generations!r})
ids = sorted(seqs)
rate, seconds, log = {rate}, {seconds}, []
began = time.monotonic()
for n in range(int(rate * seconds)):
    delay = began + n / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    pk = ids[n % len(ids)]
    seqs[pk] += 1
    Generation.objects.filter(pk=pk).update(seq=seqs[pk], stage=f"Step {{n}}")
    published = time.time()
    publish_generation_changed(Generation(pk=pk, workspace_id={workspace}, seq=seqs[pk]))
    log.append((str(pk), seqs[pk], published, False))
behind = time.monotonic() - began - seconds
for pk in ids:
    seqs[pk] += 1
    Generation.objects.filter(pk=pk).update(
        seq=seqs[pk], status=Status.SUCCEEDED, stage="", finished_at=timezone.now()
    )
    published = time.time()
    publish_generation_changed(Generation(pk=pk, workspace_id={workspace}, seq=seqs[pk]))
    log.append((str(pk), seqs[pk], published, True))
with open({path!r}, "w") as out:
    json.dump({{"log": log, "behind": behind}}, out)
"""

CARD = re.compile(rb'id="generation-([0-9a-f-]+)"[^>]*?data-seq="(\d+)"')


# The client process: one websocket per session, every card's receipt recorded.
async def watch(url: str, origin: str, session: str, received: dict, connected: list, stop: asyncio.Event):
    import websockets

    headers = {"Cookie": f"sessionid={session}", "Origin": origin}
    async with websockets.connect(url, additional_headers=headers, max_size=None, compression=None) as ws:
        connected.append(session)
        while not stop.is_set():
            try:
                message = await asyncio.wait_for(ws.recv(decode=False), timeout=0.5)
            except TimeoutError:
                continue
            now = time.time()
            for generation, seq in CARD.findall(message):
                received[generation.decode()].append((int(seq), now))


async def client(url: str, origin: str, sessions: list[str], ready: Path, done: Path, out: Path) -> None:
    stop = asyncio.Event()
    connected: list[str] = []
    receipts = [defaultdict(list) for _ in sessions]
    tasks = []
    for index, session in enumerate(sessions):
        tasks.append(asyncio.create_task(watch(url, origin, session, receipts[index], connected, stop)))
        if index % 50 == 49:
            await asyncio.sleep(0.2)  # open them in waves, as pages load
    deadline = time.monotonic() + 60
    while len(connected) < len(sessions) and time.monotonic() < deadline:
        if any(task.done() for task in tasks):
            break
        await asyncio.sleep(0.1)
    ready.write_text(str(len(connected)))
    while not done.exists():
        await asyncio.sleep(0.2)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    out.write_text(json.dumps({"connected": len(connected), "receipts": receipts}))


def analyse(receipts: list[dict], log: list) -> dict:
    """For each viewer and each published change, the delay until it got the card at that seq or later."""
    delays: list[float] = []
    missed_final = 0
    changes = _by_generation(log)
    final_seq = {generation: seq for generation, seq, _, final in log if final}
    for viewer in receipts:
        for generation, published_changes in changes.items():
            cards = sorted(viewer.get(generation, []))  # by seq; a later seq is never received earlier
            seqs = [seq for seq, _ in cards]
            for seq, published in published_changes:
                first = bisect.bisect_left(seqs, seq)  # the first card at this seq or a later one
                if first < len(cards):
                    delays.append(cards[first][1] - published)
            if not seqs or seqs[-1] < final_seq[generation]:
                missed_final += 1
    return {"delays": delays, "missed_final": missed_final}


def _by_generation(log: list) -> dict[str, list[tuple[int, float]]]:
    changes: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for generation, seq, published, _ in log:
        changes[generation].append((seq, published))
    return changes


class Sampler(threading.Thread):
    """The web process's peak RSS, every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopped = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self.peak = max(self.peak, rss_mib(self.pid))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def web_pid(base: str) -> int:
    port = base.rsplit(":", 1)[1]
    found = subprocess.run(["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    match = re.search(r"pid=(\d+)", found)
    if not match:
        raise BenchFailed(f"no process listens on {port}")
    return int(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=50, help="generations that change, in turn")
    parser.add_argument("--rate", type=float, default=50.0, help="changes a second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--max-p99", type=float, default=1.0, help="seconds; 0 for no criterion")
    parser.add_argument("--quick", action="store_true", help="50 viewers, 10 changes a second for 5 s")
    parser.add_argument("--client", nargs=6, metavar=("URL", "ORIGIN", "SESSIONS", "READY", "DONE", "OUT"))
    args = parser.parse_args()
    if args.client:
        url, origin, sessions, ready, done, out = args.client
        asyncio.run(
            client(url, origin, json.loads(Path(sessions).read_text()), Path(ready), Path(done), Path(out))
        )
        return 0
    if args.quick:
        args.viewers, args.generations, args.rate, args.seconds, args.max_p99 = 50, 10, 10.0, 5.0, 0.0

    with contextlib.ExitStack() as stack:
        data_dir = Path(tempfile.mkdtemp(prefix="studio-fanout-"))
        database_url, drop = create_postgres_database(os.environ.get("DATABASE_URL") or DEFAULT_POSTGRES)
        stack.callback(drop)
        redis_url, redis_kind = redis_url_for_bench(stack, data_dir)
        env = environment(database_url, redis_url, data_dir, f"bench-fanout-{uuid.uuid4().hex[:6]}")
        env["CHANNELS_PREFIX"] = f"fanout{uuid.uuid4().hex[:6]}"
        manage(env, "migrate", "--noinput")
        seeded = manage(env, "shell", "-c", SEED.format(viewers=args.viewers, generations=args.generations))
        seed = json.loads(next(line for line in seeded.splitlines() if line.startswith("SEED "))[5:])
        base = start_web(env, data_dir, stack)
        pid = web_pid(base)

        files = {
            name: data_dir / f"{name}.json" for name in ("sessions", "ready", "done", "out", "published")
        }
        files["sessions"].write_text(json.dumps(seed["sessions"]))
        url = base.replace("http://", "ws://") + f"/ws/studio/?workspace={seed['workspace']}"
        viewer_process = subprocess.Popen(
            [sys.executable, __file__, "--client", url, base,
             *(str(files[name]) for name in ("sessions", "ready", "done", "out"))],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        stack.callback(stop_process, viewer_process)
        deadline = time.monotonic() + 120
        while not files["ready"].exists():
            if viewer_process.poll() is not None or time.monotonic() > deadline:
                raise BenchFailed("the viewers never connected")
            time.sleep(0.2)
        connected = int(files["ready"].read_text())
        print(f"{connected} of {args.viewers} viewers connected", file=sys.stderr, flush=True)

        sampler = Sampler(pid)
        sampler.start()
        cpu_before, began = cpu_seconds(pid), time.monotonic()
        manage(
            env,
            "shell",
            "-c",
            PUBLISH.format(
                generations=json.dumps(seed["generations"]),
                rate=args.rate,
                seconds=args.seconds,
                workspace=seed["workspace"],
                path=str(files["published"]),
            ),
        )
        time.sleep(3)  # the last window, its render and its sends
        web_cpu = (cpu_seconds(pid) - cpu_before) / (time.monotonic() - began)
        sampler.stopped.set()
        files["done"].touch()
        viewer_process.wait(timeout=120)
        result = json.loads(files["out"].read_text())
        published = json.loads(files["published"].read_text())

    analysis = analyse(result["receipts"], published["log"])
    delays = analysis["delays"]
    figures = {
        "viewers connected": f"{result['connected']} of {args.viewers}",
        "changes published": len(published["log"]),
        "rate": f"{args.rate:g}/s for {args.seconds:g} s (publisher behind by {published['behind']:.2f} s)",
        "receipts": len(delays),
        "publish to receipt p50 ms": round(statistics.median(delays) * 1000) if delays else None,
        "publish to receipt p99 ms": round(percentile(delays, 0.99) * 1000) if delays else None,
        "publish to receipt max ms": round(max(delays) * 1000) if delays else None,
        "viewers x generations missing the final state": analysis["missed_final"],
        "web CPU (s per s)": round(web_cpu, 2),
        "web RSS peak MiB": round(sampler.peak),
        "redis": redis_kind,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(figures, indent=2))
    problems = []
    if result["connected"] != args.viewers:
        problems.append(f"{result['connected']} of {args.viewers} viewers connected")
    if analysis["missed_final"]:
        problems.append(f"{analysis['missed_final']} final states missed")
    if args.max_p99 and delays and percentile(delays, 0.99) > args.max_p99:
        problems.append(f"p99 {percentile(delays, 0.99):.3f} s > {args.max_p99} s")
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        sys.exit(main())
