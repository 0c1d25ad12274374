"""Thin Celery tasks: take an id, call the runner. Sent by name (`studio.engine.queue`), never imported by
the services; the names are the stable wire format."""

from celery import shared_task

from studio.engine import queue, runner, sweeper


@shared_task(name=queue.RUN_GENERATION, acks_late=True, ignore_result=True)
def run_generation(generation_id: str) -> None:
    """Acknowledged only when it ends, so a worker killed mid-generation leaves the task to be delivered
    again. Delivering it twice is safe: the runner's claim decides whether this delivery has work to do."""
    runner.run_generation(generation_id)


@shared_task(name=queue.SWEEP_STUCK_GENERATIONS, ignore_result=True)
def sweep_stuck_generations() -> int:
    return sweeper.sweep_stuck_generations()
