"""The audit log: security and money events recorded with actor, IP and time.

Callers say what happened (`record(AuditAction.ROLE_CHANGED, actor=..., workspace=..., target=...)`); the
address comes from the request being served, which AuditMiddleware keeps in a context variable, so the
services that change things need no request of their own. Details are small, plain facts (a role, an amount,
a key's prefix); a secret is never passed, and `record` refuses keys that name one.
"""

import contextvars
import logging
from typing import Any

from allauth.mfa.signals import authenticator_added, authenticator_removed
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from accounts.http import SyncAndAsyncMiddleware
from accounts.models import AuditAction, AuditEvent, User, Workspace

logger = logging.getLogger("studio.audit")

_current_ip: contextvars.ContextVar[str | None] = contextvars.ContextVar("audit_ip", default=None)
SECRET_WORDS = ("password", "secret", "token", "key_hash")


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: behind the studio's own proxy (BEHIND_PROXY), the last hop it appended."""
    if settings.SECURE_PROXY_SSL_HEADER and (forwarded := request.META.get("HTTP_X_FORWARDED_FOR")):
        return forwarded.split(",")[-1].strip() or None
    return request.META.get("REMOTE_ADDR") or None


class AuditMiddleware(SyncAndAsyncMiddleware):
    """Notes the client's address for the audit events the request records (async-capable: no thread hop)."""

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        token = _current_ip.set(client_ip(request))
        try:
            return self.get_response(request)
        finally:
            _current_ip.reset(token)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        # The variable is set in this task's context; the view's thread (sync_to_async) runs in a copy of it.
        token = _current_ip.set(client_ip(request))
        try:
            return await self.get_response(request)
        finally:
            _current_ip.reset(token)


def record(
    action: str,
    *,
    actor: User | None = None,
    actor_label: str = "",
    workspace: Workspace | None = None,
    target: str = "",
    **details: Any,
) -> AuditEvent:
    named_secrets = [name for name in details if any(word in name.lower() for word in SECRET_WORDS)]
    if named_secrets:
        raise ValueError(f"the audit log keeps no secrets: {', '.join(named_secrets)}")
    return AuditEvent.objects.create(
        action=action,
        actor=actor,
        actor_label=actor_label or (actor.get_username() if actor else ""),
        ip=_current_ip.get(),
        workspace=workspace,
        target=target[:200],
        details=details,
    )


@receiver(user_logged_in)
def _logged_in(sender: object, request: HttpRequest, user: User, **kwargs: object) -> None:
    record(AuditAction.LOGIN_SUCCEEDED, actor=user)


@receiver(user_logged_out)
def _logged_out(sender: object, request: HttpRequest, user: User | None, **kwargs: object) -> None:
    if user is not None:
        record(AuditAction.LOGOUT, actor=user)


@receiver(user_login_failed)
def _login_failed(
    sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: object
) -> None:
    # `credentials` has the password blanked by Django; only the name tried is kept.
    tried = credentials.get("username") or credentials.get("email") or ""
    record(AuditAction.LOGIN_FAILED, actor_label=str(tried)[:150])


@receiver(authenticator_added)
def _second_factor_added(
    sender: object, request: HttpRequest, user: User, authenticator: object, **kwargs: object
) -> None:
    record(AuditAction.TWO_FACTOR_ADDED, actor=user, kind=str(getattr(authenticator, "type", "")))


@receiver(authenticator_removed)
def _second_factor_removed(
    sender: object, request: HttpRequest, user: User, authenticator: object, **kwargs: object
) -> None:
    record(AuditAction.TWO_FACTOR_REMOVED, actor=user, kind=str(getattr(authenticator, "type", "")))
