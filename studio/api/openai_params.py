"""Read an OpenAI Images API request (generations or edits) into a GenerationSpec.

Model names: gpt-image-2 and its dated snapshot take any legal size; the gateway variants gpt-image-2-1k,
-2k and -4k take their tier's sizes (and default to 1024x1024, 2048x2048, 3840x2160); gpt-image-2-vip is an
alias.
"""

from dataclasses import dataclass
from typing import Any

from studio.api.errors import ApiError, invalid
from studio.engine.spec import ASPECT_RATIOS, MAX_INPUT_IMAGES, GenerationSpec, SpecError, size_for

MODEL_ALIASES = {
    "gpt-image-2": None,
    "gpt-image-2-2026-04-21": None,
    "gpt-image-2-vip": None,
    "gpt-image-2-1k": "1K",
    "gpt-image-2-2k": "2K",
    "gpt-image-2-4k": "4K",
}
TIER_DEFAULT_SIZES = {"1K": "1024x1024", "2K": "2048x2048", "4K": "3840x2160"}


def tier_sizes(tier: str) -> list[str]:
    sizes = []
    for ratio in ASPECT_RATIOS:
        if ratio != "auto":
            width, height = size_for(ratio, tier)
            sizes.append(f"{width}x{height}")
    return sizes


@dataclass(frozen=True)
class ImagesRequest:
    model: str
    spec: GenerationSpec
    stream: bool
    response_format: str
    user: str


def _integer(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise invalid(f"'{name}' must be an integer.", param=name)
    try:
        number = int(value)  # type: ignore[arg-type]  # anything else is refused just below
    except (TypeError, ValueError, OverflowError) as error:
        raise invalid(f"'{name}' must be an integer.", param=name) from error
    if isinstance(value, float) and value != number:
        raise invalid(f"'{name}' must be an integer.", param=name)
    return number


def _boolean(data: dict[str, Any], name: str) -> bool:
    value = data.get(name)
    if isinstance(value, bool):
        return value
    if value in (None, ""):
        return False
    if str(value).lower() in {"true", "1"}:
        return True
    if str(value).lower() in {"false", "0"}:
        return False
    raise invalid(f"'{name}' must be a boolean.", param=name)


def parse(data: dict[str, Any], *, input_images: int = 0, has_mask: bool = False) -> ImagesRequest:
    """Validate the request's fields; raise ApiError naming the bad parameter."""
    model = str(data.get("model") or "gpt-image-2")
    if model not in MODEL_ALIASES:
        raise ApiError(
            f"The model '{model}' does not exist. Use one of: {', '.join(MODEL_ALIASES)}.",
            status=400,
            param="model",
            code="model_not_found",
        )
    tier = MODEL_ALIASES[model]
    if input_images > MAX_INPUT_IMAGES:
        raise invalid(f"At most {MAX_INPUT_IMAGES} images can be edited at once.", param="image")

    size = str(data.get("size") or "").strip().lower() or (TIER_DEFAULT_SIZES[tier] if tier else "auto")
    if tier and size != "auto" and size not in tier_sizes(tier):
        raise invalid(
            f"Invalid size '{size}' for {model}. Supported sizes: {', '.join(tier_sizes(tier))}.",
            param="size",
        )
    n = _integer(data, "n") or 1  # missing or 0 means one image
    response_format = str(data.get("response_format") or "b64_json")
    if response_format not in ("b64_json", "url"):
        raise invalid("'response_format' must be 'b64_json' or 'url'.", param="response_format")
    stream = _boolean(data, "stream")
    partial_images = _integer(data, "partial_images")
    fields = {
        "prompt": data.get("prompt"),
        "size": "" if size == "auto" else size,
        "aspect_ratio": "auto" if size == "auto" else "1:1",
        "quality": data.get("quality") or "medium",
        "n": n,
        "output_format": data.get("output_format") or "png",
        "output_compression": _integer(data, "output_compression"),
        "background": data.get("background") or "auto",
        "moderation": data.get("moderation") or "auto",
        "partial_images": partial_images if partial_images is not None else 0,
        "input_images": input_images,
        "has_mask": has_mask,
    }
    if fields["output_compression"] is not None and fields["output_format"] == "png":
        # OpenAI ignores compression for PNG rather than refusing it.
        fields["output_compression"] = None
    if not fields["prompt"]:
        raise invalid("'prompt' is required.", param="prompt", code="missing_required_parameter")
    try:
        spec = GenerationSpec.build(**fields)
    except SpecError as error:
        param, message = next(iter(error.errors.items()))
        param = {"aspect_ratio": "size", "input_images": "image", "has_mask": "mask"}.get(param, param)
        raise invalid(message, param=param) from error
    return ImagesRequest(
        model=model,
        spec=spec,
        stream=stream,
        response_format=response_format,
        user=str(data.get("user") or ""),
    )
