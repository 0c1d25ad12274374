from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from accounts.forms import CreditAdjustmentForm
from accounts.ledger import InsufficientCredits
from accounts.models import ApiKey, AuditEvent, Invitation, LedgerEntry, Membership, User, Workspace
from accounts.services import api_key_revoke, credits_grant_or_deduct

# What makes a user more powerful: only a superuser may change these (see UserAdmin, GroupAdmin).
PRIVILEGE_FIELDS = ("is_staff", "is_superuser", "groups", "user_permissions")
LEDGER_FIELDS = ("created_at", "kind", "amount", "balance_after", "actor", "reason", "reference")


class ReadOnlyMixin:
    """The ledger is history: written only through accounts.ledger, never edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class LedgerEntryInline(ReadOnlyMixin, admin.TabularInline):
    model = LedgerEntry
    fk_name = "user"
    fields = LEDGER_FIELDS
    readonly_fields = LEDGER_FIELDS
    ordering = ("-created_at", "-id")
    extra = 0
    verbose_name_plural = "ledger (newest first)"


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "credits", "is_staff", "date_joined")
    readonly_fields = ("credits",)
    fieldsets = (*(BaseUserAdmin.fieldsets or ()), ("Credits", {"fields": ("credits",)}))
    inlines = [LedgerEntryInline]

    def get_urls(self) -> list[URLPattern]:
        credits_url = path(
            "<int:user_id>/credits/",
            self.admin_site.admin_view(self.credits_view),
            name="accounts_user_credits",
        )
        return [credits_url, *super().get_urls()]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        """Only a superuser grants rights: for anyone else staff status, superuser status, groups and
        permissions are read-only, on every user, their own account included."""
        fields = tuple(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return fields
        return (*fields, *PRIVILEGE_FIELDS)

    def has_adjust_credits_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.adjust_credits")

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_adjust_credits": self.has_adjust_credits_permission(request),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def credits_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        """Grant or deduct credits: one ledger entry with the admin as its actor."""
        if not self.has_adjust_credits_permission(request):
            raise PermissionDenied
        user = get_object_or_404(User, pk=user_id)
        form = CreditAdjustmentForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            amount = form.cleaned_data["amount"]
            try:
                entry = credits_grant_or_deduct(
                    user=user,
                    amount=amount,
                    reason=form.cleaned_data["reason"],
                    actor=cast(User, request.user),
                )
            except InsufficientCredits as error:
                message = (
                    f"Not deducted: {user} has {error.balance:,} credits, fewer than {error.needed:,}. "
                    "The balance cannot go below zero."
                )
                form.add_error("amount", message)
                self.message_user(request, message, messages.ERROR)
            else:
                verb = "Granted" if amount > 0 else "Deducted"
                self.message_user(
                    request,
                    f"{verb} {abs(amount):,} credits: {user} now has {entry.balance_after:,}.",
                    messages.SUCCESS,
                )
                return redirect(reverse("admin:accounts_user_change", args=[user.pk]))
        user.refresh_from_db(fields=["credits"])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": user,
            "title": f"Grant or deduct credits: {user}",
            "form": form,
            "recent_entries": user.ledger_entries.select_related("actor")[:10],
        }
        return TemplateResponse(request, "admin/accounts/user/credits.html", context)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


class InvitationInline(admin.TabularInline):
    model = Invitation
    fk_name = "workspace"
    fields = ("email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "accepted_by")
    readonly_fields = fields
    extra = 0
    can_delete = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Invitations carry a token that only their email shows; they are made on the members page.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_personal", "created_by", "created_at")
    list_filter = ("is_personal",)
    search_fields = ("name", "slug", "memberships__user__username")
    inlines = [MembershipInline, InvitationInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ("created_at", "user", "kind", "amount", "balance_after", "actor", "reason", "reference")
    list_filter = ("kind", "created_at")
    list_select_related = ("user", "actor")
    search_fields = ("user__username", "reference", "reason")
    date_hierarchy = "created_at"


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "user", "workspace", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("name", "prefix", "user__username", "workspace__slug")
    readonly_fields = (
        "prefix",
        "user",
        "workspace",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    )
    fields = (
        "name",
        "prefix",
        "user",
        "workspace",
        "rate_limit_per_minute",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    )
    actions = ["revoke_keys"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # keys are made by their owners, or with `manage.py create_api_key`

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(key=key, actor=cast(User, request.user))
        self.message_user(request, "The selected keys are revoked.")


# A group carries permissions: whoever may change a group may raise its members, themselves included.
admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin):
    """Groups and their permissions, for superusers only."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Every security and money event, for admins; history, so read-only."""

    list_display = ("created_at", "action", "actor_label", "ip", "workspace", "target")
    list_filter = ("action", "created_at")
    list_select_related = ("workspace",)
    search_fields = ("actor_label", "target", "ip", "workspace__name")
    date_hierarchy = "created_at"
    readonly_fields = ("created_at", "action", "actor", "actor_label", "ip", "workspace", "target", "details")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
