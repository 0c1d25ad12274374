"""Several images of the gallery at once: download as a ZIP (streamed), move to a project, delete."""

import io
import uuid
import zipfile
from collections.abc import Generator

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from accounts.http import AuthenticatedRequest, safe_next
from accounts.models import Membership
from studio.engine.services import (
    ProjectError,
    images_delete,
    images_move,
    images_require_manageable,
)
from studio.models import (
    Image,
)
from studio.web.files import open_stored, streamed
from studio.web.images import _project_from

# Bulk actions take at most this many images at once (Django refuses more than 1,000 form fields anyway).
MAX_BULK_IMAGES = 500


def _selected_images(request: AuthenticatedRequest, membership: Membership) -> list[Image]:
    ids = []
    for value in request.POST.getlist("images")[:MAX_BULK_IMAGES]:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    return list(
        Image.objects.filter(workspace=membership.workspace, pk__in=ids)
        .select_related("generation")
        .order_by("-created_at", "-id")
    )


@login_required
@require_POST
def gallery_bulk(request: AuthenticatedRequest) -> HttpResponseBase:
    membership = request.membership
    images = _selected_images(request, membership)
    back = safe_next(request, reverse("studio:gallery"))
    action = request.POST.get("action", "")
    if not images:
        messages.error(request, "Select one or more images first.")
        return redirect(back)
    if action == "download":
        return _zip_response(request, images)
    try:
        if action == "move":
            project = _project_from(request, membership.workspace)
            count = images_move(membership=membership, images=images, project=project)
            messages.success(request, f"Moved {_generations_phrase(count)} to {project}.")
        elif action == "delete" and request.POST.get("confirmed"):
            count = images_delete(membership=membership, images=images)
            messages.success(request, f"Deleted {count} image{'s' if count != 1 else ''}.")
        elif action == "delete":
            images_require_manageable(membership, images, "delete")
            return render(
                request,
                "studio/images_delete.html",
                {"images": images, "action": reverse("studio:gallery-bulk"), "next": back},
            )
        else:
            messages.error(request, "Choose Download, Move or Delete.")
    except PermissionDenied as error:
        if not membership.can_write:
            raise  # viewers are never offered these actions
        messages.error(request, str(error))
    except ProjectError as error:
        messages.error(request, str(error))
    return redirect(back)


def _generations_phrase(count: int) -> str:
    return "1 generation" if count == 1 else f"{count:,} generations"


def _archive_name(image: Image, taken: set[str]) -> str:
    stem = slugify(image.generation.prompt[:60]) or "image"
    name = f"{stem}-{image.pk.hex[:8]}.{image.format}"
    while name in taken:
        name = f"{stem}-{uuid.uuid4().hex[:8]}.{image.format}"
    taken.add(name)
    return name


class _Pipe(io.RawIOBase):
    """Where zipfile writes: holds the bytes written since the response last took them. Not seekable, so
    zipfile streams (sizes go in data descriptors after each file)."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.pending += data
        return len(data)

    def take(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data


def _zip_chunks(images: list[Image]) -> Generator[bytes, None, None]:
    """A ZIP of the originals, made while it is sent: memory stays at one read buffer, whatever the size."""
    pipe = _Pipe()
    taken: set[str] = set()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED) as archive:
        for image in images:
            try:
                handle, _ = open_stored(image.file)
            except Http404:
                continue
            created = timezone.localtime(image.created_at)
            info = zipfile.ZipInfo(_archive_name(image, taken), date_time=created.timetuple()[:6])
            with handle, archive.open(info, "w") as entry:
                while chunk := handle.read(256 * 1024):
                    entry.write(chunk)
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()


def _zip_response(request: AuthenticatedRequest, images: list[Image]) -> StreamingHttpResponse:
    chunks = _zip_chunks(images)
    response = StreamingHttpResponse(streamed(request, chunks), content_type="application/zip")
    filename = f"studio-{timezone.localtime():%Y%m%d-%H%M}-{len(images)}-images.zip"
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename) or ""
    response["Cache-Control"] = "private, no-store"
    return response
