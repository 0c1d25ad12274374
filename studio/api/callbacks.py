"""Deliver a finished task's webhook: one attempt per call, each recorded as a WebhookDelivery."""

import time

from django.conf import settings
from django.db import connection

from studio import webhooks
from studio.api.task_dialects import webhook_payload
from studio.models import Generation, WebhookDelivery


def deliver(generation_id: str, *, attempt: int) -> bool:
    """Try once; True when nothing is left to do (delivered, already delivered, or no callback)."""
    generation = Generation.objects.select_related("api_key").prefetch_related("images").get(pk=generation_id)
    if not generation.callback_url or generation.is_active:
        return True
    if generation.webhook_deliveries.filter(succeeded=True).exists():
        return True
    secret = generation.api_key.webhook_secret if generation.api_key else settings.SECRET_KEY
    delivery = WebhookDelivery.objects.create(
        generation=generation, url=generation.callback_url, attempt=attempt
    )
    payload = webhook_payload(generation)
    connection.close()  # no connection held while the receiver answers
    started = time.monotonic()
    status_code, error = webhooks.post(
        generation.callback_url, payload, secret=secret, delivery_id=f"{generation.pk}-{delivery.pk}"
    )
    delivery.status_code = status_code
    delivery.error = error
    delivery.succeeded = status_code is not None and 200 <= status_code < 300
    delivery.duration_ms = round((time.monotonic() - started) * 1000)
    delivery.save(update_fields=["status_code", "error", "succeeded", "duration_ms"])
    return delivery.succeeded
