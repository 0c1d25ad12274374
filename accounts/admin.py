from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts.models import LedgerEntry, Membership, User, Workspace


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "credits", "is_staff", "date_joined")
    readonly_fields = ("credits",)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_personal", "created_at")
    search_fields = ("name", "slug")
    inlines = [MembershipInline]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "user", "kind", "amount", "balance_after", "actor", "reason", "reference")
    list_filter = ("kind", "created_at")
    search_fields = ("user__username", "reference", "reason")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
