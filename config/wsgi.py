"""WSGI entry point, for a plain WSGI server. The studio runs on ASGI (`config.asgi`): websockets and the
streaming API need it; over WSGI only the pages, the admin and the non-streaming API work."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
