import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studio.settings")

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _import_providers(**kwargs) -> None:
    # The OpenAI SDK takes about a second to import; do it once at start, not while the first hundred
    # generations queue behind the import lock.
    import studio.providers.openai  # noqa: F401
