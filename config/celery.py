"""The Celery app of the project. Tasks live in the apps (`accounts.tasks`, `studio.engine.tasks`,
`studio.api.tasks`) and are found by autodiscovery; the engine sends them by name (`studio.engine.queue`)."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["accounts", "studio.engine", "studio.api"])


@worker_init.connect
def _import_providers(**kwargs: object) -> None:
    # The OpenAI SDK takes about a second to import; do it once at start, not while the first hundred
    # generations queue behind the import lock.
    import studio.engine.providers.openai  # noqa: F401
