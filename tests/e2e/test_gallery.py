"""The gallery and shared workspaces in a real browser: filters and search, favourites, the image page, a ZIP
download, a teammate's generation arriving live in another browser, and what a viewer is not offered."""

import io
import re
import uuid
import zipfile

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ConsoleWatcher, add_member, sign_up, switch_workspace

pytestmark = pytest.mark.browser


def generate(page, prompt: str) -> None:
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_role("button", name="Generate").click()
    card = page.locator("#generations > article", has_text=prompt)
    expect(card).to_have_attribute("data-status", "succeeded", timeout=40_000)


def test_filter_search_star_open_and_download_from_the_gallery(page, studio_server):
    sign_up(page, studio_server.url, f"gus{uuid.uuid4().hex[:6]}")
    generate(page, "a red fox in fresh snow")
    generate(page, "a blue whale under the moon")

    page.get_by_role("navigation", name="Workspace").get_by_role("link", name="Gallery").click()
    tiles = page.locator("#gallery-tiles > li.tile")
    expect(tiles).to_have_count(2)
    for source in tiles.locator("img").evaluate_all("images => images.map(image => image.src)"):
        assert source.endswith("/thumbnail/")

    # Typing searches without a reload, and the address follows, so a reload keeps the search.
    page.evaluate("window.galleryMarker = 'same page'")
    page.get_by_label("Search prompts").fill("whale")
    expect(tiles).to_have_count(1)
    expect(tiles.first).to_contain_text("a blue whale under the moon")
    expect(page).to_have_url(re.compile(r"/gallery/\?.*q=whale"))
    assert page.evaluate("window.galleryMarker") == "same page"

    # A star, then the favourites filter.
    tiles.first.hover()
    tiles.first.get_by_role("button", name="Favourite").click()
    expect(tiles.first.get_by_role("button", name="Favourite")).to_have_attribute("aria-pressed", "true")
    page.get_by_label("Search prompts").fill("")
    expect(tiles).to_have_count(2)
    page.get_by_label("Favourites only").check()
    expect(tiles).to_have_count(1)
    expect(tiles.first).to_contain_text("whale")
    page.get_by_label("Favourites only").uncheck()
    expect(tiles).to_have_count(2)

    # Nothing failed; the status filter says so plainly.
    page.get_by_label("Status").select_option(label="Failed")
    expect(page.locator("#gallery-results")).to_contain_text("Nothing matches these filters.")
    page.get_by_label("Status").select_option(label="Done")
    expect(tiles).to_have_count(2)

    # Select one image and download a ZIP of it.
    fox = tiles.filter(has_text="a red fox")
    fox.hover()
    fox.get_by_role("checkbox").check()
    expect(page.locator("[data-selected-count]")).to_have_text("1")
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download ZIP").click()
    archive = zipfile.ZipFile(io.BytesIO(open(download_info.value.path(), "rb").read()))  # noqa: SIM115
    assert [name.startswith("a-red-fox-in-fresh-snow-") for name in archive.namelist()] == [True]
    assert archive.read(archive.namelist()[0])[:8] == b"\x89PNG\r\n\x1a\n"

    # The image page: the full record, and the keyboard goes to the next image.
    fox.locator("a.tile-link").click()
    expect(page.get_by_role("heading", name="Prompt")).to_be_visible()
    expect(page.locator(".prompt-text").first).to_have_text("a red fox in fresh snow")
    expect(page.locator(".record")).to_contain_text("100 credits")
    expect(page.get_by_role("link", name="Reuse settings")).to_be_visible()
    page.keyboard.press("ArrowLeft")
    expect(page.locator(".prompt-text").first).to_have_text("a blue whale under the moon")
    assert page.console.errors == []


def test_a_teammate_sees_a_new_generation_arrive_live(browser, studio_server):
    suffix = uuid.uuid4().hex[:6]
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(2)]
    try:
        maker, watcher = (context.new_page() for context in contexts)
        for page in (maker, watcher):
            page.set_default_timeout(20_000)
            page.console = ConsoleWatcher(page)
        sign_up(maker, studio_server.url, f"maker{suffix}")
        sign_up(watcher, studio_server.url, f"watcher{suffix}")
        team = f"Studio team {suffix}"
        add_member(
            studio_server, workspace=team, owner=f"maker{suffix}", members={f"watcher{suffix}": "editor"}
        )
        switch_workspace(maker, team)
        switch_workspace(watcher, team)
        expect(watcher.locator("#generations > article")).to_have_count(0)
        watcher.evaluate("window.liveMarker = 'not reloaded'")

        maker.get_by_label("Prompt").fill("a lighthouse the whole team can see")
        maker.get_by_role("button", name="Generate").click()

        card = watcher.locator("#generations > article", has_text="a lighthouse the whole team can see")
        expect(card).to_be_visible()
        expect(card).to_have_attribute("data-status", "succeeded", timeout=40_000)
        expect(card.locator("img.result-image")).to_be_visible()
        assert watcher.evaluate("window.liveMarker") == "not reloaded"
        # And it is in the team's gallery for both.
        watcher.goto(f"{studio_server.url}/gallery/")
        expect(watcher.locator("#gallery-tiles > li.tile")).to_have_count(1)
        assert maker.console.errors == [] and watcher.console.errors == []
    finally:
        for context in contexts:
            context.close()


def test_a_viewer_can_look_but_is_not_offered_generate_move_or_delete(page, studio_server, browser):
    suffix = uuid.uuid4().hex[:6]
    owner_context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        owner = owner_context.new_page()
        owner.set_default_timeout(20_000)
        sign_up(owner, studio_server.url, f"boss{suffix}")
        sign_up(page, studio_server.url, f"onlooker{suffix}")
        team = f"Review team {suffix}"
        add_member(
            studio_server, workspace=team, owner=f"boss{suffix}", members={f"onlooker{suffix}": "viewer"}
        )
        switch_workspace(owner, team)
        generate(owner, "a poster for the review")

        switch_workspace(page, team)
        expect(page.locator("#generations > article", has_text="a poster for the review")).to_be_visible()
        expect(page.get_by_role("button", name="Generate")).to_have_count(0)
        expect(page.get_by_text("Ask an owner for the editor role")).to_be_visible()

        page.goto(f"{studio_server.url}/gallery/")
        expect(page.locator("#gallery-tiles > li.tile")).to_have_count(1)
        expect(page.get_by_role("button", name="Download ZIP")).to_be_visible()
        expect(page.get_by_role("button", name="Move")).to_have_count(0)
        expect(page.get_by_role("button", name="Delete…")).to_have_count(0)
        page.locator("#gallery-tiles a.tile-link").first.click()
        expect(page.get_by_role("link", name="Download original")).to_be_visible()
        for name in ("Reuse settings", "Edit", "Use as reference", "Delete…"):
            expect(page.get_by_role("link", name=name, exact=True)).to_have_count(0)
        assert page.console.errors == []
    finally:
        owner_context.close()


def test_an_owner_deletes_selected_images_after_confirming(page, studio_server):
    sign_up(page, studio_server.url, f"hal{uuid.uuid4().hex[:6]}")
    generate(page, "a draft to throw away")
    generate(page, "a keeper")
    page.goto(f"{studio_server.url}/gallery/")
    draft = page.locator("#gallery-tiles > li.tile", has_text="a draft to throw away")
    draft.hover()
    draft.get_by_role("checkbox").check()
    page.get_by_role("button", name="Delete…").click()
    expect(page.get_by_role("heading", name="Delete 1 image?")).to_be_visible()
    page.get_by_role("button", name="Delete 1 image").click()
    expect(page.locator(".message-success")).to_have_text("Deleted 1 image.")
    expect(page.locator("#gallery-tiles > li.tile")).to_have_count(1)
    expect(page.locator("#gallery-tiles > li.tile")).to_contain_text("a keeper")
    assert page.console.errors == []


def test_the_gallery_updates_live_new_images_appear_and_deleted_ones_vanish(browser, studio_server):
    suffix = uuid.uuid4().hex[:6]
    contexts = [browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(2)]
    try:
        maker, watcher = (context.new_page() for context in contexts)
        for page in (maker, watcher):
            page.set_default_timeout(20_000)
            page.console = ConsoleWatcher(page)
        sign_up(maker, studio_server.url, f"artist{suffix}")
        sign_up(watcher, studio_server.url, f"guest{suffix}")
        team = f"Live gallery {suffix}"
        add_member(
            studio_server, workspace=team, owner=f"artist{suffix}", members={f"guest{suffix}": "viewer"}
        )
        switch_workspace(maker, team)
        switch_workspace(watcher, team)
        generate(maker, "the first lighthouse")

        watcher.goto(f"{studio_server.url}/gallery/")
        tiles = watcher.locator("#gallery-tiles > li.tile")
        expect(tiles).to_have_count(1)
        watcher.evaluate("window.liveMarker = 'not reloaded'")

        generate(maker, "the second lighthouse")  # made on the home page, seen in the viewer's gallery
        expect(tiles).to_have_count(2, timeout=40_000)
        expect(tiles.first).to_contain_text("the second lighthouse")

        maker.goto(f"{studio_server.url}/gallery/")
        first = maker.locator("#gallery-tiles > li.tile", has_text="the first lighthouse")
        first.hover()
        first.get_by_role("checkbox").check()
        maker.get_by_role("button", name="Delete…").click()
        maker.get_by_role("button", name="Delete 1 image").click()
        expect(maker.locator(".message-success")).to_have_text("Deleted 1 image.")

        expect(tiles).to_have_count(1)
        expect(tiles.first).to_contain_text("the second lighthouse")
        assert watcher.evaluate("window.liveMarker") == "not reloaded"

        # A gallery narrowed by a search keeps its tiles and says that new images exist.
        watcher.goto(f"{studio_server.url}/gallery/?q=second")
        expect(tiles).to_have_count(1)
        maker.goto(f"{studio_server.url}/")
        generate(maker, "a third, unrelated picture")
        expect(watcher.locator("#live-notice")).to_be_visible(timeout=40_000)
        expect(tiles).to_have_count(1)
        assert maker.console.errors == [] and watcher.console.errors == []
    finally:
        for context in contexts:
            context.close()
