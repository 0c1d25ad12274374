"""What a generation costs, in credits. Pure: the price list is handed in as data (`PriceList`), built by
`studio.engine.services.price_list()` from the admin's price rules and the settings.

Where a price comes from, first match wins: an admin rule for the tier and quality, an admin rule for the
tier, the configured table (CREDIT_PRICES: "4K:high", then "4K"), and last the default (CREDITS_PER_IMAGE).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

from studio.engine.spec import QUALITIES, RESOLUTIONS, GenerationSpec


@dataclass(frozen=True)
class PriceList:
    default: int
    rules: Mapping[str, int] = field(default_factory=dict)
    configured: Mapping[str, int] = field(default_factory=dict)

    def per_image(self, *, tier: str, quality: str) -> int:
        for table in (self.rules, self.configured):
            for key in (f"{tier}:{quality}", tier):
                if key in table:
                    return int(table[key])
        return int(self.default)

    def cost(self, spec: GenerationSpec) -> int:
        return self.per_image(tier=spec.tier, quality=spec.quality) * spec.n

    def table(self) -> dict[str, int]:
        """Every "tier:quality" with its price per image, resolved, for the composer to show costs as the
        submission would charge them."""
        return {
            f"{tier}:{quality}": self.per_image(tier=tier, quality=quality)
            for tier in RESOLUTIONS
            for quality in QUALITIES
        }
