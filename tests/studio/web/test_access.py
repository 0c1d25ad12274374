"""Who may open what: every workspace, project, generation and image URL, for an owner, an editor, a viewer
and a stranger, in the manner of healthchecks' BaseTestCase (one world with four people).

The rule: a stranger gets 404 (the object might as well not exist); a member who lacks the role for an
action gets 403; and a refused request changes nothing.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from accounts.middleware import SESSION_KEY
from accounts.models import Invitation, Membership, Role
from accounts.services import invitation_create
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Project, Status
from tests.conftest import png_bytes
from tests.helpers import finished_generation

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

ROLES = ("owner", "editor", "viewer", "stranger")


@dataclass
class World:
    """A team workspace with three members and everything a URL can point at, and a stranger outside."""

    people: dict
    workspace: object
    project: Project
    archived_project: Project
    generation: Generation
    running_generation: Generation
    image: object
    invitation: Invitation
    memberships: dict = field(default_factory=dict)


@pytest.fixture
def world(team) -> World:
    memberships = team["memberships"]
    workspace = team["workspace"]
    project = Project.objects.create(workspace=workspace, name="Posters")
    archived_project = Project.objects.create(workspace=workspace, name="Old", archived_at=timezone.now())
    generation, image = finished_generation(memberships["editor"], prompt="a finished poster")
    running_generation = generation_submit(
        membership=memberships["editor"], spec=GenerationSpec.build(prompt="a slow one"), project=project
    )
    running_generation.transition(from_statuses=(Status.QUEUED,), to=Status.RUNNING)
    running_generation.partial_image.save("partial.png", ContentFile(png_bytes()))
    invitation = invitation_create(
        workspace=workspace, email="newcomer@example.com", role=Role.EDITOR, invited_by=team["owner"]
    )
    return World(
        people=team,
        workspace=workspace,
        project=project,
        archived_project=archived_project,
        generation=generation,
        running_generation=running_generation,
        image=image,
        invitation=invitation,
        memberships=memberships,
    )


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    url: Callable[[World], str]
    expected: dict[str, int]
    data: Callable[[World], dict] = lambda world: {}


READ = {"owner": 200, "editor": 200, "viewer": 200, "stranger": 404}
WRITE = {"owner": 302, "editor": 302, "viewer": 403, "stranger": 404}
WRITE_FORM = {"owner": 200, "editor": 200, "viewer": 403, "stranger": 404}
OWNER_ONLY = {"owner": 302, "editor": 403, "viewer": 403, "stranger": 404}
ANY_MEMBER = {"owner": 302, "editor": 302, "viewer": 302, "stranger": 404}

CASES = [
    # Workspaces and members
    Case("members page", "get", lambda w: f"/workspaces/{w.workspace.slug}/members/", READ),
    Case(
        "invite",
        "post",
        lambda w: f"/workspaces/{w.workspace.slug}/invitations/",
        OWNER_ONLY,
        lambda w: {"email": "someone@example.com", "role": "viewer"},
    ),
    Case(
        "cancel an invitation",
        "post",
        lambda w: f"/workspaces/{w.workspace.slug}/invitations/{w.invitation.pk}/cancel/",
        OWNER_ONLY,
    ),
    Case(
        "change a role",
        "post",
        lambda w: f"/workspaces/{w.workspace.slug}/members/{w.memberships['editor'].pk}/role/",
        OWNER_ONLY,
        lambda w: {"role": "viewer"},
    ),
    Case(
        "remove a member",
        "post",
        lambda w: f"/workspaces/{w.workspace.slug}/members/{w.memberships['viewer'].pk}/remove/",
        OWNER_ONLY,
    ),
    Case("leave", "post", lambda w: f"/workspaces/{w.workspace.slug}/leave/", ANY_MEMBER),
    Case(
        "switch to",
        "post",
        lambda w: "/workspaces/switch/",
        ANY_MEMBER,
        lambda w: {"workspace": w.workspace.pk},
    ),
    # Projects
    Case("project list", "get", lambda w: f"/workspaces/{w.workspace.slug}/projects/", READ),
    Case("new project page", "get", lambda w: f"/workspaces/{w.workspace.slug}/projects/new/", WRITE_FORM),
    Case(
        "create a project",
        "post",
        lambda w: f"/workspaces/{w.workspace.slug}/projects/new/",
        WRITE,
        lambda w: {"name": "Covers"},
    ),
    Case("rename page", "get", lambda w: f"/projects/{w.project.pk}/edit/", WRITE_FORM),
    Case(
        "rename", "post", lambda w: f"/projects/{w.project.pk}/edit/", WRITE, lambda w: {"name": "Billboards"}
    ),
    Case("archive", "post", lambda w: f"/projects/{w.project.pk}/archive/", WRITE),
    Case("restore", "post", lambda w: f"/projects/{w.archived_project.pk}/restore/", WRITE),
    # Generations
    Case("generation card", "get", lambda w: f"/generations/{w.generation.pk}/", READ),
    Case("partial image", "get", lambda w: f"/generations/{w.running_generation.pk}/partial/", READ),
    # The editor is the author; an owner may cancel anyone's.
    Case("cancel", "post", lambda w: f"/generations/{w.running_generation.pk}/cancel/", WRITE),
    # Images
    Case("image", "get", lambda w: f"/images/{w.image.pk}/", READ),
    Case("image download", "get", lambda w: f"/images/{w.image.pk}/?download=1", READ),
    Case("thumbnail", "get", lambda w: f"/images/{w.image.pk}/thumbnail/", READ),
]


def snapshot(world: World) -> tuple:
    """Everything a refused request must leave as it was."""
    workspace = world.workspace
    return (
        sorted(Membership.objects.filter(workspace=workspace).values_list("user__username", "role")),
        sorted(Project.objects.filter(workspace=workspace).values_list("name", "archived_at")),
        sorted(Invitation.objects.filter(workspace=workspace).values_list("email", "accepted_at")),
        sorted((str(pk), status) for pk, status in Generation.objects.values_list("pk", "status")),
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_role_gets_what_its_role_allows(client, world, case, role):
    client.force_login(world.people[role])
    before = snapshot(world)
    response = getattr(client, case.method)(case.url(world), case.data(world))
    assert response.status_code == case.expected[role], response.content.decode()[:500]
    if response.status_code in (403, 404):
        assert snapshot(world) == before


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_an_anonymous_visitor_is_sent_to_log_in(client, world, case):
    before = snapshot(world)
    response = getattr(client, case.method)(case.url(world), case.data(world))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert snapshot(world) == before


@pytest.mark.parametrize("role", ("owner", "editor", "viewer"))
def test_the_composer_is_for_writers_only(client, world, role):
    client.force_login(world.people[role])
    session = client.session
    session[SESSION_KEY] = world.workspace.pk
    session.save()
    html = client.get("/").content.decode()
    assert '<h1 id="gallery-title" class="section-title">Team' in html
    assert ('id="composer"' in html) is (role != "viewer")


def test_a_stranger_cannot_make_a_team_workspace_current(client, world):
    client.force_login(world.people["stranger"])
    session = client.session
    session[SESSION_KEY] = world.workspace.pk
    session.save()
    html = client.get("/").content.decode()
    assert "stranger&#x27;s studio" in html
    assert "a finished poster" not in html and ">Team<" not in html


def test_a_viewer_cannot_generate_even_by_posting_directly(client, world):
    client.force_login(world.people["viewer"])
    session = client.session
    session[SESSION_KEY] = world.workspace.pk
    session.save()
    count = Generation.objects.count()
    response = client.post("/generate/", {"prompt": "sneaky", "n": 1})
    assert response.status_code == 403
    assert Generation.objects.count() == count


def test_a_stranger_pointing_the_session_at_a_team_workspace_generates_in_their_own(client, world):
    stranger = world.people["stranger"]
    client.force_login(stranger)
    session = client.session
    session[SESSION_KEY] = world.workspace.pk
    session.save()
    data = {"prompt": "mine", "aspect_ratio": "1:1", "resolution": "1K", "quality": "medium", "n": 1}
    client.post("/generate/", {**data, "output_format": "png"})
    generation = Generation.objects.get(prompt="mine")
    assert generation.workspace.is_personal and generation.author == stranger


def test_a_project_of_another_workspace_cannot_be_chosen_in_the_composer(client, world):
    editor = world.people["editor"]
    client.force_login(editor)  # current workspace: their personal one
    data = {"prompt": "elsewhere", "aspect_ratio": "1:1", "resolution": "1K", "quality": "medium", "n": 1}
    response = client.post("/generate/", {**data, "output_format": "png", "project": world.project.pk})
    assert response.status_code == 400
    assert "project" in response.context["form"].errors
    assert not Generation.objects.filter(prompt="elsewhere").exists()
