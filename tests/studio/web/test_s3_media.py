"""Media in an S3 bucket (django-storages on a real S3 server, moto's, on 127.0.0.1): private objects, views
that check access and then redirect to a short-lived presigned URL (or stream), ZIPs streamed from the bucket,
a 4K PNG uploaded in parts, and a generation's partial images and inputs stored there too."""

import gc
import io
import os
import threading
import tracemalloc
import zipfile
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image as PILImage

from accounts import ledger
from accounts.models import EntryKind
from studio.engine import runner
from studio.engine.images import check_image
from studio.engine.providers import PartialImage
from studio.engine.providers.local import LocalProvider
from studio.engine.services import SubmittedImage, generation_submit
from studio.engine.spec import GenerationSpec
from studio.models import Status
from tests import s3
from tests.helpers import finished_generation, personal_membership
from tests.studio.web.gallery_helpers import log_in
from tests.workers import discard_queue, new_queue, tasks_sent_to

pytestmark = pytest.mark.usefixtures("fast_password_hashing")


@pytest.fixture(scope="module")
def s3_endpoint():
    with s3.s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def bucket(s3_endpoint, settings):
    """Media go to a new bucket of the server, under the key prefix `studio/`."""
    for name, value in s3.bucket_settings(s3_endpoint).items():
        setattr(settings, name, value)
    return settings.AWS_STORAGE_BUCKET_NAME


def noise_png(width: int, height: int) -> bytes:
    """An incompressible PNG, as big as a real photograph's."""
    out = io.BytesIO()
    PILImage.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(
        out, "PNG", compress_level=1
    )
    return out.getvalue()


def test_images_are_private_objects_and_their_views_redirect_to_presigned_urls(client, alice, bob, bucket):
    _, image = finished_generation(personal_membership(alice))
    keys = s3.keys(settings_endpoint(), bucket)
    assert f"studio/{image.file.name}" in keys and f"studio/{image.thumbnail.name}" in keys
    for key in keys:
        grants = s3.client(settings_endpoint()).get_object_acl(Bucket=bucket, Key=key)["Grants"]
        assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]  # the owner's alone
        assert all("URI" not in grant["Grantee"] for grant in grants)  # no AllUsers / AuthenticatedUsers

    log_in(client, alice)
    stored = s3.client(settings_endpoint()).get_object(Bucket=bucket, Key=f"studio/{image.file.name}")["Body"]
    expected = stored.read()
    for url, content_type, starts in (
        (f"/images/{image.pk}/", "image/png", b"\x89PNG"),
        (f"/images/{image.pk}/thumbnail/", "image/webp", b"RIFF"),
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        location = response["Location"]
        assert location.startswith(f"{settings_endpoint()}/{bucket}/studio/")
        query = parse_qs(urlsplit(location).query)
        assert query["X-Amz-Expires"] == ["300"] and query["X-Amz-Signature"]
        assert query["response-content-type"] == [content_type]
        assert response["Cache-Control"] == "private, max-age=150"
        fetched = httpx.get(location)
        assert fetched.status_code == 200 and fetched.content.startswith(starts)
        assert fetched.headers["content-type"] == content_type
        if content_type == "image/png":
            assert fetched.content == expected

    download = client.get(f"/images/{image.pk}/?download=1")
    disposition = parse_qs(urlsplit(download["Location"]).query)["response-content-disposition"][0]
    assert disposition.startswith("attachment;") and str(image.pk) in disposition

    client.force_login(bob)
    assert client.get(f"/images/{image.pk}/").status_code == 404  # no URL for someone else's image


def settings_endpoint() -> str:
    from django.conf import settings

    return settings.AWS_S3_ENDPOINT_URL


def test_stream_mode_sends_the_bytes_through_the_view(client, alice, bucket, settings):
    settings.MEDIA_SERVE = "stream"
    _, image = finished_generation(personal_membership(alice))
    log_in(client, alice)
    response = client.get(f"/images/{image.pk}/")
    assert response.status_code == 200 and response.streaming
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\x89PNG") and int(response["Content-Length"]) == len(body) == image.bytes
    image.file.storage.delete(image.file.name)
    assert client.get(f"/images/{image.pk}/").status_code == 404  # gone from the bucket: 404, not 500


def test_a_zip_streams_from_the_bucket_without_holding_the_archive(client, alice, bucket, tmp_path):
    membership = personal_membership(alice)
    data = [noise_png(1200, 1200) for _ in range(3)]  # ~4.3 MB each
    images = []
    for index, png in enumerate(data):
        _, image = finished_generation(membership, prompt=f"photo {index}")
        image.file.save(f"photo-{index}.png", ContentFile(png), save=True)
        images.append(image)
    log_in(client, alice)
    response = client.post("/gallery/bulk/", {"action": "download", "images": [str(i.pk) for i in images]})
    assert response.status_code == 200 and response.streaming

    # The archive goes to disk as it comes, so what this process holds at its peak is the view's doing.
    path, largest_chunk = tmp_path / "images.zip", 0
    gc.collect()
    tracemalloc.start()
    try:
        with path.open("wb") as archive:
            for chunk in response.streaming_content:
                largest_chunk = max(largest_chunk, len(chunk))
                archive.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert path.stat().st_size > sum(len(png) for png in data)
    assert largest_chunk <= 512 * 1024
    assert peak < min(len(png) for png in data) / 2, peak  # not one image whole, let alone the archive
    with zipfile.ZipFile(path) as opened:
        assert opened.testzip() is None
        assert sorted(opened.read(name) for name in opened.namelist()) == sorted(data)


def test_a_4k_png_is_uploaded_in_parts_and_read_back_whole(bucket):
    png = noise_png(3840, 2160)  # ~24 MB: past boto3's 8 MB multipart threshold
    name = default_storage.save("images/4k.png", ContentFile(png))
    head = s3.client(settings_endpoint()).head_object(Bucket=bucket, Key=f"studio/{name}")
    assert head["ContentLength"] == len(png)
    assert "-" in head["ETag"].strip('"')  # a multipart upload's ETag: md5 of the parts, dash, their count
    with default_storage.open(name, "rb") as handle:
        assert handle.read() == png


class BucketWatchingProvider(LocalProvider):
    """The local engine, noting the bucket's keys each time the runner has stored a partial image."""

    def __init__(self, endpoint: str, bucket: str) -> None:
        super().__init__()
        self.endpoint, self.bucket = endpoint, bucket
        self.seen: list[list[str]] = []

    def generate(self, spec, *, images, mask):
        for event in super().generate(spec, images=images, mask=mask):
            yield event
            if isinstance(event, PartialImage):
                self.seen.append(s3.keys(self.endpoint, self.bucket))


@pytest.mark.pipeline
@pytest.mark.django_db(transaction=True)
def test_a_generations_inputs_partials_and_results_go_to_the_bucket(alice, bucket, monkeypatch, settings):
    provider = BucketWatchingProvider(settings.AWS_S3_ENDPOINT_URL, bucket)
    monkeypatch.setattr("studio.engine.pool.get_provider", lambda name: provider)
    ledger.adjust(user=alice, amount=100, kind=EntryKind.GRANT, reason="Test")
    reference = check_image(noise_png(64, 64))
    queue = new_queue()
    with tasks_sent_to(queue):
        generation = generation_submit(
            membership=personal_membership(alice),
            spec=GenerationSpec.build(prompt="a lighthouse", partial_images=2),
            references=[SubmittedImage(image=reference)],
        )
    discard_queue(queue)
    thread = threading.Thread(target=runner.run_generation, args=[str(generation.pk)])
    thread.start()
    thread.join(timeout=60)

    generation.refresh_from_db()
    assert generation.status == Status.SUCCEEDED, generation.error
    assert provider.seen and any(key.startswith("studio/partials/") for key in provider.seen[0])
    keys = s3.keys(settings.AWS_S3_ENDPOINT_URL, bucket)
    [image] = generation.images.all()
    assert f"studio/{image.file.name}" in keys and f"studio/{image.thumbnail.name}" in keys
    [stored_input] = generation.inputs.all()
    assert f"studio/{stored_input.file.name}" in keys
    # The last partial image stays while the generation shows it; the ones it replaced are gone.
    partials = [key for key in keys if key.startswith("studio/partials/")]
    assert partials == ([f"studio/{generation.partial_image.name}"] if generation.partial_image else [])
