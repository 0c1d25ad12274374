"""Several images at once: ZIP download, move and delete, by role and workspace (studio.web.bulk)."""

import io
import zipfile

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from studio.models import Generation, Image, Project
from tests.helpers import finished_generation, personal_membership
from tests.studio.web.gallery_helpers import log_in

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


@pytest.fixture
def owner_client(client, team):
    log_in(client, team["owner"], team["workspace"])
    return client


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
