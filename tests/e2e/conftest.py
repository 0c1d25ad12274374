"""Browser tests against the real studio: `manage.py runstudio` (web, worker, beat) in a subprocess with its
own data directory, driven by Playwright in headless Chromium (Debian's /usr/bin/chromium)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_collection_modifyitems(config, items):
    if Path(CHROMIUM).exists():
        return
    reason = f"no Chromium at {CHROMIUM}: browser tests need it (apt-get install chromium)"
    if IN_CI:
        raise pytest.UsageError(reason)
    print(f"\n*** SKIPPING BROWSER TESTS: {reason} ***\n", file=sys.stderr)
    for item in items:
        if "e2e" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _separate_database(database_url: str) -> tuple[str, callable]:
    """A fresh PostgreSQL database beside the one DATABASE_URL names, dropped afterwards."""
    import psycopg

    parts = urlsplit(database_url)
    name = f"studio_e2e_{uuid.uuid4().hex[:8]}"
    admin_url = urlunsplit(
        (
            parts.scheme.replace("postgres", "postgresql", 1) if parts.scheme == "postgres" else parts.scheme,
            parts.netloc,
            "/postgres",
            "",
            "",
        )
    )
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, "")), drop


class StudioServer:
    def __init__(self, *, step_seconds: float = 0.7):
        self.data_dir = Path(tempfile.mkdtemp(prefix="studio-e2e-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.step_seconds = step_seconds
        self.process: subprocess.Popen | None = None
        self.env: dict = {}
        self._cleanups: list = []

    def environment(self) -> dict:
        env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
        env.update(
            STUDIO_DATA_DIR=str(self.data_dir),
            LOCAL_PROVIDER_STEP_SECONDS=str(self.step_seconds),
            STUDIO_PROVIDER="local",
            CHANNELS_PREFIX=f"e2e{self.port}",
            CELERY_WORKER_CONCURRENCY="8",
        )
        if database_url := os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"], drop = _separate_database(database_url)
            self._cleanups.append(drop)
        redis_url = os.environ.get("REDIS_URL", "")
        if redis_url.startswith("redis://"):
            # A database of its own on the shared server, so its queue and groups meet no other test's.
            parts = urlsplit(redis_url)
            env["REDIS_URL"] = urlunsplit((parts.scheme, parts.netloc, "/7", "", ""))
        # Otherwise (no server, or the embedded one of `make test`): runstudio starts its own embedded Redis.
        return env

    def start(self, timeout: float = 90) -> "StudioServer":
        self.log = open(self.data_dir / "runstudio.log", "w")  # noqa: SIM115
        # Kept, so `manage()` reaches the same database (environment() makes a new one on PostgreSQL).
        self.env = self.environment()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "runstudio", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"runstudio exited early:\n{self.read_log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"runstudio did not become ready:\n{self.read_log()}")

    def manage(self, *arguments: str, timeout: float = 60) -> str:
        """Run a management command against this server's database and data directory; return its output."""
        result = subprocess.run(
            [sys.executable, "manage.py", *arguments],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {arguments[0]} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def read_log(self) -> str:
        return (self.data_dir / "runstudio.log").read_text()[-5000:]

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for cleanup in self._cleanups:
            cleanup()
        # Keep the server's log for whoever investigates a failure.
        shutil.copy(self.data_dir / "runstudio.log", Path(tempfile.gettempdir()) / "studio-e2e-last.log")
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def studio_server():
    server = StudioServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class ConsoleWatcher:
    """Collects console errors and uncaught exceptions of a page; a finished page has none."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    page.console = ConsoleWatcher(page)
    return page


def add_member(server: StudioServer, *, workspace: str, owner: str, members: dict[str, str]) -> str:
    """Make the team workspace `workspace` owned by the user `owner`, with `members` ({username: role}) in
    it, straight in the server's database; return its slug. The invitation flow has tests of its own."""
    script = (
        "from accounts.models import Membership, Role, User, Workspace\n"
        f"owner = User.objects.get(username={owner!r})\n"
        f"workspace = Workspace.objects.create(name={workspace!r}, slug=Workspace.unique_slug({workspace!r}),"
        " created_by=owner)\n"
        "Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)\n"
        f"for username, role in {members!r}.items():\n"
        "    member = User.objects.get(username=username)\n"
        "    Membership.objects.create(workspace=workspace, user=member, role=role)\n"
        "print(workspace.slug)\n"
    )
    return server.manage("shell", "-c", script).strip().splitlines()[-1]


def switch_workspace(page, name: str) -> None:
    """Pick a workspace in the header's switcher, as a person would (after a reload: the page may predate
    the membership)."""
    page.reload()
    page.get_by_label("Current workspace").select_option(label=name)
    with page.expect_navigation():
        page.get_by_role("button", name="Switch").click()


def sign_up(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password").fill("a long enough secret")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{base_url}/")
