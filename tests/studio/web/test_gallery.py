"""The gallery page (filters, search, cursor pages, constant queries), favourites and the prompt history
(studio.web.gallery)."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Favourite, Generation, Project, Status
from tests.helpers import finished_generation, personal_membership
from tests.studio.web.gallery_helpers import HTMX, UUID, log_in, many_images, tiles

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


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
