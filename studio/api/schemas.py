"""Schemas shared by the dialects: field types, and the OpenAI-shaped error that all but sjinn answer with.
Each dialect's own request and answer schemas sit beside its router."""

from typing import Annotated, Any, get_args

from ninja import Schema
from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

Url = Annotated[str, Field(max_length=2000)]


def _mentions_int(annotation: Any) -> bool:
    return annotation is int or any(_mentions_int(argument) for argument in get_args(annotation))


class ErrorDetail(Schema):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class Error(Schema):
    """OpenAI's error shape."""

    error: ErrorDetail


# What every authenticated operation of the OpenAI-shaped dialects may answer besides its success.
ERRORS: dict[int, type[Schema]] = {status: Error for status in (400, 401, 403, 404, 413, 415, 429, 500, 503)}


class Request(Schema):
    """A request object. Unknown fields are ignored, as the services these dialects copy do; JSON's `true` is
    not the number 1 to a client, whatever Python thinks, so a boolean given for a number is refused."""

    model_config = ConfigDict(extra="ignore")

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if isinstance(value, bool) and field is not None and _mentions_int(field.annotation):
            raise PydanticCustomError("int_type", "Input should be a valid integer")
        return value
