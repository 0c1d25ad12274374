"""Sign-up on django-allauth as the public meets it: with mandatory verification no credit comes before the
address is confirmed, the bonus comes once per mailbox (however it is spelled) and once per user, emails
go through the Celery task, passwords can be reset, failed logins are throttled, and signing up with a
taken address says nothing that a new address would not."""

import re
import uuid

import pytest
from django.core import mail

from accounts.bonus import grant_signup_bonus, normalised
from accounts.models import EntryKind, LedgerEntry, SignupBonus, User

pytestmark = [pytest.mark.usefixtures("fast_password_hashing")]

PASSWORD = "a long enough secret"


@pytest.fixture
def mandatory(settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"


def sign_up(client, username: str, email: str):
    return client.post(
        "/accounts/signup/", {"username": username, "email": email, "password1": PASSWORD}, follow=True
    )


def link_in(message) -> str:
    return re.search(r"https?://[^/\s]+(/\S+)", message.body)[1]


@pytest.mark.django_db
def test_no_credit_before_the_address_is_confirmed_then_the_bonus_once(
    client, mandatory, emails_by_task, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = sign_up(client, "erin", "erin@example.com")
    user = User.objects.get(username="erin")
    assert user.credits == 0 and not response.context["user"].is_authenticated
    assert "Verify" in response.content.decode() or "verif" in response.content.decode().lower()
    [message] = mail.outbox
    assert message.to == ["erin@example.com"] and emails_by_task.calls[0]["to"] == ["erin@example.com"]

    confirm = link_in(message)
    client.post(confirm)
    user.refresh_from_db()
    assert user.credits == 1000
    client.post(confirm)  # a second click
    user.refresh_from_db()
    assert user.credits == 1000
    assert LedgerEntry.objects.filter(user=user, kind=EntryKind.BONUS).count() == 1


@pytest.mark.django_db
def test_without_mandatory_verification_the_bonus_comes_at_sign_up(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    response = sign_up(client, "fay", "fay@example.com")
    assert response.context["user"].is_authenticated
    assert User.objects.get(username="fay").credits == 1000


@pytest.mark.parametrize(
    ("spelling", "same"),
    [
        ("Jo.Doe+promo@Gmail.com", "jodoe@gmail.com"),
        ("j.o.d.o.e@googlemail.com", "jodoe@gmail.com"),
        ("jo.doe+x@example.com", "jo.doe@example.com"),
        ("JO.DOE@EXAMPLE.COM", "jo.doe@example.com"),
    ],
)
def test_addresses_are_normalised_before_they_count(spelling, same):
    assert normalised(spelling) == same


@pytest.mark.django_db
def test_the_bonus_comes_once_per_mailbox_and_once_per_user(make_user):
    first = make_user("first", email="jodoe@gmail.com")
    assert first.credits == 1000
    farmed = User.objects.create_user("farmed", "Jo.Doe+2@gmail.com", PASSWORD)
    assert grant_signup_bonus(farmed, farmed.email) is False
    assert grant_signup_bonus(first, "another@example.com") is False  # one per user, too
    farmed.refresh_from_db()
    assert farmed.credits == 0 and SignupBonus.objects.count() == 1


@pytest.mark.django_db
def test_farming_accounts_with_one_gmail_box_through_the_pages_pays_once(
    client, mandatory, django_capture_on_commit_callbacks
):
    for number, email in enumerate(
        ["farm.er@gmail.com", "farmer+1@gmail.com", "f.a.r.m.e.r+2@googlemail.com"]
    ):
        with django_capture_on_commit_callbacks(execute=True):
            sign_up(client, f"farmer{number}", email)
        client.post(link_in(mail.outbox[-1]))
        client.logout()
    credits = sorted(User.objects.filter(username__startswith="farmer").values_list("credits", flat=True))
    assert credits == [0, 0, 1000]


@pytest.mark.django_db
def test_signing_up_with_a_taken_address_reveals_nothing(
    client, alice, mandatory, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        taken = sign_up(client, "impostor", "alice@example.com")
    client.logout()
    with django_capture_on_commit_callbacks(execute=True):
        fresh = sign_up(client, "newcomer", "newcomer@example.com")
    assert taken.redirect_chain[-1][0] == fresh.redirect_chain[-1][0]
    assert "exists" not in taken.content.decode().lower()
    assert not User.objects.filter(username="impostor").exists()
    # The owner of the address is told instead, by email.
    assert any(message.to == ["alice@example.com"] for message in mail.outbox)


@pytest.mark.django_db
def test_a_password_is_reset_through_an_emailed_link(client, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/password/reset/", {"email": "alice@example.com"})
    [message] = mail.outbox
    form = client.get(link_in(message), follow=True)
    new_password = "a brand new long secret"
    client.post(form.redirect_chain[-1][0], {"password1": new_password, "password2": new_password})
    client.logout()
    response = client.post("/accounts/login/", {"login": "alice", "password": new_password}, follow=True)
    assert response.context["user"] == alice


@pytest.mark.django_db
def test_a_reset_for_an_unknown_address_looks_the_same(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/accounts/password/reset/", {"email": "nobody@example.com"}, follow=True)
    assert response.status_code == 200 and response.redirect_chain[-1][0] == "/accounts/password/reset/done/"


@pytest.mark.django_db
def test_failed_logins_are_throttled_per_account(client, make_user):
    # The throttle counts in the shared cache: a name and an address of this run's own.
    name = f"target{uuid.uuid4().hex[:8]}"
    make_user(name)
    address = {"REMOTE_ADDR": f"198.51.100.{uuid.uuid4().int % 250 + 1}"}

    def attempt(password: str) -> str:
        response = client.post("/accounts/login/", {"login": name, "password": password}, **address)
        assert response.status_code == 200  # the form again, with its error
        return response.content.decode()

    for number in range(5):
        assert "Too many failed login attempts" not in attempt(f"wrong {number}")
    assert "Too many failed login attempts" in attempt("wrong again")
    # Even the right password waits out the throttle.
    assert "Too many failed login attempts" in attempt("correct horse battery staple")


@pytest.mark.django_db
def test_existing_accounts_keep_logging_in_by_name_or_email(client, alice, mandatory):
    by_name = client.post("/accounts/login/", {"login": "alice", "password": "correct horse battery staple"})
    assert by_name.status_code == 302
    client.logout()
    by_email = client.post(
        "/accounts/login/", {"login": "alice@example.com", "password": "correct horse battery staple"}
    )
    assert by_email.status_code == 302


@pytest.mark.django_db
def test_accounts_made_before_allauth_keep_logging_in_and_their_bonus(client, mandatory):
    import importlib

    from allauth.account.models import EmailAddress
    from django.apps import apps as django_apps

    from accounts import ledger

    old = User.objects.create_user("veteran", "Vet.Eran+old@gmail.com", PASSWORD)
    ledger.adjust(user=old, amount=1000, kind=EntryKind.BONUS, reason="Welcome to Studio")
    migration = importlib.import_module("accounts.migrations.0007_existing_accounts_verified")
    migration.verify_existing_accounts(django_apps, None)
    address = EmailAddress.objects.get(user=old)
    assert address.verified and address.primary
    assert SignupBonus.objects.get(user=old).email == "veteran@gmail.com"
    # Logs in under mandatory verification, and the same mailbox gets no second bonus.
    assert client.post("/accounts/login/", {"login": "veteran", "password": PASSWORD}).status_code == 302
    newcomer = User.objects.create_user("again", "veteran@googlemail.com", PASSWORD)
    assert grant_signup_bonus(newcomer, newcomer.email) is False


@pytest.mark.django_db
def test_a_new_address_replaces_the_old_only_once_confirmed(
    client, alice, django_capture_on_commit_callbacks
):
    from allauth.account.models import EmailAddress

    client.post("/accounts/login/", {"login": "alice", "password": "correct horse battery staple"})
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/accounts/email/", {"email": "alice.new@example.com", "action_add": ""})
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"  # not yet: the new address is unconfirmed
    new = EmailAddress.objects.get(email="alice.new@example.com")
    assert not new.verified
    [message] = [message for message in mail.outbox if message.to == ["alice.new@example.com"]]
    client.post(link_in(message))
    alice.refresh_from_db()
    assert alice.email == "alice.new@example.com"
    assert list(EmailAddress.objects.filter(user=alice).values_list("email", "verified")) == [
        ("alice.new@example.com", True)
    ]
    assert alice.credits == 1000  # a confirmed change is no new sign-up: no second bonus
