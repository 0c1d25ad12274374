"""`manage.py runstudio` (what `make run` runs): it serves, and Ctrl-C or SIGTERM leaves nothing running."""

import os
import signal
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import StudioServer


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = set(), [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_every_child(stop_signal):
    server = StudioServer(step_seconds=0).start()
    try:
        children = descendants(server.process.pid)
        # web, worker (and its pool), beat, and the embedded Redis unless REDIS_URL names a server.
        assert len(children) >= 3, children
        log = server.read_log()
        if os.environ.get("REDIS_URL", "").startswith("redis://"):
            assert "embedded Redis" not in log
        else:
            assert "embedded Redis" in log
        server.process.send_signal(stop_signal)
        assert server.process.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [pid for pid in children if alive(pid)] == []
        assert "Studio stopped." in server.read_log()
    finally:
        server.stop()
