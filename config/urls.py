from django.contrib import admin
from django.urls import include, path

from config import health

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
]
