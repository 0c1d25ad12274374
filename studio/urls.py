from django.contrib import admin
from django.urls import include, path

from studio import health, views

studio_patterns = [
    path("", views.home, name="home"),
    # Generations
    path("generate/", views.generate, name="generate"),
    path("generations/<uuid:generation_id>/", views.generation_card, name="generation-card"),
    path("generations/<uuid:generation_id>/cancel/", views.cancel, name="generation-cancel"),
    path("generations/<uuid:generation_id>/partial/", views.partial_image, name="generation-partial"),
    # Images (private: every view checks workspace membership)
    path("images/<uuid:image_id>/", views.image_file, name="image-file"),
    path("images/<uuid:image_id>/thumbnail/", views.image_thumbnail, name="image-thumbnail"),
]

urlpatterns = [
    path("", include((studio_patterns, "studio"))),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    # Health
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
