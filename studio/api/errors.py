"""Errors of the public API, each rendered in its dialect's own shape.

One exception (`ApiError`) carries what went wrong; the exception handlers installed on the API turn it, and
ninja's own errors (validation, authentication, unparseable bodies), into the answer the calling dialect
documents: OpenAI's `{"error": {"message", "type", "param", "code"}}` for every dialect but sjinn, whose
clients read `{"success": false, "errorMsg", "error_code"}`.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import Resolver404, resolve
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

logger = logging.getLogger("studio.api")


class ApiError(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def as_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> HttpResponse:
        """The OpenAI-shaped answer."""
        return _with_headers(JsonResponse(self.as_dict(), status=self.status), self)


def _with_headers(response: HttpResponse, error: ApiError) -> HttpResponse:
    for name, value in error.headers.items():
        response[name] = value
    if error.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="studio"'
    return response


def invalid(message: str, *, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(message, status=400, param=param, code=code)


def unauthorized(
    message: str = "Missing or invalid API key. Send it as 'Authorization: Bearer KEY'.",
) -> ApiError:
    return ApiError(message, status=401, type="authentication_error", code="invalid_api_key")


# Seconds a client is asked to wait when the studio cannot take its request now.
RETRY_AFTER_SECONDS = 5


def unavailable() -> ApiError:
    """The database is out of reach or out of connections for now: a 503 to try again, never a 500."""
    return ApiError(
        "The studio is too busy to take this request right now. Try again in a few seconds.",
        status=503,
        type="server_error",
        code="service_unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def forbidden(message: str) -> ApiError:
    return ApiError(message, status=403, type="permission_error", code="forbidden")


def insufficient_credits(needed: int, balance: int) -> ApiError:
    return ApiError(
        f"Insufficient credits: this request costs {needed:,} credits and the balance is {balance:,}.",
        status=402,
        type="insufficient_quota",
        code="insufficient_credits",
    )


def rate_limited(limit: int) -> ApiError:
    return ApiError(
        f"Rate limit reached: at most {limit} requests per minute for this key. Try again shortly.",
        status=429,
        type="rate_limit_error",
        code="rate_limit_exceeded",
        headers={"Retry-After": "60"},
    )


def not_found(message: str = "Not found.") -> ApiError:
    return ApiError(message, status=404, code="not_found")


def method_not_allowed(allowed: list[str]) -> ApiError:
    return ApiError(
        f"Use {' or '.join(allowed)} for this endpoint.",
        status=405,
        code="method_not_allowed",
        headers={"Allow": ", ".join(allowed)},
    )


# Pydantic's error types, said the way a client reads them: (message, code).
def _validation_message(error: dict[str, Any], param: str | None) -> tuple[str, str]:
    kind = error.get("type", "")
    name = param or "the body"
    context = error.get("ctx") or {}
    if kind == "missing":
        return f"{name} is required", "missing_required_parameter"
    if kind == "extra_forbidden":
        return f"Unknown parameter '{name}'.", "unknown_parameter"
    if kind == "literal_error":
        return f"{name} must be one of {context.get('expected', '')}.", "invalid_value"
    if kind in ("string_too_long", "too_long"):
        limit = context.get("max_length")
        return f"{name} is too long (at most {limit}).", "invalid_value"
    if kind in ("string_too_short", "too_short"):
        return f"{name} must not be empty.", "invalid_value"
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "finite_number":
        expected = kind.removesuffix("_type").removesuffix("_parsing").replace("_", " ")
        if kind == "model_type" or kind == "dict_type":
            expected = "object"
        return f"{name} must be a valid {expected}.", "invalid_type"
    return f"{name}: {error.get('msg', 'invalid value')}.", "invalid_value"


def from_validation_error(exc: ValidationError) -> ApiError:
    """The first problem of a request that does not fit its schema, naming the parameter."""
    first = exc.errors[0] if exc.errors else {}
    names = [part for part in first.get("loc", ()) if isinstance(part, str)]
    # ninja puts where the value came from first ("body", "form", "query", "path"), then the schema's name.
    param = names[-1] if len(names) > 2 or (names and names[0] in ("path", "query")) else None
    if param is None and first.get("type") == "missing":
        return invalid("The body must be a JSON object.", code="invalid_json")
    message, code = _validation_message(first, param)
    return invalid(message, param=param, code=code)


def _is_json(request: HttpRequest) -> bool:
    content_type = request.content_type or ""
    return content_type == "application/json" or content_type.endswith("+json")


def as_api_error(exc: Exception, request: HttpRequest | None = None) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        return from_validation_error(exc)
    if isinstance(exc, AuthenticationError):
        return unauthorized()
    if isinstance(exc, HttpError):
        if exc.status_code == 400 and request is not None and not _is_json(request):
            return ApiError(
                "Send the body as JSON, with 'Content-Type: application/json'.",
                status=415,
                code="unsupported_media_type",
            )
        if exc.status_code == 400:  # ninja could not parse the body
            return invalid("The body must be JSON.", code="invalid_json")
        return ApiError(str(exc), status=exc.status_code, code="error")
    if isinstance(exc, Http404):
        return not_found()
    if isinstance(exc, MultiPartParserError):
        return invalid(f"The body is not valid multipart/form-data: {exc}", code="invalid_body")
    if isinstance(exc, RequestDataTooBig):
        return ApiError("The request is too large.", status=413, code="request_too_large")
    if isinstance(exc, SuspiciousOperation):  # too many fields, a bad header, ...
        return invalid(str(exc) or "The request was refused.", code="invalid_request")
    if isinstance(exc, OperationalError | InterfaceError):
        return unavailable()
    return ApiError(
        "Something went wrong on our side. Nothing was charged; try again.",
        status=500,
        type="server_error",
        code="internal_error",
    )


def sjinn_response(error: ApiError) -> HttpResponse:
    """sjinn reports errors in the body; the HTTP status still tells auth, money, limits and methods apart."""
    status = error.status if error.status in (401, 402, 405, 413, 415, 429) or error.status >= 500 else 200
    body = {"success": False, "errorMsg": error.message, "error_code": error.status}
    return _with_headers(JsonResponse(body, status=status), error)


def openai_response(error: ApiError) -> HttpResponse:
    return error.response()


# Operations are named "<dialect>-<what>" (see studio.api.urls); the dialect picks the shape.
RENDERERS: dict[str, Callable[[ApiError], HttpResponse]] = {"sjinn": sjinn_response}


def response_for_path(path: str, error: ApiError) -> HttpResponse:
    """The answer for a path, before Django has a request for it (the server refusing a body)."""
    try:
        url_name = resolve(path).url_name or ""
    except Resolver404:
        url_name = ""
    return _renderer(url_name)(error)


def render(request: HttpRequest, error: ApiError) -> HttpResponse:
    url_name = getattr(getattr(request, "resolver_match", None), "url_name", None) or ""
    return _renderer(url_name)(error)


def _renderer(url_name: str) -> Callable[[ApiError], HttpResponse]:
    return RENDERERS.get(url_name.partition("-")[0], openai_response)


def install(api: NinjaAPI) -> None:
    """Answer every error of `api` in the calling dialect's shape, never with an HTML page."""

    def handle(request: HttpRequest, exc: Exception | type[Exception]) -> HttpResponse:
        raised = exc if isinstance(exc, Exception) else exc()
        error = as_api_error(raised, request)
        if error.status >= 500:
            logger.error("API error on %s %s", request.method, request.path, exc_info=raised)
        return render(request, error)

    # ninja looks a handler up by the exception's class first: replace its defaults one by one.
    for exception_class in (Exception, ApiError, ValidationError, HttpError, Http404):
        api.add_exception_handler(exception_class, handle)


class JsonParser(Parser):
    """JSON bodies, sent as JSON: a body in another content type is refused (415), not guessed at."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        if not _is_json(request):
            raise ValueError(f"a {request.content_type or 'untyped'} body where JSON was expected")
        return super().parse_body(request)
