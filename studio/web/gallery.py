"""The gallery of the current workspace: thumbnails filtered and searched, favourites, an image's full record
and lineage, bulk download (ZIP), move and delete; and the prompt history.

Pages are cut with a cursor (the last item's time and id), not an offset: page 400 costs what page 1 costs,
and images arriving meanwhile do not shift what comes next. Each page is a fixed number of queries, whatever
the size of the workspace (tests/studio/test_gallery.py counts them; benches/gallery.py times them).

Search is over prompts and revised prompts, every word required (`Generation.objects.matching`): PostgreSQL's
full-text search on its GIN index (each word as a prefix, any language), substrings on SQLite. The prompt
history ranks its matches by relevance on PostgreSQL.
"""

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.contrib.postgres.search import SearchRank
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet
from django.http import HttpResponse, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from accounts.http import AuthenticatedRequest
from accounts.models import Membership, User, Workspace
from studio.models import (
    ACTIVE_STATUSES,
    Favourite,
    Generation,
    GenerationQuerySet,
    Image,
    Project,
    Status,
    prompt_query,
    prompt_vector,
)

GALLERY_PAGE_SIZE = 48
HISTORY_PAGE_SIZE = 40
MAX_SEARCH_WORDS = 8
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

    def __init__(self, data: QueryDict, *, workspace: Workspace) -> None:
        super().__init__(data)
        self.projects = list(Project.objects.filter(workspace=workspace))
        cast(forms.ChoiceField, self.fields["project"]).choices = [("", "All projects")] + [
            (project.pk, f"{project.name} (archived)" if project.is_archived else project.name)
            for project in self.projects
        ]
        authors = (
            get_user_model()
            .objects.filter(memberships__workspace=workspace)
            .order_by("username")
            .values_list("pk", "username")
        )
        cast(forms.ChoiceField, self.fields["author"]).choices = [("", "Everyone"), *authors]
        # These apply as soon as they change; the search applies as one types (see gallery.html).
        for name in ("project", "author", "status", "favourites", "date_from", "date_to"):
            self.fields[name].widget.attrs["class"] = "filter-control"

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
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


def _matching(generations: QuerySet[Generation], text: str) -> QuerySet[Generation]:
    """Generations whose prompt or revised prompt holds every word of `text`."""
    return cast(GenerationQuerySet, generations).matching(_words(text))


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
    if (day := data.get("date_to")) and day < date.max:  # the last day there is has no day after it
        end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
        queryset = queryset.filter(created_at__lt=end)
    return queryset


def with_favourite(queryset: QuerySet[Image], user: User) -> QuerySet[Image]:
    return queryset.annotate(is_favourite=Exists(Favourite.objects.filter(user=user, image=OuterRef("pk"))))


def _gallery_images(membership: Membership, user: User, filters: GalleryFilters) -> QuerySet[Image]:
    images = _narrow(Image.objects.filter(workspace=membership.workspace), filters, through="generation__")
    if text := filters.cleaned_data.get("q"):
        # A subquery, not the join: SQLite scans the matching generations once instead of once per image.
        matching = _matching(Generation.objects.filter(workspace=membership.workspace), text)
        images = images.filter(generation__in=matching.values("pk"))
    images = with_favourite(images, user)
    if filters.cleaned_data.get("favourites"):
        images = images.filter(is_favourite=True)  # type: ignore[misc]  # with_favourite annotated it
    return images.select_related("generation__author", "generation__project").order_by("-created_at", "-id")


def _gallery_generations(membership: Membership, filters: GalleryFilters) -> QuerySet[Generation]:
    statuses = STATUS_FILTERS[filters.cleaned_data["status"]][1]
    generations: QuerySet[Generation] = Generation.objects.filter(
        workspace=membership.workspace, status__in=statuses
    )
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
def gallery(request: AuthenticatedRequest) -> HttpResponse:
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


# Prompt history


@login_required
@require_GET
def history(request: AuthenticatedRequest) -> HttpResponse:
    membership = request.membership
    query = request.GET.get("q", "").strip()[:200]
    words = _words(query)
    mine = Generation.objects.filter(workspace=membership.workspace, author=request.user).matching(words)
    prompts = mine.values("prompt").annotate(last_used=Max("created_at"), uses=Count("pk"))
    ranked = prompt_query(words) if connection.vendor == "postgresql" else None
    if ranked is not None:
        # Best matches first (a prompt's best-ranked use), then the most recent.
        prompts = prompts.annotate(rank=Max(SearchRank(prompt_vector(), ranked)))
        prompts = prompts.order_by("-rank", "-last_used", "prompt")
    else:
        prompts = prompts.order_by("-last_used", "prompt")
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
