"""What the engine asks workers to do, sent by task name: nothing here imports a task module, so the services
never import the tasks and the tasks never import back up.

The names are the wire format between web and worker processes: they stay stable across upgrades, so a
message queued by an older release still finds its task.
"""

from celery import current_app

RUN_GENERATION = "studio.tasks.run_generation"
SWEEP_STUCK_GENERATIONS = "studio.tasks.sweep_stuck_generations"
APPLY_RETENTION = "studio.tasks.apply_retention"
DELIVER_WEBHOOK = "studio.tasks.deliver_webhook"
POLL_GENERATION = "studio.tasks.poll_generation"


# No task has a result to keep (CELERY_TASK_IGNORE_RESULT); said on each send too, or send_task would tell
# the result backend about every task it sends.
def run_generation(generation_id: object) -> None:
    current_app.send_task(RUN_GENERATION, args=[str(generation_id)], ignore_result=True)


def poll_generation(generation_id: object, *, owner: str, countdown: float) -> None:
    current_app.send_task(
        POLL_GENERATION, args=[str(generation_id), owner], countdown=countdown, ignore_result=True
    )


def deliver_webhook(generation_id: object) -> None:
    current_app.send_task(DELIVER_WEBHOOK, args=[str(generation_id)], ignore_result=True)
