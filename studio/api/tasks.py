"""Webhooks of API tasks: when a task with a callback URL ends, a worker POSTs its final status in the task's
own dialect, signed (`studio.engine.webhooks`), one attempt per run of the task, each recorded as a
WebhookDelivery, retried with backoff until a 2xx answer or WEBHOOK_MAX_ATTEMPTS.

Enqueued once, on commit, by the terminal transition (`studio.engine.services.generation_finish`), by name.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import connection

from studio.api import givon, native, sinancode, sjinn
from studio.engine import queue, webhooks
from studio.models import Generation, Source, WebhookDelivery

STATUS_FORMATS: dict[str, Callable[[Generation, str], dict[str, Any]]] = {
    Source.TASKS: native.task_status,
    Source.SJINN: sjinn.task_status,
    Source.SINANCODE: sinancode.task_status,
    Source.GIVON: givon.task_status,
}


def webhook_payload(generation: Generation) -> dict[str, Any]:
    """The task's final status in its own dialect's shape."""
    formatter = STATUS_FORMATS.get(generation.source, native.task_status)
    return {
        "event": "task.finished",
        "task_id": str(generation.pk),
        "sent_at": datetime.now(UTC).isoformat(),
        "task": formatter(generation, settings.SITE_URL),
    }


def deliver(generation_id: str, *, attempt: int) -> bool:
    """Try once; True when nothing is left to do (delivered, already delivered, or no callback)."""
    generation = Generation.objects.select_related("api_key").prefetch_related("images").get(pk=generation_id)
    if not generation.callback_url or generation.is_active:
        return True
    if generation.webhook_deliveries.filter(succeeded=True).exists():
        return True
    if generation.api_key is None:  # only API tasks have callbacks, and their keys sign them
        return True
    signing_secrets = generation.api_key.webhook_signing_secrets()
    delivery = WebhookDelivery.objects.create(
        generation=generation, url=generation.callback_url, attempt=attempt
    )
    payload = webhook_payload(generation)
    connection.close()  # no connection held while the receiver answers
    started = time.monotonic()
    status_code, error = webhooks.post(
        generation.callback_url,
        payload,
        secrets=signing_secrets,
        delivery_id=f"{generation.pk}-{delivery.pk}",
    )
    delivery.status_code = status_code
    delivery.error = error
    delivery.succeeded = status_code is not None and 200 <= status_code < 300
    delivery.duration_ms = round((time.monotonic() - started) * 1000)
    delivery.save(update_fields=["status_code", "error", "succeeded", "duration_ms"])
    return delivery.succeeded


@shared_task(name=queue.DELIVER_WEBHOOK, bind=True, ignore_result=True, max_retries=None)
def deliver_webhook(self: Task, generation_id: str) -> None:
    attempt = self.request.retries + 1
    if deliver(generation_id, attempt=attempt) or attempt >= settings.WEBHOOK_MAX_ATTEMPTS:
        return
    raise self.retry(countdown=settings.WEBHOOK_RETRY_BACKOFF_SECONDS * 2 ** (attempt - 1))
