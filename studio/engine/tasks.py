"""Thin Celery tasks: take an id, call the runner. Sent by name (`studio.engine.queue`), never imported by
the services; the names are the stable wire format."""

from typing import Any

from celery import shared_task

from studio.engine import queue, retention, runner, sweeper
from studio.models import RetentionPolicy

# While the database is away before a claim: try again every 15 s for ten minutes, then leave the still
# queued generation to the sweeper, which refunds it.
DATABASE_RETRY_SECONDS = 15
DATABASE_RETRIES = 40


@shared_task(bind=True, name=queue.RUN_GENERATION, acks_late=True, ignore_result=True)
def run_generation(self: Any, generation_id: str) -> None:
    """Acknowledged only when it ends, so a worker killed mid-generation leaves the task to be delivered
    again. Delivering it twice is safe: the runner's claim decides whether this delivery has work to do, and
    one that finds a runner heard from recently looks again when it would count as gone."""
    try:
        runner.run_generation(generation_id)
    except runner.CheckAgainLater as later:
        raise self.retry(countdown=later.seconds, max_retries=None) from later
    except runner.DatabaseUnavailable as unavailable:
        raise self.retry(
            countdown=DATABASE_RETRY_SECONDS, max_retries=DATABASE_RETRIES, exc=unavailable
        ) from unavailable


@shared_task(bind=True, name=queue.POLL_GENERATION, acks_late=True, ignore_result=True)
def poll_generation(self: Any, generation_id: str, owner: str) -> None:
    """One look at a generation's tasks at a task service; it sends the next look itself. Acknowledged when
    it ends, so a look lost with its worker is delivered again."""
    try:
        runner.poll_generation(generation_id, owner)
    except runner.DatabaseUnavailable as unavailable:
        raise self.retry(
            countdown=DATABASE_RETRY_SECONDS, max_retries=DATABASE_RETRIES, exc=unavailable
        ) from unavailable


@shared_task(name=queue.SWEEP_STUCK_GENERATIONS, ignore_result=True)
def sweep_stuck_generations() -> int:
    return sweeper.sweep_stuck_generations()


@shared_task(name=queue.APPLY_RETENTION, ignore_result=True)
def apply_retention() -> int:
    """Beat's daily retention pass (skipped while the admin's policy is disabled); the files it removed."""
    policy = RetentionPolicy.current()
    if not policy.enabled:
        return 0
    report = retention.apply(policy)
    return report.partials + report.orphans
