"""Identity and money: users, workspaces and their members, invitations, and the credit ledger."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.text import slugify

from accounts import crypto


class User(AbstractUser):
    # The balance is only ever changed by accounts.ledger, which writes a LedgerEntry in the same
    # transaction; the database refuses a negative value whatever the code does.
    credits = models.BigIntegerField(default=0, editable=False)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(credits__gte=0), name="user_credits_not_negative")]
        # Moving money is its own permission: staff who may edit users may not grant themselves credits.
        permissions = [("adjust_credits", "Can grant or deduct credits, and refund generations")]

    def __str__(self) -> str:
        return self.username


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


class WorkspaceQuerySet(models.QuerySet):
    def for_user(self, user: "User") -> "WorkspaceQuerySet":
        return self.filter(memberships__user=user)


class Workspace(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=120, unique=True)
    is_personal = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set by its owners: members work here only with a second factor (TOTP) on their account.
    require_two_factor = models.BooleanField(default=False)

    objects = WorkspaceQuerySet.as_manager()

    class Meta:
        ordering = ["-is_personal", "name"]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def unique_slug(cls, name: str) -> str:
        base = slugify(name)[:100] or "workspace"
        slug, counter = base, 1
        while cls.objects.filter(slug=slug).exists():
            counter += 1
            slug = f"{base}-{counter}"
        return slug

    def role_of(self, user: "User") -> str | None:
        if not getattr(user, "is_authenticated", False):
            return None
        return self.memberships.filter(user=user).values_list("role", flat=True).first()


class Membership(models.Model):
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.EDITOR)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.workspace} ({self.role})"

    @property
    def can_write(self) -> bool:
        return self.role in (Role.OWNER, Role.EDITOR)

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER


class InvitationQuerySet(models.QuerySet):
    def pending(self) -> "InvitationQuerySet":
        return self.filter(accepted_at__isnull=True, expires_at__gt=timezone.now())


class Invitation(models.Model):
    """A single-use, expiring link that makes whoever opens it (logged in) a member with `role`.

    Only a hash of the token is stored: the link in the email is the one place the token exists.
    """

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.EDITOR)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = InvitationQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.workspace} ({self.role})"

    @staticmethod
    def hash_token(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    @classmethod
    def new(
        cls, *, workspace: Workspace, email: str, role: str, invited_by: "User"
    ) -> tuple["Invitation", str]:
        """An unsaved invitation and its token (the token is not kept anywhere else)."""
        token = secrets.token_urlsafe(32)
        invitation = cls(
            workspace=workspace,
            email=email,
            role=role,
            invited_by=invited_by,
            token_hash=cls.hash_token(token),
            expires_at=timezone.now() + timedelta(days=settings.INVITATION_VALID_DAYS),
        )
        return invitation, token

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.expires_at > timezone.now()


class EntryKind(models.TextChoices):
    BONUS = "bonus", "Signup bonus"
    GRANT = "grant", "Grant"
    SPEND = "spend", "Spend"
    REFUND = "refund", "Refund"
    ADJUSTMENT = "adjustment", "Adjustment"


class LedgerEntry(models.Model):
    """One change of a user's balance. The balance always equals the sum of these amounts."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    amount = models.BigIntegerField(help_text="Positive adds credits, negative takes them.")
    balance_after = models.BigIntegerField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=300, blank=True)
    # What the entry is about, for example "generation:<uuid>". Spends and refunds are unique per reference,
    # so one generation is charged once and refunded at most once, whatever races happen.
    reference = models.CharField(max_length=100, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "reference"],
                condition=Q(kind__in=["spend", "refund"]),
                name="ledger_one_spend_and_one_refund_per_reference",
            ),
            models.CheckConstraint(
                condition=Q(balance_after__gte=0), name="ledger_balance_after_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount:+} for {self.user}"


class ApiKeyQuerySet(models.QuerySet):
    def active(self) -> "ApiKeyQuerySet":
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A key for the public API. Only a hash is stored: the key itself is shown once, when it is made."""

    PREFIX = "sk-studio-"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=24, help_text="The start of the key, to recognise it in lists.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty for the studio's default."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The secret that signs this key's webhooks: random, encrypted at rest (accounts.crypto), shown once.
    # After a rotation the previous one signs too, for WEBHOOK_SECRET_OVERLAP_SECONDS.
    webhook_secret_encrypted = models.TextField(editable=False)
    previous_webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    webhook_secret_rotated_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @staticmethod
    def hash(secret: str) -> str:
        # The secret is 256 random bits: a fast hash is enough, nothing to brute-force.
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def issue(cls, *, user: "User", workspace: Workspace, name: str) -> tuple["ApiKey", str]:
        """Make a key; return it and its secret, which is never stored and cannot be shown again."""
        secret = cls.PREFIX + secrets.token_urlsafe(32)
        prefix = secret[: len(cls.PREFIX) + 6]
        key = cls.objects.create(
            user=user,
            workspace=workspace,
            name=name,
            prefix=prefix,
            key_hash=cls.hash(secret),
            webhook_secret_encrypted=crypto.encrypt(cls.new_webhook_secret()),
        )
        return key, secret

    @staticmethod
    def new_webhook_secret() -> str:
        return "whsec_" + secrets.token_urlsafe(32)

    @classmethod
    def authenticate(cls, secret: str) -> "ApiKey | None":
        # key_hash is unique: no ordering to add, as first() would.
        found = cls.objects.active().select_related("user", "workspace").filter(key_hash=cls.hash(secret))
        return next(iter(found[:1]), None)

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def webhook_secret(self) -> str:
        """The secret that signs this key's webhook deliveries (decrypted on use)."""
        return crypto.decrypt(self.webhook_secret_encrypted)

    def webhook_signing_secrets(self) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the previous one during the overlap
        after a rotation, so a receiver still on the old secret keeps verifying until it is updated."""
        found = [self.webhook_secret]
        overlap = timedelta(seconds=settings.WEBHOOK_SECRET_OVERLAP_SECONDS)
        rotated = self.webhook_secret_rotated_at
        if self.previous_webhook_secret_encrypted and rotated and timezone.now() - rotated < overlap:
            found.append(crypto.decrypt(self.previous_webhook_secret_encrypted))
        return found

    def rotate_webhook_secret(self) -> str:
        """A new webhook secret, returned to be shown once; the current one keeps signing for the overlap."""
        secret = self.new_webhook_secret()
        self.previous_webhook_secret_encrypted = self.webhook_secret_encrypted
        self.webhook_secret_encrypted = crypto.encrypt(secret)
        self.webhook_secret_rotated_at = timezone.now()
        self.save(
            update_fields=[
                "webhook_secret_encrypted",
                "previous_webhook_secret_encrypted",
                "webhook_secret_rotated_at",
            ]
        )
        return secret

    def revoke(self, *, by: "User | None" = None) -> None:
        ApiKey.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now(), revoked_by=by
        )
        self.refresh_from_db()


class AuditAction(models.TextChoices):
    LOGIN_SUCCEEDED = "login.succeeded", "Logged in"
    LOGIN_FAILED = "login.failed", "Login failed"
    LOGOUT = "logout", "Logged out"
    SIGNUP = "signup", "Signed up"
    WORKSPACE_CREATED = "workspace.created", "Workspace created"
    ROLE_CHANGED = "member.role_changed", "Role changed"
    MEMBER_REMOVED = "member.removed", "Member removed"
    INVITATION_CREATED = "invitation.created", "Invitation sent"
    INVITATION_REVOKED = "invitation.revoked", "Invitation revoked"
    INVITATION_ACCEPTED = "invitation.accepted", "Invitation accepted"
    API_KEY_CREATED = "api_key.created", "API key created"
    API_KEY_REVOKED = "api_key.revoked", "API key revoked"
    WEBHOOK_SECRET_ROTATED = "api_key.webhook_secret_rotated", "Webhook secret rotated"
    CREDITS_CHANGED = "credits.changed", "Credits granted or deducted"
    TWO_FACTOR_ADDED = "two_factor.added", "Two-factor authentication added"
    TWO_FACTOR_REMOVED = "two_factor.removed", "Two-factor authentication removed"
    TWO_FACTOR_REQUIRED = "workspace.two_factor_required", "Two-factor requirement changed"
    UPSTREAM_ACCOUNT_CHANGED = "upstream_account.changed", "Upstream account added, changed or deleted"


class AuditEvent(models.Model):
    """A security or money event: who, from where, when, to what. Never a secret (see accounts.audit)."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=40, choices=AuditAction.choices, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Who it was, kept as text: the event outlives a deleted account, and a failed login has no user.
    actor_label = models.CharField(max_length=150, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    workspace = models.ForeignKey(
        Workspace, on_delete=models.SET_NULL, null=True, blank=True, related_name="audit_events"
    )
    target = models.CharField(max_length=200, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workspace", "-created_at"], name="audit_workspace_recent")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.get_action_display()} by {self.actor_label or '?'}"


class SignupBonus(models.Model):
    """The sign-up bonus, given once per email address (normalised: see accounts.bonus) and once per user,
    whatever accounts come and go: the unique constraints decide, not a check before the grant."""

    email = models.CharField(max_length=254, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="signup_bonus"
    )
    credits = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.credits} credits for {self.email}"
