import re

from studio.models import Generation, Status
from tests.helpers import finished_generation, personal_membership


def test_the_home_page_needs_a_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_composer_has_a_labelled_prompt_and_a_generate_button(client, alice):
    client.force_login(alice)
    html = client.get("/").content.decode()
    assert re.search(r'<label for="id_prompt">Prompt</label>', html)
    assert ">Generate</button>" in html
    assert "1,000 credits" in html
    assert 'ws-connect="/ws/studio/?workspace=' in html


def test_generating_through_htmx_answers_with_the_queued_card(client, alice):
    client.force_login(alice)
    response = client.post(
        "/generate/",
        {
            "prompt": "a lighthouse",
            "aspect_ratio": "1:1",
            "resolution": "1K",
            "quality": "medium",
            "n": 1,
            "output_format": "png",
            "idempotency_key": "k1",
        },
        headers={"HX-Request": "true"},
    )
    generation = Generation.objects.get()
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="generation-{generation.pk}"' in html and "Queued" in html
    alice.refresh_from_db()
    assert alice.credits == 900


def test_a_form_error_replaces_the_composer(client, alice):
    client.force_login(alice)
    response = client.post("/generate/", {"prompt": "", "n": 1}, headers={"HX-Request": "true"})
    assert response["HX-Retarget"] == "#composer"
    assert "This field is required" in response.content.decode()
    assert not Generation.objects.exists()


def test_insufficient_credits_says_what_to_do(client, alice):
    client.force_login(alice)
    data = {
        "prompt": "x",
        "aspect_ratio": "1:1",
        "resolution": "1K",
        "quality": "medium",
        "n": 10,
        "output_format": "png",
    }
    client.post("/generate/", data, headers={"HX-Request": "true"})
    response = client.post("/generate/", {**data, "n": 1}, headers={"HX-Request": "true"})
    assert "Not enough credits" in response.content.decode()
    assert Generation.objects.count() == 1


def test_a_failed_card_shows_its_readable_message(client, alice):
    client.force_login(alice)
    generation, _ = finished_generation(personal_membership(alice))
    Generation.objects.filter(pk=generation.pk).update(
        status=Status.FAILED, error="Blocked by the safety system."
    )
    html = client.get(f"/generations/{generation.pk}/").content.decode()
    assert "Blocked by the safety system." in html and "Failed" in html


def test_a_running_card_shows_the_latest_partial_image(client, alice):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from tests.conftest import png_bytes

    client.force_login(alice)
    generation, _ = finished_generation(personal_membership(alice))
    generation.images.all().delete()
    name = default_storage.save(f"partials/{generation.pk}-1.png", ContentFile(png_bytes()))
    Generation.objects.filter(pk=generation.pk).update(status=Status.RUNNING, partial_image=name, seq=7)
    html = client.get("/").content.decode()
    assert f"/generations/{generation.pk}/partial/?v=7" in html
    assert client.get(f"/generations/{generation.pk}/partial/").status_code == 200
