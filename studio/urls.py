from django.contrib import admin
from django.urls import include, path

from studio import gallery, health, views

studio_patterns = [
    path("", views.home, name="home"),
    # Generations
    path("generate/", views.generate, name="generate"),
    path("generations/<uuid:generation_id>/", views.generation_card, name="generation-card"),
    path("generations/<uuid:generation_id>/cancel/", views.cancel, name="generation-cancel"),
    path("generations/<uuid:generation_id>/partial/", views.partial_image, name="generation-partial"),
    # Composer
    path("composer/gallery-picker/", views.composer_gallery_picker, name="composer-gallery-picker"),
    # Projects
    path("workspaces/<slug:slug>/projects/", views.project_list, name="project-list"),
    path("workspaces/<slug:slug>/projects/new/", views.project_new, name="project-new"),
    path("projects/<int:project_id>/edit/", views.project_edit, name="project-edit"),
    path("projects/<int:project_id>/archive/", views.project_archive_view, name="project-archive"),
    path("projects/<int:project_id>/restore/", views.project_restore_view, name="project-restore"),
    # Images (private: every view checks workspace membership)
    path("images/<uuid:image_id>/", views.image_file, name="image-file"),
    path("images/<uuid:image_id>/thumbnail/", views.image_thumbnail, name="image-thumbnail"),
    # Gallery, image pages and prompt history (studio.gallery)
    path("gallery/", gallery.gallery, name="gallery"),
    path("gallery/bulk/", gallery.gallery_bulk, name="gallery-bulk"),
    path("images/<uuid:image_id>/view/", gallery.image_view, name="image-view"),
    path("images/<uuid:image_id>/favourite/", gallery.image_favourite, name="image-favourite"),
    path("images/<uuid:image_id>/move/", gallery.image_move, name="image-move"),
    path("images/<uuid:image_id>/delete/", gallery.image_delete, name="image-delete"),
    path("generations/<uuid:generation_id>/inputs/<int:input_id>/", gallery.input_file, name="input-file"),
    path("history/", gallery.history, name="history"),
]

urlpatterns = [
    path("", include((studio_patterns, "studio"))),
    path("", include("accounts.urls")),
    path("admin/", admin.site.urls),
    # The public API
    path("", include("studio.api.urls")),
    # Health
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
