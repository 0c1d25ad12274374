"""`manage.py retention [--dry-run]`: apply the admin's retention policy to media storage now (whether or not
the daily job is enabled), or with --dry-run only say what it would remove."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from studio.engine import retention
from studio.models import RetentionPolicy


class Command(BaseCommand):
    help = "Remove expired partial images and orphaned media files, as the retention policy says."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Change nothing; report what would go.")

    def handle(self, *args: Any, dry_run: bool, **options: Any) -> None:
        report = retention.apply(RetentionPolicy.current(), dry_run=dry_run)
        for line in report.lines():
            self.stdout.write(line)
