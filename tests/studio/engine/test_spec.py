import pytest

from studio.engine.spec import (
    ASPECT_RATIOS,
    RESOLUTIONS,
    GenerationSpec,
    SpecError,
    size_for,
    size_problem,
    tier_of,
)


@pytest.mark.parametrize(
    ("size", "legal"),
    [
        ("3840x1280", True),  # longest edge at the limit, exactly 3:1
        ("3856x1296", False),  # longest edge past 3840
        ("1000x1000", False),  # not multiples of 16
        ("1024x640", True),  # exactly the minimum pixel count
        ("4096x2048", False),  # too long
        ("1024x1024", True),
        ("2880x2880", True),  # exactly the maximum pixel count
        ("2896x2896", False),  # past the maximum pixel count
        ("1008x640", False),  # under the minimum pixel count
        ("3840x1264", False),  # ratio past 3:1
        ("16x16", False),
    ],
)
def test_explicit_sizes_follow_the_gpt_image_2_rules(size, legal):
    width, height = (int(edge) for edge in size.split("x"))
    assert (size_problem(width, height) is None) is legal
    if legal:
        assert GenerationSpec.build(prompt="a cat", size=size).dimensions == (width, height)
    else:
        with pytest.raises(SpecError) as raised:
            GenerationSpec.build(prompt="a cat", size=size)
        assert "size" in raised.value.errors


@pytest.mark.parametrize(
    ("ratio", "resolution", "expected"),
    [
        ("1:1", "1K", (1024, 1024)),
        ("3:2", "1K", (1536, 1024)),
        ("2:3", "1K", (1024, 1536)),
        ("16:9", "2K", (2048, 1152)),
        ("16:9", "4K", (3840, 2160)),
        ("9:16", "4K", (2160, 3840)),
        ("1:1", "4K", (2880, 2880)),
        ("1:1", "2K", (2048, 2048)),
    ],
)
def test_documented_tier_sizes(ratio, resolution, expected):
    assert size_for(ratio, resolution) == expected


@pytest.mark.parametrize("resolution", RESOLUTIONS)
@pytest.mark.parametrize("ratio", [ratio for ratio in ASPECT_RATIOS if ratio != "auto"])
def test_every_ratio_and_tier_resolves_to_a_legal_size_of_that_tier(ratio, resolution):
    width, height = size_for(ratio, resolution)
    assert size_problem(width, height) is None
    assert tier_of(width, height) == resolution
    a, b = (int(part) for part in ratio.split(":"))
    assert abs(width / height - a / b) < 0.05
    assert (width >= height) == (a >= b)


def test_tiers_never_overlap_in_pixels():
    for ratio in ASPECT_RATIOS[1:]:
        pixels = [size_for(ratio, tier)[0] * size_for(ratio, tier)[1] for tier in RESOLUTIONS]
        assert pixels == sorted(pixels)
    largest_1k = max(size_for(r, "1K")[0] * size_for(r, "1K")[1] for r in ASPECT_RATIOS[1:])
    smallest_2k = min(size_for(r, "2K")[0] * size_for(r, "2K")[1] for r in ASPECT_RATIOS[1:])
    assert largest_1k < smallest_2k


def test_defaults_are_one_medium_square_png():
    spec = GenerationSpec.build(prompt="  a lighthouse  ")
    assert spec.prompt == "a lighthouse"
    assert (spec.n, spec.quality, spec.output_format, spec.api_size) == (1, "medium", "png", "1024x1024")
    assert spec.mode == "generate"


def test_auto_ratio_lets_the_model_pick_at_1k_only():
    assert GenerationSpec.build(prompt="x", aspect_ratio="auto").api_size == "auto"
    with pytest.raises(SpecError) as raised:
        GenerationSpec.build(prompt="x", aspect_ratio="auto", resolution="4K")
    assert "aspect_ratio" in raised.value.errors


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x" * 32_001}, "prompt"),
        ({"prompt": "x", "n": 11}, "n"),
        ({"prompt": "x", "n": 0}, "n"),
        ({"prompt": "x", "n": "two"}, "n"),
        ({"prompt": "x", "quality": "ultra"}, "quality"),
        ({"prompt": "x", "aspect_ratio": "7:3"}, "aspect_ratio"),
        ({"prompt": "x", "resolution": "8K"}, "resolution"),
        ({"prompt": "x", "output_format": "gif"}, "output_format"),
        ({"prompt": "x", "partial_images": 4}, "partial_images"),
        ({"prompt": "x", "output_compression": 101, "output_format": "jpeg"}, "output_compression"),
        ({"prompt": "x", "output_compression": 50}, "output_compression"),
        ({"prompt": "x", "input_images": 17}, "input_images"),
        ({"prompt": "x", "has_mask": True}, "mask"),
        ({"prompt": "x", "background": "transparent"}, "background"),
        ({"prompt": "x", "style": "vivid"}, "style"),
    ],
)
def test_invalid_input_is_a_field_level_error(data, field):
    with pytest.raises(SpecError) as raised:
        GenerationSpec.build(**data)
    assert field in raised.value.errors
    assert raised.value.errors[field]


def test_a_spec_survives_a_round_trip_through_json():
    spec = GenerationSpec.build(prompt="x", aspect_ratio="16:9", resolution="2K", n=3, output_format="webp")
    assert GenerationSpec.from_dict(spec.to_dict()) == spec
    assert spec.tier == "2K"


def test_references_make_an_edit():
    spec = GenerationSpec.build(prompt="x", input_images=2, has_mask=True)
    assert spec.mode == "edit"
