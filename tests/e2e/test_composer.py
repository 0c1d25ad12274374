"""The composer in a real browser: its controls, references (file picker, paste, drop, gallery), and mask
painting down to the pixels the engine changed."""

import base64
import io
import re
import uuid
from email.parser import BytesParser
from email.policy import HTTP

import pytest
from django.urls import reverse
from PIL import Image as PillowImage
from playwright.sync_api import expect

from tests.e2e.conftest import sign_up

pytestmark = pytest.mark.browser

IMAGE_HREF = re.compile(r"/images/([0-9a-f-]{36})/")


def png(color, size=(64, 64)) -> bytes:
    buffer = io.BytesIO()
    PillowImage.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def png_file(name: str, color, size=(64, 64)) -> dict:
    return {"name": name, "mimeType": "image/png", "buffer": png(color, size)}


def generate_and_wait(page, prompt: str):
    """Submit the composer and wait for the new card to finish; returns the card."""
    before = page.locator("#generations > article").count()
    page.get_by_label("Prompt", exact=True).fill(prompt)
    page.get_by_role("button", name="Generate").click()
    expect(page.locator("#generations > article")).to_have_count(before + 1)
    card = page.locator("#generations > article").first
    expect(card).to_have_attribute("data-status", "succeeded", timeout=30_000)
    return card


def result_image(page, base_url: str, card) -> tuple[str, PillowImage.Image]:
    """The id and pixels of a card's first result, downloaded with the page's session."""
    image_id = IMAGE_HREF.search(card.locator("a.result").first.get_attribute("href"))[1]
    response = page.request.get(base_url + reverse("studio:image-file", args=[image_id]))
    assert response.ok
    return image_id, PillowImage.open(io.BytesIO(response.body())).convert("RGB")


def form_fields(request) -> dict[str, list[bytes]]:
    """The fields of a multipart request the browser sent, by name."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.post_data_buffer)
    fields: dict[str, list[bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        fields.setdefault(name, []).append(part.get_payload(decode=True))
    return fields


def file_of(file_input) -> bytes:
    """The bytes of the file a file input holds."""
    encoded = file_input.evaluate(
        """async input => {
            const bytes = new Uint8Array(await input.files[0].arrayBuffer());
            let text = "";
            for (const byte of bytes) text += String.fromCharCode(byte);
            return btoa(text);
        }"""
    )
    return base64.b64decode(encoded)


def paint_stroke(page, start: tuple[float, float], end: tuple[float, float], steps: int = 12) -> None:
    """Drag the mouse across the mask canvas, from and to points given as fractions of its size."""
    canvas = page.locator("[data-mask-canvas]")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()

    def at(point):
        return box["x"] + point[0] * box["width"], box["y"] + point[1] * box["height"]

    page.mouse.move(*at(start))
    page.mouse.down()
    page.mouse.move(*at(end), steps=steps)
    page.mouse.up()


def painted_share(page) -> float:
    return float(page.locator("[data-mask-status]").get_attribute("data-painted"))


def test_the_composer_has_every_control_and_reacts_to_settings(page, studio_server):
    sign_up(page, studio_server.url, f"cam{uuid.uuid4().hex[:6]}")
    for label in ("Prompt", "Aspect ratio", "Resolution", "Quality", "Images", "Format", "Reference images"):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Generate")).to_be_visible()

    cost = page.locator("#composer [data-cost]")
    expect(cost).to_have_text("100 credits")
    page.get_by_label("Images", exact=True).fill("3")
    expect(cost).to_have_text("300 credits")

    prompt = page.get_by_label("Prompt", exact=True)
    prompt.fill("a lighthouse")
    counter = page.locator("[data-prompt-counter]")
    expect(counter).to_have_text("12 / 32,000")
    page.get_by_role("button", name="Golden hour").click()
    expect(prompt).to_have_value("a lighthouse, warm golden-hour light, long soft shadows")
    page.get_by_role("button", name="Golden hour").click()  # a phrase already there is not added twice
    page.get_by_role("button", name="35mm film").click()
    expected = "a lighthouse, warm golden-hour light, long soft shadows, shot on 35mm film, subtle grain"
    expect(prompt).to_have_value(expected)
    expect(counter).to_have_text(f"{len(expected)} / 32,000")

    guidance = page.locator("#ratio-guidance")
    expect(guidance).to_contain_text("Square: social posts")
    page.get_by_label("Aspect ratio", exact=True).select_option("16:9")
    expect(guidance).to_contain_text("banners")
    expect(guidance).to_contain_text("1K: 1536x864 px.")
    page.get_by_label("Aspect ratio", exact=True).select_option("9:16")
    expect(guidance).to_contain_text("stories")
    page.get_by_label("Aspect ratio", exact=True).select_option("auto")
    page.get_by_label("Resolution", exact=True).select_option("4K")
    expect(guidance).to_contain_text("Pick a ratio for 4K.")
    expect(guidance).to_have_class(re.compile("is-warning"))

    # An error answer re-renders the composer with the message beside the field.
    prompt.press("Control+Enter")
    expect(page.locator("#composer .field-error")).to_contain_text("Pick an aspect ratio for 2K and 4K")
    assert page.locator("#generations > article").count() == 0
    # Ctrl+Enter submits the corrected composer.
    page.get_by_label("Resolution", exact=True).select_option("1K")
    page.get_by_label("Images", exact=True).fill("1")
    page.get_by_label("Prompt", exact=True).press("Control+Enter")
    expect(page.locator("#generations > article")).to_have_count(1)
    assert page.console.errors == []


def test_file_references_show_as_removable_thumbnails_and_reach_the_engine(page, studio_server):
    sign_up(page, studio_server.url, f"ref{uuid.uuid4().hex[:6]}")
    picker = page.get_by_label("Reference images", exact=True)
    tray = page.locator("[data-reference-tray] > li")
    picker.set_input_files([png_file("red.png", (255, 0, 0)), png_file("blue.png", (0, 0, 255))])
    expect(tray).to_have_count(2)
    # A second use of the file picker adds to the first choice instead of replacing it.
    picker.set_input_files([png_file("green.png", (0, 255, 0))])
    expect(tray).to_have_count(3)
    expect(page.locator("[data-input-count]")).to_have_text("3 / 16 images")
    assert tray.first.locator("img").evaluate("image => image.src.startsWith('blob:')")
    # Types the engine cannot take are refused at once, with a word why.
    picker.set_input_files([{"name": "moving.gif", "mimeType": "image/gif", "buffer": b"GIF89a"}])
    expect(page.locator("[data-reference-note]")).to_have_text("moving.gif: use a PNG, JPEG or WebP image.")
    expect(tray).to_have_count(3)

    page.get_by_role("button", name="Remove reference: blue.png").click()
    page.get_by_role("button", name="Remove reference: green.png").click()
    expect(tray).to_have_count(1)
    assert picker.evaluate("input => Array.from(input.files).map(file => file.name)") == ["red.png"]

    card = generate_and_wait(page, "a harbour in the morning")
    _, result = result_image(page, studio_server.url, card)
    # The local engine blends its references in at 40%: with only the red one left, every pixel leans red.
    red, green, blue = (result.getchannel(band).getextrema() for band in "RGB")
    assert red[0] >= 100 and green[1] <= 155 and blue[1] <= 155, (red, green, blue)
    assert page.console.errors == []


def test_paste_and_drop_add_references_and_a_drop_on_the_mask_sets_its_source(page, studio_server):
    sign_up(page, studio_server.url, f"pst{uuid.uuid4().hex[:6]}")
    tray = page.locator("[data-reference-tray] > li")
    make_file = """async ([name, color]) => {
        const canvas = document.createElement("canvas");
        canvas.width = 48; canvas.height = 32;
        const context = canvas.getContext("2d");
        context.fillStyle = color; context.fillRect(0, 0, 48, 32);
        const blob = await new Promise(resolve => canvas.toBlob(resolve, "image/png"));
        const transfer = new DataTransfer();
        transfer.items.add(new File([blob], name, {type: "image/png"}));
        return transfer;
    }"""
    # Files are dropped by the operating system, which a test cannot drive: the drop event carries them.
    # A real Ctrl+V of an image on the clipboard, in the prompt.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=studio_server.url)
    page.evaluate(
        """async () => {
            const canvas = document.createElement("canvas");
            canvas.width = 48; canvas.height = 32;
            const blob = await new Promise(resolve => canvas.toBlob(resolve, "image/png"));
            await navigator.clipboard.write([new ClipboardItem({"image/png": blob})]);
        }"""
    )
    page.get_by_label("Prompt", exact=True).press("Control+V")
    expect(tray).to_have_count(1)
    expect(page.get_by_label("Prompt", exact=True)).to_have_value("")  # an image paste adds no text

    transfer = page.evaluate_handle(make_file, ["dropped.png", "#00a"])
    page.locator("#composer .composer-grid").dispatch_event("drop", {"dataTransfer": transfer})
    expect(tray).to_have_count(2)
    names = page.get_by_label("Reference images", exact=True).evaluate(
        "input => Array.from(input.files).map(file => file.name)"
    )
    assert len(names) == 2 and names[1] == "dropped.png"

    page.locator("[data-mask-section] > summary").click()
    transfer = page.evaluate_handle(make_file, ["source.png", "#a00"])
    page.locator("[data-mask-section]").dispatch_event("drop", {"dataTransfer": transfer})
    expect(page.locator("[data-mask-editor]")).to_be_visible()
    expect(page.locator("[data-mask-canvas]")).to_have_js_property("width", 48)
    expect(page.locator("[data-input-count]")).to_have_text("3 / 16 images")
    assert page.console.errors == []


def test_gallery_images_are_picked_as_references_and_linked_in(page, studio_server):
    sign_up(page, studio_server.url, f"gal{uuid.uuid4().hex[:6]}")
    card = generate_and_wait(page, "a quiet street in the rain")
    image_id, _ = result_image(page, studio_server.url, card)

    references = page.locator("[data-references]")
    references.get_by_text("Pick from gallery").click()
    references.locator(f"[data-pick-image='{image_id}']").click()
    tray = page.locator("[data-reference-tray] > li")
    expect(tray).to_have_count(1)
    expect(tray.first.locator("input[name=gallery_references]")).to_have_value(image_id)
    references.locator(f"[data-pick-image='{image_id}']").click()
    expect(page.locator("[data-reference-note]")).to_have_text("That image is already a reference.")
    tray.first.locator("[data-remove-reference]").click()
    expect(tray).to_have_count(0)

    # "Use as reference" elsewhere in the studio links to /?reference=<id>.
    page.goto(f"{studio_server.url}/?reference={image_id}")
    expect(tray).to_have_count(1)
    with page.expect_request(lambda request: request.url.endswith("/generate/")) as submitted:
        generate_and_wait(page, "the same street, in snow")
    assert form_fields(submitted.value)["gallery_references"] == [image_id.encode()]
    assert page.console.errors == []


def test_the_mask_flow_edits_only_the_painted_part_of_a_gallery_image(page, studio_server):
    sign_up(page, studio_server.url, f"msk{uuid.uuid4().hex[:6]}")
    source_card = generate_and_wait(page, "a lighthouse at dusk, oil painting")
    source_id, source = result_image(page, studio_server.url, source_card)

    # "Edit" elsewhere in the studio links to /?edit=<id>: the mask opens with that image under the canvas.
    page.goto(f"{studio_server.url}/?edit={source_id}")
    canvas = page.locator("[data-mask-canvas]")
    expect(canvas).to_have_js_property("width", source.width)
    expect(canvas).to_have_js_property("height", source.height)
    paint_stroke(page, (0.2, 0.5), (0.8, 0.5))
    expect(page.locator("[data-mask-status]")).to_contain_text("% painted")
    assert 0 < painted_share(page) < 0.3

    width, height = source.size
    card = generate_and_wait(page, "a lighthouse at dusk with a red boat in front")
    edited_id, edited = result_image(page, studio_server.url, card)
    assert edited_id != source_id and edited.size == source.size

    # What the form sent: the gallery image as the source, and a PNG mask of its exact size, with alpha,
    # transparent where painted. (Chromium does not report request bodies holding files, so the mask is read
    # from the form's file input, where it stays after the submission.)
    expect(page.locator("input[name=source_gallery_image]")).to_have_value(source_id)
    mask = PillowImage.open(io.BytesIO(file_of(page.locator("#composer input[name=mask]"))))
    assert mask.format == "PNG" and mask.mode == "RGBA" and mask.size == source.size
    alpha = mask.getchannel("A").histogram()
    assert alpha[0] + alpha[255] == width * height  # each pixel is either edited or kept
    assert alpha[0] / (width * height) == pytest.approx(painted_share(page), abs=0.01)

    # Pixels away from the stroke are the source's, exactly; the stroke itself was redrawn.
    brush = 40 * width / canvas.bounding_box()["width"]  # the default brush, in image pixels
    band = (0.2 * width - brush, 0.5 * height - brush, 0.8 * width + brush, 0.5 * height + brush)
    changed = [
        (x, y)
        for y in range(0, height, 4)
        for x in range(0, width, 4)
        if source.getpixel((x, y)) != edited.getpixel((x, y))
    ]
    assert changed, "nothing was redrawn"
    assert all(band[0] <= x <= band[2] and band[1] <= y <= band[3] for x, y in changed), band
    middle = [(x, height // 2) for x in range(int(0.25 * width), int(0.75 * width), 8)]
    redrawn = [point for point in middle if source.getpixel(point) != edited.getpixel(point)]
    assert len(redrawn) > 0.9 * len(middle)
    assert page.console.errors == []


def test_the_mask_tools_on_an_uploaded_source(page, studio_server):
    sign_up(page, studio_server.url, f"tls{uuid.uuid4().hex[:6]}")
    page.locator("[data-mask-section] > summary").click()
    page.get_by_label("Source image", exact=True).set_input_files(
        png_file("wall.png", (0, 0, 255), (320, 240))
    )
    canvas = page.locator("[data-mask-canvas]")
    expect(canvas).to_have_js_property("width", 320)
    expect(canvas).to_have_js_property("height", 240)
    expect(page.locator("[data-mask-status]")).to_contain_text("Nothing painted")

    tools = page.get_by_role("toolbar", name="Mask tools")
    paint_stroke(page, (0.1, 0.3), (0.9, 0.3))
    stroke = painted_share(page)
    assert 0 < stroke < 0.5
    tools.get_by_role("button", name="Invert").click()
    assert painted_share(page) == pytest.approx(1 - stroke, abs=0.02)
    tools.get_by_role("button", name="Undo").click()
    assert painted_share(page) == stroke
    tools.get_by_role("button", name="Clear").click()
    assert painted_share(page) == 0
    tools.get_by_role("button", name="Undo").click()
    assert painted_share(page) == stroke
    tools.get_by_role("button", name="Eraser").click()
    expect(tools.get_by_role("button", name="Eraser")).to_have_attribute("aria-pressed", "true")
    paint_stroke(page, (0.5, 0.1), (0.5, 0.5))
    assert 0 < painted_share(page) < stroke
    tools.get_by_role("button", name="Brush").click()
    tools.get_by_role("button", name="Enlarge").click()
    expect(page.locator("[data-mask-editor]")).to_have_class(re.compile("is-enlarged"))
    paint_stroke(page, (0.2, 0.8), (0.8, 0.8))
    page.keyboard.press("Escape")
    expect(page.locator("[data-mask-editor]")).not_to_have_class(re.compile("is-enlarged"))
    painted = painted_share(page)

    card = generate_and_wait(page, "a mural on a blue wall")
    _, result = result_image(page, studio_server.url, card)
    # The uploaded source went first, at its own size, and the mask kept every unpainted pixel blue.
    assert result.size == (320, 240)
    counts = {color: count for count, color in result.getcolors(320 * 240)}
    assert counts[(0, 0, 255)] / (320 * 240) == pytest.approx(1 - painted, abs=0.03)
    assert page.console.errors == []
