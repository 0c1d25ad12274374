"""Image files: sniffing and checking uploads, thumbnails. Pure Pillow, no models."""

import io
import warnings
from dataclasses import dataclass

from PIL import Image

MAX_INPUT_BYTES = 50 * 1024 * 1024
# Pillow's decompression-bomb guard: refuse anything past this many pixels instead of warning.
Image.MAX_IMAGE_PIXELS = 64_000_000
THUMBNAIL_EDGE = 512
FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp"}


class ImageProblem(ValueError):
    pass


@dataclass(frozen=True)
class CheckedImage:
    data: bytes
    format: str  # png, jpeg or webp
    width: int
    height: int
    has_alpha: bool

    @property
    def content_type(self) -> str:
        return f"image/{self.format}"


def check_image(data: bytes, *, max_bytes: int = MAX_INPUT_BYTES) -> CheckedImage:
    """Accept PNG, JPEG or WebP by their content (never by name), within size and pixel limits."""
    if len(data) > max_bytes:
        raise ImageProblem(f"The image is larger than {max_bytes // (1024 * 1024)} MB.")
    if not data:
        raise ImageProblem("The file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = FORMATS.get(image.format or "")
                if kind is None:
                    raise ImageProblem("Use a PNG, JPEG or WebP image.")
                image.load()
                return CheckedImage(
                    data=data,
                    format=kind,
                    width=image.width,
                    height=image.height,
                    has_alpha="A" in image.getbands() or "transparency" in image.info,
                )
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageProblem("The image has too many pixels.") from error
    except ImageProblem:
        raise
    except Exception as error:
        raise ImageProblem("This file is not a readable PNG, JPEG or WebP image.") from error


def thumbnail(data: bytes, *, edge: int = THUMBNAIL_EDGE) -> bytes:
    """A WebP of at most `edge` pixels on its longest side, for galleries."""
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((edge, edge), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.convert("RGBA" if "A" in image.getbands() else "RGB").save(buffer, "WEBP", quality=82, method=4)
        return buffer.getvalue()


def check_mask(mask: CheckedImage, first: CheckedImage) -> None:
    """A mask is a PNG with an alpha channel, the size of the first image (transparent = where to edit)."""
    if mask.format != "png" or not mask.has_alpha:
        raise ImageProblem("The mask must be a PNG with transparency (an alpha channel).")
    if (mask.width, mask.height) != (first.width, first.height):
        raise ImageProblem(
            f"The mask is {mask.width}x{mask.height} but the image is {first.width}x{first.height}: "
            "they must be the same size."
        )
