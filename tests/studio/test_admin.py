"""The generations and price pages of the Django admin, used through the admin."""

import json
import re
from decimal import Decimal

import pytest

from accounts.models import AuditAction, AuditEvent, EntryKind, LedgerEntry
from studio.engine.services import generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, PriceRule, Status, UpstreamAccount, UpstreamAttempt
from tests.fake_upstream import FakeUpstream
from tests.helpers import personal_membership

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


def failed_without_refund(user) -> Generation:
    """A failed generation whose refund never happened (say, a crash between the two)."""
    generation = generation_submit(
        membership=personal_membership(user), spec=GenerationSpec.build(prompt="lost", n=2)
    )
    Generation.objects.filter(pk=generation.pk).update(status=Status.FAILED, error="The worker died.")
    generation.refresh_from_db()
    return generation


def refund(admin_client, *generations):
    return admin_client.post(
        "/admin/studio/generation/",
        {"action": "refund", "_selected_action": [str(generation.pk) for generation in generations]},
        follow=True,
    )


def test_generations_are_listed_with_status_filters(admin_client, alice):
    failed = failed_without_refund(alice)
    queued = generation_submit(
        membership=personal_membership(alice), spec=GenerationSpec.build(prompt="waiting")
    )
    page = admin_client.get("/admin/studio/generation/?status__exact=failed").content.decode()
    assert "lost" in page and "waiting" not in page
    assert "?status__exact=queued" in page  # the filter offers every status
    assert str(queued.pk) not in page and str(failed.pk) in page


def test_the_refund_action_refunds_once_however_often_it_runs(admin_client, admin_user, alice):
    generation = failed_without_refund(alice)
    alice.refresh_from_db()
    assert alice.credits == 800

    first = refund(admin_client, generation)
    assert "Refunded 1 generation(s)." in first.content.decode()
    second = refund(admin_client, generation)
    assert "1 generation(s) not refunded: already refunded" in second.content.decode()

    alice.refresh_from_db()
    assert alice.credits == 1000
    entry = LedgerEntry.objects.get(kind=EntryKind.REFUND)
    assert (entry.amount, entry.actor, entry.reference) == (200, admin_user, generation.ledger_reference)


def test_the_refund_action_skips_generations_that_are_not_failed_or_canceled(admin_client, alice):
    generation = generation_submit(
        membership=personal_membership(alice), spec=GenerationSpec.build(prompt="busy")
    )
    response = refund(admin_client, generation)
    assert "not failed or canceled" in response.content.decode()
    assert not LedgerEntry.objects.filter(kind=EntryKind.REFUND).exists()


def test_a_failure_already_refunded_by_the_runner_is_not_refunded_again(admin_client, alice):
    from studio.engine.services import generation_fail

    generation = generation_submit(
        membership=personal_membership(alice), spec=GenerationSpec.build(prompt="x")
    )
    generation_fail(generation, message="Upstream said no.")
    refund(admin_client, generation)
    assert LedgerEntry.objects.filter(kind=EntryKind.REFUND).count() == 1
    alice.refresh_from_db()
    assert alice.credits == 1000


def test_generations_are_read_only_in_the_admin(admin_client, alice):
    generation = failed_without_refund(alice)
    page = admin_client.get(f"/admin/studio/generation/{generation.pk}/change/").content.decode()
    assert 'name="status"' not in page and "The worker died." in page
    assert (
        admin_client.post(
            f"/admin/studio/generation/{generation.pk}/change/", {"status": "succeeded"}
        ).status_code
        == 403
    )
    assert admin_client.get("/admin/studio/generation/add/").status_code == 403


def test_a_price_rule_added_in_the_admin_prices_the_next_generation_and_the_composer(
    admin_client, alice, client, settings
):
    settings.CREDIT_PRICES = {}
    response = admin_client.post(
        "/admin/studio/pricerule/add/", {"tier": "1K", "quality": "", "credits": "40"}
    )
    assert response.status_code == 302
    duplicate = admin_client.post(
        "/admin/studio/pricerule/add/", {"tier": "1K", "quality": "", "credits": "50"}
    )
    assert duplicate.status_code == 200 and "already exists" in duplicate.content.decode()
    zero = admin_client.post(
        "/admin/studio/pricerule/add/", {"tier": "2K", "quality": "high", "credits": "0"}
    )
    assert zero.status_code == 200 and PriceRule.objects.count() == 1

    client.force_login(alice)
    html = client.get("/").content.decode()
    prices = json.loads(re.search(r'data-prices="([^"]*)"', html)[1].replace("&quot;", '"'))
    assert prices["1K:medium"] == 40 and prices["2K:medium"] == 100
    assert "40 credits</output>" in html
    generation = generation_submit(
        membership=personal_membership(alice), spec=GenerationSpec.build(prompt="x", n=3)
    )
    assert generation.cost == 120


def test_webhook_deliveries_are_listed_and_read_only(admin_client, alice):
    from studio.models import WebhookDelivery

    generation = failed_without_refund(alice)
    delivery = WebhookDelivery.objects.create(
        generation=generation,
        url="https://receiver.example/hook",
        attempt=1,
        status_code=500,
        error="HTTP 500",
    )
    listing = admin_client.get("/admin/studio/webhookdelivery/?succeeded__exact=0").content.decode()
    assert "https://receiver.example/hook" in listing
    page = admin_client.get(f"/admin/studio/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert "HTTP 500" in page and 'name="_save"' not in page
    assert admin_client.get("/admin/studio/webhookdelivery/add/").status_code == 403
    generation_page = admin_client.get(f"/admin/studio/generation/{generation.pk}/change/").content.decode()
    assert "Webhook deliveries" in generation_page


UPSTREAM_FORM = {
    "name": "gateway",
    "kind": "openai-images",
    "base_url": "https://gateway.example/v1",
    "model": "gpt-image-2",
    "tiers": "1k, 2K",
    "priority": "5",
    "weight": "2",
    "max_concurrent": "8",
    "enabled": "on",
}


@pytest.mark.django_db
def test_an_upstream_account_is_added_with_its_key_stored_encrypted_and_never_shown_again(admin_client):
    response = admin_client.post(
        "/admin/studio/upstreamaccount/add/", {**UPSTREAM_FORM, "api_key": "sk-secret-123"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    account = UpstreamAccount.objects.get(name="gateway")
    assert account.api_key == "sk-secret-123"
    assert "sk-secret-123" not in account.api_key_encrypted  # encrypted at rest
    assert account.tiers == "1K,2K" and account.served_tiers() == {"1K", "2K"}

    page = admin_client.get(f"/admin/studio/upstreamaccount/{account.pk}/change/").content.decode()
    assert "sk-secret-123" not in page and account.api_key_encrypted not in page
    listing = admin_client.get("/admin/studio/upstreamaccount/").content.decode()
    assert "sk-secret-123" not in listing and "0 / 8" in listing  # slots in use, of the cap

    # Saved again with the key left empty: the key is kept.
    admin_client.post(
        f"/admin/studio/upstreamaccount/{account.pk}/change/", {**UPSTREAM_FORM, "priority": "7"}
    )
    account.refresh_from_db()
    assert account.priority == 7 and account.api_key == "sk-secret-123"


@pytest.mark.django_db
def test_an_upstream_account_needs_a_key_and_real_tiers(admin_client):
    page = admin_client.post("/admin/studio/upstreamaccount/add/", {**UPSTREAM_FORM, "tiers": "8K"}).content
    assert b"A new account needs its API key." in page
    assert b"Tiers are a comma-separated choice of 1K, 2K, 4K." in page
    assert not UpstreamAccount.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["sjinn", "sinancode"])
def test_a_task_service_that_takes_links_needs_the_studios_public_url(admin_client, settings, kind):
    settings.STUDIO_PUBLIC_URL = ""
    form = {**UPSTREAM_FORM, "kind": kind, "base_url": "https://tasks.example", "api_key": "sk-task"}
    page = admin_client.post("/admin/studio/upstreamaccount/add/", form).content.decode()
    assert "takes input images only as links to this studio&#x27;s media: set STUDIO_PUBLIC_URL" in page
    assert not UpstreamAccount.objects.exists()
    settings.STUDIO_PUBLIC_URL = "https://studio.example"
    assert admin_client.post("/admin/studio/upstreamaccount/add/", form).status_code == 302
    assert UpstreamAccount.objects.get().kind == kind


@pytest.mark.django_db
def test_a_task_service_needs_its_url_but_givon_no_public_url(admin_client, settings):
    settings.STUDIO_PUBLIC_URL = ""
    form = {**UPSTREAM_FORM, "kind": "givon", "base_url": "", "api_key": "sk-task"}
    page = admin_client.post("/admin/studio/upstreamaccount/add/", form).content.decode()
    assert "A task service needs its root URL" in page
    form["base_url"] = "https://api.givon.example"
    assert admin_client.post("/admin/studio/upstreamaccount/add/", form).status_code == 302


@pytest.mark.django_db
def test_a_disabled_account_shows_why_and_enabling_it_clears_the_reason(admin_client):
    account = UpstreamAccount(name="gateway", enabled=False, disabled_reason="The key was refused (HTTP 401)")
    account.set_api_key("sk-old")
    account.save()
    assert (
        "Disabled: The key was refused (HTTP 401)"
        in admin_client.get("/admin/studio/upstreamaccount/").content.decode()
    )
    admin_client.post(
        f"/admin/studio/upstreamaccount/{account.pk}/change/", {**UPSTREAM_FORM, "api_key": "sk-new"}
    )
    account.refresh_from_db()
    assert account.enabled and account.disabled_reason == "" and account.api_key == "sk-new"


@pytest.mark.django_db
def test_test_connection_says_what_the_service_answered(admin_client):
    with FakeUpstream() as upstream:
        working = UpstreamAccount(name="working", base_url=upstream.base_url)
        working.set_api_key("sk-good")
        working.save()
        refused = UpstreamAccount(name="refused", base_url=upstream.base_url, model="gpt-image-2-4k")
        refused.set_api_key("sk-bad")
        refused.save()
        upstream.fail_next("401_invalid_api_key")  # the first asked (by name: refused) is refused
        page = admin_client.post(
            "/admin/studio/upstreamaccount/",
            {"action": "test_connection", "_selected_action": [working.pk, refused.pk]},
            follow=True,
        ).content.decode()
    assert (
        "Refused: The image service refused the studio&#x27;s credentials. (invalid_api_key, HTTP 401)"
        in page
    )
    assert "Working: Connected; it offers gpt-image-2." in page
    assert {request.headers["authorization"] for request in upstream.requests} == {
        "Bearer sk-good",
        "Bearer sk-bad",
    }


@pytest.mark.django_db
def test_an_accounts_page_shows_its_usage(admin_client):
    account = UpstreamAccount(name="gateway", price_per_million_tokens=Decimal("10"))
    account.set_api_key("sk")
    account.save()
    for latency, outcome, code in (
        (900, "succeeded", ""),
        (1100, "succeeded", ""),
        (50, "retrying", "server_error"),
    ):
        UpstreamAttempt.objects.create(
            account=account, outcome=outcome, error_code=code, latency_ms=latency,
            images=0 if code else 1, input_tokens=40_000, output_tokens=60_000,
        )  # fmt: skip
    page = admin_client.get(f"/admin/studio/upstreamaccount/{account.pk}/change/").content.decode()
    row = re.search(r"<tr><th>Last hour</th>(.*?)</tr>", page)[1]
    cells = re.findall(r"<td>(.*?)</td>", row)
    # Nearest rank: p50 of 900 and 1,100 ms is 900, p95 is 1,100.
    assert cells == ["3", "2", "server_error 1", "2", "300000", "900 / 1100 ms", "3.00"]


@pytest.mark.django_db
def test_upstream_account_changes_are_in_the_audit_log_without_the_key(admin_client, admin_user):
    admin_client.post("/admin/studio/upstreamaccount/add/", {**UPSTREAM_FORM, "api_key": "sk-audited-1"})
    account = UpstreamAccount.objects.get()
    admin_client.post(
        f"/admin/studio/upstreamaccount/{account.pk}/change/",
        {**UPSTREAM_FORM, "tiers": "1K,2K", "priority": "9", "api_key": "sk-audited-2"},
    )
    admin_client.post(f"/admin/studio/upstreamaccount/{account.pk}/delete/", {"post": "yes"})
    events = list(
        AuditEvent.objects.filter(action=AuditAction.UPSTREAM_ACCOUNT_CHANGED).order_by("created_at", "id")
    )
    assert [(event.details["change"], event.actor, event.target) for event in events] == [
        ("added", admin_user, "gateway"),
        ("changed", admin_user, "gateway"),
        ("deleted", admin_user, "gateway"),
    ]
    assert events[1].details["fields"] == ["priority"] and events[1].details["api_key_replaced"] is True
    logged = json.dumps([event.details for event in events])
    assert "sk-audited" not in logged
