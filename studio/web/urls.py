from django.urls import path

from studio.web import bulk, gallery, images, projects, views

app_name = "studio"

urlpatterns = [
    path("", views.home, name="home"),
    # Generations
    path("generate/", views.generate, name="generate"),
    path("generations/<uuid:generation_id>/", views.generation_card, name="generation-card"),
    path("generations/<uuid:generation_id>/cancel/", views.cancel, name="generation-cancel"),
    path("generations/<uuid:generation_id>/partial/", views.partial_image, name="generation-partial"),
    # Composer
    path("composer/gallery-picker/", views.composer_gallery_picker, name="composer-gallery-picker"),
    # Projects
    path("workspaces/<slug:slug>/projects/", projects.project_list, name="project-list"),
    path("workspaces/<slug:slug>/projects/new/", projects.project_new, name="project-new"),
    path("projects/<int:project_id>/edit/", projects.project_edit, name="project-edit"),
    path("projects/<int:project_id>/archive/", projects.project_archive_view, name="project-archive"),
    path("projects/<int:project_id>/restore/", projects.project_restore_view, name="project-restore"),
    # Gallery and prompt history
    path("gallery/", gallery.gallery, name="gallery"),
    path("gallery/bulk/", bulk.gallery_bulk, name="gallery-bulk"),
    path("history/", gallery.history, name="history"),
    # Images (private: every view checks workspace membership)
    path("images/<uuid:image_id>/", images.image_file, name="image-file"),
    path("images/<uuid:image_id>/thumbnail/", images.image_thumbnail, name="image-thumbnail"),
    path("images/<uuid:image_id>/view/", images.image_view, name="image-view"),
    path("images/<uuid:image_id>/favourite/", images.image_favourite, name="image-favourite"),
    path("images/<uuid:image_id>/move/", images.image_move, name="image-move"),
    path("images/<uuid:image_id>/delete/", images.image_delete, name="image-delete"),
    path("generations/<uuid:generation_id>/inputs/<int:input_id>/", images.input_file, name="input-file"),
    # An input handed to an image service: a signed, expiring link, no session
    path("inputs/<str:token>/", images.input_link, name="input-link"),
]
