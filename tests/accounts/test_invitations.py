"""Invitations: a link with a single-use token that expires.

Decided: the link is the credential. Any logged-in account that holds it may accept, whatever address it
was sent to; signup does not verify addresses, so comparing them would only look like a check.
"""

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.utils import timezone

from accounts.middleware import SESSION_KEY
from accounts.models import Invitation, Membership, Role
from accounts.services import EXPIRED_INVITATION_RETENTION, WorkspaceError, invitation_create


def link_in(message) -> str:
    return re.search(r"http://\S+/invitations/(\S+)/", message.body)[0]


@pytest.fixture
def sent(team, django_capture_on_commit_callbacks) -> tuple[Invitation, str]:
    """An invitation as an owner sends it, with the path of the link in its email."""
    with django_capture_on_commit_callbacks(execute=True):
        invitation = invitation_create(
            workspace=team["workspace"],
            email="Newcomer@Example.com",
            role=Role.VIEWER,
            invited_by=team["owner"],
        )
    return invitation, urlsplit(link_in(mail.outbox[-1])).path


def test_an_owner_invites_by_email_and_the_email_carries_the_link(
    client, team, django_capture_on_commit_callbacks
):
    client.force_login(team["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/workspaces/team/invitations/", {"email": "newcomer@example.com", "role": "viewer"}, follow=True
        )
    assert "Invitation sent to newcomer@example.com." in response.content.decode()
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "newcomer@example.com",
        "viewer",
        team["owner"],
    )
    assert invitation.expires_at - timezone.now() > timedelta(days=6)
    [message] = mail.outbox
    assert message.to == ["newcomer@example.com"]
    assert "You are invited to Team" in message.subject
    token = urlsplit(link_in(message)).path.split("/")[2]
    # Only a hash of the token is stored.
    assert token not in invitation.token_hash and invitation.token_hash == Invitation.hash_token(token)
    assert "newcomer@example.com" in response.content.decode()  # listed as pending


def test_inviting_a_member_again_is_refused(client, team):
    client.force_login(team["owner"])
    response = client.post("/workspaces/team/invitations/", {"email": "EDITOR@example.com", "role": "viewer"})
    assert response.status_code == 400
    assert "already a member" in response.content.decode()
    assert not Invitation.objects.exists()


def test_a_personal_workspace_takes_no_invitations(alice):
    workspace = alice.memberships.get().workspace
    with pytest.raises(WorkspaceError, match="personal"):
        invitation_create(workspace=workspace, email="x@example.com", role=Role.EDITOR, invited_by=alice)


def test_a_new_invitation_replaces_the_pending_one_for_the_same_address(team, sent):
    first, _ = sent
    invitation_create(
        workspace=team["workspace"], email="newcomer@example.com", role=Role.EDITOR, invited_by=team["owner"]
    )
    assert not Invitation.objects.filter(pk=first.pk).exists()
    assert Invitation.objects.get().role == Role.EDITOR


def test_a_logged_out_visitor_is_sent_to_log_in_and_back(client, sent):
    _, path = sent
    response = client.get(path, follow=True)
    login_url = response.redirect_chain[-1][0]
    assert login_url.startswith("/accounts/login/?next=/invitations/")
    html = response.content.decode()
    assert "Log in, or sign up, to join Team." in html
    # The signup link carries the invitation along.
    assert "/accounts/signup/?next=%2Finvitations%2F" in html


def test_signing_up_from_the_invitation_comes_back_to_it(client, sent):
    _, path = sent
    response = client.post(
        f"/accounts/signup/?next={path}",
        {"username": "nina", "email": "nina@example.com", "password1": "a long enough secret", "next": path},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == path
    assert "Join Team" in response.content.decode()


def test_accepting_makes_a_member_with_the_invited_role_and_switches_to_the_workspace(
    client, make_user, team, sent
):
    invitation, path = sent
    nina = make_user("nina")
    client.force_login(nina)
    page = client.get(path).content.decode()
    assert "owner invites you" in page and "as viewer" in page
    response = client.post(path, follow=True)
    assert team["workspace"].role_of(nina) == Role.VIEWER
    assert client.session[SESSION_KEY] == team["workspace"].pk
    assert "Welcome to Team. You are viewer." in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.accepted_by == nina and invitation.accepted_at is not None


def test_an_invitation_works_once(client, make_user, sent):
    _, path = sent
    client.force_login(make_user("nina"))
    client.post(path)
    client.force_login(make_user("omar"))
    response = client.post(path)
    assert response.status_code == 404
    assert "This invitation does not work" in response.content.decode()
    assert not Membership.objects.filter(user__username="omar", workspace__slug="team").exists()


def test_an_expired_invitation_is_refused(client, make_user, sent):
    invitation, path = sent
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client.force_login(make_user("nina"))
    assert client.get(path).status_code == 404
    assert client.post(path).status_code == 404
    assert not Membership.objects.filter(user__username="nina", workspace__slug="team").exists()


def test_a_made_up_token_is_refused(client, alice):
    client.force_login(alice)
    assert client.get("/invitations/not-a-real-token/").status_code == 404


def test_any_account_holding_the_link_may_accept(client, make_user, sent):
    # Sent to newcomer@example.com; accepted by an account with another address (see the module docstring).
    _, path = sent
    client.force_login(make_user("nina", email="nina@elsewhere.example"))
    client.post(path)
    assert Membership.objects.filter(user__username="nina", workspace__slug="team").exists()


def test_a_member_opening_the_link_keeps_their_role_and_leaves_it_unused(client, team, sent):
    invitation, path = sent
    client.force_login(team["editor"])
    response = client.post(path)
    assert response.status_code == 400
    assert "You are already a member of Team (Editor)." in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None
    assert team["workspace"].role_of(team["editor"]) == Role.EDITOR


def test_an_owner_cancels_a_pending_invitation(client, make_user, team, sent):
    invitation, path = sent
    client.force_login(team["owner"])
    client.post(f"/workspaces/team/invitations/{invitation.pk}/cancel/")
    assert not Invitation.objects.exists()
    client.force_login(make_user("nina"))
    assert client.get(path).status_code == 404


def test_the_beat_task_deletes_invitations_long_expired_and_keeps_the_rest(team, sent):
    from accounts.tasks import purge_expired_invitations

    invitation, _ = sent
    assert purge_expired_invitations() == 0
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - EXPIRED_INVITATION_RETENTION - timedelta(minutes=1)
    )
    assert purge_expired_invitations() == 1
    assert not Invitation.objects.exists()


def test_the_beat_schedule_runs_the_purge(settings):
    tasks = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "accounts.tasks.purge_expired_invitations" in tasks
