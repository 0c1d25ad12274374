from typing import Any, cast

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts import audit
from accounts.models import AuditAction, User
from studio.engine import pool
from studio.engine.services import generation_refund
from studio.engine.spec import RESOLUTIONS
from studio.models import (
    LINK_INPUT_KINDS,
    TASK_KINDS,
    Generation,
    GenerationInput,
    Image,
    PriceRule,
    Project,
    RetentionPolicy,
    UpstreamAccount,
    WebhookDelivery,
)

GENERATION_FIELDS = (
    "id",
    "status",
    "workspace",
    "project",
    "author",
    "source",
    "provider",
    "cost",
    "prompt",
    "spec",
    "stage",
    "error",
    "error_code",
    "attempts",
    "idempotency_key",
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "revised_prompt",
    "usage",
    "upstream_latency_ms",
    "upstream_request_id",
    "result_size",
    "result_quality",
    "result_format",
)


class ImageInline(admin.TabularInline):
    model = Image
    fields = ("index", "width", "height", "format", "bytes", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class GenerationInputInline(admin.TabularInline):
    model = GenerationInput
    fields = ("role", "position", "content_type", "source_image")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class WebhookDeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    fields = ("attempt", "created_at", "status_code", "succeeded", "duration_ms", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Generation)
class GenerationAdmin(admin.ModelAdmin):
    """Generations are changed only by their lifecycle (runner and services), so here they are read-only;
    the one thing an admin does is refund."""

    list_display = (
        "created_at",
        "short_prompt",
        "author",
        "workspace",
        "status",
        "cost",
        "provider",
        "source",
    )
    list_filter = ("status", "provider", "source", "created_at")
    list_select_related = ("author", "workspace")
    search_fields = ("=id", "prompt", "author__username", "workspace__name")
    date_hierarchy = "created_at"
    fields = GENERATION_FIELDS
    readonly_fields = GENERATION_FIELDS
    inlines = [GenerationInputInline, ImageInline, WebhookDeliveryInline]
    actions = ["refund"]

    @admin.display(description="prompt")
    def short_prompt(self, generation: Generation) -> str:
        return generation.prompt[:60] + ("…" if len(generation.prompt) > 60 else "")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting would leave stored files behind and spend entries without their generation.
        return False

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.adjust_credits")

    @admin.action(description="Refund selected failed or canceled generations", permissions=["refund"])
    def refund(self, request: HttpRequest, queryset: QuerySet[Generation]) -> None:
        refunded = skipped = 0
        for generation in queryset:
            if generation_refund(
                generation, reason=f"Refunded by {request.user} in the admin", actor=cast(User, request.user)
            ):
                refunded += 1
            else:
                skipped += 1
        if refunded:
            self.message_user(request, f"Refunded {refunded} generation(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{skipped} generation(s) not refunded: already refunded, or not failed or canceled. "
                "To give credits for a finished generation, grant them on the user.",
                messages.WARNING,
            )


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "is_default", "archived_at", "created_at")
    list_filter = ("is_default", "archived_at")
    list_select_related = ("workspace",)
    search_fields = ("name", "workspace__name")
    raw_id_fields = ("workspace",)


@admin.register(PriceRule)
class PriceRuleAdmin(admin.ModelAdmin):
    """Per-image prices that win over CREDIT_PRICES in the settings; the next submission uses them."""

    list_display = ("tier", "quality", "credits")
    list_editable = ("credits",)
    list_filter = ("tier",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    """Every attempt to deliver a finished API task's webhook: history, so read-only."""

    list_display = ("generation", "attempt", "url", "status_code", "succeeded", "duration_ms", "created_at")
    list_filter = ("succeeded",)
    list_select_related = ("generation",)
    search_fields = ("generation__id", "url")
    readonly_fields = ("generation", "url", "attempt", "status_code", "error", "succeeded", "duration_ms")
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class UpstreamAccountForm(forms.ModelForm):
    """The key is written, never shown: the field is always empty, and left empty keeps the stored key."""

    base_url = forms.URLField(
        label="Base URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="Empty for OpenAI's own API; a gateway's URL ending in /v1; a task service's root URL.",
    )
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the current key.",
    )

    class Meta:
        model = UpstreamAccount
        fields = (
            "name", "kind", "base_url", "api_key", "model", "tiers", "priority", "weight", "max_concurrent",
            "enabled", "price_per_image", "price_per_million_tokens",
        )  # fmt: skip

    def clean_api_key(self) -> str:
        secret: str = self.cleaned_data.get("api_key", "")
        if not secret and not self.instance.api_key_encrypted:
            raise forms.ValidationError("A new account needs its API key.")
        return secret

    def clean_tiers(self) -> str:
        tiers = [
            tier.strip().upper() for tier in self.cleaned_data.get("tiers", "").split(",") if tier.strip()
        ]
        unknown = [tier for tier in tiers if tier not in RESOLUTIONS]
        if unknown or not tiers:
            raise forms.ValidationError(f"Tiers are a comma-separated choice of {', '.join(RESOLUTIONS)}.")
        return ",".join(tiers)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        if kind in TASK_KINDS and not cleaned.get("base_url"):
            self.add_error(
                "base_url", "A task service needs its root URL (for example https://api.givon.ai)."
            )
        if kind in LINK_INPUT_KINDS and not settings.STUDIO_PUBLIC_URL:
            self.add_error(
                "kind",
                f"{kind} takes input images only as links to this studio's media: set STUDIO_PUBLIC_URL "
                "(where the service can reach the studio, https://studio.example.com) and restart first.",
            )
        return cleaned

    def save(self, commit: bool = True) -> UpstreamAccount:
        account: UpstreamAccount = super().save(commit=False)
        if secret := self.cleaned_data.get("api_key"):
            account.set_api_key(secret)
        if account.enabled:
            account.disabled_reason = ""  # enabled again by hand: whatever disabled it is fixed
        if commit:
            account.save()
        return account


@admin.register(UpstreamAccount)
class UpstreamAccountAdmin(admin.ModelAdmin):
    form = UpstreamAccountForm
    list_display = (
        "name", "kind", "model", "priority", "weight", "max_concurrent", "enabled", "health", "slots",
    )  # fmt: skip
    list_filter = ("kind", "enabled")
    search_fields = ("name", "base_url", "model")
    readonly_fields = (
        "usage", "cooldown_until", "breaker_open_until", "consecutive_failures", "disabled_reason",
    )  # fmt: skip
    actions = ("test_connection",)

    def save_model(self, request: HttpRequest, obj: UpstreamAccount, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        fields = sorted(name for name in form.changed_data if name != "api_key")
        audit.record(
            AuditAction.UPSTREAM_ACCOUNT_CHANGED,
            actor=cast(User, request.user),
            target=obj.name,
            change="changed" if change else "added",
            fields=fields,
            api_key_replaced=bool(form.cleaned_data.get("api_key")),  # whether, never what
        )

    def delete_model(self, request: HttpRequest, obj: UpstreamAccount) -> None:
        audit.record(
            AuditAction.UPSTREAM_ACCOUNT_CHANGED,
            actor=cast(User, request.user),
            target=obj.name,
            change="deleted",
        )
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[UpstreamAccount]) -> None:
        for account in queryset:
            audit.record(
                AuditAction.UPSTREAM_ACCOUNT_CHANGED,
                actor=cast(User, request.user),
                target=account.name,
                change="deleted",
            )
        super().delete_queryset(request, queryset)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        # The admin notice beside the email: an account the studio turned off says so until it is fixed.
        for account in UpstreamAccount.objects.filter(enabled=False).exclude(disabled_reason=""):
            self.message_user(
                request,
                f"The studio stopped using {account.name}: {account.disabled_reason}. "
                "Fix it, then enable it.",
                messages.WARNING,
            )
        return super().changelist_view(request, extra_context)

    @admin.display(description="Usage")
    def usage(self, account: UpstreamAccount) -> str:
        if account.pk is None:
            return "-"
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    window.label,
                    window.requests,
                    window.succeeded,
                    ", ".join(f"{code} {count}" for code, count in window.failures.items()) or "none",
                    window.images,
                    window.tokens,
                    "-"
                    if window.latency_p50_ms is None
                    else f"{window.latency_p50_ms} / {window.latency_p95_ms} ms",
                    "-" if window.estimated_cost is None else window.estimated_cost,
                )
                for window in pool.usage(account)
            ),
        )
        return format_html(
            "<table><thead><tr><th></th><th>Requests</th><th>Succeeded</th><th>Failures</th><th>Images</th>"
            "<th>Tokens</th><th>Latency p50 / p95</th><th>Estimated cost</th></tr></thead><tbody>{}</tbody>"
            "</table>",
            rows,
        )

    @admin.action(description="Test connection")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[UpstreamAccount]) -> None:
        for account in queryset:
            worked, said = pool.test_connection(account)
            self.message_user(
                request, f"{account.name}: {said}", messages.SUCCESS if worked else messages.ERROR
            )

    @admin.display(description="Health")
    def health(self, account: UpstreamAccount) -> str:
        now = timezone.now()
        if not account.enabled:
            return f"Disabled: {account.disabled_reason}" if account.disabled_reason else "Disabled"
        if account.breaker_open_until and account.breaker_open_until > now:
            return f"Breaker open until {account.breaker_open_until:%H:%M:%S}"
        if account.cooldown_until and account.cooldown_until > now:
            return f"Cooling down until {account.cooldown_until:%H:%M:%S}"
        return "OK"

    @admin.display(description="In use")
    def slots(self, account: UpstreamAccount) -> str:
        try:
            return f"{pool.slots_in_use(account)} / {account.max_concurrent}"
        except Exception:
            return f"? / {account.max_concurrent}"


@admin.register(RetentionPolicy)
class RetentionPolicyAdmin(admin.ModelAdmin):
    """One policy: no second one to add, none to delete. `manage.py retention --dry-run` shows its effect."""

    list_display = ("__str__", "enabled", "partials_after_hours", "orphans_after_hours", "orphan_action")
    readonly_fields = ("updated_at",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not RetentionPolicy.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
