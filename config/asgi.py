"""ASGI entry point (Daphne): pages, admin and API over HTTP, the live cards over websockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402  (needs the apps loaded above)
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.urls import path  # noqa: E402

from studio.web.consumers import StudioConsumer  # noqa: E402

try:
    from daphne import http_protocol
except ImportError:  # served by another ASGI server
    pass
else:

    class _UnparsedBodyRequest(http_protocol.WebRequest):
        """Twisted parses every multipart body itself, by default: it reads all of it into memory once more,
        and answers a bare 400, before Django sees the request, to one it cannot parse. Daphne never uses what
        it parsed (Django parses the body, and answers a bad one in the API's error shape), so don't."""

        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

    # Daphne's protocol factory builds its requests from this name, once per connection.
    http_protocol.WebRequest = _UnparsedBodyRequest

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter([path("ws/studio/", StudioConsumer.as_asgi())]))
        ),
    }
)
