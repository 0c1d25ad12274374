"""The offline engine: sizes, formats, partial images, determinism, references and the mask, pixel by pixel.
No database: the provider takes plain values and gives plain values."""

import io

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from studio.engine.providers.base import Completed, InputImage, PartialImage, Rejected
from studio.engine.providers.local import LocalProvider
from studio.engine.spec import ASPECT_RATIOS, RESOLUTIONS, GenerationSpec, size_for

PROVIDER = LocalProvider()
PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def run(spec: GenerationSpec, images=(), mask=None) -> tuple[list[PartialImage], Completed]:
    *partials, completed = PROVIDER.generate(spec, images=list(images), mask=mask)
    assert all(isinstance(event, PartialImage) for event in partials)
    assert isinstance(completed, Completed)
    return partials, completed


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def distance_to(image: Image.Image, colour: tuple[int, int, int]) -> float:
    """Mean absolute difference per channel between the image and a flat colour."""
    flat = Image.new("RGB", image.size, colour)
    return sum(ImageStat.Stat(ImageChops.difference(image.convert("RGB"), flat)).mean) / 3


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("aspect_ratio", [ratio for ratio in ASPECT_RATIOS if ratio != "auto"])
def test_every_tier_and_ratio_gives_an_image_of_the_resolved_size(aspect_ratio, resolution):
    spec = GenerationSpec.build(
        prompt="a lighthouse", aspect_ratio=aspect_ratio, resolution=resolution, partial_images=0
    )
    _, completed = run(spec)

    width, height = size_for(aspect_ratio, resolution)
    [final] = completed.images
    assert opened(final.data).size == (width, height)
    assert completed.size == f"{width}x{height}"


def test_auto_at_1k_gives_a_square():
    _, completed = run(GenerationSpec.build(prompt="a lighthouse", aspect_ratio="auto", partial_images=0))
    assert opened(completed.images[0].data).size == (1024, 1024)
    assert completed.size == "1024x1024"


@pytest.mark.parametrize("size", ["3840x1280", "1024x640", "1280x3840", "2896x2864", "1008x1008"])
def test_an_explicit_size_is_honoured(size):
    _, completed = run(GenerationSpec.build(prompt="a lighthouse", size=size, partial_images=1))
    width, height = (int(edge) for edge in size.split("x"))
    assert opened(completed.images[0].data).size == (width, height)
    assert completed.size == size


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_every_output_format_is_what_pillow_reads_back(output_format):
    spec = GenerationSpec.build(prompt="a fox", output_format=output_format, partial_images=2)
    partials, completed = run(spec)

    for data in [partial.data for partial in partials] + [completed.images[0].data]:
        image = opened(data)
        assert image.format == PIL_FORMATS[output_format]
        assert image.size == (1024, 1024)
    assert completed.output_format == output_format


@pytest.mark.parametrize("output_format", ["jpeg", "webp"])
def test_more_output_compression_makes_smaller_files(output_format):
    def final_bytes(compression: int) -> int:
        spec = GenerationSpec.build(
            prompt="a fox", output_format=output_format, output_compression=compression, partial_images=0
        )
        data = run(spec)[1].images[0].data
        assert opened(data).format == PIL_FORMATS[output_format]
        return len(data)

    assert final_bytes(0) > final_bytes(50) > final_bytes(95)


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_the_number_of_partial_images_asked_for_is_the_number_sent(count):
    partials, _ = run(GenerationSpec.build(prompt="a fox", partial_images=count))
    assert [partial.index for partial in partials] == list(range(count))


def test_partial_images_sharpen_towards_the_final_image():
    partials, completed = run(GenerationSpec.build(prompt="a fox", partial_images=3))
    final = opened(completed.images[0].data)
    distances = [
        sum(ImageStat.Stat(ImageChops.difference(opened(partial.data), final)).mean) for partial in partials
    ]
    assert distances == sorted(distances, reverse=True)
    assert distances[-1] > 0


def test_the_same_prompt_gives_the_same_bytes_and_another_prompt_does_not():
    def final(prompt: str) -> bytes:
        return run(GenerationSpec.build(prompt=prompt, partial_images=1))[1].images[0].data

    assert final("a red fox in snow") == final("a red fox in snow")
    assert final("a red fox in snow") != final("a grey wolf in snow")


def test_n_images_differ_from_each_other():
    _, completed = run(GenerationSpec.build(prompt="a fox", n=4, partial_images=0))
    pictures = [final.data for final in completed.images]
    assert len(pictures) == 4 and len(set(pictures)) == 4
    assert completed.usage is not None and completed.usage.output_tokens == 4 * 272


def test_references_are_blended_in_towards_their_colour():
    red = InputImage(data=png(Image.new("RGB", (300, 200), (255, 0, 0))))
    plain_spec = GenerationSpec.build(prompt="a fox", partial_images=0)
    edit_spec = GenerationSpec.build(prompt="a fox", partial_images=0, input_images=1)

    plain = opened(run(plain_spec)[1].images[0].data)
    blended = opened(run(edit_spec, images=[red])[1].images[0].data)

    assert blended.size == plain.size == (1024, 1024)  # without a mask the spec's size wins
    assert ImageChops.difference(plain, blended).getbbox() is not None
    assert distance_to(blended, (255, 0, 0)) < 0.7 * distance_to(plain, (255, 0, 0))


def test_several_references_each_count():
    red = InputImage(data=png(Image.new("RGB", (64, 64), (255, 0, 0))))
    blue = InputImage(data=png(Image.new("RGB", (64, 64), (0, 0, 255))))
    one = GenerationSpec.build(prompt="a fox", partial_images=0, input_images=1)
    two = GenerationSpec.build(prompt="a fox", partial_images=0, input_images=2)

    red_only = opened(run(one, images=[red])[1].images[0].data)
    red_and_blue = opened(run(two, images=[red, blue])[1].images[0].data)

    assert distance_to(red_and_blue, (0, 0, 255)) < distance_to(red_only, (0, 0, 255))


def source_and_mask(size=(512, 384)) -> tuple[Image.Image, Image.Image, tuple[int, int, int, int]]:
    """A busy source picture, and a mask opaque everywhere except a transparent hole."""
    source = Image.linear_gradient("L").resize(size).convert("RGB")
    draw = ImageDraw.Draw(source)
    for step in range(0, size[0], 24):
        draw.line((step, 0, size[0] - step, size[1]), fill=(step % 256, 80, 200), width=5)
    hole = (100, 80, 300, 260)
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle(hole, fill=(0, 0, 0, 0))
    return source, mask, hole


def test_with_a_mask_the_opaque_area_keeps_the_source_pixels_exactly_and_the_hole_is_redrawn():
    source, mask, hole = source_and_mask()
    spec = GenerationSpec.build(prompt="a moon", partial_images=1, input_images=1, has_mask=True)

    _, completed = run(spec, images=[InputImage(data=png(source))], mask=InputImage(data=png(mask)))

    result = opened(completed.images[0].data).convert("RGB")
    assert result.size == source.size and completed.size == "512x384"  # the source's size, not the spec's
    opaque = mask.getchannel("A").point(lambda alpha: 255 if alpha else 0)
    kept_source = Image.composite(source, Image.new("RGB", source.size), opaque)
    kept_result = Image.composite(result, Image.new("RGB", source.size), opaque)
    assert ImageChops.difference(kept_source, kept_result).getbbox() is None, (
        "a pixel outside the hole changed"
    )
    changed = ImageChops.difference(source.crop(hole), result.crop(hole)).convert("L")
    changed_pixels = changed.point(lambda value: 255 if value else 0).histogram()[255]
    assert changed_pixels > 0.9 * (hole[2] - hole[0]) * (hole[3] - hole[1])


def test_a_mask_of_another_size_than_the_source_is_rejected():
    source, _, _ = source_and_mask((512, 384))
    _, mask, _ = source_and_mask((384, 384))
    spec = GenerationSpec.build(prompt="a moon", input_images=1, has_mask=True)
    with pytest.raises(Rejected, match="same size"):
        run(spec, images=[InputImage(data=png(source))], mask=InputImage(data=png(mask)))


def test_a_mask_without_an_image_is_rejected():
    spec = GenerationSpec.build(prompt="a moon", input_images=1, has_mask=True)
    _, mask, _ = source_and_mask()
    with pytest.raises(Rejected, match="needs an image"):
        run(spec, images=[], mask=InputImage(data=png(mask)))
