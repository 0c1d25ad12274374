from studio import pricing
from studio.spec import GenerationSpec


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
