"""The composer's inputs: uploaded references, gallery picks, the mask's source and the mask itself. Every
file is checked by content; every violation is a field-level error and charges nothing."""

import io
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PillowImage

from studio.engine import images as image_files
from studio.models import Generation, GenerationInput, InputRole
from tests.conftest import png_bytes
from tests.helpers import finished_generation, personal_membership

FORM = {
    "prompt": "a lighthouse, repainted",
    "aspect_ratio": "1:1",
    "resolution": "1K",
    "quality": "medium",
    "n": 1,
    "output_format": "png",
}


def upload(name: str, data: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def encoded(mode: str, size: tuple[int, int], kind: str, color=(10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    fill = (*color, 255)[: len(mode)] if mode != "P" else 0
    PillowImage.new(mode, size, fill).save(buffer, kind)
    return buffer.getvalue()


def mask_bytes(size=(64, 48), *, hole=(8, 8, 24, 24)) -> bytes:
    """Opaque everywhere but a transparent rectangle: the area to edit."""
    mask = PillowImage.new("RGBA", size, (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), hole)
    buffer = io.BytesIO()
    mask.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def logged_in(client, alice):
    client.force_login(alice)
    return client


def post(client, data: dict, *, htmx: bool = False):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post("/generate/", {**FORM, **data}, headers=headers)


def assert_nothing_charged(user) -> None:
    user.refresh_from_db()
    assert user.credits == 1000
    assert not Generation.objects.filter(author=user).exists()


# The page


def test_the_composer_has_every_labelled_control(logged_in):
    html = logged_in.get("/").content.decode()
    for field, label in [
        ("id_prompt", "Prompt"),
        ("id_aspect_ratio", "Aspect ratio"),
        ("id_resolution", "Resolution"),
        ("id_quality", "Quality"),
        ("id_n", "Images"),
        ("id_output_format", "Format"),
        ("id_references", "Reference images"),
        ("id_source_image", "Source image"),
    ]:
        assert f'<label for="{field}">{label}</label>' in html
    assert re.search(r'<input type="file" name="references"[^>]*multiple', html)
    assert 'accept="image/png,image/jpeg,image/webp"' in html
    assert 'enctype="multipart/form-data"' in html
    assert ">Generate</button>" in html and "Pick from gallery" in html
    assert "0 / 32,000" in html
    assert 'data-phrase="warm golden-hour light, long soft shadows"' in html
    assert "Square: social posts" in html and "1K: 1024x1024 px." in html
    assert '<script src="/static/js/composer.js" defer>' in html
    assert '<script src="/static/js/mask.js" defer>' in html


def test_an_edit_link_opens_the_mask_with_the_gallery_image_as_source(logged_in, alice):
    _, image = finished_generation(personal_membership(alice))
    html = logged_in.get(f"/?edit={image.pk}").content.decode()
    assert re.search(r"<details class=\"mask-section\" data-mask-section open>", html)
    assert (
        f'<input type="hidden" name="source_gallery_image" value="{image.pk}" data-source-gallery '
        f'data-file-url="/images/{image.pk}/">'
    ) in html


def test_a_reference_link_preselects_the_gallery_image(logged_in, alice):
    _, image = finished_generation(personal_membership(alice))
    html = logged_in.get(f"/?reference={image.pk}&prompt=a+lighthouse&aspect_ratio=16:9").content.decode()
    assert f'<input type="hidden" name="gallery_references" value="{image.pk}">' in html
    assert f'src="/images/{image.pk}/thumbnail/"' in html
    assert re.search(r'name="prompt"[^>]*>\s*a lighthouse</textarea>', html)
    assert '<option value="16:9" selected>' in html


def test_a_link_to_another_workspaces_image_preselects_nothing_and_says_so(logged_in, bob):
    _, image = finished_generation(personal_membership(bob))
    html = logged_in.get(f"/?edit={image.pk}&reference={image.pk}").content.decode()
    assert str(image.pk) not in html
    assert "An image this link asked for is not in this workspace's gallery" in html


# The gallery picker


def test_the_picker_lists_thumbnails_of_the_current_workspace_only(logged_in, alice, bob):
    _, mine = finished_generation(personal_membership(alice), prompt="my harbour")
    _, theirs = finished_generation(personal_membership(bob), prompt="their harbour")
    response = logged_in.get("/composer/gallery-picker/?for=reference")
    html = response.content.decode()
    assert response.status_code == 200
    assert f'data-pick-image="{mine.pk}"' in html and f'<img src="/images/{mine.pk}/thumbnail/"' in html
    assert "Add: my harbour" in html
    assert str(theirs.pk) not in html and "their harbour" not in html


def test_the_picker_pages_through_older_images(logged_in, alice, monkeypatch):
    from studio.web import views

    monkeypatch.setattr(views, "PICKER_PAGE_SIZE", 2)
    membership = personal_membership(alice)
    images = [finished_generation(membership, prompt=f"picture {number}")[1] for number in range(3)]
    first = logged_in.get("/composer/gallery-picker/?for=source").content.decode()
    assert first.count("data-pick-image=") == 2 and "Edit: picture 2" in first
    assert "?for=source&amp;offset=2" in first
    second = logged_in.get("/composer/gallery-picker/?for=source&offset=2").content.decode()
    assert second.count("data-pick-image=") == 1 and str(images[0].pk) in second
    assert "Show older images" not in second


def test_the_picker_says_when_there_is_nothing_to_pick(logged_in):
    html = logged_in.get("/composer/gallery-picker/").content.decode()
    assert "No images in this workspace yet" in html


def test_the_picker_needs_a_login(client, db):
    response = client.get("/composer/gallery-picker/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


# References that work


def test_uploaded_and_picked_references_become_inputs_in_order(logged_in, alice):
    _, picked = finished_generation(personal_membership(alice))
    first, second = png_bytes((32, 32)), encoded("RGB", (40, 30), "JPEG")
    response = post(
        logged_in,
        {
            "references": [upload("first.png", first), upload("second.jpg", second, "image/jpeg")],
            "gallery_references": [str(picked.pk)],
        },
        htmx=True,
    )
    assert response.status_code == 200 and "HX-Retarget" not in response
    generation = Generation.objects.exclude(pk=picked.generation_id).get()
    assert generation.spec["input_images"] == 3 and generation.spec["has_mask"] is False
    assert generation.generation_spec.mode == "edit"
    inputs = list(generation.inputs.order_by("position"))
    assert [(item.role, item.position) for item in inputs] == [
        (InputRole.REFERENCE, position) for position in range(3)
    ]
    assert [item.source_image_id for item in inputs] == [None, None, picked.pk]
    assert [item.content_type for item in inputs] == ["image/png", "image/jpeg", "image/png"]
    assert inputs[0].file.read() == first and inputs[1].file.read() == second
    assert inputs[2].file.read() == picked.file.open("rb").read()
    alice.refresh_from_db()
    assert alice.credits == 1000 - 100 - generation.cost


def test_a_gallery_source_goes_first_and_the_mask_is_kept_with_it(logged_in, alice):
    _, source = finished_generation(personal_membership(alice))  # 64x48
    mask = mask_bytes((64, 48))
    post(
        logged_in,
        {
            "source_gallery_image": str(source.pk),
            "references": [upload("style.webp", encoded("RGB", (20, 20), "WEBP"), "image/webp")],
            "mask": upload("mask.png", mask),
        },
    )
    generation = Generation.objects.exclude(pk=source.generation_id).get()
    assert generation.spec["input_images"] == 2 and generation.spec["has_mask"] is True
    references = list(generation.inputs.filter(role=InputRole.REFERENCE).order_by("position"))
    assert [item.source_image_id for item in references] == [source.pk, None]
    assert references[1].content_type == "image/webp"
    stored_mask = generation.inputs.get(role=InputRole.MASK)
    assert stored_mask.file.read() == mask and stored_mask.content_type == "image/png"


def test_an_uploaded_source_goes_before_the_other_references(logged_in, alice):
    source, reference = png_bytes((64, 48)), png_bytes((16, 16))
    post(
        logged_in,
        {
            "references": [upload("reference.png", reference)],
            "source_image": upload("photo.png", source),
            "mask": upload("mask.png", mask_bytes((64, 48))),
        },
    )
    generation = Generation.objects.get()
    first = generation.inputs.get(role=InputRole.REFERENCE, position=0)
    assert first.file.read() == source and first.source_image is None
    assert generation.inputs.get(role=InputRole.REFERENCE, position=1).file.read() == reference
    assert generation.spec["has_mask"] is True


def test_sixteen_images_in_all_are_accepted(logged_in, alice):
    _, source = finished_generation(personal_membership(alice))
    references = [upload(f"r{number}.png", png_bytes((16, 16))) for number in range(15)]
    post(logged_in, {"source_gallery_image": str(source.pk), "references": references})
    generation = Generation.objects.exclude(pk=source.generation_id).get()
    assert generation.spec["input_images"] == 16
    assert generation.inputs.count() == 16


# Inputs that are refused, each a field-level error that charges nothing


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("animation.gif", encoded("P", (8, 8), "GIF"), "animation.gif: Use a PNG, JPEG or WebP image."),
        ("notes.png", b"these are words, not pixels", "notes.png: This file is not a readable PNG"),
        (
            "huge.png",
            b"\x89PNG" + bytes(image_files.MAX_INPUT_BYTES),
            "huge.png: The image is larger than 50 MB.",
        ),
        ("empty.png", b"", "The submitted file is empty."),
    ],
    ids=["gif", "text-renamed-png", "over-50-mb", "empty"],
)
def test_a_reference_that_is_not_an_acceptable_image_is_a_field_error(logged_in, alice, name, data, message):
    response = post(logged_in, {"references": [upload("fine.png", png_bytes()), upload(name, data)]})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["references"]
    assert any(error.startswith(message) for error in errors["references"]), errors
    assert_nothing_charged(alice)


def test_the_errors_show_in_the_composer_through_htmx(logged_in, alice):
    response = post(
        logged_in, {"references": [upload("animation.gif", encoded("P", (8, 8), "GIF"))]}, htmx=True
    )
    assert response["HX-Retarget"] == "#composer"
    html = response.content.decode()
    assert '<form id="composer"' in html
    assert re.search(r'class="field references field-invalid"', html)
    assert (
        '<small class="field-error" role="alert">animation.gif: Use a PNG, JPEG or WebP image.</small>'
        in html
    )
    assert_nothing_charged(alice)


def test_seventeen_images_are_one_too_many(logged_in, alice):
    _, picked = finished_generation(personal_membership(alice))
    references = [upload(f"r{number}.png", png_bytes((16, 16))) for number in range(16)]
    response = post(logged_in, {"references": references, "gallery_references": [str(picked.pk)]})
    assert response.status_code == 400
    assert response.context["form"].errors["references"] == [
        "Up to 16 images in all, the mask's source included: this has 17. Remove 1."
    ]
    alice.refresh_from_db()
    assert alice.credits == 900  # only the generation that made the picked image
    assert Generation.objects.count() == 1


def test_another_workspaces_image_cannot_be_picked(logged_in, alice, bob):
    _, theirs = finished_generation(personal_membership(bob))
    response = post(logged_in, {"gallery_references": [str(theirs.pk)]})
    assert response.status_code == 400
    assert response.context["form"].errors["gallery_references"] == [
        "A picked image is not in this workspace's gallery (deleted, or from another workspace)."
    ]
    assert_nothing_charged(alice)
    assert not GenerationInput.objects.filter(source_image=theirs).exists()


def test_another_workspaces_image_cannot_be_the_source(logged_in, alice, bob):
    _, theirs = finished_generation(personal_membership(bob))
    response = post(
        logged_in, {"source_gallery_image": str(theirs.pk), "mask": upload("m.png", mask_bytes())}
    )
    assert response.status_code == 400
    assert "source_gallery_image" in response.context["form"].errors
    assert_nothing_charged(alice)


def test_a_picked_id_that_is_not_an_id_is_a_field_error(logged_in, alice):
    response = post(logged_in, {"gallery_references": ["../../etc/passwd"]})
    assert response.status_code == 400
    assert "gallery_references" in response.context["form"].errors
    assert_nothing_charged(alice)


def test_an_error_elsewhere_keeps_the_picked_images_in_the_composer(logged_in, alice):
    _, picked = finished_generation(personal_membership(alice))
    response = post(logged_in, {"prompt": "", "gallery_references": [str(picked.pk)]}, htmx=True)
    html = response.content.decode()
    assert response["HX-Retarget"] == "#composer"
    assert f'<input type="hidden" name="gallery_references" value="{picked.pk}">' in html


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (mask_bytes((32, 32), hole=(0, 0, 8, 8)), "The mask is 32x32 but the image is 64x48"),
        (encoded("RGB", (64, 48), "PNG"), "The mask must be a PNG with transparency"),
        (encoded("RGB", (64, 48), "JPEG"), "The mask must be a PNG with transparency"),
        (b"not a png at all", "The mask: This file is not a readable PNG"),
    ],
    ids=["wrong-size", "no-alpha", "jpeg", "not-an-image"],
)
def test_a_mask_that_does_not_fit_the_first_image_is_a_field_error(logged_in, alice, mask, message):
    _, source = finished_generation(personal_membership(alice))  # 64x48
    response = post(logged_in, {"source_gallery_image": str(source.pk), "mask": upload("mask.png", mask)})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["mask"]
    assert errors["mask"][0].startswith(message), errors
    alice.refresh_from_db()
    assert alice.credits == 900 and Generation.objects.count() == 1


def test_a_mask_without_an_image_is_a_field_error(logged_in, alice):
    response = post(logged_in, {"mask": upload("mask.png", mask_bytes())})
    assert response.status_code == 400
    assert response.context["form"].errors["mask"] == [
        "A mask needs an image to edit: choose a source image."
    ]
    assert_nothing_charged(alice)


def test_a_mask_is_checked_against_the_uploaded_source_not_a_later_reference(logged_in, alice):
    response = post(
        logged_in,
        {
            "source_image": upload("photo.png", png_bytes((32, 32))),
            "references": [upload("big.png", png_bytes((64, 48)))],
            "mask": upload("mask.png", mask_bytes((64, 48))),
        },
    )
    assert response.status_code == 400
    assert response.context["form"].errors["mask"][0].startswith("The mask is 64x48 but the image is 32x32")
    assert_nothing_charged(alice)


def test_two_sources_at_once_are_a_field_error(logged_in, alice):
    _, source = finished_generation(personal_membership(alice))
    response = post(
        logged_in,
        {"source_gallery_image": str(source.pk), "source_image": upload("photo.png", png_bytes((64, 48)))},
    )
    assert response.status_code == 400
    assert response.context["form"].errors["source_image"] == [
        "Choose one source image: an upload or a gallery image, not both."
    ]


def test_reuse_settings_fills_the_composer_from_a_generation(client, alice, bob):
    from studio.engine.services import generation_submit
    from studio.engine.spec import GenerationSpec
    from studio.models import Generation
    from tests.helpers import personal_membership

    generation = generation_submit(
        membership=personal_membership(alice),
        spec=GenerationSpec.build(
            prompt="a fox at dawn", aspect_ratio="16:9", resolution="2K", quality="high", n=2
        ),
    )
    client.force_login(alice)
    form = client.get(f"/?reuse={generation.pk}").context["form"]
    assert form.initial["prompt"] == "a fox at dawn"
    assert (
        form.initial["aspect_ratio"],
        form.initial["resolution"],
        form.initial["quality"],
        form.initial["n"],
    ) == (
        "16:9",
        "2K",
        "high",
        2,
    )
    # Someone else's generation, or nonsense, is ignored.
    client.force_login(bob)
    assert "prompt" not in client.get(f"/?reuse={generation.pk}").context["form"].initial
    assert "prompt" not in client.get("/?reuse=not-a-uuid").context["form"].initial
    assert Generation.objects.count() == 1
