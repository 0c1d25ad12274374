"""Signed, expiring links to images, for `response_format=url` and task results: they work without a session
or key, for as long as API_IMAGE_URL_TTL_SECONDS."""

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "studio.api.image-url"


def signed_path(image_id: object) -> str:
    token = signing.TimestampSigner(salt=SALT).sign(str(image_id))
    return reverse("api:image-link", args=[token])


def image_id_from_token(token: str) -> str | None:
    """The image id a token names, or None if it is forged or expired."""
    try:
        return signing.TimestampSigner(salt=SALT).unsign(token, max_age=settings.API_IMAGE_URL_TTL_SECONDS)
    except signing.BadSignature:
        return None
