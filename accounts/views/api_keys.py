"""API keys: a user makes and revokes keys for the workspaces they can generate in. A key is shown once."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts import services
from accounts.forms import ApiKeyForm
from accounts.http import AuthenticatedRequest
from accounts.models import ApiKey


def _page(
    request: AuthenticatedRequest,
    form: ApiKeyForm,
    *,
    status: int = 200,
    **shown_once: object,
) -> HttpResponse:
    keys = ApiKey.objects.filter(user=request.user).select_related("workspace")
    context = {
        "form": form,
        "keys": keys,
        "overlap_hours": settings.WEBHOOK_SECRET_OVERLAP_SECONDS // 3600,
        **shown_once,
    }
    return render(request, "accounts/api_keys.html", context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def api_keys(request: AuthenticatedRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST or None, user=request.user)
    if request.method == "POST":
        if not form.is_valid():
            return _page(request, form, status=400)
        key, secret = services.api_key_create(
            user=request.user, workspace=form.cleaned_data["workspace"], name=form.cleaned_data["name"]
        )
        # Shown on this answer only: the studio keeps a hash of the key and the webhook secret encrypted.
        return _page(
            request, ApiKeyForm(user=request.user), new_secret=secret, new_webhook_secret=key.webhook_secret
        )
    return _page(request, form)


@login_required
@require_POST
def api_key_revoke(request: AuthenticatedRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    services.api_key_revoke(key=key, actor=request.user)
    messages.success(request, f"The key “{key.name}” is revoked; requests with it are refused from now on.")
    return redirect("accounts:api-keys")


@login_required
@require_POST
def api_key_rotate_webhook_secret(request: AuthenticatedRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey.objects.active(), pk=key_id, user=request.user)
    secret = services.api_key_rotate_webhook_secret(key=key, actor=request.user)
    return _page(request, ApiKeyForm(user=request.user), new_webhook_secret=secret, rotated_key=key)
