"""`POST /v1/responses` with the image_generation tool, through the official `openai` SDK against a running
studio and a real worker: the image in an image_generation_call, partial images when streaming, charged like
any generation; what the studio cannot do is a 400 in OpenAI's shape, charging nothing."""

import base64
import io
import time

import openai
import pytest
from PIL import Image as PillowImage

from accounts.models import ApiKey, EntryKind, LedgerEntry
from studio.models import Generation, InputRole, Status
from tests.conftest import png_bytes
from tests.helpers import personal_membership

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def client(studio_url, alice):
    _, secret = ApiKey.issue(user=alice, workspace=personal_membership(alice).workspace, name="responses")
    return openai.OpenAI(base_url=f"{studio_url}/v1", api_key=secret, max_retries=0, timeout=60)


def decode(b64: str) -> PillowImage.Image:
    return PillowImage.open(io.BytesIO(base64.b64decode(b64)))


def test_the_image_comes_back_in_an_image_generation_call_and_is_charged(client, worker, alice):
    response = client.responses.create(
        model="gpt-5",
        input="A lighthouse on a cliff at dawn",
        tools=[{"type": "image_generation", "size": "1536x1024", "quality": "low"}],
    )
    assert response.status == "completed" and response.model == "gpt-5"
    (call,) = [item for item in response.output if item.type == "image_generation_call"]
    assert call.status == "completed"
    assert decode(call.result).size == (1536, 1024)
    generation = Generation.objects.get()
    assert generation.status == Status.SUCCEEDED and generation.prompt == "A lighthouse on a cliff at dawn"
    assert LedgerEntry.objects.filter(user=alice, kind=EntryKind.SPEND).count() == 1
    alice.refresh_from_db()
    assert alice.credits == 1000 - generation.cost


def test_streaming_sends_partial_images_then_the_completed_response(client, worker):
    events = list(
        client.responses.create(
            model="gpt-5",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "A koi pond"}]}],
            tools=[{"type": "image_generation", "partial_images": 2}],
            stream=True,
        )
    )
    types = [event.type for event in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    partials = [event for event in events if event.type == "response.image_generation_call.partial_image"]
    assert 1 <= len(partials) <= 2
    assert decode(partials[0].partial_image_b64).size == (1024, 1024)
    assert [event.sequence_number for event in events] == list(range(1, len(events) + 1))
    (call,) = events[-1].response.output
    assert call.type == "image_generation_call" and decode(call.result).size == (1024, 1024)


def test_input_images_and_a_mask_make_an_edit(client, worker):
    source = png_bytes((1024, 1024), (10, 120, 200, 255))
    mask = png_bytes((1024, 1024), (0, 0, 0, 0))
    as_uri = "data:image/png;base64,{}".format
    response = client.responses.create(
        model="gpt-5",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Put a red boat on the water"},
                    {"type": "input_image", "image_url": as_uri(base64.b64encode(source).decode())},
                ],
            }
        ],
        tools=[
            {
                "type": "image_generation",
                "input_image_mask": {"image_url": as_uri(base64.b64encode(mask).decode())},
            }
        ],
    )
    assert response.output[0].status == "completed"
    roles = sorted(Generation.objects.get().inputs.values_list("role", flat=True))
    assert roles == [InputRole.MASK, InputRole.REFERENCE]


@pytest.mark.parametrize(
    ("tools", "input", "message"),
    [
        (
            [{"type": "web_search"}],
            "a fox",
            "The studio serves only the image_generation tool, not web_search.",
        ),
        ([], "a fox", "The studio makes images only: add the image_generation tool"),
        ([{"type": "image_generation"}], "   ", "The input has no text to make an image from."),
        ([{"type": "image_generation", "size": "7x7"}], "a fox", "size"),
    ],
)
def test_what_the_studio_cannot_do_is_a_400_that_charges_nothing(client, alice, tools, input, message):
    with pytest.raises(openai.BadRequestError) as raised:
        client.responses.create(model="gpt-5", input=input, tools=tools)
    assert message in raised.value.body["message"]
    assert raised.value.body["type"] == "invalid_request_error"
    assert not Generation.objects.exists()
    alice.refresh_from_db()
    assert alice.credits == 1000


def test_a_studio_draws_from_another_studios_responses_api_as_its_upstream(
    studio_url, worker, alice, make_user, settings
):
    """The served studio (Daphne, offline engine) is the upstream of this one: an `openai-responses`
    account holding a key of bob's. Alice pays this studio; bob's credits pay the upstream."""
    from studio.engine.services import generation_submit
    from studio.engine.spec import GenerationSpec
    from studio.models import UpstreamAccount

    bob = make_user("bob")
    _, bobs_key = ApiKey.issue(user=bob, workspace=personal_membership(bob).workspace, name="downstream")
    upstream = UpstreamAccount(
        name="other studio", kind="openai-responses", base_url=f"{studio_url}/v1", model="gpt-5"
    )
    upstream.set_api_key(bobs_key)
    upstream.save()
    settings.STUDIO_PROVIDER = "openai"
    settings.OPENAI_API_KEY = ""

    mine = generation_submit(
        membership=personal_membership(alice),
        spec=GenerationSpec.build(prompt="a heron at the pond", n=2, partial_images=1, size="1024x1536"),
    )
    deadline = time.monotonic() + 90
    while True:
        mine.refresh_from_db()
        if not mine.is_active:
            break
        assert time.monotonic() < deadline, "the generation did not finish"
        time.sleep(0.2)
    assert mine.status == Status.SUCCEEDED, mine.error
    assert mine.upstream_account_id == upstream.pk
    assert [decode_file(image).size for image in mine.images.all()] == [(1024, 1536), (1024, 1536)]
    # Upstream: two generations of one image each, made through the Responses API with bob's key.
    theirs = Generation.objects.filter(author=bob)
    assert theirs.count() == 2 and {generation.status for generation in theirs} == {Status.SUCCEEDED}
    bob.refresh_from_db()
    alice.refresh_from_db()
    assert bob.credits == 1000 - sum(generation.cost for generation in theirs)
    assert alice.credits == 1000 - mine.cost


def decode_file(image) -> PillowImage.Image:
    with image.file.open("rb") as handle:
        return PillowImage.open(io.BytesIO(handle.read()))
