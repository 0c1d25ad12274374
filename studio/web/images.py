"""One image: its page with the full record and lineage, favourite, move, delete, and the private files
(image, thumbnail, inputs) served only to members of its workspace."""

import uuid
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.http import AuthenticatedRequest, safe_next
from accounts.models import Membership, User, Workspace
from studio.engine import input_links
from studio.engine.services import (
    ProjectError,
    image_can_manage,
    images_delete,
    images_move,
)
from studio.models import (
    Favourite,
    GenerationInput,
    Image,
    InputRole,
    Project,
)
from studio.web.files import file_response
from studio.web.gallery import LINEAGE_LIMIT, with_favourite


def _get_image_for_member(request: AuthenticatedRequest, image_id: UUID) -> tuple[Image, Membership]:
    """The image and the user's membership of its workspace; 404 for anyone who is not a member."""
    image = get_object_or_404(
        with_favourite(
            Image.objects.filter(workspace__memberships__user=request.user), request.user
        ).select_related("generation__author", "generation__project", "workspace"),
        pk=image_id,
    )
    membership = Membership.objects.select_related("user").get(workspace=image.workspace, user=request.user)
    return image, membership


def _neighbour(image: Image, *, newer: bool) -> uuid.UUID | None:
    """The next image of the workspace in gallery order (newer: towards the top)."""
    images = Image.objects.filter(workspace_id=image.workspace_id)
    if newer:
        images = images.filter(
            Q(created_at__gt=image.created_at) | Q(created_at=image.created_at, pk__gt=image.pk)
        ).order_by("created_at", "id")
    else:
        images = images.filter(
            Q(created_at__lt=image.created_at) | Q(created_at=image.created_at, pk__lt=image.pk)
        ).order_by("-created_at", "-id")
    return images.values_list("pk", flat=True).first()


def _input_label(item: GenerationInput, has_mask: bool) -> str:
    if item.role == InputRole.MASK:
        return "Mask"
    if item.position == 0 and has_mask:
        return "Edit source"
    return f"Reference {item.position + 1}"


def _lineage(image: Image, user: User) -> tuple[list[GenerationInput], list[dict[str, Any]]]:
    """What the image was made from (its generation's inputs) and what was made from it (their generations).

    A source image in a workspace the user cannot open is named, never linked or shown.
    """
    readable = set(Membership.objects.filter(user=user).values_list("workspace_id", flat=True))
    inputs = list(image.generation.inputs.select_related("source_image"))
    has_mask = any(item.role == InputRole.MASK for item in inputs)
    for item in inputs:
        item.label = _input_label(item, has_mask)
        item.source_readable = item.source_image is not None and item.source_image.workspace_id in readable
    uses = (
        GenerationInput.objects.filter(source_image=image, generation__workspace_id__in=readable)
        .select_related("generation__author")
        .prefetch_related("generation__images")
        .order_by("-generation__created_at")[:LINEAGE_LIMIT]
    )
    derived: dict[Any, dict[str, Any]] = {}
    for use in uses:
        entry = derived.setdefault(use.generation_id, {"generation": use.generation, "roles": []})
        entry["roles"].append("mask" if use.role == InputRole.MASK else "reference")
    return inputs, list(derived.values())


@login_required
@require_GET
def image_view(request: AuthenticatedRequest, image_id: UUID) -> HttpResponse:
    image, membership = _get_image_for_member(request, image_id)
    generation = image.generation
    inputs, derived = _lineage(image, request.user)
    can_manage = image_can_manage(membership, image)
    context = {
        "image": image,
        "generation": generation,
        "membership": membership,
        "spec": generation.spec,
        "usage": generation.usage or {},
        "inputs": inputs,
        "derived": derived,
        "siblings": [other for other in generation.images.all() if other.pk != image.pk],
        "newer": _neighbour(image, newer=True),
        "older": _neighbour(image, newer=False),
        "can_manage": can_manage,
        "projects": (
            Project.objects.filter(workspace=image.workspace, archived_at__isnull=True) if can_manage else []
        ),
    }
    return render(request, "studio/image_detail.html", context)


@login_required
@require_POST
def image_favourite(request: AuthenticatedRequest, image_id: UUID) -> HttpResponse:
    image, _membership = _get_image_for_member(request, image_id)
    # The button says which state it wants, so a double click or a retried request does not flip it back.
    if request.POST.get("favourite") == "0":
        Favourite.objects.filter(user=request.user, image=image).delete()
        image.is_favourite = False  # type: ignore[attr-defined]  # annotated by with_favourite
    else:
        Favourite.objects.get_or_create(user=request.user, image=image)
        image.is_favourite = True  # type: ignore[attr-defined]
    if request.htmx:
        return render(request, "studio/gallery.html#favourite-button", {"image": image})
    return redirect(safe_next(request, reverse("studio:image-view", args=[image.pk])))


def _project_from(request: AuthenticatedRequest, workspace: Workspace) -> Project:
    project_id = request.POST.get("project", "")
    if not project_id.isdigit():
        raise Http404("No such project.")
    return get_object_or_404(Project, workspace=workspace, pk=project_id)


@login_required
@require_POST
def image_move(request: AuthenticatedRequest, image_id: UUID) -> HttpResponse:
    image, membership = _get_image_for_member(request, image_id)
    project = _project_from(request, image.workspace)
    try:
        images_move(membership=membership, images=[image], project=project)
    except ProjectError as error:
        messages.error(request, str(error))
    else:
        messages.success(request, f"Moved to {project}.")
    return redirect("studio:image-view", image.pk)


@login_required
@require_http_methods(["GET", "POST"])
def image_delete(request: AuthenticatedRequest, image_id: UUID) -> HttpResponse:
    image, membership = _get_image_for_member(request, image_id)
    if not image_can_manage(membership, image):
        raise PermissionDenied("Only the author or an owner can delete this image.")
    if request.method == "POST":
        images_delete(membership=membership, images=[image])
        messages.success(request, "The image is deleted.")
        return redirect("studio:gallery")
    return render(
        request,
        "studio/images_delete.html",
        {"images": [image], "action": reverse("studio:image-delete", args=[image.pk])},
    )


@login_required
@require_GET
def input_file(request: AuthenticatedRequest, generation_id: UUID, input_id: int) -> HttpResponseBase:
    """An image a generation was given (reference or mask), for the lineage; members of its workspace only."""
    item = get_object_or_404(
        GenerationInput.objects.filter(generation__workspace__memberships__user=request.user),
        generation_id=generation_id,
        pk=input_id,
    )
    return file_response(request, item.file, item.content_type or "application/octet-stream")


@require_GET
def input_link(request: HttpRequest, token: str) -> HttpResponseBase:
    """An input image handed to an image service as a signed, expiring link (`studio.engine.input_links`):
    no session needed, and nothing but that one input reachable with it."""
    input_id = input_links.input_id_from_token(token)
    item = GenerationInput.objects.filter(pk=input_id).first() if input_id is not None else None
    if item is None:
        raise Http404
    return file_response(
        request, item.file, item.content_type or "application/octet-stream", cache="private, max-age=300"
    )


def _get_image_for_user(request: AuthenticatedRequest, image_id: UUID) -> Image:
    return get_object_or_404(Image.objects.filter(workspace__memberships__user=request.user), pk=image_id)


@login_required
@require_GET
def image_file(request: AuthenticatedRequest, image_id: UUID) -> HttpResponseBase:
    image = _get_image_for_user(request, image_id)
    download = f"studio-{image.pk}.{image.format}" if request.GET.get("download") else None
    return file_response(request, image.file, image.content_type, download_name=download)


@login_required
@require_GET
def image_thumbnail(request: AuthenticatedRequest, image_id: UUID) -> HttpResponseBase:
    image = _get_image_for_user(request, image_id)
    return file_response(request, image.thumbnail, "image/webp")
