import pytest

from tests.conftest import png_bytes
from tests.helpers import finished_generation, personal_membership


@pytest.fixture
def image(alice):
    return finished_generation(personal_membership(alice))[1]


def test_a_member_gets_the_original_and_the_thumbnail(client, alice, image):
    client.force_login(alice)
    original = client.get(f"/images/{image.pk}/")
    assert original.status_code == 200 and original["Content-Type"] == "image/png"
    assert b"".join(original.streaming_content) == image.file.open("rb").read()
    thumb = client.get(f"/images/{image.pk}/thumbnail/")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/webp"


def test_a_download_is_an_attachment(client, alice, image):
    client.force_login(alice)
    response = client.get(f"/images/{image.pk}/?download=1")
    assert response["Content-Disposition"].startswith("attachment")


def test_anyone_else_gets_404(client, bob, image):
    client.force_login(bob)
    assert client.get(f"/images/{image.pk}/").status_code == 404
    assert client.get(f"/images/{image.pk}/thumbnail/").status_code == 404
    assert client.get(f"/generations/{image.generation_id}/").status_code == 404
    assert client.get(f"/generations/{image.generation_id}/partial/").status_code == 404


def test_an_anonymous_visitor_is_sent_to_log_in(client, image):
    assert client.get(f"/images/{image.pk}/").status_code == 302


def test_media_are_not_served_from_a_public_url(client, alice, image):
    client.force_login(alice)
    assert client.get(f"/media/{image.file.name}").status_code == 404


@pytest.mark.django_db
def test_an_input_link_serves_that_one_input_without_a_session_until_it_expires(client, alice, settings):
    from django.core.files.base import ContentFile

    from studio.engine import input_links
    from studio.models import GenerationInput, InputRole

    settings.STUDIO_PUBLIC_URL = "https://studio.example"
    generation, _ = finished_generation(personal_membership(alice))
    item = GenerationInput(generation=generation, role=InputRole.REFERENCE, content_type="image/png")
    item.file.save("input.png", ContentFile(png_bytes()), save=True)
    url = input_links.input_url(item.pk)
    assert url.startswith("https://studio.example/inputs/")
    path = url.removeprefix("https://studio.example")
    response = client.get(path)
    assert response.status_code == 200 and b"".join(response.streaming_content) == png_bytes()
    forged = path.rstrip("/")[:-3] + "abc/"
    assert client.get(forged).status_code == 404
    settings.UPSTREAM_INPUT_URL_TTL_SECONDS = -1  # every link has expired
    assert client.get(path).status_code == 404
    settings.STUDIO_PUBLIC_URL = ""
    assert input_links.input_url(item.pk) == ""  # no public URL, no links
