import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import sign_up

pytestmark = pytest.mark.browser


def test_sign_up_generate_and_watch_the_image_arrive(page, studio_server):
    sign_up(page, studio_server.url, f"eve{uuid.uuid4().hex[:6]}")
    expect(page.locator("#balance")).to_have_text("1,000 credits")

    page.get_by_label("Prompt").fill("a lighthouse at dusk, oil painting")
    page.get_by_role("button", name="Generate").click()

    card = page.locator("#generations > article").first
    expect(card).to_be_visible()
    # A partial image shows while it runs, then the finished image replaces it, without a reload.
    expect(card.locator("img.partial-image")).to_be_visible()
    expect(card).to_have_attribute("data-status", "succeeded", timeout=30_000)
    result = card.locator("img.result-image")
    expect(result).to_be_visible()
    assert result.evaluate("image => image.complete && image.naturalWidth > 0")
    expect(page.locator("#balance")).to_have_text("900 credits")
    assert page.console.errors == []


def test_a_reload_mid_run_shows_the_current_state_and_the_latest_partial(page, studio_server):
    sign_up(page, studio_server.url, f"fay{uuid.uuid4().hex[:6]}")
    page.get_by_label("Prompt").fill("a slow and careful drawing of a fern")
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#generations > article").first
    expect(card.locator("img.partial-image")).to_be_visible()

    page.reload()
    card = page.locator("#generations > article").first
    if card.get_attribute("data-status") == "running":
        expect(card.locator("img.partial-image")).to_be_visible()
    # And live updates resume after the reload.
    expect(card).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(card.locator("img.result-image")).to_be_visible()
    assert page.console.errors == []
