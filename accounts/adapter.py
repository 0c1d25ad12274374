"""How django-allauth fits the studio: a new account, signed up with a password or through single sign-on,
gets its personal workspace; the sign-up bonus follows accounts.bonus (at sign-up without mandatory
verification; with it, for an address verified at sign-up, as an issuer's can be, or at its confirmation);
and every email is sent by a Celery task, never inside the request."""

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed, user_signed_up
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.conf import settings
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest

from accounts import audit, crypto
from accounts.bonus import grant_signup_bonus
from accounts.models import AuditAction, User
from accounts.services import personal_workspace


class AccountAdapter(DefaultAccountAdapter):
    def save_user(self, request: HttpRequest, user: Any, form: Any, commit: bool = True) -> Any:
        user = super().save_user(request, user, form, commit)
        if commit:
            personal_workspace(user)
        return user

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        from accounts.tasks import send_email

        message = self.render_mail(template_prefix, email, context)
        html = next(
            (content for content, kind in getattr(message, "alternatives", []) if kind == "text/html"), ""
        )
        arguments = {
            "subject": message.subject,
            "body": message.body,
            "from_email": message.from_email,
            "to": list(message.to),
            "html": html,
        }
        transaction.on_commit(lambda: send_email.delay(**arguments))


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def save_user(self, request: HttpRequest, sociallogin: Any, form: Any = None) -> Any:
        user = super().save_user(request, sociallogin, form)
        personal_workspace(user)
        return user


class MFAAdapter(DefaultMFAAdapter):
    """Second-factor secrets (TOTP seeds, recovery codes) are kept encrypted, as the webhook secrets are."""

    def encrypt(self, text: str) -> str:
        return crypto.encrypt(text)

    def decrypt(self, encrypted_text: str) -> str:
        return crypto.decrypt(encrypted_text)


@receiver(user_signed_up)
def _signed_up(sender: object, request: HttpRequest, user: User, **kwargs: object) -> None:
    audit.record(AuditAction.SIGNUP, actor=user, target=user.email)
    if settings.ACCOUNT_EMAIL_VERIFICATION != "mandatory":
        grant_signup_bonus(user, user.email)
        return
    verified = EmailAddress.objects.filter(user=user, verified=True).order_by("-primary").first()
    if verified is not None:
        grant_signup_bonus(user, verified.email)


@receiver(email_confirmed)
def _email_confirmed(
    sender: object, request: HttpRequest, email_address: EmailAddress, **kwargs: object
) -> None:
    grant_signup_bonus(email_address.user, email_address.email)
