"""What a generation costs, in credits."""

from django.conf import settings

from studio.spec import GenerationSpec


def price_per_image(*, tier: str, quality: str) -> int:
    """The table in CREDIT_PRICES ("4K:high" or "4K") overrides the default CREDITS_PER_IMAGE."""
    table: dict[str, int] = getattr(settings, "CREDIT_PRICES", {}) or {}
    for key in (f"{tier}:{quality}", tier):
        if key in table:
            return int(table[key])
    return int(settings.CREDITS_PER_IMAGE)


def price(spec: GenerationSpec) -> int:
    return price_per_image(tier=spec.tier, quality=spec.quality) * spec.n
