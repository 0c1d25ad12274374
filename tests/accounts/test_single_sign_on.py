"""Single sign-on with OpenID Connect, against a fake issuer on 127.0.0.1 (tests/fake_oidc.py): the studio
discovers the issuer, sends the browser to it with PKCE, exchanges the code over HTTP, checks the ID token
and the state, and makes (once) or finds the account. A verified address from the issuer earns the sign-up
bonus once; an unverified one is confirmed by email first; a local account with the same address is never
taken over."""

import re
import urllib.parse

import pytest
from allauth.socialaccount.models import SocialAccount
from django.core import mail

from accounts.models import AuditAction, AuditEvent, EntryKind, LedgerEntry, User
from tests.fake_oidc import FakeIssuer
from tests.helpers import personal_membership

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fast_password_hashing")]

LOGIN = "/accounts/oidc/acme/login/"


@pytest.fixture
def issuer(settings):
    with FakeIssuer() as issuer:
        settings.SOCIALACCOUNT_PROVIDERS = issuer.providers_setting()
        yield issuer


@pytest.fixture
def mandatory(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"


def begin(client) -> str:
    """Press "Continue with Acme SSO": the studio answers a redirect to the issuer."""
    response = client.post(LOGIN)
    assert response.status_code == 302, response.content
    return response["Location"]


def come_back(client, callback: str):
    parts = urllib.parse.urlsplit(callback)
    assert parts.path == "/accounts/oidc/acme/login/callback/"
    return client.get(f"{parts.path}?{parts.query}")


def sign_in(client, issuer, **claims):
    return come_back(client, issuer.sign_in(begin(client), **claims))


def logged_in_as(client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def test_the_login_and_signup_pages_offer_the_issuer_only_when_configured(client, settings, issuer):
    for page in ("/accounts/login/", "/accounts/signup/"):
        html = client.get(page).content.decode()
        assert "Continue with Acme SSO" in html
        assert re.search(r'<form method="post" action="/accounts/oidc/acme/login/\?process=login">', html)
    settings.SOCIALACCOUNT_PROVIDERS = {}
    assert "Continue with" not in client.get("/accounts/login/").content.decode()
    assert client.post(LOGIN).status_code == 404


def test_the_studio_sends_the_browser_to_the_issuer_with_state_nonce_and_pkce(client, issuer):
    location = begin(client)
    parts = urllib.parse.urlsplit(location)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{issuer.url}/authorize"
    assert query["client_id"] == "studio-client" and query["response_type"] == "code"
    assert set(query["scope"].split()) == {"openid", "profile", "email"}
    assert query["redirect_uri"] == "http://testserver/accounts/oidc/acme/login/callback/"
    assert query["state"] and query["code_challenge"] and query["code_challenge_method"] == "S256"
    assert "GET /.well-known/openid-configuration" in issuer.requests


def test_a_first_sign_in_makes_an_account_with_its_workspace_and_the_bonus_once(client, issuer, mandatory):
    response = sign_in(client, issuer, sub="u-1", email="dana@acme.example", email_verified=True, name="Dana")
    assert response.status_code == 302 and response["Location"] == "/"
    user = logged_in_as(client)
    assert user is not None and user.email == "dana@acme.example"
    assert SocialAccount.objects.get(user=user).uid == "u-1"
    assert user.emailaddress_set.get().verified
    assert personal_membership(user).workspace.is_personal
    assert user.credits == 1000
    assert {"POST /token", "GET /userinfo"} <= set(issuer.requests)
    assert AuditEvent.objects.filter(action=AuditAction.SIGNUP, actor=user).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.LOGIN_SUCCEEDED, actor=user).exists()
    assert client.get("/").status_code == 200

    client.post("/accounts/logout/")
    assert logged_in_as(client) is None
    sign_in(client, issuer, sub="u-1", email="dana@acme.example", email_verified=True)
    assert logged_in_as(client) == user
    assert User.objects.filter(email="dana@acme.example").count() == 1
    user.refresh_from_db()
    assert user.credits == 1000
    assert LedgerEntry.objects.filter(user=user, kind=EntryKind.BONUS).count() == 1


def test_an_address_the_issuer_does_not_vouch_for_is_confirmed_by_email_before_any_credit(
    client, issuer, mandatory, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sign_in(client, issuer, sub="u-2", email="eli@acme.example", email_verified=False)
    user = User.objects.get(email="eli@acme.example")
    assert user.credits == 0 and logged_in_as(client) is None
    [message] = mail.outbox
    assert message.to == ["eli@acme.example"]
    client.post(re.search(r"https?://[^/\s]+(/\S+)", message.body)[1])
    user.refresh_from_db()
    assert user.credits == 1000


def test_a_local_account_with_the_same_address_is_not_taken_over(client, issuer, make_user):
    owner = make_user("fern", email="fern@acme.example")
    credits = owner.credits
    sign_in(client, issuer, sub="attacker", email="fern@acme.example", email_verified=True)
    assert logged_in_as(client) is None
    assert not SocialAccount.objects.filter(user=owner).exists()
    assert User.objects.filter(email__iexact="fern@acme.example").count() == 1
    owner.refresh_from_db()
    assert owner.credits == credits


@pytest.mark.parametrize(
    "tamper",
    ["state", "audience", "denied", "code"],
)
def test_a_forged_or_failed_sign_in_makes_no_account_and_logs_no_one_in(client, issuer, tamper):
    accounts_before = User.objects.count()
    if tamper == "denied":
        response = sign_in(client, issuer, error=True)
    else:
        if tamper == "audience":
            issuer.audience = "another-client"
        callback = issuer.sign_in(begin(client), sub="u-3", email="gil@acme.example", email_verified=True)
        parts = urllib.parse.urlsplit(callback)
        query = dict(urllib.parse.parse_qsl(parts.query))
        if tamper == "state":
            query["state"] = "forged"
        if tamper == "code":
            query["code"] = "not-a-code-the-issuer-gave"
        response = come_back(client, f"{parts.path}?{urllib.parse.urlencode(query)}")
    if tamper == "denied":
        assert response.status_code == 302
        assert response["Location"] == "/accounts/3rdparty/login/cancelled/"
        assert "please proceed to" in client.get(response["Location"]).content.decode()
    else:
        assert response.status_code == 401
        assert "Third-Party Login Failure" in response.content.decode()
    assert logged_in_as(client) is None
    assert User.objects.count() == accounts_before
