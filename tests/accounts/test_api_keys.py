from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey


def test_a_key_is_shown_once_and_stored_hashed(client, alice):
    client.force_login(alice)
    workspace = alice.memberships.get().workspace
    response = client.post("/settings/api-keys/", {"name": "script", "workspace": workspace.pk})
    secret = response.context["new_secret"]
    assert secret.startswith("sk-studio-") and secret in response.content.decode()
    key = ApiKey.objects.get()
    assert key.key_hash == ApiKey.hash(secret) and secret not in (key.key_hash, key.prefix)
    assert ApiKey.authenticate(secret) == key
    # Listed by prefix afterwards, never in full.
    html = client.get("/settings/api-keys/").content.decode()
    assert key.prefix in html and secret not in html


def test_a_key_is_only_for_a_workspace_the_user_can_generate_in(client, team):
    client.force_login(team["viewer"])
    response = client.post("/settings/api-keys/", {"name": "x", "workspace": team["workspace"].pk})
    assert response.status_code == 400 and "workspace" in response.context["form"].errors
    assert not ApiKey.objects.exists()


def test_revoking_a_key_stops_it(client, alice):
    key, secret = ApiKey.issue(user=alice, workspace=alice.memberships.get().workspace, name="x")
    client.force_login(alice)
    client.post(f"/settings/api-keys/{key.pk}/revoke/")
    assert ApiKey.authenticate(secret) is None
    key.refresh_from_db()
    assert key.revoked_by == alice


def test_nobody_else_can_revoke_a_key(client, alice, bob):
    key, secret = ApiKey.issue(user=alice, workspace=alice.memberships.get().workspace, name="x")
    client.force_login(bob)
    assert client.post(f"/settings/api-keys/{key.pk}/revoke/").status_code == 404
    assert ApiKey.authenticate(secret) == key


def test_the_command_prints_a_working_key(alice, team):
    out = StringIO()
    call_command("create_api_key", "owner", "--workspace", "team", "--name", "ci", stdout=out)
    key = ApiKey.authenticate(out.getvalue().strip())
    assert (key.user, key.workspace, key.name) == (team["owner"], team["workspace"], "ci")
    with pytest.raises(CommandError):
        call_command("create_api_key", "alice", "--workspace", "team")


def test_admins_revoke_keys_from_the_admin(client, alice, django_user_model):
    key, secret = ApiKey.issue(user=alice, workspace=alice.memberships.get().workspace, name="x")
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "a long enough secret")
    client.force_login(admin)
    response = client.post(
        "/admin/accounts/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]}, follow=True
    )
    assert response.status_code == 200
    assert ApiKey.authenticate(secret) is None
