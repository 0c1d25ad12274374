"""The image page: the full record, actions by role, neighbours, move and delete, and lineage
(studio.web.images)."""

import pytest
from django.core.files.storage import default_storage

from studio.engine.images import check_image
from studio.engine.services import SubmittedImage, generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Image, Project, Source
from tests.conftest import png_bytes
from tests.helpers import finish, finished_generation, personal_membership
from tests.studio.web.gallery_helpers import log_in

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


@pytest.fixture
def owner_client(client, team):
    log_in(client, team["owner"], team["workspace"])
    return client


# The image page


def test_the_image_page_shows_the_full_record_and_the_actions(client, team):
    generation, image = finished_generation(team["memberships"]["editor"], prompt="a lighthouse at dusk")
    Generation.objects.filter(pk=generation.pk).update(
        source=Source.SJINN,
        revised_prompt="a tall lighthouse at dusk, warm light",
        usage={"input_tokens": 1234, "output_tokens": 4160, "total_tokens": 5394},
        result_quality="high",
    )
    log_in(client, team["editor"], team["workspace"])
    response = client.get(f"/images/{image.pk}/view/")
    assert response.status_code == 200
    html = response.content.decode()
    for text in (
        "a lighthouse at dusk",
        "a tall lighthouse at dusk, warm light",
        "64\N{MULTIPLICATION SIGN}48",
        "High",
        "PNG",
        "100 credits",
        "editor",
        "1,234 input + 4,160 output = 5,394 tokens",
        "API (sjinn dialect)",
        f'href="/images/{image.pk}/?download=1"',
        f'href="/?reuse={generation.pk}"',
        f'href="/?edit={image.pk}"',
        f'href="/?reference={image.pk}"',
        f'action="/images/{image.pk}/move/"',
        f'href="/images/{image.pk}/delete/"',
    ):
        assert text in html, text


def test_a_viewer_sees_the_image_without_the_changing_actions(client, team):
    _, image = finished_generation(team["memberships"]["editor"])
    log_in(client, team["viewer"], team["workspace"])
    html = client.get(f"/images/{image.pk}/view/").content.decode()
    assert "Download original" in html
    for absent in ("?reuse=", "?edit=", "?reference=", "/move/", "/delete/"):
        assert absent not in html


def test_an_editor_cannot_manage_an_owners_image(client, team):
    _, image = finished_generation(team["memberships"]["owner"])
    log_in(client, team["editor"], team["workspace"])
    html = client.get(f"/images/{image.pk}/view/").content.decode()
    assert "?reuse=" in html and "/move/" not in html and "/delete/" not in html
    assert client.get(f"/images/{image.pk}/delete/").status_code == 403
    assert client.post(f"/images/{image.pk}/delete/").status_code == 403
    assert Image.objects.filter(pk=image.pk).exists()


@pytest.mark.parametrize(
    "url", ["/images/{pk}/view/", "/images/{pk}/delete/", "/images/{pk}/favourite/", "/images/{pk}/move/"]
)
def test_a_stranger_gets_404_for_every_image_page(client, team, url):
    _, image = finished_generation(team["memberships"]["editor"])
    log_in(client, team["stranger"])
    method = client.get if url.endswith("view/") else client.post
    assert method(url.format(pk=image.pk)).status_code == 404


def test_newer_and_older_links_walk_the_workspace(client, alice):
    membership = personal_membership(alice)
    _, first = finished_generation(membership, prompt="first")
    _, second = finished_generation(membership, prompt="second")
    _, third = finished_generation(membership, prompt="third")
    log_in(client, alice)
    html = client.get(f"/images/{second.pk}/view/").content.decode()
    assert f'href="/images/{third.pk}/view/" data-nav="newer"' in html
    assert f'href="/images/{first.pk}/view/" data-nav="older"' in html


def test_moving_one_image_moves_its_generation(client, team):
    generation, image = finished_generation(team["memberships"]["editor"])
    posters = Project.objects.create(workspace=team["workspace"], name="Posters")
    log_in(client, team["editor"], team["workspace"])
    response = client.post(f"/images/{image.pk}/move/", {"project": posters.pk})
    assert response.status_code == 302
    generation.refresh_from_db()
    assert generation.project == posters


def test_a_viewer_cannot_move_an_image(client, team):
    generation, image = finished_generation(team["memberships"]["editor"])
    posters = Project.objects.create(workspace=team["workspace"], name="Posters")
    log_in(client, team["viewer"], team["workspace"])
    assert client.post(f"/images/{image.pk}/move/", {"project": posters.pk}).status_code == 403
    generation.refresh_from_db()
    assert generation.project != posters


def test_an_image_cannot_move_into_another_workspace(client, team, alice):
    generation, image = finished_generation(team["memberships"]["owner"])
    elsewhere = Project.default_for(personal_membership(alice).workspace)
    log_in(client, team["owner"], team["workspace"])
    assert client.post(f"/images/{image.pk}/move/", {"project": elsewhere.pk}).status_code == 404
    generation.refresh_from_db()
    assert generation.project != elsewhere


def test_deleting_an_image_asks_first_then_removes_it_and_its_files(
    client, alice, django_capture_on_commit_callbacks
):
    generation, image = finished_generation(personal_membership(alice))
    files = [image.file.name, image.thumbnail.name]
    log_in(client, alice)
    page = client.get(f"/images/{image.pk}/delete/").content.decode()
    assert "Delete 1 image?" in page and "cannot be undone" in page
    assert Image.objects.filter(pk=image.pk).exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/images/{image.pk}/delete/")
    assert response.status_code == 302 and response["Location"] == "/gallery/"
    assert not Image.objects.filter(pk=image.pk).exists()
    assert not any(default_storage.exists(name) for name in files)
    # Its generation had no other image: it goes too, so no empty card is left on the home page.
    assert not Generation.objects.filter(pk=generation.pk).exists()
    assert client.get(f"/images/{image.pk}/view/").status_code == 404


# Lineage


@pytest.fixture
def lineage(alice):
    """An image, and an edit made from it with a mask."""
    membership = personal_membership(alice)
    _, parent = finished_generation(membership, prompt="a plain room")
    source = check_image(parent.file.open("rb").read())
    mask = check_image(png_bytes((64, 48), color=(0, 0, 0, 0)))
    child = generation_submit(
        membership=membership,
        spec=GenerationSpec.build(prompt="the room with a plant", input_images=1, has_mask=True),
        references=[SubmittedImage(image=source, source_image=parent)],
        mask=SubmittedImage(image=mask),
    )
    return {"parent": parent, "child": child}


def test_an_image_shows_what_it_was_made_from(client, alice, lineage):
    _, child_image = _finish(lineage["child"])
    log_in(client, alice)
    html = client.get(f"/images/{child_image.pk}/view/").content.decode()
    parent = lineage["parent"]
    assert f'href="/images/{parent.pk}/view/" class="lineage-thumb"' in html
    assert "Edit source" in html and "Mask" in html
    mask_input = lineage["child"].inputs.get(role="mask")
    mask_url = f"/generations/{lineage['child'].pk}/inputs/{mask_input.pk}/"
    assert mask_url in html
    response = client.get(mask_url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"


def test_an_image_shows_what_was_made_from_it(client, alice, lineage):
    log_in(client, alice)
    html = client.get(f"/images/{lineage['parent'].pk}/view/").content.decode()
    assert "Made with this image" in html
    assert "the room with a plant" in html and "As reference" in html


def test_a_stranger_cannot_open_an_input(client, bob, lineage):
    mask_input = lineage["child"].inputs.get(role="mask")
    log_in(client, bob)
    assert client.get(f"/generations/{lineage['child'].pk}/inputs/{mask_input.pk}/").status_code == 404


def test_a_source_in_a_workspace_the_viewer_cannot_open_is_named_not_shown(client, alice, bob):
    _, parent = finished_generation(personal_membership(alice), prompt="alice's private photo")
    child = generation_submit(
        membership=personal_membership(bob),
        spec=GenerationSpec.build(prompt="bob's edit", input_images=1),
        references=[SubmittedImage(image=check_image(parent.file.open("rb").read()), source_image=parent)],
    )
    _, child_image = _finish(child)
    log_in(client, bob)
    html = client.get(f"/images/{child_image.pk}/view/").content.decode()
    assert "from a workspace you are not in" in html
    assert str(parent.pk) not in html
    # And alice does not see bob's work under her image.
    log_in(client, alice)
    assert "bob&#x27;s edit" not in client.get(f"/images/{parent.pk}/view/").content.decode()


def _finish(generation: Generation) -> tuple[Generation, Image]:
    return finish(generation, color=(20, 120, 40, 255))
