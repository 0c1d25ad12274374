import pytest

from studio.engine import pricing
from studio.engine.spec import GenerationSpec
from studio.models import PriceRule

# Prices read the admin's price rules from the database.
pytestmark = pytest.mark.django_db


def test_an_image_costs_100_credits_by_default(settings):
    settings.CREDIT_PRICES = {}
    assert pricing.price(GenerationSpec.build(prompt="x")) == 100


def test_n_images_cost_n_times_the_price(settings):
    settings.CREDIT_PRICES = {}
    assert pricing.price(GenerationSpec.build(prompt="x", n=4)) == 400


def test_the_table_by_tier_and_quality_overrides_the_default(settings):
    settings.CREDIT_PRICES = {"4K": 300, "4K:high": 400}
    four_k = {"prompt": "x", "aspect_ratio": "16:9", "resolution": "4K"}
    assert pricing.price(GenerationSpec.build(**four_k, quality="low")) == 300
    assert pricing.price(GenerationSpec.build(**four_k, quality="high", n=2)) == 800
    assert pricing.price(GenerationSpec.build(prompt="x", resolution="2K")) == 100


def test_an_explicit_size_is_priced_at_its_tier(settings):
    settings.CREDIT_PRICES = {"2K": 150}
    assert pricing.price(GenerationSpec.build(prompt="x", size="2048x1152")) == 150
    assert pricing.price(GenerationSpec.build(prompt="x", size="1536x1024")) == 100


def test_an_admin_price_rule_wins_over_the_settings(settings):
    settings.CREDIT_PRICES = {"4K": 300, "4K:high": 400}
    PriceRule.objects.create(tier="4K", quality="", credits=250)
    four_k = {"prompt": "x", "aspect_ratio": "16:9", "resolution": "4K"}
    # The admin's rule for the whole tier beats even the settings' rule for tier and quality.
    assert pricing.price(GenerationSpec.build(**four_k, quality="high")) == 250
    PriceRule.objects.create(tier="4K", quality="high", credits=500)
    assert pricing.price(GenerationSpec.build(**four_k, quality="high")) == 500
    assert pricing.price(GenerationSpec.build(**four_k, quality="low")) == 250


def test_a_price_rule_applies_to_the_next_submission(settings):
    settings.CREDIT_PRICES = {}
    assert pricing.price(GenerationSpec.build(prompt="x", resolution="2K")) == 100
    rule = PriceRule.objects.create(tier="2K", credits=180)
    assert pricing.price(GenerationSpec.build(prompt="x", resolution="2K")) == 180
    rule.credits = 120
    rule.save()
    assert pricing.price(GenerationSpec.build(prompt="x", resolution="2K")) == 120


def test_the_composer_table_resolves_every_tier_and_quality(settings):
    settings.CREDIT_PRICES = {"2K": 150, "4K:high": 400}
    PriceRule.objects.create(tier="1K", quality="low", credits=50)
    table = pricing.price_table()
    assert len(table) == 12
    assert table["1K:low"] == 50 and table["1K:medium"] == 100
    assert table["2K:auto"] == 150
    assert table["4K:high"] == 400 and table["4K:low"] == 100
