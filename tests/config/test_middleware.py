"""The middleware chain under ASGI: every middleware async-capable, so a request crosses to a thread once (for
its sync view) instead of hopping to a thread for a sync-only middleware and back to the loop; and the
studio's own middlewares do the same in either mode."""

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.test import AsyncClient
from django.utils.module_loading import import_string

from tests.studio.web.gallery_helpers import log_in


def test_every_middleware_runs_in_the_async_chain_without_a_thread():
    sync_only = [
        path for path in settings.MIDDLEWARE if not getattr(import_string(path), "async_capable", False)
    ]
    assert sync_only == []


@pytest.mark.django_db(transaction=True)
def test_a_workspace_requiring_two_factor_sends_its_members_to_set_it_up_in_async_mode_too(client, team):
    team["workspace"].require_two_factor = True
    team["workspace"].save()
    log_in(client, team["editor"], team["workspace"])
    session = client.cookies["sessionid"].value

    async def visit():
        async_client = AsyncClient()
        async_client.cookies["sessionid"] = session
        page = await async_client.get("/gallery/")
        health = await async_client.get("/healthz")
        return page, health

    page, health = async_to_sync(visit)()
    assert page.status_code == 302 and "/accounts/2fa/totp/activate" in page["Location"]
    assert health.status_code == 200  # open paths never look at the session


@pytest.mark.django_db(transaction=True)
def test_the_audit_trail_notes_the_address_in_async_mode(admin_user):
    from accounts.models import AuditEvent

    async def log_in_as_admin():
        async_client = AsyncClient()
        return await async_client.post(
            "/accounts/login/", {"login": admin_user.username, "password": "wrong password"}
        )

    async_to_sync(log_in_as_admin)()
    event = AuditEvent.objects.order_by("-pk").first()
    # Set by the middleware in the request's task, read in the view's thread: the test client's address.
    assert event is not None and event.ip == "127.0.0.1", event


def test_static_files_are_served_in_async_mode(db, settings):
    from django.contrib.staticfiles.storage import staticfiles_storage

    # As production finds them (collected, looked up in WhiteNoise's table), from the finders here.
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = False

    async def fetch(path):
        return await AsyncClient().get(path)

    url = staticfiles_storage.url("js/studio.js")
    response = async_to_sync(fetch)(url)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/javascript")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert body == (settings.BASE_DIR / "static" / "js" / "studio.js").read_bytes()
