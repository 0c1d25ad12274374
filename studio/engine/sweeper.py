"""The sweeper (Celery beat, every minute): generations no runner will finish are failed and refunded.

A running generation is stuck when its runner has been silent past GENERATION_STALE_SECONDS (see
`studio.engine.runner` for what keeps a live runner's heartbeat fresh); a queued one when no worker has
started it within GENERATION_QUEUED_MAX_SECONDS (its task was lost).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from studio.engine.events import publish_generation_changed
from studio.engine.runner import release_connection, silent
from studio.engine.services import generation_fail
from studio.models import Generation, Status

logger = logging.getLogger("studio.sweeper")

STALLED_ERROR = "The worker making this image stopped responding. Your credits were refunded."
NEVER_STARTED_ERROR = "No worker picked up this generation in time. Your credits were refunded."


def sweep_stuck_generations() -> int:
    """Fail and refund generations whose worker went silent (killed, lost) or that no worker ever started.

    Each is failed under a row lock after checking again that it is still stuck, so a runner that speaks up
    (or claims it again) meanwhile keeps it. Run twice, it refunds once: only one actor wins a transition.
    """
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
