"""GenerationSpec: one validated generation request for the page, every API dialect and every provider.

Pure Python: no Django here, so providers and dialects can share it.
"""

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

ASPECT_RATIOS = ("auto", "1:1", "16:9", "9:16", "3:2", "2:3", "4:3", "3:4", "5:4", "4:5", "21:9")
RESOLUTIONS = ("1K", "2K", "4K")
QUALITIES = ("low", "medium", "high", "auto")
OUTPUT_FORMATS = ("png", "jpeg", "webp")
BACKGROUNDS = ("auto", "opaque")
MODERATIONS = ("auto", "low")

PROMPT_MAX_CHARS = 32_000
MAX_IMAGES = 10
MAX_PARTIAL_IMAGES = 3
MAX_INPUT_IMAGES = 16

# gpt-image-2 size rules.
EDGE_MULTIPLE = 16
MAX_EDGE = 3840
MAX_RATIO = 3.0
MIN_PIXELS = 655_360
MAX_PIXELS = 8_294_400

_SIZE_RE = re.compile(r"^(\d{2,5})x(\d{2,5})$")


def storable_text(text: str) -> bool:
    """Whether a database can keep this text: no NUL character (PostgreSQL refuses it) and valid UTF-8 (no
    unpaired surrogate, which JSON's \\ud800 escapes can smuggle in)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class SpecError(ValueError):
    """Invalid input, with one message per field."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


def size_problem(width: int, height: int) -> str | None:
    """Why WxH is not a legal gpt-image-2 size, or None when it is."""
    if width % EDGE_MULTIPLE or height % EDGE_MULTIPLE:
        return f"Both edges must be multiples of {EDGE_MULTIPLE} pixels."
    if max(width, height) > MAX_EDGE:
        return f"The longest edge can be at most {MAX_EDGE} pixels."
    if max(width, height) / min(width, height) > MAX_RATIO:
        return "The long edge can be at most 3 times the short edge."
    pixels = width * height
    if not MIN_PIXELS <= pixels <= MAX_PIXELS:
        return f"The image must have between {MIN_PIXELS:,} and {MAX_PIXELS:,} pixels (this has {pixels:,})."
    return None


def parse_size(value: str) -> tuple[int, int]:
    match = _SIZE_RE.match(value.strip().lower())
    if not match:
        raise SpecError({"size": "Write the size as WIDTHxHEIGHT, for example 1536x1024."})
    width, height = int(match[1]), int(match[2])
    if problem := size_problem(width, height):
        raise SpecError({"size": problem})
    return width, height


def _floor16(value: float) -> int:
    return int(value // EDGE_MULTIPLE) * EDGE_MULTIPLE


def _round16(value: float) -> int:
    return round(value / EDGE_MULTIPLE) * EDGE_MULTIPLE


def size_for(aspect_ratio: str, resolution: str) -> tuple[int, int]:
    """The legal size for a ratio at a resolution tier.

    1K: short edge 1024 with the long edge at most 1536 (1:1 1024x1024, 3:2 1536x1024, 16:9 1536x864).
    2K: long edge 2048 (1:1 2048x2048, 16:9 2048x1152). 4K: long edge 3840 within the pixel budget
    (16:9 3840x2160, 1:1 2880x2880). So every 1K size has fewer pixels than every 2K size, and so on.
    """
    if aspect_ratio not in ASPECT_RATIOS or aspect_ratio == "auto":
        raise SpecError({"aspect_ratio": f"Choose one of {', '.join(ASPECT_RATIOS[1:])}."})
    if resolution not in RESOLUTIONS:
        raise SpecError({"resolution": f"Choose one of {', '.join(RESOLUTIONS)}."})
    a, b = (int(part) for part in aspect_ratio.split(":"))
    ratio = max(a, b) / min(a, b)
    if resolution == "1K":
        long = min(_round16(1024 * ratio), 1536)
        short = _round16(long / ratio) if long == 1536 else 1024
    else:
        long = 2048 if resolution == "2K" else MAX_EDGE
        short = _round16(long / ratio)
        if long * short > MAX_PIXELS:
            short = _floor16(math.sqrt(MAX_PIXELS / ratio))
            long = _floor16(short * ratio)
    width, height = (long, short) if a >= b else (short, long)
    assert size_problem(width, height) is None, (aspect_ratio, resolution, width, height)
    return width, height


def tier_of(width: int, height: int) -> str:
    """The resolution tier a size is priced at."""
    pixels = width * height
    if pixels <= 1536 * 1024:
        return "1K"
    if pixels <= 2048 * 2048:
        return "2K"
    return "4K"


@dataclass(frozen=True)
class GenerationSpec:
    prompt: str
    aspect_ratio: str = "1:1"
    resolution: str = "1K"
    # An explicit "WxH" wins over aspect ratio and resolution.
    size: str = ""
    quality: str = "medium"
    n: int = 1
    output_format: str = "png"
    output_compression: int | None = None
    background: str = "auto"
    moderation: str = "auto"
    partial_images: int = 2
    # How many input images (references, or the source of an edit) come with the request, and whether
    # a mask does. The bytes travel beside the spec, not in it.
    input_images: int = 0
    has_mask: bool = False
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def build(cls, **data: Any) -> "GenerationSpec":
        """Validate and normalise; raise SpecError naming every bad field."""
        errors: dict[str, str] = {}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            errors[unknown[0]] = "This parameter is not supported."
        values = {key: value for key, value in data.items() if key in known}

        prompt = str(values.get("prompt") or "").strip()
        if not prompt:
            errors["prompt"] = "Write a prompt."
        elif len(prompt) > PROMPT_MAX_CHARS:
            errors["prompt"] = (
                f"The prompt can be at most {PROMPT_MAX_CHARS:,} characters (it has {len(prompt):,})."
            )
        elif not storable_text(prompt):
            errors["prompt"] = "The prompt contains a NUL character or an unpaired surrogate; remove it."
        values["prompt"] = prompt

        def choice(name: str, options: tuple[str, ...], default: str) -> None:
            value = values.get(name)
            value = default if value in (None, "") else str(value)
            if value not in options:
                errors[name] = f"Choose one of {', '.join(options)}."
            values[name] = value

        choice("aspect_ratio", ASPECT_RATIOS, "1:1")
        choice("resolution", RESOLUTIONS, "1K")
        choice("quality", QUALITIES, "medium")
        choice("output_format", OUTPUT_FORMATS, "png")
        choice("background", BACKGROUNDS, "auto")
        choice("moderation", MODERATIONS, "auto")

        def integer(name: str, low: int, high: int, default: int | None) -> None:
            value = values.get(name)
            if value in (None, ""):
                values[name] = default
                return
            try:
                number = int(value)  # type: ignore[arg-type]  # anything else is refused just below
                if isinstance(value, float) and value != number:
                    raise ValueError
            except (TypeError, ValueError, OverflowError):
                errors[name] = "Give a whole number."
                return
            if not low <= number <= high:
                errors[name] = f"Choose a number from {low} to {high}."
            values[name] = number

        integer("n", 1, MAX_IMAGES, 1)
        integer("partial_images", 0, MAX_PARTIAL_IMAGES, 2)
        integer("output_compression", 0, 100, None)
        integer("input_images", 0, MAX_INPUT_IMAGES, 0)
        if values.get("output_compression") is not None and values.get("output_format") == "png":
            errors.setdefault("output_compression", "Compression applies to jpeg and webp only.")

        values["has_mask"] = bool(values.get("has_mask"))
        if values["has_mask"] and not values.get("input_images"):
            errors.setdefault("mask", "A mask needs an image to edit.")

        size = str(values.get("size") or "").strip().lower()
        if size in ("", "auto"):
            values["size"] = ""
            if size == "auto":
                values["aspect_ratio"] = "auto"
            if (
                values["aspect_ratio"] == "auto"
                and values["resolution"] != "1K"
                and "resolution" not in errors
            ):
                errors["aspect_ratio"] = (
                    "Pick an aspect ratio for 2K and 4K; auto lets the model choose at 1K."
                )
        else:
            try:
                width, height = parse_size(size)
                values["size"] = f"{width}x{height}"
            except SpecError as error:
                errors.update(error.errors)
        if values.get("background") == "transparent":
            errors["background"] = "gpt-image-2 does not support transparent backgrounds."
        if errors:
            raise SpecError(errors)
        values["extra"] = dict(values.get("extra") or {})
        return cls(**values)

    @classmethod
    def from_dict(cls, data: dict) -> "GenerationSpec":
        return cls.build(**data)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def mode(self) -> str:
        return "edit" if self.input_images else "generate"

    @property
    def dimensions(self) -> tuple[int, int] | None:
        """(width, height), or None when the model picks the size."""
        if self.size:
            width, height = self.size.split("x")
            return int(width), int(height)
        if self.aspect_ratio == "auto":
            return None
        return size_for(self.aspect_ratio, self.resolution)

    @property
    def api_size(self) -> str:
        """The `size` parameter sent upstream."""
        dimensions = self.dimensions
        return f"{dimensions[0]}x{dimensions[1]}" if dimensions else "auto"

    @property
    def tier(self) -> str:
        dimensions = self.dimensions
        return tier_of(*dimensions) if dimensions else "1K"
