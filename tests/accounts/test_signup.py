from accounts.models import Membership, Role, User


def test_the_signup_page_has_the_labelled_fields(client, db):
    response = client.get("/accounts/signup/")
    html = response.content.decode()
    for label in ("Username", "Email", "Password"):
        assert f">{label}</label>" in html
    assert ">Sign up</button>" in html


def test_signing_up_logs_in_with_a_personal_workspace_and_the_bonus(client, db):
    response = client.post(
        "/accounts/signup/",
        {"username": "carol", "email": "carol@example.com", "password1": "a long enough secret"},
        follow=True,
    )
    user = User.objects.get(username="carol")
    assert response.context["user"] == user
    assert user.credits == 1000
    membership = Membership.objects.get(user=user)
    assert membership.workspace.is_personal and membership.role == Role.OWNER
    assert "1,000 credits" in response.content.decode()


def test_the_signup_bonus_is_a_setting(client, db, settings):
    settings.SIGNUP_BONUS_CREDITS = 250
    client.post(
        "/accounts/signup/",
        {"username": "dan", "email": "d@example.com", "password1": "a long enough secret"},
    )
    assert User.objects.get(username="dan").credits == 250


def test_signup_rejects_a_taken_username_and_a_weak_password(client, alice):
    response = client.post(
        "/accounts/signup/", {"username": "ALICE", "email": "x@example.com", "password1": "123"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "username" in errors and "password1" in errors
    assert User.objects.count() == 1


def test_log_in_and_out(client, alice):
    response = client.post(
        "/accounts/login/", {"login": "alice", "password": "correct horse battery staple"}, follow=True
    )
    assert response.context["user"] == alice
    assert "1,000 credits" in response.content.decode()
    client.post("/accounts/logout/")
    assert client.get("/").status_code == 302
