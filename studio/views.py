import json
import logging

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from accounts.ledger import InsufficientCredits
from studio import pricing
from studio.forms import ComposerForm
from studio.models import Generation, Image
from studio.services import generation_cancel, generation_submit

logger = logging.getLogger(__name__)

GALLERY_PAGE_SIZE = 24


def _get_generation_for_user(request: HttpRequest, generation_id) -> Generation:
    """The generation, if the user is a member of its workspace; 404 for anyone else."""
    return get_object_or_404(
        Generation.objects.for_user(request.user)
        .select_related("author", "project")
        .prefetch_related("images"),
        pk=generation_id,
    )


def _get_image_for_user(request: HttpRequest, image_id) -> Image:
    return get_object_or_404(Image.objects.filter(workspace__memberships__user=request.user), pk=image_id)


def _home_context(request: HttpRequest, form: ComposerForm) -> dict:
    membership = request.membership
    generations = (
        Generation.objects.filter(workspace=membership.workspace)
        .select_related("author", "project")
        .prefetch_related("images")[:GALLERY_PAGE_SIZE]
    )
    return {
        "form": form,
        "membership": membership,
        "generations": generations,
        "price_per_image": pricing.price_per_image(tier="1K", quality="medium"),
        "prices_json": json.dumps(settings.CREDIT_PRICES),
    }


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "studio/home.html", _home_context(request, ComposerForm()))


@login_required
@require_POST
def generate(request: HttpRequest) -> HttpResponse:
    form = ComposerForm(request.POST)
    membership = request.membership
    generation = None
    if form.is_valid():
        try:
            generation = generation_submit(
                membership=membership, spec=form.spec, idempotency_key=form.cleaned_data["idempotency_key"]
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


@login_required
@require_GET
def generation_card(request: HttpRequest, generation_id) -> HttpResponse:
    generation = _get_generation_for_user(request, generation_id)
    return render(
        request,
        "studio/home.html#generation-card",
        {"generation": generation, "membership": request.membership},
    )


@login_required
@require_POST
def cancel(request: HttpRequest, generation_id) -> HttpResponse:
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


def _file_response(field, content_type: str, *, download_name: str | None = None) -> FileResponse:
    try:
        handle = field.open("rb")
    except FileNotFoundError as error:
        raise Http404 from error
    response = FileResponse(
        handle,
        content_type=content_type,
        as_attachment=download_name is not None,
        filename=download_name or "",
    )
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
@require_GET
def image_file(request: HttpRequest, image_id) -> FileResponse:
    image = _get_image_for_user(request, image_id)
    download = f"studio-{image.pk}.{image.format}" if request.GET.get("download") else None
    return _file_response(image.file, image.content_type, download_name=download)


@login_required
@require_GET
def image_thumbnail(request: HttpRequest, image_id) -> FileResponse:
    image = _get_image_for_user(request, image_id)
    return _file_response(image.thumbnail, "image/webp")


@login_required
@require_GET
def partial_image(request: HttpRequest, generation_id) -> FileResponse:
    generation = _get_generation_for_user(request, generation_id)
    if not generation.partial_image:
        raise Http404
    response = _file_response(
        generation.partial_image, f"image/{generation.spec.get('output_format', 'png')}"
    )
    response["Cache-Control"] = "private, no-cache"
    return response
