"""Screenshots of the main pages, taken from a real team workspace with real generations.

Every run visits the pages and checks that each renders without a console error; the pictures go to a
temporary folder. To refresh the ones in the README:

    STUDIO_SCREENSHOTS=docs/screenshots .venv/bin/python -m studio.management.embedded_redis \\
        .venv/bin/pytest tests/e2e/test_screenshots.py -p no:cacheprovider
"""

import os
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import ROOT, add_member, sign_up, switch_workspace

pytestmark = pytest.mark.browser

PROMPTS = [
    "a lighthouse on a cliff at dusk, warm light in the windows, oil painting",
    "a red fox curled up in fresh snow, soft morning light, watercolour",
    "a neon tram in the rain at night, reflections on wet cobblestones, 35mm photo",
    "an isometric render of a tiny greenhouse full of ferns",
    "a poster for a jazz night, bold geometric shapes, two colours",
]


def _shot(page, folder: Path, name: str, *, full_page: bool = False) -> None:
    page.wait_for_load_state("networkidle")
    # Wait for the thumbnails on screen, so no picture shows a half-loaded grid.
    page.wait_for_function(
        "Array.from(document.images).filter(i => i.loading !== 'lazy' || i.getBoundingClientRect().top"
        " < innerHeight).every(i => i.complete)"
    )
    path = folder / f"{name}.png"
    page.screenshot(path=path, full_page=full_page)
    assert path.stat().st_size > 10_000, f"{name} looks empty"


def test_screenshots_of_the_main_pages(browser, studio_server, tmp_path):
    folder = Path(os.environ.get("STUDIO_SCREENSHOTS") or tmp_path)
    if not folder.is_absolute():
        folder = ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    suffix = uuid.uuid4().hex[:4]
    owner_name = f"mara{suffix}"
    context = browser.new_context(viewport={"width": 1280, "height": 800}, device_scale_factor=1)
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "response",
        lambda response: response.status >= 400 and errors.append(f"{response.status} {response.url}"),
    )
    try:
        sign_up(page, studio_server.url, owner_name)
        studio_server.manage(
            "shell",
            "-c",
            "from accounts.services import user_signup\n"
            "from accounts.models import User\n"
            f"for name in ('ivo{suffix}', 'lena{suffix}'):\n"
            "    user_signup(username=name, email=f'{name}@example.com', password='a long enough secret')\n"
            f"User.objects.filter(username='{owner_name}').update(is_staff=True, is_superuser=True)\n",
        )
        team = "Poster studio"
        slug = add_member(
            studio_server,
            workspace=team,
            owner=owner_name,
            members={f"ivo{suffix}": "editor", f"lena{suffix}": "viewer"},
        )
        studio_server.manage(
            "shell",
            "-c",
            "from accounts.models import Workspace\nfrom studio.models import Project\n"
            f"workspace = Workspace.objects.get(slug={slug!r})\nProject.default_for(workspace)\n"
            "for name in ('Jazz festival', 'Book covers', 'Old drafts'):\n"
            "    Project.objects.create(workspace=workspace, name=name)\n",
        )
        switch_workspace(page, team)

        for prompt in PROMPTS:
            page.get_by_label("Prompt").fill(prompt)
            page.get_by_role("button", name="Generate").click()
            expect(page.locator("#generations > article", has_text=prompt[:40])).to_be_visible()
        cards = page.locator("#generations > article")
        for index in range(len(PROMPTS)):
            expect(cards.nth(index)).to_have_attribute("data-status", "succeeded", timeout=60_000)
        # One more, caught while it is being drawn.
        page.get_by_label("Prompt").fill("a hot air balloon over a patchwork of fields, gouache")
        page.get_by_role("button", name="Generate").click()
        expect(cards.first.locator("img.partial-image")).to_be_visible()
        page.locator(".composer-panel").evaluate("panel => { panel.scrollTop = 0; }")  # it scrolls on its own
        page.evaluate("window.scrollTo(0, 0)")
        _shot(page, folder, "home")
        expect(cards.first).to_have_attribute("data-status", "succeeded", timeout=60_000)

        # The gallery, with two favourites.
        page.goto(f"{studio_server.url}/gallery/")
        tiles = page.locator("#gallery-tiles > li.tile")
        expect(tiles).to_have_count(len(PROMPTS) + 1)
        for index in (1, 3):
            tiles.nth(index).hover()
            tiles.nth(index).get_by_role("button", name="Favourite").click()
            expect(tiles.nth(index).get_by_role("button", name="Favourite")).to_have_attribute(
                "aria-pressed", "true"
            )
        tiles.nth(0).hover()
        tiles.nth(0).get_by_role("checkbox").check()
        tiles.nth(2).get_by_role("checkbox").check()
        page.mouse.move(5, 5)
        _shot(page, folder, "gallery")

        # An edit of the lighthouse, so its page has a lineage.
        tiles.filter(has_text="a lighthouse").locator("a.tile-link").click()
        page.get_by_role("link", name="Use as reference").click()
        page.get_by_label("Prompt").fill("the same lighthouse in a winter storm, oil painting")
        page.get_by_role("button", name="Generate").click()
        expect(cards.filter(has_text="winter storm")).to_have_attribute(
            "data-status", "succeeded", timeout=60_000
        )
        page.goto(f"{studio_server.url}/gallery/?q=winter+storm")
        page.locator("#gallery-tiles a.tile-link").first.click()
        expect(page.get_by_text("Made from")).to_be_visible()
        _shot(page, folder, "image", full_page=True)

        page.goto(f"{studio_server.url}/history/")
        _shot(page, folder, "history")
        page.goto(f"{studio_server.url}/workspaces/{slug}/projects/")
        _shot(page, folder, "projects")
        page.goto(f"{studio_server.url}/workspaces/{slug}/members/")
        _shot(page, folder, "members")
        page.goto(f"{studio_server.url}/settings/api-keys/")
        page.get_by_label("Name").fill("batch script")
        page.get_by_role("button", name="Create key").click()
        _shot(page, folder, "api-keys")
        assert errors == []

        # The admin's users and balances. Its pages are Django's: not ours to judge for console messages.
        page.goto(f"{studio_server.url}/admin/accounts/user/")
        _shot(page, folder, "admin")
        errors.clear()

        # A phone, with two images selected.
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
        )
        try:
            phone_page = phone.new_page()
            phone_page.set_default_timeout(30_000)
            phone_page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            phone_page.on(
                "response",
                lambda response: (
                    response.status >= 400 and errors.append(f"{response.status} {response.url}")
                ),
            )
            phone_page.goto(f"{studio_server.url}/accounts/login/")
            phone_page.get_by_label("Username").fill(owner_name)
            phone_page.get_by_label("Password").fill("a long enough secret")
            phone_page.get_by_role("button", name="Log in").click()
            phone_page.wait_for_url(f"{studio_server.url}/")
            switch_workspace(phone_page, team)
            phone_page.goto(f"{studio_server.url}/gallery/")
            phone_tiles = phone_page.locator("#gallery-tiles > li.tile")
            phone_tiles.nth(0).get_by_role("checkbox").check()
            phone_tiles.nth(1).get_by_role("checkbox").check()
            _shot(phone_page, folder, "gallery-phone")
        finally:
            phone.close()
        assert errors == []
    finally:
        context.close()
