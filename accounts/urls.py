from django.urls import path

from accounts.views import api_keys, invitations, workspaces

app_name = "accounts"

urlpatterns = [
    # Sign up, log in, log out, verification and password reset: django-allauth, at accounts/ (config.urls)
    # Workspaces
    path("workspaces/", workspaces.workspace_list, name="workspace-list"),
    path("workspaces/new/", workspaces.workspace_new, name="workspace-new"),
    path("workspaces/switch/", workspaces.workspace_switch, name="workspace-switch"),
    path("workspaces/<slug:slug>/leave/", workspaces.workspace_leave_view, name="workspace-leave"),
    # Members and invitations (owners manage; every member sees the list)
    path("workspaces/<slug:slug>/members/", workspaces.workspace_members, name="workspace-members"),
    path("workspaces/<slug:slug>/audit/", workspaces.workspace_audit, name="workspace-audit"),
    path("workspaces/<slug:slug>/two-factor/", workspaces.workspace_two_factor, name="workspace-two-factor"),
    path(
        "workspaces/<slug:slug>/members/<int:membership_id>/role/", workspaces.member_role, name="member-role"
    ),
    path(
        "workspaces/<slug:slug>/members/<int:membership_id>/remove/",
        workspaces.member_remove,
        name="member-remove",
    ),
    path("workspaces/<slug:slug>/invitations/", workspaces.workspace_invite, name="workspace-invite"),
    path(
        "workspaces/<slug:slug>/invitations/<int:invitation_id>/cancel/",
        workspaces.invitation_cancel,
        name="invitation-cancel",
    ),
    path("invitations/<str:token>/", invitations.invitation, name="invitation"),
    # API keys
    path("settings/api-keys/", api_keys.api_keys, name="api-keys"),
    path("settings/api-keys/<int:key_id>/revoke/", api_keys.api_key_revoke, name="api-key-revoke"),
    path(
        "settings/api-keys/<int:key_id>/rotate-webhook-secret/",
        api_keys.api_key_rotate_webhook_secret,
        name="api-key-rotate-webhook-secret",
    ),
]
