"""The offline engine: deterministic pictures from the prompt, with real partial images.

It honours size, format, compression, the number of partial images, references (blended in) and the mask,
so the whole studio works, and is tested, without a network.

The mask follows OpenAI's convention: where it is fully transparent the image is redrawn; everywhere else the
pixels stay exactly as in the source (the first image). So that this can hold pixel for pixel, an edit with a
mask is drawn at the source's size, whatever size the spec asks for (the mask must be that size too), and
"exactly" holds for the lossless format, PNG; JPEG and WebP add their own compression noise.
"""

import hashlib
import io
import random
import time
from collections.abc import Iterator

from PIL import Image, ImageDraw, ImageFilter

from studio.engine.providers.base import (
    Completed,
    Event,
    FinalImage,
    InputImage,
    PartialImage,
    Rejected,
    Usage,
)
from studio.engine.spec import GenerationSpec

DEFAULT_SIZE = (1024, 1024)


def encode(image: Image.Image, output_format: str, compression: int | None = None) -> bytes:
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, "PNG", optimize=False, compress_level=3)
    else:
        quality = 100 - compression if compression is not None else 90
        image.convert("RGB").save(buffer, output_format.upper(), quality=max(1, quality))
    return buffer.getvalue()


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _blurred(image: Image.Image, *, radius: float) -> Image.Image:
    # Blur a quarter-size copy and scale it back: the same look, and fast even at 4K.
    factor = 4 if min(image.size) >= 64 else 1
    small = image.reduce(factor).filter(ImageFilter.GaussianBlur(radius / factor))
    return small.resize(image.size, Image.Resampling.BILINEAR)


class LocalProvider:
    name = "local"

    def __init__(self, *, step_seconds: float = 0.0):
        self.step_seconds = step_seconds

    def generate(
        self, spec: GenerationSpec, *, images: list[InputImage], mask: InputImage | None
    ) -> Iterator[Event]:
        if mask is not None and not images:
            raise Rejected("A mask needs an image to edit.", code="invalid_request")
        source = _open(images[0].data).convert("RGB") if images else None
        if mask is not None and source is not None:
            size = source.size
        else:
            size = spec.dimensions or DEFAULT_SIZE
        references = [_open(image.data).convert("RGB") for image in images]
        mask_image = _open(mask.data) if mask is not None else None
        if mask_image is not None and mask_image.size != size:
            raise Rejected("The mask must be the same size as the image.", code="invalid_request")

        finals: list[Image.Image] = []
        for index in range(spec.n):
            picture = self._draw(spec.prompt, index, size)
            if references:
                picture = self._blend_references(picture, references)
            if mask_image is not None and source is not None:
                picture = self._apply_mask(source, picture, mask_image)
            finals.append(picture)

        # Partial images are the first picture at growing sharpness, as a real engine's would be.
        for partial_index in range(spec.partial_images):
            self._pause()
            preview = _blurred(finals[0], radius=48 / (partial_index + 1))
            yield PartialImage(
                index=partial_index, data=encode(preview, spec.output_format, spec.output_compression)
            )
        self._pause()

        prompt_tokens = max(1, len(spec.prompt.split()))
        output_tokens = 272 * spec.n
        yield Completed(
            images=[
                FinalImage(
                    data=encode(picture, spec.output_format, spec.output_compression),
                    revised_prompt=spec.prompt,
                )
                for picture in finals
            ],
            usage=Usage(
                input_tokens=prompt_tokens,
                output_tokens=output_tokens,
                total_tokens=prompt_tokens + output_tokens,
                details={"text_tokens": prompt_tokens, "image_tokens": 0},
            ),
            request_id=f"local-{hashlib.sha256(spec.prompt.encode()).hexdigest()[:12]}",
            size=f"{size[0]}x{size[1]}",
            quality=spec.quality,
            output_format=spec.output_format,
            background="opaque",
        )

    def _pause(self) -> None:
        if self.step_seconds:
            time.sleep(self.step_seconds)

    @staticmethod
    def _draw(prompt: str, index: int, size: tuple[int, int]) -> Image.Image:
        seed = int.from_bytes(hashlib.sha256(f"{prompt}\0{index}".encode()).digest()[:8], "big")
        rng = random.Random(seed)
        width, height = size
        # Draw small and scale up: fast at 4K, and the shapes stay smooth.
        scale = max(1, max(width, height) // 512)
        small = (max(1, width // scale), max(1, height // scale))
        top = tuple(rng.randrange(256) for _ in range(3))
        bottom = tuple(rng.randrange(256) for _ in range(3))
        gradient = Image.linear_gradient("L").resize(small)
        picture = Image.composite(Image.new("RGB", small, bottom), Image.new("RGB", small, top), gradient)
        draw = ImageDraw.Draw(picture, "RGBA")
        for _ in range(rng.randrange(6, 14)):
            color = (*(rng.randrange(256) for _ in range(3)), rng.randrange(90, 220))
            x, y = rng.randrange(small[0]), rng.randrange(small[1])
            radius = rng.randrange(max(2, min(small) // 16), max(3, min(small) // 3))
            box = (x - radius, y - radius, x + radius, y + radius)
            if rng.random() < 0.5:
                draw.ellipse(box, fill=color)
            else:
                draw.rectangle(box, fill=color)
        return picture.resize(size, Image.Resampling.BICUBIC)

    @staticmethod
    def _blend_references(picture: Image.Image, references: list[Image.Image]) -> Image.Image:
        blended = references[0].resize(picture.size)
        for count, reference in enumerate(references[1:], start=2):
            blended = Image.blend(blended, reference.resize(picture.size), 1 / count)
        return Image.blend(picture, blended, 0.4)

    @staticmethod
    def _apply_mask(source: Image.Image, picture: Image.Image, mask: Image.Image) -> Image.Image:
        # OpenAI's convention: transparent mask pixels mark where to edit; opaque ones are kept.
        alpha = mask.convert("RGBA").getchannel("A")
        keep = alpha.point(lambda value: 255 if value else 0)
        return Image.composite(source, picture, keep)
