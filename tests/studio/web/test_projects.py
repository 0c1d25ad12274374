import pytest
from django.core.exceptions import PermissionDenied

from accounts.middleware import SESSION_KEY
from studio.engine.services import ProjectError, generation_submit, project_archive, project_create
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Project

pytestmark = pytest.mark.usefixtures("fast_password_hashing")

COMPOSER = {"aspect_ratio": "1:1", "resolution": "1K", "quality": "medium", "n": 1, "output_format": "png"}


@pytest.fixture
def editor_client(client, team):
    client.force_login(team["editor"])
    session = client.session
    session[SESSION_KEY] = team["workspace"].pk
    session.save()
    return client


def test_the_project_list_starts_with_the_default_project(editor_client, team):
    response = editor_client.get("/workspaces/team/projects/")
    assert [project.name for project in response.context["open_projects"]] == ["General"]
    assert "New project" in response.content.decode()


def test_an_editor_creates_a_project_and_the_composer_offers_it(editor_client, team):
    response = editor_client.post("/workspaces/team/projects/new/", {"name": "Album covers"}, follow=True)
    assert response.redirect_chain[-1][0] == "/workspaces/team/projects/"
    project = Project.objects.get(name="Album covers")
    assert project.workspace == team["workspace"] and not project.is_default
    html = editor_client.get("/").content.decode()
    assert '<label for="id_project">Project</label>' in html
    assert f'<option value="{project.pk}">Album covers</option>' in html


def test_project_names_are_unique_in_a_workspace(editor_client, team):
    Project.objects.create(workspace=team["workspace"], name="Covers")
    response = editor_client.post("/workspaces/team/projects/new/", {"name": "covers"})
    assert response.context["form"].errors["name"] == ["This workspace has a project with that name."]
    assert Project.objects.filter(name__iexact="covers").count() == 1


def test_a_project_is_renamed(editor_client, team):
    project = Project.objects.create(workspace=team["workspace"], name="Draft")
    page = editor_client.get(f"/projects/{project.pk}/edit/")
    assert 'value="Draft"' in page.content.decode()
    editor_client.post(f"/projects/{project.pk}/edit/", {"name": "Final"})
    project.refresh_from_db()
    assert project.name == "Final"


def test_generating_into_a_chosen_project(editor_client, team):
    project = Project.objects.create(workspace=team["workspace"], name="Covers")
    editor_client.post("/generate/", {**COMPOSER, "prompt": "a cover", "project": project.pk})
    assert Generation.objects.get(prompt="a cover").project == project


def test_without_a_choice_a_generation_goes_to_the_default_project(editor_client, team):
    editor_client.post("/generate/", {**COMPOSER, "prompt": "no project"})
    assert Generation.objects.get(prompt="no project").project == Project.default_for(team["workspace"])


def test_an_archived_project_leaves_the_composer_and_takes_no_new_images(editor_client, team):
    project = Project.objects.create(workspace=team["workspace"], name="Old")
    response = editor_client.post(f"/projects/{project.pk}/archive/", follow=True)
    project.refresh_from_db()
    assert project.is_archived
    assert [p.name for p in response.context["archived_projects"]] == ["Old"]
    assert f'<option value="{project.pk}">' not in editor_client.get("/").content.decode()
    refused = editor_client.post(
        "/generate/", {**COMPOSER, "prompt": "into the archive", "project": project.pk}
    )
    assert refused.status_code == 400 and "project" in refused.context["form"].errors
    with pytest.raises(PermissionDenied, match="archived"):
        generation_submit(
            membership=team["memberships"]["editor"], spec=GenerationSpec.build(prompt="x"), project=project
        )
    assert not Generation.objects.exists()


def test_a_restored_project_is_offered_again(editor_client, team):
    project = Project.objects.create(workspace=team["workspace"], name="Old")
    project_archive(project=project, membership=team["memberships"]["editor"])
    editor_client.post(f"/projects/{project.pk}/restore/")
    project.refresh_from_db()
    assert not project.is_archived
    assert f'<option value="{project.pk}">Old</option>' in editor_client.get("/").content.decode()


def test_the_default_project_cannot_be_archived(editor_client, team):
    default = Project.default_for(team["workspace"])
    response = editor_client.post(f"/projects/{default.pk}/archive/", follow=True)
    default.refresh_from_db()
    assert not default.is_archived
    assert any("default project" in str(message) for message in response.context["messages"])
    with pytest.raises(ProjectError):
        project_archive(project=default, membership=team["memberships"]["owner"])


def test_viewers_cannot_create_projects_even_through_the_service(team):
    with pytest.raises(PermissionDenied):
        project_create(membership=team["memberships"]["viewer"], name="Mine")
    assert not Project.objects.filter(name="Mine").exists()


def test_viewers_see_the_list_without_the_tools(client, team):
    Project.objects.create(workspace=team["workspace"], name="Covers")
    client.force_login(team["viewer"])
    html = client.get("/workspaces/team/projects/").content.decode()
    assert "Covers" in html
    assert "New project" not in html and ">Archive</button>" not in html and ">Rename</a>" not in html


def test_the_gallery_narrows_to_one_project(editor_client, team):
    covers = Project.objects.create(workspace=team["workspace"], name="Covers")
    editor = team["memberships"]["editor"]
    generation_submit(membership=editor, spec=GenerationSpec.build(prompt="in covers"), project=covers)
    generation_submit(membership=editor, spec=GenerationSpec.build(prompt="in general"))
    html = editor_client.get(f"/?project={covers.pk}").content.decode()
    assert "in covers" in html and "in general" not in html
    assert f'data-project="{covers.pk}"' in html and "Show all projects" in html


def test_the_projects_page_of_another_workspace_offers_to_switch(client, team):
    client.force_login(team["editor"])  # current workspace: their personal one
    html = client.get("/workspaces/team/projects/").content.decode()
    assert "Team is not your current workspace." in html
