"""The Create page: the composer, the live cards, and the actions on a generation."""

import json
import logging
from uuid import UUID

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from accounts.http import AuthenticatedRequest
from accounts.ledger import InsufficientCredits
from studio.engine import images as image_files
from studio.engine import spec as spec_module
from studio.engine.services import (
    generation_cancel,
    generation_submit,
    price_list,
)
from studio.models import Generation, Image, Project
from studio.web.composer_guide import PROMPT_PRESETS, RATIO_GUIDANCE
from studio.web.files import file_response
from studio.web.forms import ComposerForm, ratio_sizes

logger = logging.getLogger(__name__)

# The home page shows the newest cards of the workspace; the gallery (studio.web.gallery) pages the rest.
HOME_CARDS = 24


def _get_generation_for_user(request: AuthenticatedRequest, generation_id: UUID) -> Generation:
    """The generation, if the user is a member of its workspace; 404 for anyone else."""
    return get_object_or_404(
        Generation.objects.for_user(request.user)
        .select_related("author", "project")
        .prefetch_related("images"),
        pk=generation_id,
    )


def _home_context(request: AuthenticatedRequest, form: ComposerForm) -> dict:
    membership = request.membership
    prices = price_list()
    generations = Generation.objects.filter(workspace=membership.workspace)
    shown_project = None
    if (project_id := request.GET.get("project", "")).isdigit():
        shown_project = Project.objects.filter(workspace=membership.workspace, pk=project_id).first()
        if shown_project is not None:
            generations = generations.filter(project=shown_project)
    return {
        "form": form,
        "membership": membership,
        "shown_project": shown_project,
        "generations": generations.select_related("author", "project").prefetch_related("images")[
            :HOME_CARDS
        ],
        "price_per_image": prices.per_image(tier="1K", quality="medium"),
        "prices_json": json.dumps(prices.table()),
        "ratio_guidance_json": json.dumps(RATIO_GUIDANCE),
        "ratio_sizes_json": json.dumps(ratio_sizes()),
        "prompt_presets": PROMPT_PRESETS,
        "max_input_images": spec_module.MAX_INPUT_IMAGES,
        "max_input_megabytes": image_files.MAX_INPUT_BYTES // (1024 * 1024),
    }


# What a link may preset in the composer: `/?prompt=...&aspect_ratio=16:9` (reuse settings),
# `/?edit=<image id>` (the image becomes the mask's source) and `/?reference=<image id>` (repeatable).
COMPOSER_QUERY_FIELDS = ("prompt", "aspect_ratio", "resolution", "quality", "n", "output_format", "project")


def _composer_initial(request: AuthenticatedRequest) -> dict:
    initial = {}
    if (reuse := request.GET.get("reuse")) and (generation := _reusable_generation(request, reuse)):
        # "Reuse settings": the composer as it was for that generation (its inputs are not carried over).
        initial = {name: generation.spec[name] for name in COMPOSER_QUERY_FIELDS if generation.spec.get(name)}
        initial["prompt"] = generation.prompt
        initial["project"] = generation.project_id
    initial |= {name: request.GET[name] for name in COMPOSER_QUERY_FIELDS if request.GET.get(name)}
    if edit := request.GET.get("edit"):
        initial["source_gallery_image"] = edit
    if references := request.GET.getlist("reference"):
        initial["gallery_references"] = references
    return initial


def _reusable_generation(request: AuthenticatedRequest, generation_id: str) -> Generation | None:
    """A generation of the current workspace, or None (a stranger's id is ignored, never shown)."""
    try:
        return Generation.objects.filter(pk=generation_id, workspace=request.membership.workspace).first()
    except ValidationError:
        return None


@login_required
@require_GET
def home(request: AuthenticatedRequest) -> HttpResponse:
    form = ComposerForm(initial=_composer_initial(request), workspace=request.membership.workspace)
    return render(request, "studio/home.html", _home_context(request, form))


@login_required
@require_POST
def generate(request: AuthenticatedRequest) -> HttpResponse:
    membership = request.membership
    if not membership.can_write:
        raise PermissionDenied("Viewers cannot generate in this workspace.")
    form = ComposerForm(request.POST, request.FILES, workspace=membership.workspace)
    generation = None
    if form.is_valid() and form.spec is not None:  # a valid form has its spec
        try:
            generation = generation_submit(
                membership=membership,
                spec=form.spec,
                project=form.cleaned_data.get("project"),
                references=form.inputs,
                mask=form.mask_input,
                idempotency_key=form.cleaned_data["idempotency_key"],
            )
        except InsufficientCredits as error:
            form.add_error(
                None,
                f"Not enough credits: this needs {error.needed:,} and you have {error.balance:,}. "
                "Ask an admin for more credits, or make fewer or smaller images.",
            )
        except PermissionDenied as error:
            form.add_error(None, str(error))
    if not request.htmx:
        if generation is not None:
            return redirect("studio:home")
        return render(request, "studio/home.html", _home_context(request, form), status=400)
    if generation is None:
        # Errors replace the composer (htmx swaps 2xx answers only, hence retarget instead of a 4xx).
        response = render(request, "studio/home.html#composer", _home_context(request, form))
        return reswap(retarget(response, "#composer"), "outerHTML")
    generation = _get_generation_for_user(request, generation.pk)
    # The new card goes on top of the gallery; the composer stays as it is, for the next variation.
    return render(
        request, "studio/home.html#generation-card", {"generation": generation, "membership": membership}
    )


PICKER_PAGE_SIZE = 24


@login_required
@require_GET
def composer_gallery_picker(request: AuthenticatedRequest) -> HttpResponse:
    """Recent images of the current workspace, as thumbnails to pick as references or as the mask's source."""
    purpose = "source" if request.GET.get("for") == "source" else "reference"
    offset = min(int(request.GET["offset"]), 10**9) if request.GET.get("offset", "").isdigit() else 0
    images = list(
        Image.objects.filter(workspace=request.membership.workspace)
        .select_related("generation")
        .order_by("-created_at", "-index")[offset : offset + PICKER_PAGE_SIZE + 1]
    )
    return render(
        request,
        "studio/composer_picker.html",
        {
            "images": images[:PICKER_PAGE_SIZE],
            "purpose": purpose,
            "next_offset": offset + PICKER_PAGE_SIZE if len(images) > PICKER_PAGE_SIZE else None,
            "offset": offset,
        },
    )


@login_required
@require_GET
def generation_card(request: AuthenticatedRequest, generation_id: UUID) -> HttpResponse:
    generation = _get_generation_for_user(request, generation_id)
    return render(
        request,
        "studio/home.html#generation-card",
        {"generation": generation, "membership": request.membership},
    )


@login_required
@require_POST
def cancel(request: AuthenticatedRequest, generation_id: UUID) -> HttpResponse:
    generation = _get_generation_for_user(request, generation_id)
    membership = generation.workspace.memberships.filter(user=request.user).first()
    if membership is None:
        raise Http404
    generation_cancel(generation, membership=membership)
    generation = _get_generation_for_user(request, generation_id)
    if request.htmx:
        return render(
            request, "studio/home.html#generation-card", {"generation": generation, "membership": membership}
        )
    return redirect("studio:home")


@login_required
@require_GET
def partial_image(request: AuthenticatedRequest, generation_id: UUID) -> HttpResponseBase:
    generation = _get_generation_for_user(request, generation_id)
    if not generation.partial_image:
        raise Http404
    content_type = f"image/{generation.spec.get('output_format', 'png')}"
    return file_response(request, generation.partial_image, content_type, cache="private, no-cache")
