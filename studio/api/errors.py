"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

from django.http import JsonResponse


class ApiError(Exception):
    def __init__(
        self, message: str, *, status: int = 400, type: str = "invalid_request_error", param=None, code=None
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.param = param
        self.code = code

    def as_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JsonResponse:
        response = JsonResponse(self.as_dict(), status=self.status)
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="studio"'
        return response


def invalid(message: str, *, param: str | None = None, code: str | None = "invalid_value") -> ApiError:
    return ApiError(message, status=400, param=param, code=code)


def unauthorized(
    message: str = "Missing or invalid API key. Send it as 'Authorization: Bearer KEY'.",
) -> ApiError:
    return ApiError(message, status=401, type="authentication_error", code="invalid_api_key")


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
    )


def not_found(message: str = "Not found.") -> ApiError:
    return ApiError(message, status=404, code="not_found")
