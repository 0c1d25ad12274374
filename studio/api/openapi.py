"""The OpenAPI document of the public API, served at /v1/openapi.json."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from studio import spec as spec_module
from studio.api.openai_params import MODEL_ALIASES

ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type"],
        }
    },
}

USAGE = {
    "type": "object",
    "properties": {
        "input_tokens": {"type": "integer"},
        "output_tokens": {"type": "integer"},
        "total_tokens": {"type": "integer"},
        "input_tokens_details": {
            "type": "object",
            "properties": {"text_tokens": {"type": "integer"}, "image_tokens": {"type": "integer"}},
        },
    },
}

IMAGES_RESPONSE = {
    "type": "object",
    "properties": {
        "created": {"type": "integer"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "b64_json": {"type": "string"},
                    "url": {"type": "string", "description": "A signed link that expires."},
                    "revised_prompt": {"type": "string"},
                },
            },
        },
        "size": {"type": "string"},
        "quality": {"type": "string"},
        "output_format": {"type": "string"},
        "background": {"type": "string"},
        "usage": {"$ref": "#/components/schemas/Usage"},
    },
}

COMMON_PARAMETERS = {
    "model": {"type": "string", "enum": list(MODEL_ALIASES), "default": "gpt-image-2"},
    "prompt": {"type": "string", "maxLength": spec_module.PROMPT_MAX_CHARS},
    "n": {
        "type": "integer",
        "minimum": 0,
        "maximum": spec_module.MAX_IMAGES,
        "description": "0 or missing: 1",
    },
    "size": {"type": "string", "description": "auto, or WIDTHxHEIGHT (edges multiples of 16, at most 3840)"},
    "quality": {"type": "string", "enum": list(spec_module.QUALITIES), "default": "medium"},
    "output_format": {"type": "string", "enum": list(spec_module.OUTPUT_FORMATS), "default": "png"},
    "output_compression": {"type": "integer", "minimum": 0, "maximum": 100},
    "background": {"type": "string", "enum": list(spec_module.BACKGROUNDS)},
    "moderation": {"type": "string", "enum": list(spec_module.MODERATIONS)},
    "stream": {"type": "boolean", "default": False},
    "partial_images": {"type": "integer", "minimum": 0, "maximum": spec_module.MAX_PARTIAL_IMAGES},
    "user": {"type": "string"},
    "response_format": {"type": "string", "enum": ["b64_json", "url"], "default": "b64_json"},
}


def _errors(*statuses: int) -> dict:
    descriptions = {
        400: "Invalid parameter (see error.param)",
        401: "Missing or revoked key",
        402: "Not enough credits",
        429: "Rate limit of the key",
        502: "The image model failed",
    }
    return {
        str(status): {
            "description": descriptions[status],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for status in statuses
    }


def _images_operation(summary: str, content_type: str, schema: dict) -> dict:
    return {
        "summary": summary,
        "requestBody": {"required": True, "content": {content_type: {"schema": schema}}},
        "responses": {
            "200": {
                "description": "The images; with stream=true, server-sent events instead.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ImagesResponse"}},
                    "text/event-stream": {"schema": {"type": "string"}},
                },
            },
            **_errors(400, 401, 402, 429, 502),
        },
    }


def document(base_url: str) -> dict:
    edit_properties = {
        **COMMON_PARAMETERS,
        "image[]": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": 16},
        "image": {"type": "string", "format": "binary"},
        "mask": {
            "type": "string",
            "format": "binary",
            "description": "PNG with alpha, the first image's size",
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Studio API",
            "version": "1",
            "description": "The OpenAI Images API for gpt-image-2, paid in studio credits.",
        },
        "servers": [{"url": base_url}],
        "security": [{"bearer": []}],
        "paths": {
            "/v1/images/generations": {
                "post": _images_operation(
                    "Create images from a prompt",
                    "application/json",
                    {"type": "object", "properties": COMMON_PARAMETERS, "required": ["prompt"]},
                )
            },
            "/v1/images/edits": {
                "post": _images_operation(
                    "Edit images (up to 16) with an optional mask",
                    "multipart/form-data",
                    {"type": "object", "properties": edit_properties, "required": ["prompt"]},
                )
            },
            "/v1/models": {
                "get": {
                    "summary": "The model names accepted",
                    "responses": {"200": {"description": "A list"}},
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR, "Usage": USAGE, "ImagesResponse": IMAGES_RESPONSE},
        },
    }


@require_GET
def openapi(request: HttpRequest) -> JsonResponse:
    return JsonResponse(document(request.build_absolute_uri("/").rstrip("/")))
