"""Webhook signing secrets: random per key, encrypted at rest, shown once, rotatable with an overlap in which
both secrets sign; and the encryption keys themselves rotate without losing a secret."""

import importlib
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.apps import apps as django_apps
from django.utils import timezone

from accounts import crypto
from accounts.models import ApiKey
from studio.engine import webhooks


@pytest.fixture
def issued(alice):
    return ApiKey.issue(user=alice, workspace=alice.memberships.get().workspace, name="hooks")


def test_each_key_has_its_own_random_secret_stored_encrypted(alice, issued):
    key, _ = issued
    other, _ = ApiKey.issue(user=alice, workspace=alice.memberships.get().workspace, name="other")
    assert key.webhook_secret.startswith("whsec_") and len(key.webhook_secret) > 40
    assert key.webhook_secret != other.webhook_secret
    stored = ApiKey.objects.filter(pk=key.pk).values_list("webhook_secret_encrypted", flat=True).get()
    assert key.webhook_secret not in stored and crypto.decrypt(stored) == key.webhook_secret


def test_the_secret_is_shown_once_when_the_key_is_made(client, alice):
    client.force_login(alice)
    workspace = alice.memberships.get().workspace
    response = client.post("/settings/api-keys/", {"name": "hooks", "workspace": workspace.pk})
    secret = response.context["new_webhook_secret"]
    assert secret == ApiKey.objects.get().webhook_secret and secret in response.content.decode()
    assert secret not in client.get("/settings/api-keys/").content.decode()


def test_rotating_shows_the_new_secret_once_and_both_sign_during_the_overlap(client, alice, issued, settings):
    settings.WEBHOOK_SECRET_OVERLAP_SECONDS = 3600
    key, _ = issued
    old = key.webhook_secret
    client.force_login(alice)
    response = client.post(f"/settings/api-keys/{key.pk}/rotate-webhook-secret/")
    new = response.context["new_webhook_secret"]
    assert new != old and new in response.content.decode() and "1 hours" in response.content.decode()
    assert new not in client.get("/settings/api-keys/").content.decode()
    key.refresh_from_db()
    assert key.webhook_signing_secrets() == [new, old]

    body, stamp = b'{"event":"task.finished"}', int(timezone.now().timestamp())
    header = webhooks.sign_all(key.webhook_signing_secrets(), stamp, body)
    assert webhooks.verify(new, str(stamp), body, header) and webhooks.verify(old, str(stamp), body, header)
    assert not webhooks.verify("whsec_wrong", str(stamp), body, header)

    ApiKey.objects.filter(pk=key.pk).update(webhook_secret_rotated_at=timezone.now() - timedelta(hours=2))
    key.refresh_from_db()
    assert key.webhook_signing_secrets() == [new]
    header = webhooks.sign_all(key.webhook_signing_secrets(), stamp, body)
    assert webhooks.verify(new, str(stamp), body, header) and not webhooks.verify(
        old, str(stamp), body, header
    )


def test_nobody_else_rotates_a_key_and_a_revoked_key_is_not_rotated(client, alice, bob, issued):
    key, _ = issued
    before = key.webhook_secret
    client.force_login(bob)
    assert client.post(f"/settings/api-keys/{key.pk}/rotate-webhook-secret/").status_code == 404
    key.revoke()
    client.force_login(alice)
    assert client.post(f"/settings/api-keys/{key.pk}/rotate-webhook-secret/").status_code == 404
    key.refresh_from_db()
    assert key.webhook_secret == before


def test_the_encryption_keys_rotate_without_losing_a_secret(issued, settings):
    key, _ = issued
    secret = key.webhook_secret
    old_keys = list(settings.ENCRYPTION_KEYS)
    new_key = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [new_key, *old_keys]  # the new key first: it encrypts, both decrypt
    assert key.webhook_secret == secret
    moved = crypto.reencrypt(key.webhook_secret_encrypted)
    settings.ENCRYPTION_KEYS = [new_key]  # the old key dropped, once every secret is moved
    assert crypto.decrypt(moved) == secret
    with pytest.raises(crypto.SecretUnreadable):
        crypto.decrypt(key.webhook_secret_encrypted)  # not moved: unreadable, and said so


def test_keys_made_before_keep_the_secret_their_receivers_know(issued, settings):
    import hashlib
    import hmac

    key, _ = issued
    ApiKey.objects.filter(pk=key.pk).update(webhook_secret_encrypted="")
    migration = importlib.import_module("accounts.migrations.0004_webhook_secrets_encrypted")
    migration.store_existing_secrets(django_apps, None)
    key.refresh_from_db()
    derived = hmac.new(settings.SECRET_KEY.encode(), f"webhook:{key.key_hash}".encode(), hashlib.sha256)
    assert key.webhook_secret == "whsec_" + derived.hexdigest()[:48]
