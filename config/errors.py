"""The answer to an error no view handled (Django's handler500), for pages and the API alike.

Under /v1/ and /api/ it is JSON in the calling dialect's shape, never an HTML page. A database that is out
of reach or out of connections (the pool waited DB_POOL_TIMEOUT seconds in vain) is a 503 with
`Retry-After`, on pages too: the request can simply be made again, and whatever it had begun was rolled back.
"""

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.views import defaults

API_PREFIXES = ("/v1/", "/api/")


def server_error(request: HttpRequest) -> HttpResponse:
    from studio.api import errors  # the project package answers in the API's shapes

    raised = sys.exc_info()[1]
    error = raised if isinstance(raised, Exception) else Exception()
    unavailable = isinstance(error, OperationalError | InterfaceError)
    if request.path.startswith(API_PREFIXES):
        return errors.response_for_path(request.path, errors.as_api_error(error, request))
    if unavailable:
        body = loader.render_to_string("503.html", {"retry_after": errors.RETRY_AFTER_SECONDS})
        response = HttpResponse(body, status=503)
        response["Retry-After"] = str(errors.RETRY_AFTER_SECONDS)
        return response
    return defaults.server_error(request)
