"""Retention (studio.engine.retention): expired partial images and orphaned files go; nothing a row names is
ever touched; a dry run changes nothing; on S3, orphans may move to a cheaper storage class instead."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from studio.engine import retention
from studio.engine.tasks import apply_retention
from studio.models import Generation, GenerationInput, InputRole, OrphanAction, RetentionPolicy, Status
from tests import s3
from tests.conftest import png_bytes
from tests.helpers import finished_generation, personal_membership

pytestmark = pytest.mark.django_db

LATER = timedelta(hours=100)  # past every age of the default policy


@pytest.fixture(autouse=True)
def own_media(settings, tmp_path):
    """A media folder of the test's own: what it holds is exactly what the test put there."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path},
        },
    }


@pytest.fixture
def kept(alice):
    """Files rows name: an image and its thumbnail, an input, the partial of a running generation."""
    membership = personal_membership(alice)
    generation, image = finished_generation(membership, prompt="kept")
    source = GenerationInput(generation=generation, role=InputRole.REFERENCE)
    source.file.save("source.png", ContentFile(png_bytes()), save=True)
    running, _ = finished_generation(membership, prompt="running")
    running.partial_image.save("running.png", ContentFile(png_bytes()), save=False)
    Generation.objects.filter(pk=running.pk).update(
        status=Status.RUNNING, finished_at=None, partial_image=running.partial_image.name
    )
    return [image.file.name, image.thumbnail.name, source.file.name, running.partial_image.name]


def orphan(name: str) -> str:
    return default_storage.save(name, ContentFile(b"left behind" * 100))


def test_orphans_go_and_named_files_stay(kept):
    gone = [orphan("images/2020/01/deleted.png"), orphan("thumbnails/2020/01/deleted.webp")]
    report = retention.apply(RetentionPolicy.current(), now=timezone.now() + LATER)
    assert report.orphans == 2 and report.orphan_bytes == 2 * 1100
    assert not any(default_storage.exists(name) for name in gone)
    assert all(default_storage.exists(name) for name in kept)


def test_young_orphans_are_kept_they_may_be_a_generation_being_saved(kept):
    young = orphan("images/2020/01/being-saved.png")
    report = retention.apply(RetentionPolicy.current(), now=timezone.now() + timedelta(hours=1))
    assert report.orphans == 0 and report.too_young >= 1
    assert default_storage.exists(young)


def test_an_ended_generations_partial_image_expires(alice, kept):
    generation, _ = finished_generation(personal_membership(alice), prompt="done")
    generation.partial_image.save("done.png", ContentFile(png_bytes()), save=True)
    name = generation.partial_image.name

    early = retention.apply(RetentionPolicy.current(), now=timezone.now() + timedelta(hours=1))
    assert early.partials == 0 and default_storage.exists(name)  # ended an hour ago: still shown

    report = retention.apply(RetentionPolicy.current(), now=timezone.now() + LATER)
    assert report.partials == 1
    generation.refresh_from_db()
    assert not generation.partial_image and not default_storage.exists(name)
    assert all(default_storage.exists(kept_name) for kept_name in kept)  # the running one's partial too


def test_a_dry_run_reports_and_changes_nothing(alice, kept, capsys):
    generation, _ = finished_generation(personal_membership(alice), prompt="done")
    generation.partial_image.save("done.png", ContentFile(png_bytes()), save=True)
    left = orphan("inputs/2020/01/deleted.png")
    report = retention.apply(RetentionPolicy.current(), dry_run=True, now=timezone.now() + LATER)
    assert (report.partials, report.orphans) == (1, 1)
    generation.refresh_from_db()
    assert generation.partial_image and default_storage.exists(generation.partial_image.name)
    assert default_storage.exists(left) and all(default_storage.exists(name) for name in kept)

    call_command("retention", "--dry-run")
    out = capsys.readouterr().out
    assert "would delete" in out and "orphaned files:" in out


def test_the_daily_job_follows_the_admins_switch(kept):
    RetentionPolicy.objects.update_or_create(pk=1, defaults={"enabled": False, "orphans_after_hours": 1})
    left = orphan("images/2020/01/deleted.png")
    assert apply_retention() == 0 and default_storage.exists(left)


@pytest.fixture
def bucket(settings):
    with s3.s3_server() as endpoint:
        for name, value in s3.bucket_settings(endpoint).items():
            setattr(settings, name, value)
        yield endpoint, settings.AWS_STORAGE_BUCKET_NAME


def test_on_s3_orphans_move_to_a_cheaper_class_and_named_files_stay(alice, bucket):
    endpoint, name_of_bucket = bucket
    _, image = finished_generation(personal_membership(alice), prompt="kept in the bucket")
    left = orphan("images/2020/01/deleted.png")
    RetentionPolicy.objects.update_or_create(pk=1, defaults={"orphan_action": OrphanAction.ARCHIVE})

    report = retention.apply(RetentionPolicy.current(), now=timezone.now() + LATER)
    assert report.orphans == 1 and report.action == OrphanAction.ARCHIVE
    client = s3.client(endpoint)
    head = client.head_object(Bucket=name_of_bucket, Key=f"studio/{left}")
    assert head.get("StorageClass") == "GLACIER_IR"
    for kept_name in (image.file.name, image.thumbnail.name):
        assert client.head_object(Bucket=name_of_bucket, Key=f"studio/{kept_name}").get("StorageClass") in (
            None,
            "STANDARD",
        )
    # Archived already: the next pass leaves it alone.
    assert retention.apply(RetentionPolicy.current(), now=timezone.now() + LATER).orphans == 0


def test_the_policy_is_one_row_edited_in_the_admin(admin_client):
    policy = RetentionPolicy.current()
    assert admin_client.get("/admin/studio/retentionpolicy/").status_code == 200
    assert admin_client.get("/admin/studio/retentionpolicy/add/").status_code == 403  # there is one already
    page = admin_client.get(f"/admin/studio/retentionpolicy/{policy.pk}/change/")
    assert page.status_code == 200 and b"orphans_after_hours" in page.content
    response = admin_client.post(
        f"/admin/studio/retentionpolicy/{policy.pk}/change/",
        {
            "enabled": "on",
            "partials_after_hours": "0",  # refused: at least an hour
            "orphans_after_hours": "48",
            "orphan_action": "delete",
            "archive_storage_class": "GLACIER_IR",
        },
    )
    assert response.status_code == 200 and b"greater than or equal to 1" in response.content
    assert admin_client.get(f"/admin/studio/retentionpolicy/{policy.pk}/delete/").status_code == 403
