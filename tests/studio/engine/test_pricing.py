import pytest

from studio.engine.pricing import PriceList
from studio.engine.services import price_list
from studio.engine.spec import GenerationSpec
from studio.models import PriceRule

# The price list reads the admin's price rules from the database.
pytestmark = pytest.mark.django_db


def test_an_image_costs_100_credits_by_default(settings):
    settings.CREDIT_PRICES = {}
    assert price_list().cost(GenerationSpec.build(prompt="x")) == 100


def test_n_images_cost_n_times_the_price(settings):
    settings.CREDIT_PRICES = {}
    assert price_list().cost(GenerationSpec.build(prompt="x", n=4)) == 400


def test_the_table_by_tier_and_quality_overrides_the_default(settings):
    settings.CREDIT_PRICES = {"4K": 300, "4K:high": 400}
    four_k = {"prompt": "x", "aspect_ratio": "16:9", "resolution": "4K"}
    assert price_list().cost(GenerationSpec.build(**four_k, quality="low")) == 300
    assert price_list().cost(GenerationSpec.build(**four_k, quality="high", n=2)) == 800
    assert price_list().cost(GenerationSpec.build(prompt="x", resolution="2K")) == 100


def test_an_explicit_size_is_priced_at_its_tier(settings):
    settings.CREDIT_PRICES = {"2K": 150}
    assert price_list().cost(GenerationSpec.build(prompt="x", size="2048x1152")) == 150
    assert price_list().cost(GenerationSpec.build(prompt="x", size="1536x1024")) == 100


def test_an_admin_price_rule_wins_over_the_settings(settings):
    settings.CREDIT_PRICES = {"4K": 300, "4K:high": 400}
    PriceRule.objects.create(tier="4K", quality="", credits=250)
    four_k = {"prompt": "x", "aspect_ratio": "16:9", "resolution": "4K"}
    # The admin's rule for the whole tier beats even the settings' rule for tier and quality.
    assert price_list().cost(GenerationSpec.build(**four_k, quality="high")) == 250
    PriceRule.objects.create(tier="4K", quality="high", credits=500)
    assert price_list().cost(GenerationSpec.build(**four_k, quality="high")) == 500
    assert price_list().cost(GenerationSpec.build(**four_k, quality="low")) == 250


def test_a_price_rule_applies_to_the_next_submission(settings):
    settings.CREDIT_PRICES = {}
    assert price_list().cost(GenerationSpec.build(prompt="x", resolution="2K")) == 100
    rule = PriceRule.objects.create(tier="2K", credits=180)
    assert price_list().cost(GenerationSpec.build(prompt="x", resolution="2K")) == 180
    rule.credits = 120
    rule.save()
    assert price_list().cost(GenerationSpec.build(prompt="x", resolution="2K")) == 120


def test_the_composer_table_resolves_every_tier_and_quality(settings):
    settings.CREDIT_PRICES = {"2K": 150, "4K:high": 400}
    PriceRule.objects.create(tier="1K", quality="low", credits=50)
    table = price_list().table()
    assert len(table) == 12
    assert table["1K:low"] == 50 and table["1K:medium"] == 100
    assert table["2K:auto"] == 150
    assert table["4K:high"] == 400 and table["4K:low"] == 100


def test_the_price_list_is_pure_data_that_the_engine_hands_in():
    prices = PriceList(default=100, rules={"4K:high": 500}, configured={"4K": 300, "2K": 150})
    four_k = {"prompt": "x", "aspect_ratio": "16:9", "resolution": "4K"}
    assert prices.cost(GenerationSpec.build(**four_k, quality="high", n=2)) == 1000
    assert prices.cost(GenerationSpec.build(**four_k, quality="low")) == 300
    assert prices.per_image(tier="1K", quality="low") == 100
