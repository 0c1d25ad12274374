"""The gallery of the current workspace: thumbnails filtered and searched, favourites, an image's full record
and lineage, bulk download (ZIP), move and delete; and the prompt history.

Pages are cut with a cursor (the last item's time and id), not an offset: page 400 costs what page 1 costs,
and images arriving meanwhile do not shift what comes next. Each page is a fixed number of queries, whatever
the size of the workspace (tests/studio/test_gallery.py counts them; benches/gallery.py times them).

Search is `icontains` over prompts and revised prompts, word by word. It scans the workspace's rows, which is
fast enough for tens of thousands of images; beyond that, PostgreSQL full-text search (a `SearchVector` of
the prompts with a GIN index, queried with `websearch_to_tsquery`) is the next step.
"""

import io
import uuid
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, time, timedelta

from asgiref.sync import sync_to_async
from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import content_disposition_header, url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Membership
from studio.models import (
    ACTIVE_STATUSES,
    Favourite,
    Generation,
    GenerationInput,
    Image,
    InputRole,
    Project,
    Status,
)
from studio.services import (
    ProjectError,
    image_can_manage,
    images_delete,
    images_move,
    images_require_manageable,
)

GALLERY_PAGE_SIZE = 48
HISTORY_PAGE_SIZE = 40
MAX_SEARCH_WORDS = 8
# Bulk actions take at most this many images at once (Django refuses more than 1,000 form fields anyway).
MAX_BULK_IMAGES = 500
LINEAGE_LIMIT = 24

# The status filter. Images exist only for generations that succeeded, so "Done" lists images and the other
# statuses list the generations themselves (what failed, and why; what is still being drawn).
STATUS_FILTERS = {
    "": ("Done", (Status.SUCCEEDED,)),
    "active": ("In progress", ACTIVE_STATUSES),
    "failed": ("Failed", (Status.FAILED,)),
    "canceled": ("Canceled", (Status.CANCELED,)),
}


class GalleryFilters(forms.Form):
    q = forms.CharField(
        label="Search prompts",
        required=False,
        max_length=200,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Search prompts", "autocomplete": "off"}
        ),
    )
    project = forms.TypedChoiceField(label="Project", required=False, coerce=int, empty_value=None)
    author = forms.TypedChoiceField(label="Author", required=False, coerce=int, empty_value=None)
    status = forms.ChoiceField(
        label="Status", required=False, choices=[(key, label) for key, (label, _) in STATUS_FILTERS.items()]
    )
    favourites = forms.BooleanField(label="Favourites only", required=False)
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data, *, workspace):
        super().__init__(data)
        self.projects = list(Project.objects.filter(workspace=workspace))
        self.fields["project"].choices = [("", "All projects")] + [
            (project.pk, f"{project.name} (archived)" if project.is_archived else project.name)
            for project in self.projects
        ]
        authors = (
            get_user_model()
            .objects.filter(memberships__workspace=workspace)
            .order_by("username")
            .values_list("pk", "username")
        )
        self.fields["author"].choices = [("", "Everyone"), *authors]
        # These apply as soon as they change; the search applies as one types (see gallery.html).
        for name in ("project", "author", "status", "favourites", "date_from", "date_to"):
            self.fields[name].widget.attrs["class"] = "filter-control"

    def clean(self) -> dict:
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_to"] < data["date_from"]:
            self.add_error("date_to", "Pick a day on or after the From day.")
        return data

    @property
    def narrowing_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in ("project", "author", "status", "date_from", "date_to")]

    @property
    def is_narrowed(self) -> bool:
        return any(value not in (None, "", False) for value in self.cleaned_data.values())

    @property
    def open_projects(self) -> list[Project]:
        return [project for project in self.projects if not project.is_archived]


def _words(text: str) -> list[str]:
    return text.split()[:MAX_SEARCH_WORDS]


def _matching(generations: QuerySet, text: str) -> QuerySet:
    """Generations whose prompt or revised prompt contains every word of `text`."""
    for word in _words(text):
        generations = generations.filter(Q(prompt__icontains=word) | Q(revised_prompt__icontains=word))
    return generations


def _narrow(queryset: QuerySet, filters: GalleryFilters, *, through: str = "") -> QuerySet:
    """Apply the valid filters but the search; `through` reaches the generation ("generation__" from an
    image)."""
    data = filters.cleaned_data
    if project := data.get("project"):
        queryset = queryset.filter(**{f"{through}project_id": project})
    if author := data.get("author"):
        queryset = queryset.filter(**{f"{through}author_id": author})
    # Whole days in the studio's time zone, as bounds on the indexed creation time.
    if day := data.get("date_from"):
        queryset = queryset.filter(created_at__gte=timezone.make_aware(datetime.combine(day, time.min)))
    if day := data.get("date_to"):
        end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
        queryset = queryset.filter(created_at__lt=end)
    return queryset


def _with_favourite(queryset: QuerySet, user) -> QuerySet:
    return queryset.annotate(is_favourite=Exists(Favourite.objects.filter(user=user, image=OuterRef("pk"))))


def _gallery_images(membership: Membership, user, filters: GalleryFilters) -> QuerySet:
    images = _narrow(Image.objects.filter(workspace=membership.workspace), filters, through="generation__")
    if text := filters.cleaned_data.get("q"):
        # A subquery, not the join: SQLite scans the matching generations once instead of once per image.
        matching = _matching(Generation.objects.filter(workspace=membership.workspace), text)
        images = images.filter(generation__in=matching.values("pk"))
    images = _with_favourite(images, user)
    if filters.cleaned_data.get("favourites"):
        images = images.filter(is_favourite=True)
    return images.select_related("generation__author", "generation__project").order_by("-created_at", "-id")


def _gallery_generations(membership: Membership, filters: GalleryFilters) -> QuerySet:
    statuses = STATUS_FILTERS[filters.cleaned_data["status"]][1]
    generations = Generation.objects.filter(workspace=membership.workspace, status__in=statuses)
    if filters.cleaned_data.get("favourites"):
        return generations.none()  # favourites are images, and these generations have none
    generations = _matching(_narrow(generations, filters), filters.cleaned_data.get("q") or "")
    return generations.select_related("author", "project").order_by("-created_at", "-id")


# The cursor: the last shown item's creation time (in microseconds) and id, the gallery's order.

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _cursor_of(item: Image | Generation) -> str:
    return f"{(item.created_at - EPOCH) // timedelta(microseconds=1)}-{item.pk.hex}"


def _parse_cursor(value: str) -> tuple[datetime, uuid.UUID] | None:
    micros, _, hex_id = value.partition("-")
    try:
        return EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=hex_id)
    except (ValueError, OverflowError):
        return None


def _page(queryset: QuerySet, cursor: tuple[datetime, uuid.UUID] | None) -> tuple[list, str | None]:
    if cursor is not None:
        created_at, pk = cursor
        queryset = queryset.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, pk__lt=pk))
    items = list(queryset[: GALLERY_PAGE_SIZE + 1])
    if len(items) > GALLERY_PAGE_SIZE:
        return items[:GALLERY_PAGE_SIZE], _cursor_of(items[GALLERY_PAGE_SIZE - 1])
    return items, None


@login_required
@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    membership = request.membership
    filters = GalleryFilters(request.GET, workspace=membership.workspace)
    filters.is_valid()  # invalid fields are left out of the filtering and shown with their errors
    cursor = _parse_cursor(request.GET.get("cursor", ""))
    listing = "generations" if filters.cleaned_data.get("status") else "images"
    if listing == "images":
        items, next_cursor = _page(_gallery_images(membership, request.user, filters), cursor)
    else:
        items, next_cursor = _page(_gallery_generations(membership, filters), cursor)
    query = request.GET.copy()
    query.pop("cursor", None)
    next_query = None
    if next_cursor:
        query["cursor"] = next_cursor
        next_query = query.urlencode()
        query.pop("cursor")
    context = {
        "membership": membership,
        "filters": filters,
        "listing": listing,
        "items": items,
        "next_query": next_query,
        "is_continuation": cursor is not None,
        "first_page_url": reverse("studio:gallery") + (f"?{query.urlencode()}" if query else ""),
    }
    template = "studio/gallery.html"
    if request.htmx and not request.htmx.history_restore_request:
        template += "#gallery-page" if request.htmx.target == "gallery-more" else "#gallery-results"
    response = render(request, template, context)
    # The same URL answers a whole page or a fragment: caches must tell them apart.
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


# One image


def _get_image_for_member(request: HttpRequest, image_id) -> tuple[Image, Membership]:
    """The image and the user's membership of its workspace; 404 for anyone who is not a member."""
    image = get_object_or_404(
        _with_favourite(
            Image.objects.filter(workspace__memberships__user=request.user), request.user
        ).select_related("generation__author", "generation__project", "workspace"),
        pk=image_id,
    )
    membership = Membership.objects.select_related("user").get(workspace=image.workspace, user=request.user)
    return image, membership


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return default


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


def _lineage(image: Image, user) -> tuple[list[GenerationInput], list[dict]]:
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
    derived: dict = {}
    for use in uses:
        entry = derived.setdefault(use.generation_id, {"generation": use.generation, "roles": []})
        entry["roles"].append("mask" if use.role == InputRole.MASK else "reference")
    return inputs, list(derived.values())


@login_required
@require_GET
def image_view(request: HttpRequest, image_id) -> HttpResponse:
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
def image_favourite(request: HttpRequest, image_id) -> HttpResponse:
    image, _membership = _get_image_for_member(request, image_id)
    # The button says which state it wants, so a double click or a retried request does not flip it back.
    if request.POST.get("favourite") == "0":
        Favourite.objects.filter(user=request.user, image=image).delete()
        image.is_favourite = False
    else:
        Favourite.objects.get_or_create(user=request.user, image=image)
        image.is_favourite = True
    if request.htmx:
        return render(request, "studio/gallery.html#favourite-button", {"image": image})
    return redirect(_safe_next(request, reverse("studio:image-view", args=[image.pk])))


def _project_from(request: HttpRequest, workspace) -> Project:
    project_id = request.POST.get("project", "")
    if not project_id.isdigit():
        raise Http404("No such project.")
    return get_object_or_404(Project, workspace=workspace, pk=project_id)


@login_required
@require_POST
def image_move(request: HttpRequest, image_id) -> HttpResponse:
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
def image_delete(request: HttpRequest, image_id) -> HttpResponse:
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
def input_file(request: HttpRequest, generation_id, input_id: int) -> FileResponse:
    """An image a generation was given (reference or mask), for the lineage; members of its workspace only."""
    item = get_object_or_404(
        GenerationInput.objects.filter(generation__workspace__memberships__user=request.user),
        generation_id=generation_id,
        pk=input_id,
    )
    if not item.file:
        raise Http404
    try:
        handle = item.file.open("rb")
    except FileNotFoundError as error:
        raise Http404 from error
    response = FileResponse(handle, content_type=item.content_type or "application/octet-stream")
    response["Cache-Control"] = "private, max-age=86400"
    return response


# Several images at once


def _selected_images(request: HttpRequest, membership: Membership) -> list[Image]:
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
def gallery_bulk(request: HttpRequest) -> HttpResponse:
    membership = request.membership
    images = _selected_images(request, membership)
    back = _safe_next(request, reverse("studio:gallery"))
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

    def write(self, data) -> int:
        self.pending += data
        return len(data)

    def take(self) -> bytes:
        data = bytes(self.pending)
        self.pending.clear()
        return data


def _zip_chunks(images: list[Image]) -> Iterator[bytes]:
    """A ZIP of the originals, made while it is sent: memory stays at one read buffer, whatever the size."""
    pipe = _Pipe()
    taken: set[str] = set()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED) as archive:
        for image in images:
            try:
                handle = image.file.open("rb")
            except FileNotFoundError:
                continue
            created = timezone.localtime(image.created_at)
            info = zipfile.ZipInfo(_archive_name(image, taken), date_time=created.timetuple()[:6])
            with handle, archive.open(info, "w") as entry:
                while chunk := handle.read(256 * 1024):
                    entry.write(chunk)
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()


async def _from_worker_thread(chunks: Iterator[bytes]) -> AsyncIterator[bytes]:
    """Under ASGI, a plain iterator would be read whole into memory first; read it piece by piece instead."""
    take = sync_to_async(next, thread_sensitive=False)
    try:
        while (chunk := await take(chunks, None)) is not None:
            if chunk:
                yield chunk
    finally:
        chunks.close()


def _zip_response(request: HttpRequest, images: list[Image]) -> StreamingHttpResponse:
    chunks = _zip_chunks(images)
    content = _from_worker_thread(chunks) if isinstance(request, ASGIRequest) else chunks
    response = StreamingHttpResponse(content, content_type="application/zip")
    filename = f"studio-{timezone.localtime():%Y%m%d-%H%M}-{len(images)}-images.zip"
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    response["Cache-Control"] = "private, no-store"
    return response


# Prompt history


@login_required
@require_GET
def history(request: HttpRequest) -> HttpResponse:
    membership = request.membership
    query = request.GET.get("q", "").strip()[:200]
    mine = Generation.objects.filter(workspace=membership.workspace, author=request.user)
    for word in _words(query):
        mine = mine.filter(prompt__icontains=word)
    prompts = (
        mine.values("prompt")
        .annotate(last_used=Max("created_at"), uses=Count("pk"))
        .order_by("-last_used", "prompt")
    )
    page = Paginator(prompts, HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    latest: dict[str, Generation] = {}
    if rows:
        # The newest generation of each prompt on the page, in one query.
        newest = Q()
        for row in rows:
            newest |= Q(prompt=row["prompt"], created_at=row["last_used"])
        for generation in mine.filter(newest).prefetch_related("images").order_by("-created_at"):
            latest.setdefault(generation.prompt, generation)
    entries = [{**row, "generation": latest.get(row["prompt"])} for row in rows]
    return render(
        request,
        "studio/history.html",
        {"membership": membership, "entries": entries, "page": page, "query": query},
    )
