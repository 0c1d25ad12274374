"""The audit log: logins (and failures), members, invitations, API keys and credits, each recorded with who,
from which address and when; never a secret; owners read their workspace's events, admins all of them."""

import json

import pytest

from accounts.models import ApiKey, AuditAction, AuditEvent, Membership
from accounts.services import invitation_create, membership_change_role

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

FROM = {"REMOTE_ADDR": "203.0.113.9"}


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action))


def test_logins_and_failed_logins_are_recorded_with_the_address(client, alice):
    client.post("/accounts/login/", {"login": "alice", "password": "wrong"}, **FROM)
    client.post("/accounts/login/", {"login": "alice", "password": "correct horse battery staple"}, **FROM)
    (failed,) = events(AuditAction.LOGIN_FAILED)
    assert (failed.actor, failed.actor_label, failed.ip) == (None, "alice", "203.0.113.9")
    assert "wrong" not in json.dumps(failed.details)
    (succeeded,) = events(AuditAction.LOGIN_SUCCEEDED)
    assert (succeeded.actor, succeeded.ip) == (alice, "203.0.113.9")


def test_role_changes_invitations_and_removals_are_recorded_for_the_workspace(client, team):
    client.force_login(team["owner"])
    slug = team["workspace"].slug
    editor = team["memberships"]["editor"]
    client.post(f"/workspaces/{slug}/members/{editor.pk}/role/", {"role": "viewer"}, **FROM)
    client.post(f"/workspaces/{slug}/invitations/", {"email": "new@example.com", "role": "editor"}, **FROM)
    client.post(f"/workspaces/{slug}/members/{editor.pk}/remove/", **FROM)
    (changed,) = events(AuditAction.ROLE_CHANGED)
    assert (changed.actor, changed.workspace, changed.target) == (team["owner"], team["workspace"], "editor")
    assert changed.details == {"previous": "editor", "role": "viewer"} and changed.ip == "203.0.113.9"
    (invited,) = events(AuditAction.INVITATION_CREATED)
    assert invited.target == "new@example.com" and invited.details == {"role": "editor"}
    (removed,) = events(AuditAction.MEMBER_REMOVED)
    assert removed.target == "editor" and removed.details["left"] is False


def test_api_keys_and_webhook_rotations_are_recorded_without_their_secrets(client, alice):
    client.force_login(alice)
    workspace = alice.memberships.get().workspace
    response = client.post("/settings/api-keys/", {"name": "ci", "workspace": workspace.pk}, **FROM)
    secret, webhook_secret = response.context["new_secret"], response.context["new_webhook_secret"]
    key = ApiKey.objects.get()
    rotated = client.post(f"/settings/api-keys/{key.pk}/rotate-webhook-secret/", **FROM)
    new_webhook_secret = rotated.context["new_webhook_secret"]
    client.post(f"/settings/api-keys/{key.pk}/revoke/", **FROM)
    recorded = [(event.action, event.target) for event in AuditEvent.objects.filter(workspace=workspace)]
    assert (AuditAction.API_KEY_CREATED, key.prefix) in recorded
    assert (AuditAction.WEBHOOK_SECRET_ROTATED, key.prefix) in recorded
    assert (AuditAction.API_KEY_REVOKED, key.prefix) in recorded
    everything = json.dumps(list(AuditEvent.objects.values()), default=str)
    for value in (secret, webhook_secret, new_webhook_secret, key.key_hash):
        assert value not in everything


def test_credit_changes_by_an_admin_are_recorded(admin_client, admin_user, alice):
    admin_client.post(
        f"/admin/accounts/user/{alice.pk}/credits/", {"amount": "250", "reason": "Speaker"}, **FROM
    )
    (granted,) = events(AuditAction.CREDITS_CHANGED)
    assert (granted.actor, granted.target, granted.ip) == (admin_user, "alice", "203.0.113.9")
    assert granted.details == {"amount": 250, "balance_after": 1250, "reason": "Speaker"}


def test_the_log_refuses_a_detail_that_names_a_secret(alice):
    from accounts import audit

    with pytest.raises(ValueError, match="no secrets"):
        audit.record(AuditAction.API_KEY_CREATED, actor=alice, webhook_secret="whsec_x")


def test_owners_read_their_workspaces_events_with_filters(client, team, alice):
    invitation_create(
        workspace=team["workspace"], email="a@example.com", role="viewer", invited_by=team["owner"]
    )
    membership_change_role(membership=team["memberships"]["viewer"], role="editor", actor=team["owner"])
    other = Membership.objects.get(user=alice).workspace
    from accounts import audit

    audit.record(AuditAction.API_KEY_CREATED, actor=alice, workspace=other, target="sk-studio-alice")
    client.force_login(team["owner"])
    page = client.get("/workspaces/team/audit/").content.decode()
    assert "Invitation sent" in page and "Role changed" in page and "sk-studio-alice" not in page
    filtered = client.get("/workspaces/team/audit/?action=member.role_changed").content.decode()
    assert "Role changed" in filtered and "a@example.com" not in filtered
    by_nobody = client.get("/workspaces/team/audit/?actor=nobody").content.decode()
    assert "No events match these filters." in by_nobody


@pytest.mark.parametrize("who", ["editor", "viewer", "stranger"])
def test_only_owners_read_the_log(client, team, who):
    client.force_login(team[who])
    assert client.get("/workspaces/team/audit/").status_code in (403, 404)


def test_admins_read_every_event_and_change_none(admin_client, alice):
    page = admin_client.get("/admin/accounts/auditevent/?action__exact=signup").content.decode()
    assert "alice@example.com" in page
    event = AuditEvent.objects.filter(action=AuditAction.SIGNUP).first()
    assert admin_client.get("/admin/accounts/auditevent/add/").status_code == 403
    detail = admin_client.get(f"/admin/accounts/auditevent/{event.pk}/change/").content.decode()
    assert 'name="_save"' not in detail
