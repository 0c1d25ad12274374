"""Retention: what media storage keeps, by the policy set in the admin (studio.models.RetentionPolicy). Run
daily by beat (`studio.tasks.apply_retention`, when the policy is enabled) and on demand by `manage.py
retention [--dry-run]`.

It removes two kinds of files, and never one a row still names:
- **expired partial images**: the partial image of a generation that ended more than `partials_after_hours`
  ago. The row's field is cleared first (a conditional update, committed), then the file deleted.
- **orphans**: files in the media folders that no image, input or generation names (those of deleted
  generations, whose files a failed or interrupted delete left behind), once older than
  `orphans_after_hours`: a younger file may belong to a generation being saved (its files are written before
  its row). They are deleted, or on S3 moved to a cheaper storage class. Each batch is checked against the
  database just before it is touched.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.files.storage import default_storage
from django.db.models import Q
from django.utils import timezone

from studio.models import (
    ACTIVE_STATUSES,
    Generation,
    GenerationInput,
    Image,
    OrphanAction,
    RetentionPolicy,
)

logger = logging.getLogger(__name__)

FOLDERS = ("images/", "thumbnails/", "inputs/", "partials/")
BATCH = 500
SHOWN = 20  # names a report lists (the counts are complete)


@dataclass
class Report:
    dry_run: bool
    action: str
    partials: int = 0
    partial_bytes: int = 0
    orphans: int = 0
    orphan_bytes: int = 0
    too_young: int = 0
    examples: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        verb = "would" if self.dry_run else "did"
        return [
            f"expired partial images: {self.partials} ({self.partial_bytes:,} bytes), {verb} delete",
            f"orphaned files: {self.orphans} ({self.orphan_bytes:,} bytes), {verb} {self.action}",
            f"unnamed files younger than the policy's age, kept: {self.too_young}",
            *(f"  {name}" for name in self.examples),
        ]


@dataclass(frozen=True)
class StoredFile:
    name: str
    modified: datetime
    size: int


def apply(policy: RetentionPolicy, *, dry_run: bool = False, now: datetime | None = None) -> Report:
    now = now or timezone.now()
    action = policy.orphan_action if _in_bucket() else OrphanAction.DELETE
    report = Report(dry_run=dry_run, action=action)
    _expire_partials(policy, report, now)
    _remove_orphans(policy, report, now)
    logger.info("retention: %s", "; ".join(report.lines()[:3]))
    return report


def _expire_partials(policy: RetentionPolicy, report: Report, now: datetime) -> None:
    ended_before = now - timedelta(hours=policy.partials_after_hours)
    expired = (
        Generation.objects.exclude(status__in=ACTIVE_STATUSES)
        .exclude(partial_image="")
        .filter(finished_at__lt=ended_before)
        .values_list("pk", "partial_image")
    )
    for pk, name in expired.iterator(chunk_size=BATCH):
        size = _size(name)
        if not report.dry_run:
            # Only if the row still names this file: cleared, then the file goes.
            if not Generation.objects.filter(pk=pk, partial_image=name).update(partial_image=""):
                continue
            if name not in _referenced([name]):  # another row may share it (copies, bulk-made rows)
                default_storage.delete(name)
        report.partials += 1
        report.partial_bytes += size
        _example(report, name)


def _remove_orphans(policy: RetentionPolicy, report: Report, now: datetime) -> None:
    old_before = now - timedelta(hours=policy.orphans_after_hours)
    batch: list[StoredFile] = []
    for folder in FOLDERS:
        for stored in _stored_files(folder):
            if stored.modified >= old_before:
                report.too_young += 1
                continue
            batch.append(stored)
            if len(batch) >= BATCH:
                _remove_batch(batch, report, policy)
                batch = []
    if batch:
        _remove_batch(batch, report, policy)


def _remove_batch(batch: list[StoredFile], report: Report, policy: RetentionPolicy) -> None:
    named = _referenced([stored.name for stored in batch])  # read now, just before acting
    for stored in batch:
        if stored.name in named:
            continue
        if not report.dry_run:
            if report.action == OrphanAction.ARCHIVE:
                _archive(stored.name, policy.archive_storage_class)
            else:
                default_storage.delete(stored.name)
        report.orphans += 1
        report.orphan_bytes += stored.size
        _example(report, stored.name)


def _referenced(names: list[str]) -> set[str]:
    """Which of these names a row of the studio still holds."""
    found: set[str] = set()
    found.update(Image.objects.filter(file__in=names).values_list("file", flat=True))
    found.update(Image.objects.filter(thumbnail__in=names).values_list("thumbnail", flat=True))
    found.update(GenerationInput.objects.filter(file__in=names).values_list("file", flat=True))
    found.update(
        Generation.objects.filter(Q(partial_image__in=names)).values_list("partial_image", flat=True)
    )
    return found


def _example(report: Report, name: str) -> None:
    if len(report.examples) < SHOWN:
        report.examples.append(name)


# Storage: the local folder, or the S3 bucket read by listing (one request per thousand files, with their
# times and sizes, instead of one per file).


def _in_bucket() -> bool:
    return hasattr(default_storage, "bucket_name")


def _stored_files(folder: str) -> Iterator[StoredFile]:
    if _in_bucket():
        yield from _bucket_files(folder)
        return
    root = default_storage.path(folder)
    base = default_storage.path("")
    for directory, _, files in os.walk(root):
        for file_name in files:
            path = os.path.join(directory, file_name)
            stat = os.stat(path)
            name = os.path.relpath(path, base).replace(os.sep, "/")
            yield StoredFile(name, datetime.fromtimestamp(stat.st_mtime, UTC), stat.st_size)


def _bucket_files(folder: str) -> Iterator[StoredFile]:
    storage: Any = default_storage
    location = storage.location.strip("/")
    prefix = f"{location}/{folder}" if location else folder
    for item in storage.bucket.objects.filter(Prefix=prefix):
        if (item.storage_class or "STANDARD") != "STANDARD":
            continue  # archived already
        name = item.key[len(location) + 1 :] if location else item.key
        yield StoredFile(name, item.last_modified, item.size)


def _archive(name: str, storage_class: str) -> None:
    storage: Any = default_storage
    key = storage._normalize_name(name)
    storage.bucket.meta.client.copy_object(
        Bucket=storage.bucket_name,
        Key=key,
        CopySource={"Bucket": storage.bucket_name, "Key": key},
        StorageClass=storage_class,
        MetadataDirective="COPY",
    )


def _size(name: str) -> int:
    try:
        return int(default_storage.size(name))
    except (OSError, ValueError):
        return 0
    except Exception:  # a bucket's "not found" is botocore's own error
        return 0
