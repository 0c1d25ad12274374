"""The gallery, the image page, bulk actions and the prompt history (studio.web.gallery)."""

import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.middleware import SESSION_KEY
from studio.engine.images import check_image
from studio.engine.services import SubmittedImage, generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Favourite, Generation, Image, Project, Source, Status
from tests.conftest import png_bytes
from tests.helpers import finish, finished_generation, personal_membership

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
HTMX = {"HX-Request": "true"}


def log_in(client, user, workspace=None):
    """Log in, working in `workspace` (the user's personal one if None)."""
    client.force_login(user)
    if workspace is not None:
        session = client.session
        session[SESSION_KEY] = workspace.pk
        session.save()


def tiles(html: str) -> list[str]:
    """The image ids shown as tiles, in order."""
    return re.findall(rf'id="tile-({UUID})"', html)


def many_images(membership, count: int, *, prompt: str = "harbour study") -> list[Image]:
    """`count` succeeded generations with one image each, made in bulk (no credits, no files of their own:
    they share the files of one real image)."""
    _, model = finished_generation(membership, prompt=f"{prompt} model")
    generations = Generation.objects.bulk_create(
        Generation(
            workspace=membership.workspace,
            project=model.generation.project,
            author=membership.user,
            prompt=f"{prompt} {number}",
            spec=model.generation.spec,
            provider="local",
            cost=100,
            status=Status.SUCCEEDED,
        )
        for number in range(count - 1)
    )
    images = Image.objects.bulk_create(
        Image(
            generation=generation,
            workspace=membership.workspace,
            file=model.file.name,
            thumbnail=model.thumbnail.name,
            width=model.width,
            height=model.height,
            format=model.format,
            bytes=model.bytes,
        )
        for generation in generations
    )
    return [model, *images]


@pytest.fixture
def owner_client(client, team):
    log_in(client, team["owner"], team["workspace"])
    return client


# The gallery page


def test_the_gallery_needs_a_login(client, db):
    response = client.get("/gallery/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_it_shows_the_current_workspace_as_thumbnails_only(client, team, alice):
    _, team_image = finished_generation(team["memberships"]["editor"], prompt="a team poster")
    _, own_image = finished_generation(personal_membership(team["owner"]), prompt="a private sketch")
    _, alice_image = finished_generation(personal_membership(alice), prompt="alice's secret")
    log_in(client, team["owner"], team["workspace"])

    html = client.get("/gallery/").content.decode()

    assert tiles(html) == [str(team_image.pk)]
    assert "a team poster" in html and "a private sketch" not in html and str(alice_image.pk) not in html
    image_sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert image_sources == [f"/images/{team_image.pk}/thumbnail/"]
    # No link or source anywhere points at an original.
    assert not re.search(rf'"/images/{UUID}/(\?[^"]*)?"', html)
    assert own_image.pk  # still there, in the other workspace


def test_the_header_links_to_the_gallery_and_the_history(client, alice):
    log_in(client, alice)
    html = client.get("/gallery/").content.decode()
    assert '<a href="/gallery/" aria-current="page">Gallery</a>' in html
    assert '<a href="/history/">History</a>' in html


def test_an_empty_workspace_says_how_to_fill_it(client, alice):
    log_in(client, alice)
    html = client.get("/gallery/").content.decode()
    assert "No images in" in html and "Create the first one" in html


def test_a_viewer_is_told_where_images_come_from(client, team):
    log_in(client, team["viewer"], team["workspace"])
    html = client.get("/gallery/").content.decode()
    assert "as the editors of this workspace make them" in html
    assert "Create the first one" not in html
    # Nothing to filter or select yet.
    assert 'id="gallery-filters"' not in html and 'id="bulk-form"' not in html


def test_a_viewer_may_download_but_is_not_offered_move_or_delete(client, team):
    finished_generation(team["memberships"]["editor"])
    log_in(client, team["viewer"], team["workspace"])
    html = client.get("/gallery/").content.decode()
    assert 'value="download"' in html and 'value="move"' not in html and 'value="delete"' not in html


@pytest.fixture
def varied(team):
    """Images by two authors in two projects, one favourite of the owner, one revised prompt, and a failed
    generation."""
    workspace = team["workspace"]
    posters = Project.objects.create(workspace=workspace, name="Posters")
    generation, by_editor = finished_generation(team["memberships"]["editor"], prompt="a red fox in snow")
    Generation.objects.filter(pk=generation.pk).update(
        project=posters, revised_prompt="a red fox standing in deep powder snow, dawn light"
    )
    _, by_owner = finished_generation(team["memberships"]["owner"], prompt="a blue whale at night")
    Favourite.objects.create(user=team["owner"], image=by_owner)
    failed = generation_submit(
        membership=team["memberships"]["editor"], spec=GenerationSpec.build(prompt="a forbidden thing")
    )
    failed.transition(from_statuses=(Status.QUEUED,), to=Status.FAILED, error="The upstream refused it.")
    return {
        "posters": posters,
        "by_editor": by_editor,
        "by_owner": by_owner,
        "failed": failed,
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"by_editor", "by_owner"}),
        ("project={posters}", {"by_editor"}),
        ("author={editor}", {"by_editor"}),
        ("author={owner}", {"by_owner"}),
        ("favourites=on", {"by_owner"}),
        ("q=whale", {"by_owner"}),
        ("q=FOX+snow", {"by_editor"}),
        ("q=fox+whale", set()),
        ("q=powder", {"by_editor"}),  # the revised prompt counts too
        ("date_from={today}&date_to={today}", {"by_editor", "by_owner"}),
        ("date_to={yesterday}", set()),
        ("date_from={tomorrow}", set()),
    ],
)
def test_filters_and_search_narrow_the_images(owner_client, team, varied, query, expected):
    today = timezone.localdate()
    query = query.format(
        posters=varied["posters"].pk,
        editor=team["editor"].pk,
        owner=team["owner"].pk,
        today=today.isoformat(),
        yesterday=(today - timedelta(days=1)).isoformat(),
        tomorrow=(today + timedelta(days=1)).isoformat(),
    )
    html = owner_client.get(f"/gallery/?{query}").content.decode()
    assert set(tiles(html)) == {str(varied[name].pk) for name in expected}
    if not expected:
        assert "Nothing matches these filters" in html


def test_the_status_filter_lists_failed_generations_with_their_reason(owner_client, varied):
    html = owner_client.get("/gallery/?status=failed").content.decode()
    assert tiles(html) == [str(varied["failed"].pk)]
    assert "a forbidden thing" in html and "The upstream refused it." in html
    assert f'href="/?reuse={varied["failed"].pk}"' in html
    assert "a red fox" not in html


def test_a_bad_filter_value_is_reported_and_the_others_still_apply(owner_client, varied):
    html = owner_client.get("/gallery/?q=whale&date_from=yesterday-ish").content.decode()
    assert "From: Enter a valid date." in html
    assert tiles(html) == [str(varied["by_owner"].pk)]
    html = owner_client.get("/gallery/?date_from=2030-01-02&date_to=2030-01-01").content.decode()
    assert "Pick a day on or after the From day." in html


def test_a_project_from_another_workspace_is_not_a_valid_filter(owner_client, alice, varied):
    elsewhere = Project.default_for(personal_membership(alice).workspace)
    html = owner_client.get(f"/gallery/?project={elsewhere.pk}").content.decode()
    assert "Project: Select a valid choice." in html


def test_htmx_gets_only_the_results_region(owner_client, varied):
    response = owner_client.get("/gallery/?q=whale", headers={**HTMX, "HX-Target": "gallery-results"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="gallery-results"')
    assert "<html" not in html and 'id="gallery-filters"' not in html
    assert tiles(html) == [str(varied["by_owner"].pk)]
    assert "HX-Request" in response["Vary"]


def test_a_history_restore_gets_the_whole_page(owner_client, varied):
    headers = {**HTMX, "HX-History-Restore-Request": "true"}
    html = owner_client.get("/gallery/?q=whale", headers=headers).content.decode()
    assert "<html" in html


# Pagination


def test_pages_follow_each_other_without_gaps_or_repeats(client, alice):
    images = many_images(personal_membership(alice), 100)
    log_in(client, alice)
    seen, url, pages = [], "/gallery/", 0
    while url:
        html = client.get(url).content.decode()
        seen += tiles(html)
        pages += 1
        more = re.search(r'<li id="gallery-more".*?href="([^"]+)"', html, re.S)
        url = more.group(1).replace("&amp;", "&") if more else None
    assert pages == 3
    expected = sorted(images, key=lambda image: (image.created_at, image.pk.hex), reverse=True)
    assert seen == [str(image.pk) for image in expected]


def test_the_next_page_keeps_the_filters_and_comes_as_tiles_for_infinite_scroll(client, alice):
    many_images(personal_membership(alice), 60, prompt="harbour")
    log_in(client, alice)
    first = client.get("/gallery/?q=harbour").content.decode()
    link = re.search(r'hx-get="([^"]+)"\s+hx-trigger="revealed, click"', first).group(1).replace("&amp;", "&")
    assert "q=harbour" in link and "cursor=" in link

    response = client.get(link, headers={**HTMX, "HX-Target": "gallery-more"})
    html = response.content.decode()
    assert html.lstrip().startswith('<li class="tile"')
    assert len(tiles(html)) == 12 and "gallery-more" not in html
    assert not set(tiles(html)) & set(tiles(first))


def test_a_damaged_cursor_shows_the_first_page(client, alice):
    many_images(personal_membership(alice), 3)
    log_in(client, alice)
    for cursor in ("nonsense", "12-zz", "99999999999999999999999-00"):
        assert len(tiles(client.get(f"/gallery/?cursor={cursor}").content.decode())) == 3


# Scale: a constant number of queries whatever the number of images


def _queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize(
    "url",
    [
        "/gallery/",
        "/gallery/?q=harbour&favourites=",
        "/gallery/?favourites=on",
        "/gallery/?status=failed",
        "/history/",
    ],
)
def test_a_page_costs_the_same_queries_for_30_or_300_images(client, alice, url):
    membership = personal_membership(alice)
    images = many_images(membership, 30)
    Favourite.objects.bulk_create(Favourite(user=alice, image=image) for image in images)
    log_in(client, alice)
    small = _queries_for(client, url)
    more = many_images(membership, 270)
    Favourite.objects.bulk_create(Favourite(user=alice, image=image) for image in more)
    large = _queries_for(client, url)
    assert small == large
    assert large <= 12


def test_a_deep_page_costs_what_the_first_costs(client, alice):
    many_images(personal_membership(alice), 300)
    log_in(client, alice)
    html = client.get("/gallery/").content.decode()
    deep = re.search(r'<li id="gallery-more".*?href="([^"]+)"', html, re.S).group(1).replace("&amp;", "&")
    for _ in range(4):
        html = client.get(deep).content.decode()
        deep = re.search(r'<li id="gallery-more".*?href="([^"]+)"', html, re.S).group(1).replace("&amp;", "&")
    assert _queries_for(client, deep) == _queries_for(client, "/gallery/")


# Favourites


def test_a_star_marks_a_favourite_once_and_removes_it(client, team):
    _, image = finished_generation(team["memberships"]["editor"])
    log_in(client, team["viewer"], team["workspace"])
    url = f"/images/{image.pk}/favourite/"

    for _ in range(2):  # a double click does not flip it back
        response = client.post(url, {"favourite": "1"}, headers=HTMX)
        assert response.status_code == 200
    assert Favourite.objects.filter(user=team["viewer"], image=image).count() == 1
    assert 'aria-pressed="true"' in response.content.decode()
    assert 'name="favourite" value="0"' in response.content.decode()

    response = client.post(url, {"favourite": "0"}, headers=HTMX)
    assert 'aria-pressed="false"' in response.content.decode()
    assert not Favourite.objects.exists()


def test_without_htmx_the_star_goes_back_where_it_was(client, alice):
    _, image = finished_generation(personal_membership(alice))
    log_in(client, alice)
    response = client.post(f"/images/{image.pk}/favourite/", {"favourite": "1", "next": "/gallery/?q=red"})
    assert response.status_code == 302 and response["Location"] == "/gallery/?q=red"
    response = client.post(
        f"/images/{image.pk}/favourite/", {"favourite": "1", "next": "https://evil.example/"}
    )
    assert response["Location"] == f"/images/{image.pk}/view/"


def test_favourites_are_personal(client, team):
    _, image = finished_generation(team["memberships"]["editor"])
    Favourite.objects.create(user=team["owner"], image=image)
    log_in(client, team["editor"], team["workspace"])
    assert tiles(client.get("/gallery/?favourites=on").content.decode()) == []
    assert 'aria-pressed="false"' in client.get("/gallery/").content.decode()


def test_a_stranger_cannot_star_an_image(client, team):
    _, image = finished_generation(team["memberships"]["editor"])
    log_in(client, team["stranger"])
    assert client.post(f"/images/{image.pk}/favourite/", {"favourite": "1"}).status_code == 404
    assert not Favourite.objects.exists()


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


# Several images at once


@pytest.fixture
def shared(team):
    """Two images by the editor and one by the owner in the team workspace, and alice's image elsewhere."""
    _, first = finished_generation(team["memberships"]["editor"], prompt="first by editor")
    _, second = finished_generation(team["memberships"]["editor"], prompt="second by editor")
    _, owners = finished_generation(team["memberships"]["owner"], prompt="by the owner")
    return {"first": first, "second": second, "owners": owners}


def _bulk(client, action: str, images, **extra):
    return client.post(
        "/gallery/bulk/",
        {"action": action, "images": [str(image.pk) for image in images], "next": "/gallery/?q=by", **extra},
    )


def test_a_zip_holds_exactly_the_selected_images_the_user_may_read(client, team, alice, shared):
    _, alices = finished_generation(personal_membership(alice), prompt="not yours")
    log_in(client, team["viewer"], team["workspace"])
    response = _bulk(client, "download", [shared["first"], shared["owners"], alices])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="studio-')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    names = sorted(archive.namelist())
    assert names == sorted(
        [
            f"first-by-editor-{shared['first'].pk.hex[:8]}.png",
            f"by-the-owner-{shared['owners'].pk.hex[:8]}.png",
        ]
    )
    for image in (shared["first"], shared["owners"]):
        name = next(name for name in names if image.pk.hex[:8] in name)
        assert archive.read(name) == image.file.open("rb").read()


def test_nothing_selected_is_explained(client, team, shared):
    log_in(client, team["owner"], team["workspace"])
    response = _bulk(client, "download", [])
    assert response.status_code == 302 and response["Location"] == "/gallery/?q=by"
    assert "Select one or more images first." in client.get("/gallery/").content.decode()


def test_an_editor_moves_their_own_images(client, team, shared):
    posters = Project.objects.create(workspace=team["workspace"], name="Posters")
    log_in(client, team["editor"], team["workspace"])
    response = _bulk(client, "move", [shared["first"], shared["second"]], project=posters.pk)
    assert response.status_code == 302
    assert set(Generation.objects.filter(project=posters)) == {
        shared["first"].generation,
        shared["second"].generation,
    }


def test_an_editor_moving_someone_elses_image_changes_nothing(client, team, shared):
    posters = Project.objects.create(workspace=team["workspace"], name="Posters")
    log_in(client, team["editor"], team["workspace"])
    response = _bulk(client, "move", [shared["first"], shared["owners"]], project=posters.pk)
    assert response.status_code == 302
    assert not Generation.objects.filter(project=posters).exists()
    html = client.get(response["Location"]).content.decode()
    assert "1 of the 2 selected is by someone else. Nothing was changed." in html


def test_an_owner_moves_anyones_images_but_not_into_an_archived_project(client, team, shared):
    posters = Project.objects.create(workspace=team["workspace"], name="Posters")
    old = Project.objects.create(workspace=team["workspace"], name="Old", archived_at=timezone.now())
    log_in(client, team["owner"], team["workspace"])
    _bulk(client, "move", [shared["first"], shared["owners"]], project=posters.pk)
    assert Generation.objects.filter(project=posters).count() == 2
    response = _bulk(client, "move", [shared["first"]], project=old.pk)
    assert "is archived" in client.get(response["Location"]).content.decode()
    assert not Generation.objects.filter(project=old).exists()


def test_a_viewer_can_neither_move_nor_delete(client, team, shared):
    posters = Project.objects.create(workspace=team["workspace"], name="Posters")
    log_in(client, team["viewer"], team["workspace"])
    assert _bulk(client, "move", [shared["first"]], project=posters.pk).status_code == 403
    assert _bulk(client, "delete", [shared["first"]]).status_code == 403
    assert _bulk(client, "delete", [shared["first"]], confirmed="1").status_code == 403
    assert Image.objects.count() == 3 and not Generation.objects.filter(project=posters).exists()


def test_bulk_delete_asks_first_then_deletes_files_and_rows(
    client, team, shared, django_capture_on_commit_callbacks
):
    log_in(client, team["owner"], team["workspace"])
    chosen = [shared["first"], shared["owners"]]
    page = _bulk(client, "delete", chosen)
    assert page.status_code == 200 and "Delete 2 images?" in page.content.decode()
    assert Image.objects.count() == 3

    files = [name for image in chosen for name in (image.file.name, image.thumbnail.name)]
    with django_capture_on_commit_callbacks(execute=True):
        response = _bulk(client, "delete", chosen, confirmed="1")
    assert response.status_code == 302 and response["Location"] == "/gallery/?q=by"
    assert list(Image.objects.all()) == [shared["second"]]
    assert not any(default_storage.exists(name) for name in files)
    assert default_storage.exists(shared["second"].file.name)


def test_an_editor_cannot_bulk_delete_someone_elses_image(client, team, shared):
    log_in(client, team["editor"], team["workspace"])
    response = _bulk(client, "delete", [shared["first"], shared["owners"]])
    assert response.status_code == 302
    response = _bulk(client, "delete", [shared["first"], shared["owners"]], confirmed="1")
    assert response.status_code == 302
    assert Image.objects.count() == 3


def test_bulk_actions_ignore_images_of_other_workspaces(client, team, alice, shared):
    _, alices = finished_generation(personal_membership(alice), prompt="not yours")
    log_in(client, team["owner"], team["workspace"])
    _bulk(client, "delete", [alices], confirmed="1")
    assert Image.objects.filter(pk=alices.pk).exists()


def test_a_generation_of_several_images_stays_while_one_remains(alice, django_capture_on_commit_callbacks):
    from studio.engine.services import images_delete

    membership = personal_membership(alice)
    generation, image = finished_generation(membership)
    sibling = Image.objects.create(
        generation=generation,
        workspace=membership.workspace,
        index=1,
        file=image.file.name,
        thumbnail=image.thumbnail.name,
        width=64,
        height=48,
        format="png",
        bytes=image.bytes,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert images_delete(membership=membership, images=[sibling]) == 1
    assert Generation.objects.filter(pk=generation.pk).exists()


# Prompt history


def test_the_history_lists_each_prompt_once_newest_first(client, team, alice):
    editor = team["memberships"]["editor"]
    finished_generation(editor, prompt="a cat")
    finished_generation(editor, prompt="a dog")
    finished_generation(editor, prompt="a cat")
    latest_cat, _ = finished_generation(editor, prompt="a cat")
    finished_generation(team["memberships"]["owner"], prompt="the owner's prompt")
    finished_generation(personal_membership(team["editor"]), prompt="a personal prompt")
    log_in(client, team["editor"], team["workspace"])

    html = client.get("/history/").content.decode()

    prompts = re.findall(r'<p class="history-prompt">([^<]*)</p>', html)
    assert prompts == ["a cat", "a dog"]
    assert "used 3 times" in html and "used once" in html
    assert f'href="/?reuse={latest_cat.pk}"' in html


def test_the_history_searches_and_says_when_nothing_matches(client, alice):
    membership = personal_membership(alice)
    finished_generation(membership, prompt="a cat on a mat")
    finished_generation(membership, prompt="a dog in fog")
    log_in(client, alice)
    html = client.get("/history/?q=fog").content.decode()
    assert re.findall(r'<p class="history-prompt">([^<]*)</p>', html) == ["a dog in fog"]
    assert "None of your prompts here contains" in client.get("/history/?q=zebra").content.decode()


def test_the_history_pages_through_many_prompts(client, alice):
    many_images(personal_membership(alice), 50)
    log_in(client, alice)
    first = client.get("/history/").content.decode()
    second = client.get("/history/?page=2").content.decode()
    shown = re.findall(r'<p class="history-prompt">([^<]*)</p>', first + second)
    assert len(shown) == len(set(shown)) == 50
    assert "Page 1 of 2" in first


def test_a_viewer_sees_no_reuse_button(client, team):
    finished_generation(team["memberships"]["editor"], prompt="made while an editor")
    membership = team["memberships"]["editor"]
    membership.role = "viewer"
    membership.save()
    log_in(client, team["editor"], team["workspace"])
    html = client.get("/history/").content.decode()
    assert "made while an editor" in html and "?reuse=" not in html


# Projects link to their gallery


def test_the_projects_page_links_each_project_to_its_gallery(client, team):
    posters = Project.objects.create(workspace=team["workspace"], name="Posters")
    log_in(client, team["viewer"], team["workspace"])
    html = client.get(f"/workspaces/{team['workspace'].slug}/projects/").content.decode()
    assert f'href="/gallery/?project={posters.pk}"' in html
