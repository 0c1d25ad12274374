import pytest

from accounts.middleware import SESSION_KEY
from accounts.models import Membership, Role, Workspace
from accounts.services import WorkspaceError, membership_change_role, membership_remove, workspace_leave


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_anyone_creates_a_team_workspace_owns_it_and_works_in_it(client, alice):
    client.force_login(alice)
    assert "New team workspace" in client.get("/workspaces/").content.decode()
    response = client.post("/workspaces/new/", {"name": "Poster Lab"}, follow=True)
    workspace = Workspace.objects.get(name="Poster Lab")
    assert not workspace.is_personal and workspace.slug == "poster-lab"
    assert workspace.role_of(alice) == Role.OWNER
    assert response.redirect_chain[-1][0] == "/workspaces/poster-lab/members/"
    assert client.session[SESSION_KEY] == workspace.pk
    assert f'<option value="{workspace.pk}" selected>Poster Lab</option>' in response.content.decode()


def test_a_workspace_needs_a_name(client, alice):
    client.force_login(alice)
    response = client.post("/workspaces/new/", {"name": "   "})
    assert response.status_code == 200 and "name" in response.context["form"].errors
    assert Workspace.objects.count() == 1


def test_the_header_switches_to_a_workspace_of_the_user(client, team):
    client.force_login(team["editor"])
    html = client.get("/").content.decode()
    assert 'action="/workspaces/switch/"' in html and ">Team</option>" in html
    response = client.post("/workspaces/switch/", {"workspace": team["workspace"].pk}, follow=True)
    assert response.context["membership"].workspace == team["workspace"]
    assert '<h1 id="gallery-title" class="section-title">Team</h1>' in response.content.decode()


def test_switching_to_a_workspace_of_someone_else_is_404(client, team):
    client.force_login(team["stranger"])
    assert client.post("/workspaces/switch/", {"workspace": team["workspace"].pk}).status_code == 404
    assert client.post("/workspaces/switch/", {"workspace": "nonsense"}).status_code == 404
    assert SESSION_KEY not in client.session


def test_switching_returns_to_a_local_next_page_only(client, team):
    client.force_login(team["editor"])
    data = {"workspace": team["workspace"].pk}
    assert client.post("/workspaces/switch/", {**data, "next": "/workspaces/"})["Location"] == "/workspaces/"
    assert client.post("/workspaces/switch/", {**data, "next": "https://evil.example/"})["Location"] == "/"


def test_the_members_page_lists_members_and_shows_owner_tools_to_owners_only(client, team):
    url = f"/workspaces/{team['workspace'].slug}/members/"
    client.force_login(team["owner"])
    html = client.get(url).content.decode()
    assert all(name in html for name in ("owner", "editor", "viewer"))
    assert "Send invitation" in html and ">Remove</button>" in html
    client.force_login(team["viewer"])
    html = client.get(url).content.decode()
    assert "Send invitation" not in html and ">Remove</button>" not in html
    assert ">Leave</button>" in html


def test_an_owner_changes_a_role(client, team):
    client.force_login(team["owner"])
    editor = team["memberships"]["editor"]
    response = client.post(f"/workspaces/team/members/{editor.pk}/role/", {"role": "viewer"}, follow=True)
    editor.refresh_from_db()
    assert editor.role == Role.VIEWER
    assert "editor is now viewer." in messages_of(response)


def test_an_unknown_role_is_refused(client, team):
    client.force_login(team["owner"])
    editor = team["memberships"]["editor"]
    response = client.post(f"/workspaces/team/members/{editor.pk}/role/", {"role": "admin"}, follow=True)
    editor.refresh_from_db()
    assert editor.role == Role.EDITOR
    assert "Choose owner, editor or viewer." in messages_of(response)


def test_the_last_owner_cannot_be_demoted(client, team):
    client.force_login(team["owner"])
    owner = team["memberships"]["owner"]
    response = client.post(f"/workspaces/team/members/{owner.pk}/role/", {"role": "editor"}, follow=True)
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    assert any("last owner of Team" in message for message in messages_of(response))


def test_an_owner_can_step_down_once_there_is_another_owner(team):
    owner = team["memberships"]["owner"]
    membership_change_role(membership=team["memberships"]["editor"], role=Role.OWNER, actor=team["owner"])
    membership_change_role(membership=owner, role=Role.EDITOR, actor=team["owner"])
    owner.refresh_from_db()
    assert owner.role == Role.EDITOR
    # Now the other owner is the last one.
    with pytest.raises(WorkspaceError):
        membership_change_role(
            membership=team["memberships"]["editor"], role=Role.VIEWER, actor=team["editor"]
        )


def test_an_owner_removes_a_member(client, team):
    client.force_login(team["owner"])
    viewer = team["memberships"]["viewer"]
    response = client.post(f"/workspaces/team/members/{viewer.pk}/remove/", follow=True)
    assert not Membership.objects.filter(pk=viewer.pk).exists()
    assert "viewer is no longer a member of Team." in messages_of(response)
    # And the removed member no longer reaches the workspace.
    client.force_login(team["viewer"])
    assert client.get("/workspaces/team/members/").status_code == 404


def test_the_last_owner_cannot_be_removed_or_leave(client, team):
    owner = team["memberships"]["owner"]
    with pytest.raises(WorkspaceError, match="last owner"):
        membership_remove(membership=owner, actor=team["owner"])
    client.force_login(team["owner"])
    response = client.post("/workspaces/team/leave/", follow=True)
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert response.redirect_chain[-1][0] == "/workspaces/team/members/"
    assert "owner is the last owner of Team. Make someone else an owner first." in messages_of(response)


def test_a_member_leaves_and_falls_back_to_their_own_workspace(client, team):
    client.force_login(team["editor"])
    client.post("/workspaces/switch/", {"workspace": team["workspace"].pk})
    response = client.post("/workspaces/team/leave/", follow=True)
    assert team["workspace"].role_of(team["editor"]) is None
    assert "You left Team." in messages_of(response)
    assert SESSION_KEY not in client.session
    home = client.get("/")
    assert home.context["membership"].workspace.is_personal


def test_an_owner_leaves_when_another_owner_remains(team):
    membership_change_role(membership=team["memberships"]["viewer"], role=Role.OWNER, actor=team["owner"])
    workspace_leave(membership=team["memberships"]["owner"])
    assert team["workspace"].role_of(team["owner"]) is None


def test_a_personal_workspace_cannot_be_left(alice):
    membership = alice.memberships.get(workspace__is_personal=True)
    with pytest.raises(WorkspaceError, match="personal"):
        workspace_leave(membership=membership)
