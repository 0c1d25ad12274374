"""Existing accounts, made before sign-up moved to allauth, keep working: their address counts as verified
(so mandatory verification does not lock them out at their next login), and a bonus they already had is
recorded against their normalised address, so a new account for that address gets none."""

from django.db import IntegrityError, migrations, transaction
from django.db.models import Sum


def verify_existing_accounts(apps, schema_editor):
    from accounts.bonus import normalised

    User = apps.get_model("accounts", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    SignupBonus = apps.get_model("accounts", "SignupBonus")
    LedgerEntry = apps.get_model("accounts", "LedgerEntry")
    for user in User.objects.exclude(email=""):
        if not EmailAddress.objects.filter(user=user).exists():
            if not EmailAddress.objects.filter(email__iexact=user.email).exists():
                EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
        given = LedgerEntry.objects.filter(user=user, kind="bonus").aggregate(total=Sum("amount"))["total"]
        if given and not SignupBonus.objects.filter(user=user).exists():
            try:
                with transaction.atomic():
                    SignupBonus.objects.create(email=normalised(user.email), user=user, credits=given)
            except IntegrityError:
                pass  # another account of the same mailbox already holds it


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_signup_bonus"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(verify_existing_accounts, migrations.RunPython.noop)]
