"""Input images are bounded before they are decoded: pixels and edges from the header, frames, bytes. A few
kilobytes that claim gigapixels, a decompression bomb, or an animation of a thousand frames are refused with a
clear message."""

import io
import struct
import zlib

import pytest
from PIL import Image

from studio.engine import images
from studio.engine.images import ImageProblem, check_image
from tests.conftest import png_bytes


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, idat: bytes = b"") -> bytes:
    """A PNG whose header says width x height, whatever its data holds."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def test_a_few_kilobytes_claiming_20000x20000_are_refused_before_decoding():
    data = png_claiming(20_000, 20_000, zlib.compress(b"\x00" * 1000))
    assert len(data) < 4096
    with pytest.raises(ImageProblem, match="20000x20000"):
        check_image(data)


def test_a_decompression_bomb_is_refused():
    width = height = 9000  # 81 megapixels of zeros: about 80 KB compressed, 81 MB decoded
    rows = (b"\x00" + b"\x00" * width) * height
    data = png_claiming(width, height, zlib.compress(rows, 9))
    assert len(data) < 200_000
    with pytest.raises(ImageProblem, match="megapixels"):
        check_image(data)


def test_a_long_thin_image_is_refused_by_its_edge():
    with pytest.raises(ImageProblem, match="a side"):
        check_image(png_claiming(100_000, 10))


def test_an_animation_of_a_thousand_frames_is_refused():
    frames = [Image.new("RGB", (8, 8), (index % 256, 0, 0)) for index in range(1000)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageProblem, match="1,000 frames"):
        check_image(buffer.getvalue())


def test_an_animated_webp_is_refused_too():
    frames = [Image.new("RGB", (8, 8), (0, index * 50, 0)) for index in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:])
    with pytest.raises(ImageProblem, match="animated"):
        check_image(buffer.getvalue())


def test_bytes_are_counted_before_anything_is_read():
    with pytest.raises(ImageProblem, match="larger than"):
        check_image(b"x" * 2048, max_bytes=1024)


def test_a_still_image_within_the_limits_is_accepted():
    checked = check_image(png_bytes((640, 480)))
    assert (checked.format, checked.width, checked.height, checked.has_alpha) == ("png", 640, 480, True)


@pytest.mark.parametrize(
    ("size", "mode", "thumbnail_size"),
    [
        ((1024, 1024), "RGB", (512, 512)),
        ((3840, 2160), "RGB", (512, 288)),
        ((1024, 1536), "RGBA", (341, 512)),
    ],
)
def test_a_result_is_checked_and_thumbnailed_from_one_decode(size, mode, thumbnail_size):
    data = png_bytes(size, (10, 120, 240, 128) if mode == "RGBA" else (10, 120, 240), mode=mode)
    checked, thumbnail = images.check_and_thumbnail(data)
    assert (checked.width, checked.height, checked.format, checked.has_alpha) == (
        *size,
        "png",
        mode == "RGBA",
    )
    with Image.open(io.BytesIO(thumbnail)) as small:
        assert (small.format, small.size, small.mode) == ("WEBP", thumbnail_size, mode)
        assert small.getpixel((small.width // 2, small.height // 2))[:3] == pytest.approx(
            (10, 120, 240), abs=3
        )


def test_a_damaged_result_is_refused_before_a_thumbnail_is_made():
    with pytest.raises(images.ImageProblem, match="not a readable"):
        images.check_and_thumbnail(png_bytes((256, 256))[:-200])
