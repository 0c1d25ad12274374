from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.urls import include, path

from config import health, metrics

# The admin logs in through the site's own login: throttled, with the second factor.
admin.site.login = staff_member_required(admin.site.login, login_url=settings.LOGIN_URL)  # type: ignore[method-assign]

urlpatterns = [
    # Pages
    path("", include("studio.web.urls")),
    path("", include("accounts.urls")),
    path("accounts/", include("allauth.urls")),
    path("admin/", admin.site.urls),
    # The public API
    path("", include("studio.api.urls")),
    # Health
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
]

# Errors no view handled: JSON in the dialect's shape under the API, a 503 when the database is out of reach.
handler500 = "config.errors.server_error"
