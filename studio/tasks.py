"""Thin Celery tasks: take an id, call the runner."""

from celery import shared_task

from studio import runner


@shared_task(name="studio.tasks.run_generation", acks_late=True, ignore_result=True)
def run_generation(generation_id: str) -> None:
    """Acknowledged only when it ends, so a worker killed mid-generation leaves the task to be delivered
    again. Delivering it twice is safe: the runner's claim decides whether this delivery has work to do."""
    runner.run_generation(generation_id)


@shared_task(name="studio.tasks.sweep_stuck_generations", ignore_result=True)
def sweep_stuck_generations() -> int:
    return runner.sweep_stuck_generations()


@shared_task(name="studio.tasks.deliver_webhook", bind=True, ignore_result=True, max_retries=None)
def deliver_webhook(self, generation_id: str) -> None:
    from django.conf import settings

    from studio.api import callbacks

    attempt = self.request.retries + 1
    if callbacks.deliver(generation_id, attempt=attempt) or attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
        return
    raise self.retry(countdown=settings.WEBHOOK_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
