"""Task-style upstreams (sjinn, sinancode, givon) end to end: a real worker creates the tasks and polls them
from Celery tasks sent with a countdown, against fake services on 127.0.0.1 that download the studio's signed
input links from a running Daphne; then the studio drawing from another studio's own task dialects."""

import io
import time
from pathlib import Path

import pytest
from django.core import mail
from PIL import Image as PillowImage

from accounts import ledger
from accounts.models import ApiKey, EntryKind, LedgerEntry
from studio.engine import pool
from studio.engine.services import SubmittedImage, generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Generation, Image, Status, UpstreamAccount, UpstreamAttempt
from tests.conftest import png_bytes
from tests.fake_task_services import FakeTaskService
from tests.helpers import personal_membership
from tests.studio.api.conftest import serving_studio
from tests.workers import new_queue, worker_in_process

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def public_studio(django_db_setup, django_db_blocker, private_media_root, settings_secret_key, task_queue):
    """Daphne on the test database and media, with this process's secret: it serves the signed input links
    the worker hands to the services, and is itself the upstream in the two-studio tests."""
    with serving_studio(
        Path(private_media_root).parent,
        task_queue,
        MEDIA_ROOT=str(private_media_root),
        SECRET_KEY=settings_secret_key,
    ) as url:
        yield url


@pytest.fixture(scope="module")
def settings_secret_key() -> str:
    from django.conf import settings

    return settings.SECRET_KEY


@pytest.fixture
def on_task_accounts(settings, public_studio):
    settings.STUDIO_PROVIDER = "openai"
    settings.OPENAI_API_KEY = ""
    settings.STUDIO_PUBLIC_URL = public_studio
    settings.UPSTREAM_TASK_POLL_SECONDS = 0.1
    settings.GENERATION_MAX_RETRIES = 2
    settings.GENERATION_RETRY_BACKOFF_SECONDS = 0.05
    settings.UPSTREAM_SLOT_POLL_SECONDS = 0.05
    settings.LOCAL_PROVIDER_STEP_SECONDS = 0.05
    settings.ADMINS = [("Operator", "operator@example.com")]
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def worker(on_task_accounts, task_queue):
    with worker_in_process(task_queue, concurrency=8):
        yield


@pytest.fixture
def sjinn():
    with FakeTaskService("sjinn") as service:
        yield service


@pytest.fixture
def sinancode():
    with FakeTaskService("sinancode") as service:
        yield service


@pytest.fixture
def givon():
    with FakeTaskService("givon") as service:
        yield service


def account(name: str, service: FakeTaskService, **fields) -> UpstreamAccount:
    made = UpstreamAccount(name=name, kind=service.kind, base_url=service.origin, **fields)
    made.set_api_key(service.api_key)
    made.save()
    return made


def submit(user, *, references: list[bytes] = (), mask: bytes | None = None, **spec) -> Generation:
    from studio.engine.images import check_image

    spec.setdefault("prompt", "a lighthouse at dawn")
    return generation_submit(
        membership=personal_membership(user),
        spec=GenerationSpec.build(input_images=len(references), has_mask=mask is not None, **spec),
        references=[SubmittedImage(image=check_image(data)) for data in references],
        mask=SubmittedImage(image=check_image(mask)) if mask is not None else None,
    )


def finished(generation: Generation, timeout: float = 60) -> Generation:
    deadline = time.monotonic() + timeout
    while True:
        generation.refresh_from_db()
        if not generation.is_active:
            return generation
        assert time.monotonic() < deadline, f"still {generation.status}: {generation.stage}"
        time.sleep(0.05)


def recorded(generation: Generation, timeout: float = 10) -> list[UpstreamAttempt]:
    """The generation's attempts, once its last one is recorded (just after it ends)."""
    deadline = time.monotonic() + timeout
    while not UpstreamAttempt.objects.filter(
        generation=generation, outcome__in=("succeeded", "failed")
    ).exists():
        assert time.monotonic() < deadline, "the last attempt was not recorded"
        time.sleep(0.05)
    return list(UpstreamAttempt.objects.filter(generation=generation).order_by("at", "pk"))


def money_of(generation: Generation) -> tuple[int, int]:
    entries = LedgerEntry.objects.filter(reference=generation.ledger_reference)
    spent = -sum(entry.amount for entry in entries if entry.kind == EntryKind.SPEND)
    refunded = sum(entry.amount for entry in entries if entry.kind == EntryKind.REFUND)
    return spent, refunded


def sizes(generation: Generation) -> list[tuple[int, int, str]]:
    result = []
    for image in generation.images.order_by("index"):
        with image.file.open("rb") as handle:
            picture = PillowImage.open(io.BytesIO(handle.read()))
            result.append((picture.width, picture.height, picture.format.lower()))
    return result


# Each kind's happy path ---------------------------------------------------------------------------------


def test_sjinn_draws_from_a_prompt_polled_without_a_thread_per_task(worker, alice, sjinn):
    served_by = account("sjinn", sjinn)
    generation = finished(submit(alice, aspect_ratio="16:9", n=2))
    assert generation.status == Status.SUCCEEDED, generation.error
    assert generation.upstream_account_id == served_by.pk
    assert sizes(generation) == [(1536, 864, "png"), (1536, 864, "png")]  # one task per image
    creates = sjinn.creates
    assert [request.json for request in creates] == [
        {"tool_type": "gpt-image-2-api", "input": {"prompt": "a lighthouse at dawn", "aspect_ratio": "16:9"}}
    ] * 2
    calls = [request for request in sjinn.requests if not request.path.startswith("/results/")]
    assert {request.headers["authorization"] for request in calls} == {"Bearer task-key"}
    statuses = [request for request in sjinn.requests if request.path == "/api/un-api/query_tool_task_status"]
    assert len(statuses) >= 4  # each task asked until done
    assert money_of(generation) == (generation.cost, 0)
    (attempt,) = recorded(generation)
    assert (attempt.account_id, attempt.outcome, attempt.images) == (served_by.pk, "succeeded", 2)
    assert pool.slots_in_use(served_by) == 0


def test_sjinn_edits_from_signed_links_to_the_studios_own_inputs(worker, alice, sjinn, public_studio):
    account("sjinn", sjinn)
    source = png_bytes((96, 64), (10, 200, 10, 255))
    generation = finished(submit(alice, references=[source], aspect_ratio="3:2"))
    assert generation.status == Status.SUCCEEDED, generation.error
    (task,) = sjinn.tasks.values()
    assert task.inputs == [("image", source)]  # downloaded through the link, byte for byte
    (link,) = sjinn.creates[0].json["input"]["image_list"]
    assert link.startswith(f"{public_studio}/inputs/")


def test_sinancode_edits_with_references_at_2k(worker, alice, sinancode):
    account("sinancode", sinancode)
    first, second = png_bytes((64, 64), (200, 0, 0, 255)), png_bytes((64, 64), (0, 0, 200, 255))
    generation = finished(
        submit(alice, references=[first, second], aspect_ratio="3:2", resolution="2K", moderation="low")
    )
    assert generation.status == Status.SUCCEEDED, generation.error
    assert sizes(generation) == [(2048, 1360, "png")]
    body = sinancode.creates[0].json
    assert (body["aspect_ratio"], body["resolution"], body["nsfw_checker"]) == ("3:2", "2K", False)
    (task,) = sinancode.tasks.values()
    assert [data for _, data in task.inputs] == [first, second]


def test_givon_edits_with_a_source_mask_and_reference_as_data_uris(worker, alice, givon):
    account("givon", givon)
    source = png_bytes((64, 64), (200, 200, 0, 255))
    reference = png_bytes((32, 32), (0, 200, 200, 255))
    mask = png_bytes((64, 64), (0, 0, 0, 0))
    generation = finished(
        submit(
            alice,
            references=[source, reference],
            mask=mask,
            aspect_ratio="4:3",
            quality="high",
            output_format="jpeg",
        )
    )
    assert generation.status == Status.SUCCEEDED, generation.error
    assert sizes(generation) == [(1360, 1024, "jpeg")]  # the service's PNG, in the format asked
    task_input = givon.creates[0].json["input"]
    assert (task_input["aspectRatio"], task_input["imageSize"], task_input["quality"]) == (
        "4:3",
        "1K",
        "high",
    )
    assert task_input["sourceImage"].startswith("data:image/png;base64,")
    (task,) = givon.tasks.values()
    assert task.inputs == [("sourceImage", source), ("maskImage", mask), ("reference", reference)]


def test_a_worker_of_two_threads_keeps_twelve_tasks_in_flight(on_task_accounts, alice, givon):
    """Polls are Celery tasks sent with a countdown: no thread waits for a task, so two threads keep many."""
    givon.polls_to_finish = 6
    account("givon", givon, max_concurrent=50)
    ledger.adjust(user=alice, amount=12 * 100, kind=EntryKind.GRANT, reason="test")
    with worker_in_process(new_queue(), concurrency=2):
        generations = [submit(alice, prompt=f"boat {number}", aspect_ratio="1:1") for number in range(8)]
        generations += [submit(alice, prompt=f"kite {number}", aspect_ratio="1:1") for number in range(4)]
        done = [finished(generation) for generation in generations]
    assert {generation.status for generation in done} == {Status.SUCCEEDED}
    assert givon.peak_outstanding >= 8  # many more tasks than threads at once


def test_a_task_accounts_cap_holds_across_its_polls(on_task_accounts, alice, givon):
    account("givon", givon, max_concurrent=3)
    with worker_in_process(new_queue(), concurrency=8):
        generations = [submit(alice, prompt=f"bird {number}", aspect_ratio="1:1") for number in range(9)]
        done = [finished(generation, timeout=90) for generation in generations]
    assert {generation.status for generation in done} == {Status.SUCCEEDED}
    assert givon.peak_outstanding == 3  # the slot is held from create to the last poll, never more
    assert pool.slots_in_use(UpstreamAccount.objects.get()) == 0


# Failover and refunds -----------------------------------------------------------------------------------


def test_a_rate_limited_task_service_cools_down_and_another_serves_once(worker, alice, sjinn, givon):
    busy = account("sjinn", sjinn, priority=10)
    spare = account("givon", givon, priority=0)
    sjinn.fail_next_create("429")
    generation = finished(submit(alice, aspect_ratio="1:1"))
    assert generation.status == Status.SUCCEEDED and generation.upstream_account_id == spare.pk
    assert Image.objects.filter(generation=generation).count() == 1
    assert money_of(generation) == (generation.cost, 0)
    busy.refresh_from_db()
    assert busy.enabled and busy.cooldown_until is not None
    assert [attempt.outcome for attempt in recorded(generation)] == ["retrying", "succeeded"]


@pytest.mark.parametrize("answer", ["401", "402"])
def test_a_refused_key_or_spent_balance_disables_the_account_and_another_serves(
    worker, alice, sinancode, givon, answer
):
    broken = account("sinancode", sinancode, priority=10)
    spare = account("givon", givon, priority=0)
    sinancode.fail_every_create(answer)
    generation = finished(submit(alice, references=[png_bytes()], aspect_ratio="1:1"))
    assert generation.status == Status.SUCCEEDED and generation.upstream_account_id == spare.pk
    assert money_of(generation) == (generation.cost, 0)
    broken.refresh_from_db()
    assert not broken.enabled
    assert ("credentials" if answer == "401" else "insufficient_quota") in broken.disabled_reason
    assert [message.subject for message in mail.outbox] == [
        "[Django] Image service account sinancode was disabled"
    ]


def test_a_task_that_fails_is_drawn_again_on_another_account_with_one_charge(worker, alice, sjinn, givon):
    account("sjinn", sjinn, priority=10)
    steady = account("givon", givon, priority=0)
    sjinn.fail_next_task("failed")
    generation = finished(submit(alice, aspect_ratio="1:1"))
    assert generation.status == Status.SUCCEEDED and generation.upstream_account_id == steady.pk
    assert Image.objects.filter(generation=generation).count() == 1
    assert money_of(generation) == (generation.cost, 0)
    first, second = recorded(generation)
    assert (first.outcome, first.error_code, second.outcome) == ("retrying", "task_failed", "succeeded")


def test_a_task_past_its_deadline_is_drawn_on_another_account(worker, alice, sjinn, givon, settings):
    settings.UPSTREAM_TASK_DEADLINE_SECONDS = 1
    slow = account("sjinn", sjinn, priority=10)
    steady = account("givon", givon, priority=0)
    sjinn.fail_next_task("never_finishes")
    generation = finished(submit(alice, aspect_ratio="1:1"))
    assert generation.status == Status.SUCCEEDED and generation.upstream_account_id == steady.pk
    assert money_of(generation) == (generation.cost, 0)
    assert recorded(generation)[0].error_code == "timeout"
    assert pool.slots_in_use(slow) == 0


def test_a_moderated_task_fails_without_a_retry_and_is_refunded(worker, alice, givon, sinancode):
    account("givon", givon, priority=10)
    givon.fail_next_task("moderation")
    generation = finished(submit(alice, aspect_ratio="1:1"))
    assert generation.status == Status.FAILED
    assert "safety system" in generation.error
    assert money_of(generation) == (generation.cost, generation.cost)
    assert len(givon.creates) == 1


def test_a_result_link_on_another_private_address_is_not_fetched(worker, alice, givon, settings):
    settings.GENERATION_MAX_RETRIES = 0
    account("givon", givon)
    givon.fail_next_task("foreign_result")
    generation = finished(submit(alice, aspect_ratio="1:1"))
    assert generation.status == Status.FAILED
    assert "private or reserved address" in generation.error
    assert money_of(generation) == (generation.cost, generation.cost)


def test_with_every_task_service_down_the_generation_fails_and_is_refunded(worker, alice, sjinn, givon):
    account("sjinn", sjinn, priority=10)
    account("givon", givon, priority=0)
    sjinn.fail_every_create("500")
    givon.fail_every_create("500")
    balance = alice.credits
    generation = finished(submit(alice, aspect_ratio="1:1"))
    assert generation.status == Status.FAILED
    assert "Try again" in generation.error
    alice.refresh_from_db()
    assert alice.credits == balance and money_of(generation) == (generation.cost, generation.cost)


def test_a_request_no_account_can_make_fails_at_once_saying_why(worker, alice, sjinn):
    account("sjinn", sjinn)
    generation = finished(submit(alice, references=[png_bytes()], mask=png_bytes(color=(0, 0, 0, 0))))
    assert generation.status == Status.FAILED
    assert "sjinn: it takes no mask" in generation.error and "refunded" in generation.error
    assert money_of(generation) == (generation.cost, generation.cost)
    assert not sjinn.requests


def test_canceling_while_the_tasks_run_gives_the_slot_back(worker, alice, givon):
    from studio.engine.services import generation_cancel

    givon.polls_to_finish = 1000
    served_by = account("givon", givon, max_concurrent=1)
    generation = submit(alice, aspect_ratio="1:1")
    deadline = time.monotonic() + 30
    while not givon.tasks:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert pool.slots_in_use(served_by) == 1
    generation_cancel(generation, membership=personal_membership(alice))
    deadline = time.monotonic() + 10
    while pool.slots_in_use(served_by):
        assert time.monotonic() < deadline, "the slot was not given back"
        time.sleep(0.05)
    generation.refresh_from_db()
    assert generation.status == Status.CANCELED and money_of(generation) == (generation.cost, generation.cost)


def test_while_the_broker_cannot_take_a_poll_the_tasks_are_polled_on_the_thread(
    worker, alice, givon, monkeypatch
):
    from studio.engine import queue

    def broker_away(*args, **kwargs):
        raise ConnectionError("the broker is away")

    monkeypatch.setattr(queue, "poll_generation", broker_away)
    givon.polls_to_finish = 3
    account("givon", givon)
    generation = finished(submit(alice, aspect_ratio="1:1"))
    assert generation.status == Status.SUCCEEDED, generation.error
    assert money_of(generation) == (generation.cost, 0)


def test_an_account_removed_while_its_tasks_run_hands_the_attempt_to_another(worker, alice, givon, sjinn):
    givon.polls_to_finish = 1000
    removed = account("givon", givon, priority=10)
    spare = account("sjinn", sjinn, priority=0)
    generation = submit(alice, aspect_ratio="1:1")
    deadline = time.monotonic() + 30
    while not givon.tasks:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    removed.delete()
    generation = finished(generation)
    assert generation.status == Status.SUCCEEDED and generation.upstream_account_id == spare.pk
    assert money_of(generation) == (generation.cost, 0)


# One studio drawing from another studio's task dialects --------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "spec", "inputs"),
    [
        ("sjinn", {"aspect_ratio": "16:9"}, 0),
        ("sinancode", {"aspect_ratio": "1:1", "resolution": "2K"}, 1),
        ("givon", {"aspect_ratio": "3:4", "quality": "low"}, 1),
    ],
)
def test_a_studio_draws_from_another_studios_task_dialect(
    worker, alice, make_user, public_studio, kind, spec, inputs
):
    """The served studio (Daphne, offline engine) is the upstream, with a key of bob's; alice pays here."""
    bob = make_user("bob")
    _, bobs_key = ApiKey.issue(user=bob, workspace=personal_membership(bob).workspace, name="downstream")
    upstream = UpstreamAccount(name=f"other studio ({kind})", kind=kind, base_url=public_studio)
    upstream.set_api_key(bobs_key)
    upstream.save()
    source = png_bytes((128, 128), (120, 40, 200, 255))
    mine = finished(submit(alice, references=[source] * inputs, **spec), timeout=90)
    assert mine.status == Status.SUCCEEDED, mine.error
    assert mine.upstream_account_id == upstream.pk
    (theirs,) = Generation.objects.filter(author=bob)
    assert theirs.status == Status.SUCCEEDED and theirs.source == kind
    assert theirs.inputs.count() == inputs
    expected = GenerationSpec.build(prompt="x", **spec).dimensions
    assert [size[:2] for size in sizes(mine)] == [expected]
    bob.refresh_from_db()
    alice.refresh_from_db()
    assert bob.credits == 1000 - theirs.cost and alice.credits == 1000 - mine.cost


def test_test_connection_of_a_task_account_tells_a_good_key_from_a_refused_one(on_task_accounts, givon):
    good = account("givon", givon)
    worked, said = pool.test_connection(good)
    assert worked and "key was accepted" in said
    bad = UpstreamAccount(name="bad", kind="givon", base_url=givon.origin)
    bad.set_api_key("wrong")
    bad.save()
    worked, said = pool.test_connection(bad)
    assert not worked and "refused" in said
