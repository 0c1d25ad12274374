import io
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from django.test import override_settings
from PIL import Image as PillowImage

from accounts.models import Membership, Role, Workspace
from accounts.services import user_signup

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    on_postgres = "postgresql" in settings.DATABASES["default"]["ENGINE"]
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            if IN_CI:
                raise pytest.UsageError("CI must run the money tests on PostgreSQL: set DATABASE_URL.")
            item.add_marker(
                pytest.mark.skip(
                    reason="needs PostgreSQL: set DATABASE_URL=postgres://... to run the money tests"
                )
            )


@pytest.fixture(scope="session", autouse=True)
def private_media_root():
    """Tests write images into a temporary folder, never into the real data directory."""
    root = Path(tempfile.mkdtemp(prefix="studio-media-"))
    storages = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": root}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=storages, MEDIA_ROOT=root, LOCAL_PROVIDER_STEP_SECONDS=0.0):
        yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def private_cache_keys():
    """The cache (Redis) outlives a test run: allauth's rate limits, the API's and the login throttles count
    in it. A key prefix of this run's own keeps a run within minutes of another (or beside it) from finding
    its limits already spent."""
    from django.conf import settings

    caches = {
        name: {**config, "KEY_PREFIX": f"test-{uuid.uuid4().hex[:8]}"}
        for name, config in settings.CACHES.items()
    }
    with override_settings(CACHES=caches):
        yield


class InlineEmailTask:
    """Stands in for the send_email Celery task: runs it here, and remembers each call."""

    def __init__(self, task):
        self.task = task
        self.calls: list[dict] = []

    def delay(self, **arguments):
        self.calls.append(arguments)
        self.task.run(**arguments)


@pytest.fixture(autouse=True)
def emails_by_task(monkeypatch):
    """Emails go out through the accounts.tasks.send_email task; tests run it in-process, where a worker
    would (tests with real workers send through them)."""
    from accounts import tasks

    inline = InlineEmailTask(tasks.send_email)
    monkeypatch.setattr(tasks, "send_email", inline)
    return inline


@pytest.fixture
def fast_password_hashing():
    """MD5 instead of 1,000,000 rounds of PBKDF2, for modules that make many users. Not for tests that hand
    users to a server in another process: its default hashers cannot check MD5 hashes."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture
def admin_user(db):
    """A superuser who logs in to the Django admin (replaces pytest-django's fixture of the same name)."""
    from accounts.models import User

    return User.objects.create_superuser(username="root", email="root@example.com", password="admin secret 1")


@pytest.fixture
def admin_client(client, admin_user):
    assert client.login(username="root", password="admin secret 1")
    return client


@pytest.fixture
def make_user(db):
    counter = iter(range(1, 10_000))

    def make(username: str | None = None, **kwargs):
        number = next(counter)
        username = username or f"person{number}"
        return user_signup(
            username=username,
            email=kwargs.pop("email", f"{username}@example.com"),
            password=kwargs.pop("password", "correct horse battery staple"),
        )

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")


@pytest.fixture
def team(make_user):
    """A team workspace with an owner, an editor and a viewer, and a stranger outside it."""
    owner, editor, viewer, stranger = (make_user(name) for name in ("owner", "editor", "viewer", "stranger"))
    workspace = Workspace.objects.create(name="Team", slug="team", created_by=owner)
    memberships = {
        "owner": Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER),
        "editor": Membership.objects.create(workspace=workspace, user=editor, role=Role.EDITOR),
        "viewer": Membership.objects.create(workspace=workspace, user=viewer, role=Role.VIEWER),
    }
    return {
        "workspace": workspace,
        "memberships": memberships,
        "owner": owner,
        "editor": editor,
        "viewer": viewer,
        "stranger": stranger,
    }


def png_bytes(size=(64, 64), color=(200, 30, 30, 255), mode="RGBA") -> bytes:
    buffer = io.BytesIO()
    PillowImage.new(mode, size, color).save(buffer, "PNG")
    return buffer.getvalue()
