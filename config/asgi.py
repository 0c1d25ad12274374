"""ASGI entry point (Daphne): pages, admin and API over HTTP, the live cards over websockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the apps loaded above)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from config.admission import AdmissionLimit  # noqa: E402
from studio.engine.metrics import start_snapshots  # noqa: E402
from studio.web.consumers import StudioConsumer  # noqa: E402

try:
    from config import daphne
except ImportError:  # served by another ASGI server
    pass
else:
    daphne.install()

start_snapshots("web")  # every web process's figures, for whichever node Prometheus scrapes

application = ProtocolTypeRouter(
    {
        "http": AdmissionLimit(django_asgi_app),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/studio/", StudioConsumer.as_asgi())]))
        ),
    }
)
