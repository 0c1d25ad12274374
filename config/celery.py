"""The Celery app of the project. Tasks live in the apps (`accounts.tasks`, `studio.engine.tasks`,
`studio.api.tasks`) and are found by autodiscovery; the engine sends them by name (`studio.engine.queue`)."""

import ctypes
import os

from celery import Celery, bootsteps
from celery.signals import beat_init, setup_logging, worker_init
from django_structlog.celery.steps import DjangoStructLogInitStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("studio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["accounts", "studio.engine", "studio.api"])

# How often, at most, the worker's event loop looks for more tasks while it is busy (see WakeUp).
WAKE_SECONDS = 0.05


class WakeUp(bootsteps.StartStopStep):
    """Keep a full worker of the thread pool taking tasks as soon as it has room.

    When every slot is taken, the Redis transport stops asking for tasks and the event loop sleeps until
    its next timer, up to ten seconds. With the prefork pool a finished task wakes the loop (its result
    arrives on a pipe the loop watches); with the thread pool the task ends on another thread and nothing
    does, so a worker that filled up stayed idle for five to ten seconds each time (24 half-second tasks on
    four threads took 40 s). A short repeating timer bounds that wait.
    """

    requires = ("celery.worker.consumer.connection:Connection",)

    def __init__(self, parent: object, **kwargs: object) -> None:
        super().__init__(parent, **kwargs)
        self.timer_entry = None

    def start(self, parent) -> None:  # type: ignore[no-untyped-def]
        if parent.hub is not None:
            self.timer_entry = parent.hub.call_repeatedly(WAKE_SECONDS, _nothing)

    def stop(self, parent) -> None:  # type: ignore[no-untyped-def]
        if self.timer_entry is not None:
            self.timer_entry.cancel()
            self.timer_entry = None

    shutdown = stop


def _nothing() -> None:
    """A timer that only ends the event loop's wait; the transport asks for tasks on the next turn."""


app.steps["consumer"].add(WakeUp)
# The web request's id (and the rest of its log context) on every line of the tasks it sent.
app.steps["worker"].add(DjangoStructLogInitStep)


@setup_logging.connect
def _log_as_django_does(**kwargs: object) -> None:
    """Workers and beat log through the project's LOGGING (config.logs: JSON lines in production) instead of
    Celery's own format; connecting here is what keeps Celery from replacing the root logger's handlers."""
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@worker_init.connect
def _import_providers(**kwargs: object) -> None:
    # The OpenAI SDK takes about a second to import, and Pillow loads its format plugins on the first image
    # it opens; do both once at start, not while the first hundred generations queue behind the import lock.
    from PIL import Image

    import studio.engine.providers.openai
    import studio.engine.providers.tasks  # noqa: F401

    Image.init()


@worker_init.connect
def _start_publisher(**kwargs: object) -> None:
    from studio.engine.events import start_publisher

    start_publisher()


@worker_init.connect
def _publish_worker_metrics(**kwargs: object) -> None:
    from studio.engine.metrics import start_snapshots

    start_snapshots("worker")  # the web's /metrics gathers them from Redis


@beat_init.connect
def _publish_beat_metrics(**kwargs: object) -> None:
    from studio.engine.metrics import start_snapshots

    start_snapshots("beat")


# glibc's M_MMAP_THRESHOLD, for mallopt.
_M_MMAP_THRESHOLD = -3


@worker_init.connect
def _return_big_buffers_to_the_system(**kwargs: object) -> None:
    """Images pass through a worker as buffers of megabytes (an answer's base64 text, the decoded bytes,
    the decoded pixels). glibc raises its mmap threshold each time such a buffer is freed, so later ones
    come from the heap, where a thousand threads' worth fragments and is never given back: RSS stayed at its
    peak. A fixed threshold of 1 MiB gives each big buffer its own mapping, unmapped when freed
    (WORKER_MMAP_THRESHOLD_BYTES; 0 leaves glibc's default)."""
    threshold = int(os.environ.get("WORKER_MMAP_THRESHOLD_BYTES", 1 << 20))
    if threshold <= 0:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, threshold)
    except (OSError, AttributeError):
        pass  # not glibc: its allocator keeps its own ways
