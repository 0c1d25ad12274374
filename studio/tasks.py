"""Thin Celery tasks: take an id, call the runner."""

from celery import shared_task

from studio import runner


@shared_task(name="studio.tasks.run_generation", acks_late=True, ignore_result=True)
def run_generation(generation_id: str) -> None:
    runner.run_generation(generation_id)


@shared_task(name="studio.tasks.sweep_stuck_generations", ignore_result=True)
def sweep_stuck_generations() -> int:
    return runner.sweep_stuck_generations()
