"""Settings for Studio: one module, driven by the environment. Every variable is listed in README.md."""

import base64
import hashlib
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.logs import configure as configure_logs

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    """A string from the environment; NAME_FILE (for secrets mounted as files) wins over NAME."""
    if path := os.environ.get(f"{name}_FILE"):
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def _bucket_origins(endpoint_url: str | None, bucket: str) -> str:
    """Where a bucket's presigned URLs point, for the CSP: the endpoint itself (path-style addressing) and the
    bucket's name under it (virtual-hosted style); AWS's own hosts without an endpoint."""
    if not endpoint_url:
        return "https://*.amazonaws.com"
    parts = urlsplit(endpoint_url)
    return f"{parts.scheme}://{parts.netloc},{parts.scheme}://{bucket}.{parts.netloc}"


# Everything the studio keeps on disk lives here: SQLite database, media, embedded Redis, static files.
DATA_DIR = Path(envstr("STUDIO_DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


# One switch for the production stance: STUDIO_ENV=production turns on secure cookies, HSTS and HTTPS
# redirects, and refuses to start (naming the variable) without its secrets and real services. Without it,
# the development defaults that `make run` uses: SQLite, an embedded Redis, a key kept in the data directory.
STUDIO_ENV = envstr("STUDIO_ENV", "development")
if STUDIO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"STUDIO_ENV must be development or production, not {STUDIO_ENV!r}.")
PRODUCTION = STUDIO_ENV == "production"


def required_in_production(name: str, why: str) -> str:
    value = envstr(name)
    if PRODUCTION and not value:
        raise ImproperlyConfigured(f"STUDIO_ENV=production needs {name}: {why}.")
    return value


def _secret_key() -> str:
    if key := required_in_production(
        "SECRET_KEY", "a long random secret (for example 50+ random characters)"
    ):
        if PRODUCTION and (len(key) < 50 or len(set(key)) < 5 or key.startswith("django-insecure")):
            raise ImproperlyConfigured(
                "STUDIO_ENV=production needs SECRET_KEY of 50 or more random characters."
            )
        return key
    # Development only: a random key kept in the data directory so sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def _encryption_keys() -> list[str]:
    """Fernet keys for secrets kept encrypted at rest (webhook signing secrets): the first encrypts, every one
    decrypts, so a key is rotated by putting a new one first. Development derives one from SECRET_KEY."""
    keys = envlist("STUDIO_ENCRYPTION_KEYS", "")
    if keys:
        return keys
    required_in_production(
        "STUDIO_ENCRYPTION_KEYS", "one or more Fernet keys, comma-separated (the first encrypts)"
    )
    digest = hashlib.sha256(f"studio-encryption:{SECRET_KEY}".encode()).digest()
    return [base64.urlsafe_b64encode(digest).decode()]


ENCRYPTION_KEYS = _encryption_keys()
DEBUG = envbool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured(
        "STUDIO_ENV=production refuses DEBUG=true: it shows settings and code to anyone."
    )
ALLOWED_HOSTS = envlist(
    "ALLOWED_HOSTS",
    "" if PRODUCTION else "127.0.0.1,localhost,[::1]",
)
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "STUDIO_ENV=production needs ALLOWED_HOSTS: the host names the studio answers to."
    )
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "django_htmx",
    "template_partials",
    "csp",
    "ninja",
    "django_structlog",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "accounts",
    "studio",
]

MIDDLEWARE = [
    # First: a request id for every line the request logs, and one line when it ends (with what the next one
    # binds: its route and duration).
    "django_structlog.middlewares.RequestMiddleware",
    "config.metrics.request_metrics",  # to time everything below it
    "django.middleware.security.SecurityMiddleware",
    "config.static.StaticFilesMiddleware",  # WhiteNoise, without a thread for what is not a static file
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "accounts.middleware.CurrentWorkspaceMiddleware",
    "accounts.middleware.TwoFactorRequiredMiddleware",
    "accounts.audit.AuditMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.studio_header",
                "accounts.context_processors.signup",
            ],
        },
    },
]

# Database: SQLite in the data directory unless DATABASE_URL names a server.
DATABASE_URL = required_in_production(
    "DATABASE_URL", "a PostgreSQL server, e.g. postgres://user:pass@host/studio"
)
if PRODUCTION and not DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured(
        "STUDIO_ENV=production needs DATABASE_URL of a PostgreSQL server (postgres://...)."
    )
SQLITE_OPTIONS = {
    # Workers write from many threads: wait for the lock instead of failing, and take it up front.
    "timeout": 30,
    "transaction_mode": "IMMEDIATE",
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
}
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", 0))}
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)
    else:
        # One test database per process, so two test runs against one server never collide.
        DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
        # A pool of at most DB_POOL_MAX_SIZE connections per process (web, worker and beat each have one),
        # so the whole studio stays within PostgreSQL's max_connections: processes x DB_POOL_MAX_SIZE must
        # fit in the share of it the studio may use. A request finding the pool empty waits DB_POOL_TIMEOUT
        # seconds for a connection, then is answered 503 with Retry-After (config.errors). Connections are
        # checked before use, so a restarted server costs no request.
        if DB_POOL_MAX_SIZE := envint("DB_POOL_MAX_SIZE", 20):
            DATABASES["default"]["CONN_MAX_AGE"] = 0
            DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # with a pool: each checked as it is taken
            DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
                "min_size": min(envint("DB_POOL_MIN_SIZE", 2), DB_POOL_MAX_SIZE),
                "max_size": DB_POOL_MAX_SIZE,
                "timeout": envfloat("DB_POOL_TIMEOUT", 5.0),
            }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "studio.sqlite3"),
            "OPTIONS": dict(SQLITE_OPTIONS),
            # A file, not memory, so worker threads in pipeline tests see the same database.
            # One per process, so two test runs side by side never share it.
            "TEST": {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")},
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# Redis: broker, channel layer and cache. Without REDIS_URL, the embedded Redis that `runstudio` starts
# on a unix socket in the data directory.
REDIS_URL = required_in_production("REDIS_URL", "a Redis server, e.g. redis://host:6379/0") or (
    f"unix://{DATA_DIR / 'redis' / 'redis.sock'}"
)


def _celery_broker_url(redis_url: str) -> str:
    # Kombu names a unix socket "redis+socket:///path"; redis-py and channels-redis say "unix:///path".
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        return f"redis+socket://{parts.path}" + (f"?{parts.query}" if parts.query else "")
    return redis_url


CELERY_BROKER_URL = envstr("CELERY_BROKER_URL") or _celery_broker_url(REDIS_URL)
CELERY_TASK_DEFAULT_QUEUE = envstr("CELERY_QUEUE", "celery")
CELERY_TASK_IGNORE_RESULT = True
# One result backend (the disabled one: no task keeps a result) for every thread. Not marked thread-safe,
# Celery builds a backend on each thread's first use, scanning the installed packages' entry points; under
# ASGI every request has a thread of its own, so every submission paid for a scan (an eighth of the web
# process's time at a thousand clients).
CELERY_RESULT_BACKEND_THREAD_SAFE = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task a worker took and never acknowledged (the worker was killed) is delivered again after this long; see
# "Killed workers" below for how it agrees with the takeover and the sweep.
CELERY_VISIBILITY_TIMEOUT = envint("CELERY_VISIBILITY_TIMEOUT", 600)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_VISIBILITY_TIMEOUT}
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_WORKER_POOL = envstr("CELERY_WORKER_POOL", "threads")
CELERY_WORKER_CONCURRENCY = envint("CELERY_WORKER_CONCURRENCY", 100)

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": envstr("CHANNELS_PREFIX", "studio")},
    }
}

# The cache fails open (config.cache): with Redis away, throttles let requests through instead of failing.
CACHES = {
    "default": {
        "BACKEND": "config.cache.FailOpenRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "studio",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "studio:home"
LOGOUT_REDIRECT_URL = "account_login"

# Accounts on django-allauth: sign up with a user name, an email and a password; log in with either the name
# or the email. Email verification is mandatory in production (no credit before it: see accounts.bonus),
# optional in development so that `make run` reaches a first image in one step.
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_FORMS = {"login": "accounts.forms.LoginForm"}
# Two-factor authentication: TOTP with recovery codes (allauth.mfa), secrets encrypted with accounts.crypto.
MFA_ADAPTER = "accounts.adapter.MFAAdapter"
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = envstr("MFA_TOTP_ISSUER", "Studio")
# The Django admin asks its staff for a second factor (they are sent to set one up first).
ADMIN_REQUIRE_TWO_FACTOR = envbool("ADMIN_REQUIRE_TWO_FACTOR", PRODUCTION)
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*"]
ACCOUNT_UNIQUE_EMAIL = True
# One address per account: a new one replaces the old once it is confirmed.
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = envstr("EMAIL_VERIFICATION", "mandatory" if PRODUCTION else "optional")
if PRODUCTION and ACCOUNT_EMAIL_VERIFICATION != "mandatory":
    raise ImproperlyConfigured("STUDIO_ENV=production needs EMAIL_VERIFICATION=mandatory (or unset).")
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Studio] "
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
# Single sign-on (optional): log in with any OpenID Connect issuer, set by OIDC_SERVER_URL (the issuer, whose
# /.well-known/openid-configuration is read), OIDC_CLIENT_ID and OIDC_CLIENT_SECRET; OIDC_NAME labels the
# button. The issuer is trusted for the address it calls verified (the sign-up bonus follows it); an address
# it does not vouch for is verified by email as at sign-up. An SSO login never takes over a local account
# with the same address: that person links the issuer from their own, logged-in account.
SOCIALACCOUNT_ADAPTER = "accounts.adapter.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS: dict[str, dict[str, object]] = {}
if OIDC_SERVER_URL := envstr("OIDC_SERVER_URL"):
    if not (OIDC_CLIENT_ID := envstr("OIDC_CLIENT_ID")):
        raise ImproperlyConfigured(
            "OIDC_SERVER_URL is set, so OIDC_CLIENT_ID (the studio's client id) is needed."
        )
    if PRODUCTION and not OIDC_SERVER_URL.startswith("https://"):
        raise ImproperlyConfigured("STUDIO_ENV=production needs OIDC_SERVER_URL to be an https:// URL.")
    SOCIALACCOUNT_PROVIDERS["openid_connect"] = {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": envstr("OIDC_PROVIDER_ID", "sso"),
                "name": envstr("OIDC_NAME", "single sign-on"),
                "client_id": OIDC_CLIENT_ID,
                "secret": envstr("OIDC_CLIENT_SECRET"),
                "settings": {"server_url": OIDC_SERVER_URL},
            }
        ],
    }
# Throttles: allauth's defaults, counted in the cache (failed logins 10 a minute per address and 5 in five
# minutes per account; sign-ups 20 a minute per address; password resets 20 a minute per address and 5 per
# account).

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # collected by runstudio; WhiteNoise warns when it is missing
# Media (images, thumbnails, partial images, inputs) are private: never in a public folder, served only by
# views that check access. A folder in the data directory in development; an S3-compatible bucket through
# django-storages when AWS_STORAGE_BUCKET_NAME is set, which production requires (a node keeps nothing on its
# disk). django-storages reads the AWS_* settings below by these names.
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(DATA_DIR / "media")))
AWS_STORAGE_BUCKET_NAME = required_in_production(
    "AWS_STORAGE_BUCKET_NAME", "an S3 bucket for the images, so that no node keeps them on its disk"
)
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# How the image views answer: "redirect" to a short-lived presigned URL of the object (the bytes go from the
# bucket to the browser), or "stream" the bytes through the web process (a bucket the browsers cannot reach).
MEDIA_SERVE = envstr("MEDIA_SERVE", "redirect")
if MEDIA_SERVE not in ("redirect", "stream"):
    raise ImproperlyConfigured(f"MEDIA_SERVE must be redirect or stream, not {MEDIA_SERVE!r}.")
MEDIA_URL_EXPIRE_SECONDS = envint("MEDIA_URL_EXPIRE_SECONDS", 300)
MEDIA_ORIGINS: list[str] = []  # where redirected images load from (the CSP's img-src)
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {"BACKEND": "storages.backends.s3.S3Storage"}
    AWS_S3_ENDPOINT_URL = envstr("AWS_S3_ENDPOINT_URL") or None  # unset: AWS itself
    AWS_S3_REGION_NAME = envstr("AWS_S3_REGION_NAME") or None
    # Unset: boto3's own chain (instance role, ~/.aws, ...).
    AWS_ACCESS_KEY_ID = envstr("AWS_ACCESS_KEY_ID") or None
    AWS_SECRET_ACCESS_KEY = envstr("AWS_SECRET_ACCESS_KEY") or None
    AWS_LOCATION = envstr("AWS_LOCATION", "")  # a key prefix, e.g. "studio/" to share a bucket
    AWS_S3_ADDRESSING_STYLE = (
        envstr("AWS_S3_ADDRESSING_STYLE") or None
    )  # "path" for some S3-compatible servers
    AWS_DEFAULT_ACL = "private"
    AWS_QUERYSTRING_AUTH = True
    AWS_QUERYSTRING_EXPIRE = MEDIA_URL_EXPIRE_SECONDS
    AWS_S3_FILE_OVERWRITE = False
    AWS_S3_SIGNATURE_VERSION = "s3v4"
    # Files the storage downloads whole (checks of an upload) spill to a temporary file past this size.
    AWS_S3_MAX_MEMORY_SIZE = 16 * 1024 * 1024
    MEDIA_ORIGINS = envlist(
        "MEDIA_ORIGINS",
        _bucket_origins(AWS_S3_ENDPOINT_URL, AWS_STORAGE_BUCKET_NAME) if MEDIA_SERVE == "redirect" else "",
    )
# The bearer token Prometheus sends to GET /metrics (config.metrics); without one the endpoint is off (404).
METRICS_TOKEN = envstr("METRICS_TOKEN", "")

# Requests one web process runs in Django at once (the rest wait in line, see config.admission), and how long
# one may wait before it is answered 503 with Retry-After. 0 lets every request in at once.
WEB_CONCURRENCY = envint("WEB_CONCURRENCY", 8)
WEB_QUEUE_TIMEOUT_SECONDS = envfloat("WEB_QUEUE_TIMEOUT_SECONDS", 30.0)
# The largest request body the server takes at all (config.daphne refuses more before queueing it).
REQUEST_MAX_BYTES = envint("REQUEST_MAX_BYTES", 100 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "Studio <studio@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# Who hears of what needs an operator (an upstream account disabled, say): email addresses, comma-separated.
ADMINS = [(address, address) for address in envlist("ADMINS", "")]

# Content Security Policy: no inline scripts or styles anywhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:", *MEDIA_ORIGINS],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

SESSION_COOKIE_SECURE = envbool("SECURE_COOKIES", PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", PRODUCTION)
# Health checks and Prometheus's scrape answer over plain HTTP inside the network, whatever the redirect.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", PRODUCTION)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", PRODUCTION)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("BEHIND_PROXY", False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Money and generation.
SIGNUP_BONUS_CREDITS = envint("SIGNUP_BONUS_CREDITS", 1000)
# Days an invitation link stays valid; unused expired invitations are deleted a month after they expire.
INVITATION_VALID_DAYS = envint("INVITATION_VALID_DAYS", 7)
CREDITS_PER_IMAGE = envint("CREDITS_PER_IMAGE", 100)

# Which upstream draws the images: "openai" when a key is configured, else the offline "local" engine.
OPENAI_API_KEY = envstr("OPENAI_API_KEY")
OPENAI_BASE_URL = envstr("OPENAI_BASE_URL") or None
OPENAI_IMAGE_MODEL = envstr("OPENAI_IMAGE_MODEL", "gpt-image-2")
OPENAI_TIMEOUT_SECONDS = envfloat("OPENAI_TIMEOUT_SECONDS", 120)
OPENAI_TIMEOUT_4K_SECONDS = envfloat("OPENAI_TIMEOUT_4K_SECONDS", 300)
STUDIO_PROVIDER = envstr("STUDIO_PROVIDER", "openai" if OPENAI_API_KEY else "local")
STUDIO_PROVIDER_CHOSEN = bool(envstr("STUDIO_PROVIDER"))  # not the default above
# The upstream pool (studio.engine.pool): a 429 without Retry-After cools an account down this long; this
# many transient failures in a row open its breaker for UPSTREAM_BREAKER_SECONDS; an attempt waits at most
# UPSTREAM_SLOT_WAIT_SECONDS for a free slot (accounts at their max concurrent requests), looking again
# every UPSTREAM_SLOT_POLL_SECONDS.
UPSTREAM_COOLDOWN_SECONDS = envfloat("UPSTREAM_COOLDOWN_SECONDS", 30)
UPSTREAM_BREAKER_FAILURES = envint("UPSTREAM_BREAKER_FAILURES", 3)
UPSTREAM_BREAKER_SECONDS = envfloat("UPSTREAM_BREAKER_SECONDS", 30)
UPSTREAM_SLOT_WAIT_SECONDS = envfloat("UPSTREAM_SLOT_WAIT_SECONDS", 300)
UPSTREAM_SLOT_POLL_SECONDS = envfloat("UPSTREAM_SLOT_POLL_SECONDS", 0.2)
# Images a worker process reads (an answer's multi-megabyte event) or checks and thumbnails at once: the
# rest wait their turn, so a thousand answers arriving together neither hold a thousand images in memory
# nor share the cores a thousand ways (each would finish late).
WORKER_IMAGE_CONCURRENCY = envint("WORKER_IMAGE_CONCURRENCY", 16)
# Task-style upstreams (sjinn, sinancode, givon): a task is created, then its status asked every
# UPSTREAM_TASK_POLL_SECONDS by a Celery task sent with a countdown (no worker thread waits meanwhile), for at
# most UPSTREAM_TASK_DEADLINE_SECONDS before the attempt counts as timed out.
UPSTREAM_TASK_POLL_SECONDS = envfloat("UPSTREAM_TASK_POLL_SECONDS", 3.0)
UPSTREAM_TASK_DEADLINE_SECONDS = envfloat("UPSTREAM_TASK_DEADLINE_SECONDS", 600)
UPSTREAM_TASK_REQUEST_TIMEOUT_SECONDS = envfloat("UPSTREAM_TASK_REQUEST_TIMEOUT_SECONDS", 30)
# Where the image services can reach this studio (https://studio.example.com): sjinn and sinancode take
# input images only as URLs, so they are handed signed links of the studio's own media that expire after
# UPSTREAM_INPUT_URL_TTL_SECONDS. Without it, accounts of those kinds cannot be configured.
STUDIO_PUBLIC_URL = envstr("STUDIO_PUBLIC_URL").rstrip("/")
UPSTREAM_INPUT_URL_TTL_SECONDS = envint("UPSTREAM_INPUT_URL_TTL_SECONDS", 3600)
# Seconds the local engine pauses between stages, so its progress can be watched.
LOCAL_PROVIDER_STEP_SECONDS = envfloat("LOCAL_PROVIDER_STEP_SECONDS", 0.6)
GENERATION_MAX_RETRIES = envint("GENERATION_MAX_RETRIES", 2)
GENERATION_RETRY_BACKOFF_SECONDS = envfloat("GENERATION_RETRY_BACKOFF_SECONDS", 2.0)
# Killed workers. A live runner writes a heartbeat at least once per upstream wait (the longest read timeout
# plus a retry backoff). A runner silent for GENERATION_TAKEOVER_SECONDS is gone: the broker's redelivery of
# its task (after CELERY_VISIBILITY_TIMEOUT; one that comes early checks again when the takeover is due)
# takes the generation over and draws it, with nothing charged again. Only a generation silent for
# GENERATION_STALE_SECONDS, past both, is failed and refunded by the sweeper (its task was lost). Checked
# here, at start-up, so the order holds: heartbeat < takeover < redelivery, takeover + redelivery < stale.
GENERATION_TAKEOVER_SECONDS = envint("GENERATION_TAKEOVER_SECONDS", 360)
GENERATION_STALE_SECONDS = envint("GENERATION_STALE_SECONDS", 1200)
_LONGEST_SILENCE = max(OPENAI_TIMEOUT_SECONDS, OPENAI_TIMEOUT_4K_SECONDS) + (
    GENERATION_RETRY_BACKOFF_SECONDS * 2 ** max(GENERATION_MAX_RETRIES - 1, 0)
)
if GENERATION_TAKEOVER_SECONDS <= _LONGEST_SILENCE:
    raise ImproperlyConfigured(
        f"GENERATION_TAKEOVER_SECONDS ({GENERATION_TAKEOVER_SECONDS}) must exceed the longest a live runner "
        f"is silent ({_LONGEST_SILENCE:g} s: OPENAI_TIMEOUT_4K_SECONDS plus a retry backoff), or live work "
        "is taken over."
    )
if CELERY_VISIBILITY_TIMEOUT <= GENERATION_TAKEOVER_SECONDS:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT}) must exceed GENERATION_TAKEOVER_SECONDS "
        f"({GENERATION_TAKEOVER_SECONDS}): a task waiting for a takeover would be delivered again meanwhile."
    )
if GENERATION_STALE_SECONDS <= GENERATION_TAKEOVER_SECONDS + CELERY_VISIBILITY_TIMEOUT + 60:
    raise ImproperlyConfigured(
        f"GENERATION_STALE_SECONDS ({GENERATION_STALE_SECONDS}) must exceed GENERATION_TAKEOVER_SECONDS plus "
        f"CELERY_VISIBILITY_TIMEOUT plus a minute "
        f"({GENERATION_TAKEOVER_SECONDS + CELERY_VISIBILITY_TIMEOUT + 60}), or the sweeper refunds killed "
        "workers' generations before their redelivered tasks take them over."
    )
# A generation still queued after this long (its task was lost) is failed and refunded too.
GENERATION_QUEUED_MAX_SECONDS = envint("GENERATION_QUEUED_MAX_SECONDS", 3600)
# How long a runner rides out a database that is gone (restarted, connections terminated) before giving up.
GENERATION_DATABASE_WAIT_SECONDS = envfloat("GENERATION_DATABASE_WAIT_SECONDS", 30)

CELERY_BEAT_SCHEDULE = {
    "sweep-stuck-generations": {"task": "studio.tasks.sweep_stuck_generations", "schedule": 60.0},
    # Media the admin's retention policy no longer keeps (studio.engine.retention).
    "apply-retention": {"task": "studio.tasks.apply_retention", "schedule": 24 * 3600.0},
    "purge-expired-invitations": {
        "task": "accounts.tasks.purge_expired_invitations",
        "schedule": 24 * 3600.0,
    },
}

# Logs: one JSON line per request, generation attempt and task, with the web request's id carried into the
# Celery tasks it sends and the upstream calls they make (config.logs). "console" reads better at a terminal.
LOG_FORMAT = envstr("LOG_FORMAT", "json" if PRODUCTION else "console")
if LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or console, not {LOG_FORMAT!r}.")
LOG_PROMPTS = envbool("LOG_PROMPTS", False)  # prompts are redacted from logs unless this is on
LOGGING = configure_logs(log_format=LOG_FORMAT, log_prompts=LOG_PROMPTS, level=envstr("LOG_LEVEL", "INFO"))
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = logging.DEBUG  # dropped anyway: one line per request
DJANGO_STRUCTLOG_CELERY_TASK_START_LOG_LEVEL = logging.DEBUG  # "enqueued" and "started": the end suffices
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = True

# Per-image prices by resolution tier and quality, overriding CREDITS_PER_IMAGE: for example
# CREDIT_PRICES="4K=300,4K:high=400,2K:high=200".
CREDIT_PRICES = {
    key.strip(): int(value)
    for key, _, value in (item.partition("=") for item in envlist("CREDIT_PRICES", ""))
    if value.strip()
}

# The public API.
API_RATE_LIMIT_PER_MINUTE = envint("API_RATE_LIMIT_PER_MINUTE", 60)
API_IMAGE_URL_TTL_SECONDS = envint("API_IMAGE_URL_TTL_SECONDS", 3600)
# Webhooks of API tasks: timeout per delivery, attempts, and the first backoff (doubling each retry).
WEBHOOK_TIMEOUT_SECONDS = envfloat("WEBHOOK_TIMEOUT_SECONDS", 10)
WEBHOOK_MAX_ATTEMPTS = envint("WEBHOOK_MAX_ATTEMPTS", 5)
WEBHOOK_RETRY_BACKOFF_SECONDS = envfloat("WEBHOOK_RETRY_BACKOFF_SECONDS", 10)
# Callbacks to private addresses are refused (server-side request forgery); allow them only for local testing.
# After a key's webhook secret is rotated, deliveries are signed with both secrets for this long.
WEBHOOK_SECRET_OVERLAP_SECONDS = envint("WEBHOOK_SECRET_OVERLAP_SECONDS", 24 * 3600)
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = envbool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", False)
if PRODUCTION and WEBHOOK_ALLOW_PRIVATE_ADDRESSES:
    raise ImproperlyConfigured(
        "STUDIO_ENV=production refuses WEBHOOK_ALLOW_PRIVATE_ADDRESSES (local testing only)."
    )
