"""The sweeper (Celery beat, every minute): generations no runner will finish are failed and refunded.

A running generation is stuck when its runner has been silent past GENERATION_STALE_SECONDS: past the
takeover by its redelivered task too (see `studio.engine.runner` for what keeps a live runner's heartbeat
fresh, and config.settings for the order of the deadlines), so its task was lost. A queued one is stuck
when no worker has started it within GENERATION_QUEUED_MAX_SECONDS.

Before that, it sends again the tasks that could not be sent at submission (the broker was down), so a
generation accepted during a broker outage is drawn once the broker is back, not refunded; and the
webhooks that could not be sent when their generation ended.
"""

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from studio.engine import queue
from studio.engine.events import publish_generation_changed
from studio.engine.runner import release_connection, silent
from studio.engine.services import generation_fail
from studio.models import Generation, Status

logger = logging.getLogger("studio.sweeper")

STALLED_ERROR = "The worker making this image stopped responding. Your credits were refunded."
NEVER_STARTED_ERROR = "No worker picked up this generation in time. Your credits were refunded."


def resend_pending_tasks() -> int:
    """Send the tasks of queued generations, and the webhooks of ended ones, that could not be sent when they
    were due (the broker was down); the number sent."""
    tasks = _resend(
        Generation.objects.filter(task_pending=True, status=Status.QUEUED),
        queue.run_generation,
        "task_pending",
    )
    webhooks = _resend(
        Generation.objects.filter(webhook_pending=True), queue.deliver_webhook, "webhook_pending"
    )
    if tasks or webhooks:
        logger.warning(
            "sent again, now that the broker is back, the tasks of %s generations and %s webhooks",
            tasks,
            webhooks,
        )
    return tasks + webhooks


def _resend(pending: QuerySet, send: Callable[[object], None], flag: str) -> int:
    """Send for each pending generation, oldest first, clearing its flag; stop at the first broker error."""
    sent = 0
    for pk in pending.order_by("created_at").values_list("pk", flat=True)[:1000]:
        try:
            send(pk)
        except Exception:
            logger.warning("the broker is still unavailable: %s left to send (%s)", pending.count(), flag)
            break
        Generation.objects.filter(pk=pk).update(**{flag: False})
        sent += 1
    return sent


def sweep_stuck_generations() -> int:
    """Fail and refund generations whose worker went silent (killed, lost) or that no worker ever started.

    Each is failed under a row lock after checking again that it is still stuck, so a runner that speaks up
    (or claims it again) meanwhile keeps it. Run twice, it refunds once: only one actor wins a transition.
    """
    resend_pending_tasks()
    now = timezone.now()
    stuck = silent(now - timedelta(seconds=settings.GENERATION_STALE_SECONDS))
    never_started = Q(
        status=Status.QUEUED, created_at__lt=now - timedelta(seconds=settings.GENERATION_QUEUED_MAX_SECONDS)
    )
    count = 0
    for pk in Generation.objects.filter(stuck | never_started).values_list("pk", flat=True):
        with transaction.atomic():
            generation = Generation.objects.select_for_update().filter(stuck | never_started, pk=pk).first()
            won = generation is not None and generation_fail(
                generation,
                message=STALLED_ERROR if generation.status == Status.RUNNING else NEVER_STARTED_ERROR,
                code="timeout",
            )
        if won and generation is not None:
            publish_generation_changed(generation)
            count += 1
    release_connection()
    if count:
        logger.warning("swept %s stuck generations", count)
    return count
