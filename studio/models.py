"""Creative work: projects, generations, their inputs and the images they produce."""

import re
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchVector, SearchVectorExact
from django.core.validators import MinValueValidator
from django.db import connections, models
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import ApiKey, User, Workspace
from studio.engine import spec as spec_module
from studio.engine.spec import GenerationSpec


class Project(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100)
    is_default = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-is_default", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace"], condition=Q(is_default=True), name="project_one_default_per_workspace"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def default_for(cls, workspace: Workspace) -> "Project":
        project, _ = cls.objects.get_or_create(
            workspace=workspace, is_default=True, defaults={"name": "General"}
        )
        return project

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


class PriceRule(models.Model):
    """A per-image price set in the admin. It wins over CREDIT_PRICES from the settings; a rule without a
    quality covers every quality of its tier that has no rule of its own."""

    tier = models.CharField(max_length=4, choices=[(tier, tier) for tier in spec_module.RESOLUTIONS])
    # Empty (not NULL, as Django keeps strings) means every quality of the tier without a rule of its own.
    quality = models.CharField(
        max_length=10,
        choices=[(quality, quality.capitalize()) for quality in spec_module.QUALITIES],
        blank=True,
        help_text="Leave empty for every quality of this tier.",
    )
    # At least one: a generation is always a spend in the ledger.
    credits = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="Credits per image.")

    class Meta:
        ordering = ["tier", "quality"]
        constraints = [
            models.UniqueConstraint(fields=["tier", "quality"], name="price_rule_one_per_tier_and_quality"),
            models.CheckConstraint(condition=Q(credits__gte=1), name="price_rule_credits_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.key} = {self.credits}"

    @property
    def key(self) -> str:
        return f"{self.tier}:{self.quality}" if self.quality else self.tier


class Status(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"


ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)


class Source(models.TextChoices):
    """Where a generation was asked for: the pages, or a dialect of the public API."""

    PAGE = "page", "Studio"
    API = "api", "API (OpenAI Images)"
    TASKS = "tasks", "API (tasks)"
    SJINN = "sjinn", "API (sjinn dialect)"
    SINANCODE = "sinancode", "API (sinancode dialect)"
    GIVON = "givon", "API (givon dialect)"


class UpstreamKind(models.TextChoices):
    OPENAI_IMAGES = "openai-images", "OpenAI Images API (or a gateway speaking it)"
    OPENAI_RESPONSES = "openai-responses", "OpenAI Responses API, image_generation tool (model: a text model)"
    SJINN = "sjinn", "sjinn task API (tool gpt-image-2-api; 1K)"
    SINANCODE = "sinancode", "sinancode task API (image to image)"
    GIVON = "givon", "givon generations API"


# The kinds that take a task and are asked later how it went (studio.engine.providers.tasks).
TASK_KINDS = (UpstreamKind.SJINN, UpstreamKind.SINANCODE, UpstreamKind.GIVON)
# The kinds that take input images only as links to the studio's media (so need STUDIO_PUBLIC_URL).
LINK_INPUT_KINDS = (UpstreamKind.SJINN, UpstreamKind.SINANCODE)


class UpstreamAccount(models.Model):
    """One account of an image service the studio draws from. With none enabled, OPENAI_API_KEY and
    OPENAI_BASE_URL act as one account (studio.engine.pool). Its key is kept encrypted (accounts.crypto)."""

    kind = models.CharField(max_length=30, choices=UpstreamKind.choices, default=UpstreamKind.OPENAI_IMAGES)
    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(
        max_length=500,
        blank=True,
        help_text="Empty for OpenAI's own API; a gateway's URL ending in /v1; a task service's root URL "
        "(https://api.givon.ai).",
    )
    api_key_encrypted = models.TextField(editable=False)
    model = models.CharField(
        max_length=100,
        default="gpt-image-2",
        help_text="The model name this account expects. A gateway's fixed-tier variant (ending in -1k, -2k "
        "or -4k) serves only that tier.",
    )
    tiers = models.CharField(
        max_length=20, default="1K,2K,4K", help_text="The resolution tiers it serves, comma separated."
    )
    priority = models.IntegerField(
        default=0, help_text="Higher first; accounts of equal priority share by weight."
    )
    weight = models.PositiveIntegerField(default=1, validators=[MinValueValidator(1)])
    max_concurrent = models.PositiveIntegerField(
        default=10,
        validators=[MinValueValidator(1)],
        help_text="Requests at once, across every worker process and machine.",
    )
    enabled = models.BooleanField(default=True)
    # Health: a rate limit cools it down; repeated failures open its breaker; a refused key or exhausted
    # quota disables it (enabled off, with the reason).
    cooldown_until = models.DateTimeField(null=True, blank=True)
    breaker_open_until = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_reason = models.CharField(max_length=300, blank=True)
    # What the service charges the operator, for the usage estimate in the admin (either or both).
    price_per_image = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, help_text="In your currency, per image."
    )
    price_per_million_tokens = models.DecimalField(
        max_digits=10, decimal_places=4, null=True, blank=True, help_text="Per million tokens, in and out."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "name"]

    def __str__(self) -> str:
        return self.name

    @property
    def api_key(self) -> str:
        from accounts import crypto

        return crypto.decrypt(self.api_key_encrypted) if self.api_key_encrypted else ""

    def set_api_key(self, secret: str) -> None:
        from accounts import crypto

        self.api_key_encrypted = crypto.encrypt(secret)

    def served_tiers(self) -> set[str]:
        """A fixed-tier gateway model (gpt-image-2-4k, say) serves its tier alone, whatever `tiers` says."""
        suffix = self.model.rsplit("-", 1)[-1].upper()
        if suffix in spec_module.RESOLUTIONS:
            return {suffix}
        return {tier.strip().upper() for tier in self.tiers.split(",") if tier.strip()}


class UpstreamAttempt(models.Model):
    """One request to an upstream account, for its usage figures in the admin."""

    account = models.ForeignKey(UpstreamAccount, on_delete=models.CASCADE, related_name="attempts")
    generation = models.ForeignKey(
        "Generation", on_delete=models.SET_NULL, null=True, blank=True, related_name="upstream_attempts"
    )
    at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=10)  # succeeded, retrying, failed, canceled
    error_code = models.CharField(max_length=50, blank=True)
    status = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField()
    images = models.PositiveSmallIntegerField(default=0)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["account", "at"])]

    def __str__(self) -> str:
        return f"{self.account} {self.outcome} at {self.at:%Y-%m-%d %H:%M:%S}"


# Search over prompts and revised prompts. On PostgreSQL, full-text search: a GIN index of this vector
# (migration 0013) in the "simple" configuration, which lowercases words and neither stems them nor drops
# stop words, so it serves every language written with spaces alike; each word matches as a prefix ("light"
# finds "lighthouse"), as the substring search before it did. Words in scripts written without spaces
# (Chinese, Japanese, Thai...) match as substrings. On SQLite, every word as a substring.
SEARCH_CONFIG = "simple"
UNSPACED_SCRIPTS = re.compile(
    r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"
)


def prompt_vector() -> SearchVector:
    """The indexed expression: queries must build it exactly so for PostgreSQL to use the index."""
    return SearchVector("prompt", "revised_prompt", config=SEARCH_CONFIG)


def prompt_query(words: list[str]) -> SearchQuery | None:
    """Every word's letters and digits as a prefix, all required; None when no word has any."""
    terms = [term for word in words if not UNSPACED_SCRIPTS.search(word) for term in re.findall(r"\w+", word)]
    if not terms:
        return None
    return SearchQuery(" & ".join(f"{term}:*" for term in terms), search_type="raw", config=SEARCH_CONFIG)


class GenerationQuerySet(models.QuerySet["Generation"]):
    def for_user(self, user: "User") -> "GenerationQuerySet":
        return self.filter(workspace__memberships__user=user)

    def matching(self, words: list[str]) -> "GenerationQuerySet":
        """Generations whose prompt or revised prompt holds every word (see SEARCH_CONFIG). A "word" without a
        letter or digit (`&`, `!(`) is no word: it is ignored, on every database alike."""
        words = [word for word in words if re.search(r"\w", word)]
        found = self
        if connections[self.db].vendor == "postgresql":
            if (query := prompt_query(words)) is not None:
                found = found.filter(SearchVectorExact(prompt_vector(), query))
            words = [word for word in words if UNSPACED_SCRIPTS.search(word)]
        for word in words:
            found = found.filter(Q(prompt__icontains=word) | Q(revised_prompt__icontains=word))
        return found


class Generation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="generations")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="generations")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="generations")
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.PAGE)
    api_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="generations"
    )
    idempotency_key = models.CharField(max_length=100, blank=True)
    # Where to POST the final status of an API task (signed; see studio.engine.webhooks).
    callback_url = models.URLField(max_length=2000, blank=True)

    prompt = models.TextField()
    spec = models.JSONField()
    provider = models.CharField(max_length=20)
    cost = models.PositiveIntegerField()

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    stage = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    # The latest partial image, so a reload or a teammate's page shows progress at once.
    partial_image = models.FileField(upload_to="partials/", blank=True)
    partial_count = models.PositiveSmallIntegerField(default=0)
    # Bumped on every change; live messages carry it so a page can ignore stale ones.
    seq = models.PositiveIntegerField(default=0)

    attempts = models.PositiveSmallIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # Its task could not be sent (the broker was unavailable): the sweeper sends it once the broker is back.
    task_pending = models.BooleanField(default=False)
    # Its webhook could not be sent when it ended (the broker was unavailable): the sweeper sends it.
    webhook_pending = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # What the upstream reported.
    revised_prompt = models.TextField(blank=True)
    usage = models.JSONField(null=True, blank=True)
    upstream_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    # Where a generation's time went besides the upstream: waiting for a worker (created to claimed) and
    # storing its images (checks, thumbnails, files and the final transaction). Sent as Server-Timing.
    queue_ms = models.PositiveIntegerField(null=True, blank=True)
    storage_ms = models.PositiveIntegerField(null=True, blank=True)
    upstream_request_id = models.CharField(max_length=200, blank=True)
    # The account that served it (admins only: never shown to users).
    upstream_account = models.ForeignKey(
        UpstreamAccount, on_delete=models.SET_NULL, null=True, blank=True, related_name="generations"
    )
    # A task-style account's tasks for the current attempt: {"ids": [...], "slot": the account's slot,
    # "created": epoch seconds}. The generation stays bound to that account until they end.
    upstream_tasks = models.JSONField(null=True, blank=True)
    result_size = models.CharField(max_length=20, blank=True)
    result_quality = models.CharField(max_length=10, blank=True)
    result_format = models.CharField(max_length=10, blank=True)

    objects = GenerationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["author", "idempotency_key"],
                condition=~Q(idempotency_key=""),
                name="generation_idempotency_key_unique_per_author",
            )
        ]
        indexes = [
            models.Index(fields=["workspace", "-created_at"]),
            models.Index(
                fields=["created_at"], condition=Q(task_pending=True), name="generation_task_pending"
            ),
            models.Index(
                fields=["created_at"], condition=Q(webhook_pending=True), name="generation_webhook_pending"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prompt[:40]} ({self.status})"

    @property
    def ledger_reference(self) -> str:
        return f"generation:{self.pk}"

    @property
    def generation_spec(self) -> GenerationSpec:
        return GenerationSpec.from_dict(self.spec)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def elapsed(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    def server_timing(self) -> str:
        """The Server-Timing header of an answer carrying this generation: queue, upstream and storage."""
        parts = [
            f"{name};dur={value}"
            for name, value in (
                ("queue", self.queue_ms),
                ("upstream", self.upstream_latency_ms),
                ("storage", self.storage_ms),
            )
            if value is not None
        ]
        return ", ".join(parts)

    def transition(self, *, from_statuses: tuple[str, ...], to: str, **changes: Any) -> bool:
        """Move to `to` only if the row is still in one of `from_statuses`; True if this caller won."""
        now = timezone.now()
        changes.setdefault("heartbeat_at", now)
        if to == Status.RUNNING:
            changes.setdefault("started_at", now)
        if to not in ACTIVE_STATUSES:
            changes.setdefault("finished_at", now)
        won = bool(
            Generation.objects.filter(pk=self.pk, status__in=from_statuses).update(
                status=to, seq=F("seq") + 1, **changes
            )
        )
        if won:
            self.refresh_from_db()
        return won


class Image(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="images")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(upload_to="images/%Y/%m/")
    thumbnail = models.FileField(upload_to="thumbnails/%Y/%m/")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=10)
    bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["generation", "index"]
        # The gallery's order, newest first with the id as a tie-break for its cursor (studio.web.gallery).
        indexes = [models.Index(fields=["workspace", "-created_at", "-id"], name="image_gallery_order")]

    def __str__(self) -> str:
        return f"{self.width}x{self.height} {self.format}"

    @property
    def content_type(self) -> str:
        return f"image/{self.format}"


class Favourite(models.Model):
    """A star a user put on an image: private to that user, whoever else shares the workspace."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="favourites")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="favourites")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "image"], name="favourite_unique")]

    def __str__(self) -> str:
        return f"{self.user} likes {self.image_id}"


class InputRole(models.TextChoices):
    REFERENCE = "reference", "Reference"
    MASK = "mask", "Mask"


class GenerationInput(models.Model):
    """An image a generation was given: a reference (the first is the edit source) or the mask."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="inputs")
    role = models.CharField(max_length=10, choices=InputRole.choices)
    position = models.PositiveSmallIntegerField(default=0)
    # Empty until fetched when the client gave a URL (the worker fetches it, safely, before generating).
    file = models.FileField(upload_to="inputs/%Y/%m/", blank=True)
    url = models.URLField(max_length=2000, blank=True)
    content_type = models.CharField(max_length=30, blank=True)
    # Set when the input was picked from the gallery, for lineage.
    source_image = models.ForeignKey(
        Image, on_delete=models.SET_NULL, null=True, blank=True, related_name="uses"
    )

    # Not stored: set by the image page for its lineage (studio.web.images).
    label: str
    source_readable: bool

    class Meta:
        ordering = ["role", "position"]

    def __str__(self) -> str:
        return f"{self.get_role_display()} {self.position} of {self.generation_id}"


class WebhookDelivery(models.Model):
    """One attempt to POST a finished task's status to its callback URL."""

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="webhook_deliveries")
    url = models.URLField(max_length=2000)
    attempt = models.PositiveSmallIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    succeeded = models.BooleanField(default=False)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["generation", "attempt"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        outcome = "delivered" if self.succeeded else f"failed ({self.status_code or self.error})"
        return f"Webhook {self.attempt} for {self.generation_id}: {outcome}"


class OrphanAction(models.TextChoices):
    DELETE = "delete", "Delete them"
    ARCHIVE = "archive", "Move them to a cheaper storage class (S3 only; deleted elsewhere)"


class RetentionPolicy(models.Model):
    """What the daily retention job (studio.engine.retention) removes from media storage: one row, edited in
    the admin. Files a row still names are never touched, whatever is set here."""

    enabled = models.BooleanField(
        default=True, help_text="Run the daily job (the `retention` command runs on demand either way)."
    )
    partials_after_hours = models.PositiveIntegerField(
        default=24,
        validators=[MinValueValidator(1)],
        help_text="Delete the partial image of a generation that ended this long ago.",
    )
    orphans_after_hours = models.PositiveIntegerField(
        default=72,
        validators=[MinValueValidator(1)],
        help_text="Remove files no image, input or generation names (those of deleted generations, or left "
        "by a failed delete) once they are this old. Younger ones may belong to a generation being saved.",
    )
    orphan_action = models.CharField(max_length=10, choices=OrphanAction.choices, default=OrphanAction.DELETE)
    archive_storage_class = models.CharField(
        max_length=30, default="GLACIER_IR", help_text="The S3 storage class archived files move to."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "retention policy"
        verbose_name_plural = "retention policy"

    def __str__(self) -> str:
        return "Retention policy"

    @classmethod
    def current(cls) -> "RetentionPolicy":
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy
