"""The Django project: settings, URLs, ASGI/WSGI entry points, the Celery app and the health views.

The Celery app is loaded here, as Celery's Django guide shows, so that `shared_task` in the apps binds to it
whenever Django starts.
"""

from config.celery import app as celery_app

__all__ = ["celery_app"]
