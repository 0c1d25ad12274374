"""Short-lived signed links to a generation's input images, for image services that take inputs only as
URLs (sjinn, sinancode). They work without a session or key until UPSTREAM_INPUT_URL_TTL_SECONDS pass, and
name one input each; the studio must be reachable at STUDIO_PUBLIC_URL."""

from django.conf import settings
from django.core import signing
from django.urls import reverse

SALT = "studio.engine.input-link"


def input_url(input_id: int) -> str:
    """The absolute link to one input image, or "" when the studio has no public URL."""
    if not settings.STUDIO_PUBLIC_URL:
        return ""
    token = signing.TimestampSigner(salt=SALT).sign(str(input_id))
    return settings.STUDIO_PUBLIC_URL + reverse("studio:input-link", args=[token])


def input_id_from_token(token: str) -> int | None:
    """The input a token names, or None if it is forged, expired or not a link to an input."""
    try:
        value = signing.TimestampSigner(salt=SALT).unsign(
            token, max_age=settings.UPSTREAM_INPUT_URL_TTL_SECONDS
        )
    except signing.BadSignature:
        return None
    return int(value) if value.isdigit() else None
