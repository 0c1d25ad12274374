"""Webhook signing secrets become random per key and encrypted at rest. A key made before keeps the secret
its receivers already verify with (it was derived from SECRET_KEY and the key's hash), now stored encrypted,
so no receiver breaks; rotating it on the API keys page gives it a random one."""

import hashlib
import hmac

from django.conf import settings
from django.db import migrations, models


def store_existing_secrets(apps, schema_editor):
    from accounts import crypto

    ApiKey = apps.get_model("accounts", "ApiKey")
    for key in ApiKey.objects.filter(webhook_secret_encrypted=""):
        digest = hmac.new(settings.SECRET_KEY.encode(), f"webhook:{key.key_hash}".encode(), hashlib.sha256)
        key.webhook_secret_encrypted = crypto.encrypt("whsec_" + digest.hexdigest()[:48])
        key.save(update_fields=["webhook_secret_encrypted"])


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_apikey")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="webhook_secret_encrypted",
            field=models.TextField(default="", editable=False),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="apikey",
            name="previous_webhook_secret_encrypted",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name="apikey",
            name="webhook_secret_rotated_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(store_existing_secrets, migrations.RunPython.noop),
    ]
