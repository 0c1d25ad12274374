"""The Django admin as an admin uses it: log in, open pages, post forms."""

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.db.models import Sum

from accounts.models import EntryKind, LedgerEntry, User


def ledger_sum(user) -> int:
    return LedgerEntry.objects.filter(user=user).aggregate(total=Sum("amount"))["total"] or 0


def test_the_users_list_shows_balances(admin_client, alice, bob):
    html = admin_client.get("/admin/accounts/user/").content.decode()
    assert 'column-credits"' in html
    assert '<td class="field-credits">1000</td>' in html


def test_an_admin_grants_credits_through_the_form(admin_client, admin_user, alice):
    change_page = admin_client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    form_url = f"/admin/accounts/user/{alice.pk}/credits/"
    assert f'href="{form_url}"' in change_page and "Grant or deduct credits" in change_page

    form_page = admin_client.get(form_url)
    assert form_page.status_code == 200
    assert "alice has <strong>1,000</strong> credits" in form_page.content.decode()

    response = admin_client.post(form_url, {"amount": "250", "reason": "Conference speaker"}, follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/accounts/user/{alice.pk}/change/"
    assert "Granted 250 credits: alice now has 1,250." in response.content.decode()
    entry = LedgerEntry.objects.filter(user=alice).first()
    assert (entry.kind, entry.amount, entry.balance_after) == (EntryKind.GRANT, 250, 1250)
    assert (entry.actor, entry.reason) == (admin_user, "Conference speaker")
    alice.refresh_from_db()
    assert alice.credits == 1250 == ledger_sum(alice)


def test_a_deduction_is_an_adjustment(admin_client, admin_user, alice):
    admin_client.post(f"/admin/accounts/user/{alice.pk}/credits/", {"amount": "-400", "reason": "Chargeback"})
    entry = LedgerEntry.objects.filter(user=alice).first()
    assert (entry.kind, entry.amount, entry.balance_after, entry.actor) == (
        EntryKind.ADJUSTMENT,
        -400,
        600,
        admin_user,
    )


def test_a_deduction_past_the_balance_is_refused_with_a_message(admin_client, alice):
    response = admin_client.post(
        f"/admin/accounts/user/{alice.pk}/credits/", {"amount": "-1001", "reason": "Oops"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert (
        "Not deducted: alice has 1,000 credits, fewer than 1,001. The balance cannot go below zero." in html
    )
    alice.refresh_from_db()
    assert alice.credits == 1000
    assert LedgerEntry.objects.filter(user=alice).count() == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"amount": "0", "reason": "x"}, "amount"),
        ({"amount": "5", "reason": "  "}, "reason"),
        ({"amount": "5"}, "reason"),
    ],
)
def test_zero_credits_and_a_missing_reason_are_refused(admin_client, alice, data, field):
    response = admin_client.post(f"/admin/accounts/user/{alice.pk}/credits/", data)
    assert field in response.context["form"].errors
    assert LedgerEntry.objects.filter(user=alice).count() == 1


def test_staff_without_the_credit_permission_cannot_move_money(client, alice):
    staff = User.objects.create_user(username="helper", password="helper secret 1", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="change_user"))
    client.login(username="helper", password="helper secret 1")
    assert (
        "Grant or deduct credits"
        not in client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    )
    assert (
        client.post(f"/admin/accounts/user/{alice.pk}/credits/", {"amount": "9", "reason": "me"}).status_code
        == 403
    )
    staff.user_permissions.add(Permission.objects.get(codename="adjust_credits"))
    response = client.post(f"/admin/accounts/user/{alice.pk}/credits/", {"amount": "9", "reason": "approved"})
    assert response.status_code == 302


def test_the_balance_cannot_be_edited_in_the_user_form(admin_client, alice):
    page = admin_client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert 'name="credits"' not in page
    assert '<div class="readonly">1000</div>' in page


def test_the_ledger_is_read_only_inline_and_in_its_own_list(admin_client, alice):
    change_page = admin_client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert "Welcome to Studio" in change_page  # the signup bonus, inline
    assert 'name="ledger_entries-0-amount"' not in change_page
    entry = LedgerEntry.objects.get(user=alice)
    listing = admin_client.get("/admin/accounts/ledgerentry/?kind__exact=bonus")
    assert listing.status_code == 200 and "Welcome to Studio" in listing.content.decode()
    assert admin_client.get("/admin/accounts/ledgerentry/add/").status_code == 403
    assert (
        admin_client.post(f"/admin/accounts/ledgerentry/{entry.pk}/change/", {"amount": "5"}).status_code
        == 403
    )
    assert (
        admin_client.post(f"/admin/accounts/ledgerentry/{entry.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    entry.refresh_from_db()
    assert entry.amount == 1000


def test_workspaces_show_their_members_inline(admin_client, team):
    page = admin_client.get(f"/admin/accounts/workspace/{team['workspace'].pk}/change/").content.decode()
    assert "memberships-0-role" in page


# The same from the shell


def test_the_grant_credits_command_writes_a_ledger_entry(alice, admin_user, capsys):
    call_command("grant_credits", "alice", "300", "--reason", "Beta tester", "--actor", "root")
    entry = LedgerEntry.objects.filter(user=alice).first()
    assert (entry.kind, entry.amount, entry.actor, entry.reason) == (
        EntryKind.GRANT,
        300,
        admin_user,
        "Beta tester",
    )
    assert "alice now has 1,300" in capsys.readouterr().out


def test_the_command_deducts_with_a_negative_amount_and_no_actor(alice):
    call_command("grant_credits", "alice", "-100", "--reason", "Refund reversed")
    entry = LedgerEntry.objects.filter(user=alice).first()
    assert (entry.kind, entry.amount, entry.actor) == (EntryKind.ADJUSTMENT, -100, None)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["alice", "-5000", "--reason", "x"], "Not deducted: alice has 1,000 credits."),
        (["alice", "0", "--reason", "x"], "AMOUNT must not be zero."),
        (["nobody", "5", "--reason", "x"], "No user is called 'nobody'."),
        (["alice", "5", "--reason", "x", "--actor", "ghost"], "No user is called 'ghost'."),
    ],
)
def test_the_command_refuses_clearly(alice, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("grant_credits", *arguments)
    alice.refresh_from_db()
    assert alice.credits == 1000


def test_the_command_requires_a_reason(alice):
    with pytest.raises(CommandError, match="--reason"):
        call_command("grant_credits", "alice", "5")


def test_a_grant_updates_the_open_pages_of_the_user_after_commit(
    admin_client, alice, monkeypatch, django_capture_on_commit_callbacks
):
    published = []
    monkeypatch.setattr("accounts.events.publish_balance_changed", published.append)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(f"/admin/accounts/user/{alice.pk}/credits/", {"amount": "10", "reason": "Thanks"})
    assert published == [alice.pk]


# Only a superuser grants rights


@pytest.fixture
def user_manager(make_user, client):
    """A staff member allowed to view and change users, and nothing more."""
    manager = make_user("manager")
    manager.is_staff = True
    manager.save(update_fields=["is_staff"])
    manager.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_user", "change_user", "change_group", "add_group"])
    )
    client.force_login(manager)
    return manager


def _change_form(user) -> dict:
    return {
        "username": user.username,
        "email": user.email,
        "first_name": "",
        "last_name": "",
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "groups": [],
        "user_permissions": [str(pk) for pk in Permission.objects.values_list("pk", flat=True)[:50]],
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
        "ledger_entries-TOTAL_FORMS": "0",
        "ledger_entries-INITIAL_FORMS": "0",
    }


def test_a_staff_user_who_may_change_users_cannot_raise_themselves(client, user_manager):
    page = client.get(f"/admin/accounts/user/{user_manager.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="email"' in html  # the form is there, with the rights read-only
    assert 'name="is_superuser"' not in html and 'name="user_permissions"' not in html
    response = client.post(f"/admin/accounts/user/{user_manager.pk}/change/", _change_form(user_manager))
    assert response.status_code == 302  # saved: the other fields changed, the rights did not
    user_manager.refresh_from_db()
    assert not user_manager.is_superuser
    assert set(user_manager.user_permissions.values_list("codename", flat=True)) == {
        "view_user",
        "change_user",
        "change_group",
        "add_group",
    }


def test_a_staff_user_who_may_change_users_cannot_raise_anyone_else(client, user_manager, alice):
    response = client.post(
        f"/admin/accounts/user/{alice.pk}/change/", {**_change_form(alice), "first_name": "A"}
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.first_name == "A"
    assert not alice.is_staff and not alice.is_superuser and not alice.user_permissions.exists()


def test_groups_are_for_superusers_only(client, user_manager):
    assert client.get("/admin/auth/group/").status_code == 403
    assert client.post("/admin/auth/group/add/", {"name": "root", "permissions": []}).status_code == 403
    from django.contrib.auth.models import Group

    assert not Group.objects.exists()


def test_a_superuser_still_grants_staff(admin_client, alice):
    page = admin_client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert 'name="is_staff"' in page and 'name="is_superuser"' in page
