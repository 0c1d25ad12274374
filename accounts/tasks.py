"""Thin Celery tasks for accounts."""

from celery import shared_task

from accounts import services


@shared_task(name="accounts.tasks.purge_expired_invitations", ignore_result=True)
def purge_expired_invitations() -> int:
    return services.invitations_purge_expired()
