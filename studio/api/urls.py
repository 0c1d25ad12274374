"""The public API on django-ninja: one router per dialect, one auth class, errors in each dialect's shape
(`studio.api.errors`), and the OpenAPI document generated from the schemas at /v1/openapi.json, with
interactive docs at /api/docs."""

import inspect
import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import re_path
from ninja import NinjaAPI, Router

from studio.api import errors, givon, native, openai, responses, sinancode, sjinn
from studio.api.auth import ApiKeyAuth

api = NinjaAPI(
    title="Studio API",
    version="1",
    description=(
        "GPT-Image-2 through the OpenAI Images API and the task APIs of other GPT-Image-2 services, "
        "paid in studio credits. Authenticate with `Authorization: Bearer KEY` (a key from the API keys "
        "page)."
    ),
    auth=ApiKeyAuth(),
    urls_namespace="api",
    parser=errors.JsonParser(),
    openapi_url="/v1/openapi.json",
    docs_url="/api/docs",
)
errors.install(api)

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def answer_other_methods_with_405(router: Router) -> None:
    """A method a path does not serve answers 405 in the dialect's error shape (ninja's own 405 is plain
    text), naming the methods it does serve."""
    for path, path_view in list(router.path_operations.items()):
        allowed = sorted({method for operation in path_view.operations for method in operation.methods})
        others = [method for method in METHODS if method not in allowed]
        router.add_api_operation(
            path,
            others,
            _not_allowed(path, allowed),
            auth=None,
            include_in_schema=False,
            url_name=path_view.url_name,
        )


def _not_allowed(path: str, allowed: list[str]) -> Callable[..., HttpResponse]:
    def not_allowed(request: HttpRequest, **path_parameters: str) -> HttpResponse:
        raise errors.method_not_allowed(allowed)

    # ninja reads the path's parameters from the view's signature; the answer does not depend on them.
    parameters = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=str)
        for name in re.findall(r"{(\w+)}", path)
    ]
    not_allowed.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return not_allowed


for dialect in (openai.router, responses.router, native.router, sjinn.router, sinancode.router, givon.router):
    answer_other_methods_with_405(dialect)
    api.add_router("", dialect)

urlpatterns = list(api.urls[0])
app_name = "api"


def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    """An unknown path under the API's prefixes answers in OpenAI's error shape, never with an HTML page."""
    return errors.not_found(f"No such endpoint: {request.method} {request.path}.").response()


# After ninja's routes (and its docs), so only what none of them matched lands here.
urlpatterns += [re_path(r"^(?:v1|api)/(?P<rest>.*)$", not_found, name="not-found")]
