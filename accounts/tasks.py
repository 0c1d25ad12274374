"""Thin Celery tasks for accounts."""

from celery import shared_task
from django.core.mail import EmailMultiAlternatives

from accounts import services


@shared_task(name="accounts.tasks.purge_expired_invitations", ignore_result=True)
def purge_expired_invitations() -> int:
    return services.invitations_purge_expired()


@shared_task(name="accounts.tasks.send_email", ignore_result=True, autoretry_for=(OSError,), max_retries=5)
def send_email(*, subject: str, body: str, from_email: str | None, to: list[str], html: str = "") -> None:
    """Send one email through Django's email backend (console by default, SMTP by settings)."""
    message = EmailMultiAlternatives(subject=subject, body=body, from_email=from_email, to=to)
    if html:
        message.attach_alternative(html, "text/html")
    message.send()
