"""Two-factor authentication (allauth.mfa): TOTP with recovery codes, its secret encrypted at rest; a team
workspace whose owners require it sends members without it to set it up; the admin logs in through the
site's throttled login and, when ADMIN_REQUIRE_TWO_FACTOR is set, asks its staff for the second factor."""

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value

from accounts.models import ApiKey, AuditAction, AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

PASSWORD = "correct horse battery staple"


def code_for(secret: str) -> str:
    import time

    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def log_in(client, user):
    response = client.post("/accounts/login/", {"login": user.username, "password": PASSWORD})
    assert response.status_code == 302, response.content[:500]
    return response


def activate_totp(client, django_capture_on_commit_callbacks) -> str:
    page = client.get("/accounts/2fa/totp/activate/")
    if page.status_code == 302 and page["Location"].startswith("/accounts/reauthenticate/"):
        # allauth asks for the password again before a security change, as it should.
        client.post(page["Location"], {"password": PASSWORD})
        page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = client.session[SECRET_SESSION_KEY]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/2fa/totp/activate/", {"code": code_for(secret)})
    assert response.status_code == 302, response.content[:500]
    return secret


def test_totp_is_set_up_then_asked_for_at_login(client, alice, django_capture_on_commit_callbacks):
    log_in(client, alice)
    secret = activate_totp(client, django_capture_on_commit_callbacks)
    stored = Authenticator.objects.get(user=alice, type=Authenticator.Type.TOTP)
    assert secret not in str(stored.data)  # encrypted at rest
    assert AuditEvent.objects.filter(action=AuditAction.TWO_FACTOR_ADDED, actor=alice).exists()
    client.logout()

    first = client.post("/accounts/login/", {"login": "alice", "password": PASSWORD})
    assert first["Location"] == "/accounts/2fa/authenticate/"
    assert not client.get("/").wsgi_request.user.is_authenticated
    wrong = client.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert wrong.status_code == 200 and not wrong.wsgi_request.user.is_authenticated
    right = client.post("/accounts/2fa/authenticate/", {"code": code_for(secret)})
    assert right.status_code == 302 and client.get("/").status_code == 200


def test_a_recovery_code_logs_in_once(client, alice, django_capture_on_commit_callbacks):
    log_in(client, alice)
    activate_totp(client, django_capture_on_commit_callbacks)
    recovery = Authenticator.objects.get(user=alice, type=Authenticator.Type.RECOVERY_CODES)
    code = recovery.wrap().get_unused_codes()[0]
    client.logout()
    client.post("/accounts/login/", {"login": "alice", "password": PASSWORD})
    assert client.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 302
    client.logout()
    client.post("/accounts/login/", {"login": "alice", "password": PASSWORD})
    assert client.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 200  # used up


def test_a_workspace_that_requires_it_sends_members_without_it_to_set_it_up(
    client, team, django_capture_on_commit_callbacks
):
    from accounts.middleware import SESSION_KEY

    log_in(client, team["owner"])
    assert client.post("/workspaces/team/two-factor/", {"required": "1"}).status_code == 302
    team["workspace"].refresh_from_db()
    assert team["workspace"].require_two_factor
    assert AuditEvent.objects.filter(action=AuditAction.TWO_FACTOR_REQUIRED).exists()
    client.logout()

    log_in(client, team["editor"])
    session = client.session
    session[SESSION_KEY] = team["workspace"].pk
    session.save()
    blocked = client.get("/gallery/")
    assert blocked.status_code == 302 and blocked["Location"] == "/accounts/2fa/totp/activate/"
    activate_totp(client, django_capture_on_commit_callbacks)
    assert client.get("/gallery/").status_code == 200


def test_a_workspace_that_requires_it_refuses_the_api_keys_of_members_without_it(
    client, team, django_capture_on_commit_callbacks
):
    _, secret = ApiKey.issue(user=team["editor"], workspace=team["workspace"], name="ci")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
    assert client.get("/api/v1/tasks/no-such-task", **headers).status_code == 404
    team["workspace"].require_two_factor = True
    team["workspace"].save()

    refused = client.get("/api/v1/tasks/no-such-task", **headers)
    assert refused.status_code == 403
    assert "requires two-factor authentication" in refused.json()["error"]["message"]
    sjinn = client.post("/api/un-api/query_tool_task_status", {"task_id": "x"}, "application/json", **headers)
    assert sjinn.json()["success"] is False and sjinn.json()["error_code"] == 403

    log_in(client, team["editor"])
    activate_totp(client, django_capture_on_commit_callbacks)
    client.logout()
    assert client.get("/api/v1/tasks/no-such-task", **headers).status_code == 404


def test_only_owners_change_the_requirement(client, team):
    log_in(client, team["editor"])
    assert client.post("/workspaces/team/two-factor/", {"required": "1"}).status_code == 403
    team["workspace"].refresh_from_db()
    assert not team["workspace"].require_two_factor


def test_the_admin_logs_in_through_the_sites_login(client, db):
    response = client.get("/admin/login/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_admin_asks_its_staff_for_a_second_factor_when_set(
    client, make_user, settings, django_capture_on_commit_callbacks
):
    settings.ADMIN_REQUIRE_TWO_FACTOR = True
    staff = make_user("staffer")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    log_in(client, staff)
    blocked = client.get("/admin/")
    assert blocked.status_code == 302 and blocked["Location"] == "/accounts/2fa/totp/activate/"
    activate_totp(client, django_capture_on_commit_callbacks)
    assert client.get("/admin/").status_code == 200
