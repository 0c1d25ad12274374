"""What a generation costs, in credits.

Where a price comes from, first match wins: an admin price rule for the tier and quality, an admin rule for
the tier, CREDIT_PRICES from the settings ("4K:high", then "4K"), and last CREDITS_PER_IMAGE. Rules are read
on every call (a tiny table), so a change in the admin applies to the next submission.
"""

from django.conf import settings

from studio import spec as spec_module
from studio.spec import GenerationSpec


def _admin_rules(tier: str | None = None) -> dict[str, int]:
    from studio.models import PriceRule

    rules = PriceRule.objects.all()
    if tier is not None:
        rules = rules.filter(tier=tier)
    return {rule.key: rule.credits for rule in rules}


def _lookup(admin_rules: dict[str, int], *, tier: str, quality: str) -> int:
    settings_table: dict[str, int] = getattr(settings, "CREDIT_PRICES", {}) or {}
    for table in (admin_rules, settings_table):
        for key in (f"{tier}:{quality}", tier):
            if key in table:
                return int(table[key])
    return int(settings.CREDITS_PER_IMAGE)


def price_per_image(*, tier: str, quality: str) -> int:
    return _lookup(_admin_rules(tier), tier=tier, quality=quality)


def price(spec: GenerationSpec) -> int:
    return price_per_image(tier=spec.tier, quality=spec.quality) * spec.n


def price_table() -> dict[str, int]:
    """Every "tier:quality" with its price per image, resolved, for the composer to show costs as the
    page would charge them."""
    admin_rules = _admin_rules()
    return {
        f"{tier}:{quality}": _lookup(admin_rules, tier=tier, quality=quality)
        for tier in spec_module.RESOLUTIONS
        for quality in spec_module.QUALITIES
    }
