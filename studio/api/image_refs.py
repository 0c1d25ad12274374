"""Images that API clients name instead of uploading: `asset://<image id>` (an image of the key's workspace
gallery), `data:` URIs, the studio's own result links, or public http(s) URLs that the worker fetches.

The studio's own links are read from storage, never fetched over the network, and only when the key's
workspace may read the image, so a client can chain one task's output into the next task's input.
"""

import base64
import binascii
import re
from urllib.parse import urlsplit

from django.urls import Resolver404, resolve

from accounts.models import Workspace
from studio.api import links
from studio.api.errors import ApiError, invalid, not_found
from studio.engine import input_links
from studio.engine.fetch import check_url
from studio.engine.images import ImageProblem, check_image
from studio.engine.outbound import OutboundRefused
from studio.engine.services import SubmittedImage
from studio.models import GenerationInput, Image

DATA_URI = re.compile(r"^data:image/(png|jpe?g|webp);base64,(?P<data>.+)$", re.IGNORECASE | re.DOTALL)


def _gallery_image(workspace: Workspace, image_id: str, param: str) -> SubmittedImage:
    image = Image.objects.filter(pk=image_id, workspace=workspace).first() if _is_uuid(image_id) else None
    if image is None:
        raise not_found(f"{param}: no such image in this workspace.")
    with image.file.open("rb") as handle:
        return SubmittedImage(image=check_image(handle.read()), source_image=image)


def _is_uuid(value: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-fA-F-]{32,36}", value or ""))


def _own_link(url: str, own_hosts: set[str]) -> tuple[str, str] | None:
    """(view name, token) of a signed link of this studio's: a result (`api:image-link`) or an input handed
    to an image service (`studio:input-link`, when this studio is another's upstream)."""
    parts = urlsplit(url)
    if (parts.hostname or "").lower() not in own_hosts:
        return None
    try:
        match = resolve(parts.path)
    except Resolver404:
        return None
    if match.view_name in ("api:image-link", "studio:input-link"):
        return match.view_name, match.kwargs.get("token", "")
    return None


def _input_image(token: str, param: str) -> SubmittedImage:
    """An input image by its signed link: whoever holds the link may read that one image, so it is read
    from storage here rather than fetched over the network."""
    input_id = input_links.input_id_from_token(token)
    item = GenerationInput.objects.filter(pk=input_id).first() if input_id is not None else None
    if item is None or not item.file:
        raise invalid(f"{param}: this studio link has expired or is not valid.", param=param)
    with item.file.open("rb") as handle:
        return SubmittedImage(image=check_image(handle.read()))


def resolve_image(reference: str, *, workspace: Workspace, own_hosts: set[str], param: str) -> SubmittedImage:
    """Turn a reference into an input image, or raise ApiError (nothing has been charged yet)."""
    reference = (reference or "").strip()
    if not reference:
        raise invalid(f"{param}: an empty image reference.", param=param)
    if reference.startswith("asset://"):
        return _gallery_image(workspace, reference.removeprefix("asset://"), param)
    if match := DATA_URI.match(reference):
        try:
            return SubmittedImage(image=check_image(base64.b64decode(match["data"], validate=True)))
        except (binascii.Error, ValueError, ImageProblem) as error:
            raise invalid(f"{param}: {error}", param=param) from error
    if (own := _own_link(reference, own_hosts)) is not None:
        view_name, token = own
        if view_name == "studio:input-link":
            return _input_image(token, param)
        image_id = links.image_id_from_token(token)
        if image_id is None:
            raise invalid(f"{param}: this studio link has expired or is not valid.", param=param)
        return _gallery_image(workspace, image_id, param)
    try:
        check_url(reference)
    except OutboundRefused as error:
        raise invalid(f"{param}: {error}", param=param, code="url_refused") from error
    return SubmittedImage(url=reference)


def resolve_images(
    references: object, *, workspace: Workspace, own_hosts: set[str], param: str
) -> list[SubmittedImage]:
    if references in (None, ""):
        return []
    if not isinstance(references, list) or not all(isinstance(item, str) for item in references):
        raise invalid(f"{param} must be a list of image URLs.", param=param)
    if len(references) > 16:
        raise invalid(f"{param}: at most 16 images.", param=param)
    return [resolve_image(item, workspace=workspace, own_hosts=own_hosts, param=param) for item in references]


__all__ = ["ApiError", "resolve_image", "resolve_images"]
