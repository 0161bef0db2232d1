"""Bad input never freezes the page or loses what the student set: URLs, uploads, extremes, failures."""
from __future__ import annotations

import functools
import http.server
import io
import json
import random
import re
import threading

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

import build
from conftest import CHROMIUM, CHROMIUM_ARGS, READY_TIMEOUT_MS, shared_memory_args
from test_pages import assert_same_image, canvas_gray
from diffusion_lab import controls, forward, images, schedules


def notices(page) -> str:
    return page.inner_text("#notices")


def assert_still_working(page) -> None:
    assert page.locator("#error").is_hidden(), page.inner_text("#error")
    assert page.get_attribute("body", "data-ready") == "true"
    slider = page.get_by_label("Timestep")
    before = page.inner_text("#readout")
    slider.focus()
    slider.press("Home")
    slider.press("ArrowRight")
    assert page.inner_text("#readout") != before or before.startswith("t = 1")


# -- URL parameters -----------------------------------------------------------
@pytest.mark.parametrize("query, expect", [
    ("t=abc&seed=1.5&steps=", ["Timestep", "Seed", "Steps T"]),
    ("t=NaN&steps=inf&seed=-inf&size=1e309", ["Timestep", "Steps T", "Seed", "Size"]),
    ("t=99999999999999999999999&seed=-5&size=7", ["Timestep", "Seed", "Size"]),
    ("schedule=quadratic&image=mona_lisa&colour=blue", ["Schedule", "Image", "colour"]),
    ("t=5&t=6&t=700&steps=300", ["Timestep"]),
])
def test_bad_url_parameters_get_a_notice_and_a_working_page(watched, base_url, query, expect):
    page = watched.open(f"{base_url}/forward.html?{query}")
    text = notices(page)
    for word in expect:
        assert word in text
    state, _ = controls.parse_query(query, "forward")
    assert page.get_by_label("Timestep").input_value() == str(state["t"])
    assert page.url.endswith(f"/forward.html?{controls.to_query(state, 'forward')}".rstrip("?"))  # what is in use
    assert_still_working(page)


def test_every_bad_setting_of_a_link_gets_its_notice(watched, base_url):
    names = ["image", "size", "schedule", "steps", "seed", "denoiser", "dataset", "sampler", "variance",
             "ddim_steps", "eta", "spacing", "step"]
    page = watched.open(f"{base_url}/reverse.html?{'&'.join(f'{name}=x' for name in names)}"
                        f"&lock=foo,bar&hide=baz&embed=on")
    text = notices(page)
    for name in names:
        assert f"{controls.BY_NAME[name].label}: “x” is not valid" in text
    assert "lock: ignored “foo”, “bar”, not controls of this page (" in text  # one notice per flag
    assert "hide: ignored “baz”, not a group of this page" in text
    assert "embed: ignored “on”, not a valid value (embed=1 drops the site's header)" in text
    expect(page.locator("#notices li")).to_have_count(len(names) + 3)
    # Each dismiss button says which notice it removes.
    first = page.get_by_role("button", name="Dismiss this notice").first
    expect(first).to_have_accessible_description(page.locator("#notices li span").first.inner_text())
    # The ignored flags leave the address as the bad settings do, so a copied link does not repeat them.
    assert not re.search(r"[?&](lock|hide|embed)=", page.url), page.url
    # The list keeps the picture in view on a phone, and one button dismisses every notice.
    page.set_viewport_size({"width": 360, "height": 640})
    assert page.locator("#notices").evaluate("el => el.getBoundingClientRect().height") < 200
    page.get_by_role("button", name="Dismiss all notices").click()
    expect(page.locator("#notices")).to_be_hidden()
    expect(page.get_by_role("button", name="Dismiss all notices")).to_be_hidden()
    expect(page.get_by_label("Timestep")).to_be_focused()
    assert_still_working(page)


def test_an_error_after_start_can_be_dismissed_and_the_page_works_on(watched, base_url):
    page = watched.open(f"{base_url}/forward.html")
    page.evaluate("window.dispatchEvent(new ErrorEvent('error', {message: 'a failure after start'}))")
    expect(page.locator("#error")).to_contain_text("a failure after start")
    page.get_by_role("button", name="Dismiss", exact=True).click()
    expect(page.locator("#error")).to_be_hidden()
    expect(page.get_by_label("Timestep")).to_be_focused()
    assert_still_working(page)


def test_injection_in_the_url_is_shown_as_text(watched, base_url):
    page = watched.page
    page.on("dialog", lambda dialog: pytest.fail(f"a dialog opened: {dialog.message}"))
    attack = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    watched.open(f"{base_url}/forward.html?schedule={attack}&{attack}=1")
    assert page.locator("#notices img, #notices script").count() == 0
    assert "<img src=x" in notices(page)
    assert_still_working(page)


# -- Uploads ------------------------------------------------------------------
def png_bytes(array: np.ndarray, **save) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def upload(page, name: str, mime: str, data: bytes) -> None:
    page.get_by_label("Upload a picture").set_input_files({"name": name, "mimeType": mime, "buffer": data})


@pytest.mark.parametrize("name, mime, data, message", [
    ("notes.txt", "text/plain", b"not a picture", "not a picture"),
    ("empty.png", "image/png", b"", "empty"),
    ("broken.png", "image/png", png_bytes(np.zeros((64, 64, 3), np.uint8))[:80], "could not be decoded"),
    ("broken.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + b"\x00" * 50, "could not be decoded"),
    ("drawing.svg", "image/svg+xml",
     b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script><rect width="9" height="9"/></svg>',
     "is a drawing (SVG), not a picture"),
    ("drawing", "", b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>',
     "is a drawing (SVG)"),  # known by its content, without a name or a type
    ("scan.tiff", "image/tiff", png_bytes(np.zeros((16, 16, 3), np.uint8), format="TIFF"),
     "is a TIFF file, which browsers cannot show: save it as PNG or JPEG"),  # not "damaged"
])
def test_bad_uploads_get_a_message_and_keep_the_image(watched, base_url, name, mime, data, message):
    page = watched.page
    page.on("dialog", lambda dialog: pytest.fail("the SVG's script ran"))
    watched.open(f"{base_url}/forward.html?image=disc")
    before = canvas_gray(page, "frame")
    upload(page, name, mime, data)
    page.wait_for_function("document.getElementById('notices').textContent.length > 0")
    assert message in notices(page) and name in notices(page)
    # By the control too (a phone's notices are a screen away from it), which no longer names the file.
    assert message in page.inner_text("#upload-status") and name in page.inner_text("#upload-status")
    assert page.get_by_label("Upload a picture").evaluate("input => input.files.length") == 0
    assert np.array_equal(canvas_gray(page, "frame"), before)
    assert page.get_by_label("Image", exact=True).input_value() == "disc"
    assert_still_working(page)


def test_a_picture_is_known_by_its_content_not_its_name(watched, base_url):
    page = watched.open(f"{base_url}/forward.html?size=32")
    upload(page, "photo_from_chat", "", png_bytes(np.full((32, 32, 3), 200, np.uint8)))  # no extension, no type
    page.wait_for_function("document.getElementById('image').value === 'upload'")
    assert abs(int(canvas_gray(page, "frame").mean()) - 200) <= 1
    assert notices(page) == ""


def test_the_last_picture_chosen_is_shown_however_long_the_first_takes(watched, base_url):
    big = np.full((8000, 8000), 255, np.uint8)  # white, and seconds to decode
    page = watched.open(f"{base_url}/forward.html?size=32")
    upload(page, "big.png", "image/png", png_bytes(big, compress_level=1))
    expect(page.locator("#upload-status")).to_have_text("Reading “big.png”…")  # a slow file says it is busy
    upload(page, "dark.png", "image/png", png_bytes(np.zeros((32, 32), np.uint8)))  # changed their mind
    page.wait_for_function("document.body.dataset.uploadsRead === '2'", timeout=60_000)  # both files decoded
    assert canvas_gray(page, "frame").max() < 10  # the dark one, not the big white one that finished last
    expect(page.locator("#upload-status")).to_have_text("“dark.png” is the picture now.")  # said, and spoken
    upload(page, "notes.txt", "text/plain", b"not a picture")  # a refusal after it keeps it
    page.wait_for_function("document.body.dataset.uploadsRead === '3'")
    assert "notes.txt" in notices(page) and canvas_gray(page, "frame").max() < 10
    assert_still_working(page)


def test_a_picture_chosen_while_a_file_decodes_stays(watched, base_url):
    """The student picks Disc while a big file decodes: Disc stays, the file is let go (QA35 F2)."""
    page = watched.open(f"{base_url}/forward.html?size=32")
    upload(page, "big.png", "image/png", png_bytes(np.full((8000, 8000), 255, np.uint8), compress_level=1))
    expect(page.locator("#upload-status")).to_have_text("Reading “big.png”…")
    page.get_by_label("Image", exact=True).select_option("disc")
    page.wait_for_function("document.body.dataset.uploadsRead === '1'", timeout=60_000)
    assert page.get_by_label("Image", exact=True).input_value() == "disc"
    expect(page).to_have_url(re.compile(r"\?image=disc&size=32$"))
    assert canvas_gray(page, "frame").min() < 100  # the disc on its dark ground, not the white file
    assert page.input_value("#upload") == "" and page.inner_text("#upload-status") == ""
    assert_still_working(page)


def test_text_a_number_box_cannot_read_is_called_not_a_number(watched, base_url):
    """A number box hands the page "" for "--1": the notice quoted “” (QA33 F4)."""
    page = watched.open(f"{base_url}/forward.html")
    seed = page.get_by_label("Seed")
    seed.select_text()
    seed.press_sequentially("--1")
    seed.press("Tab")
    expect(page.locator("#notices")).to_contain_text("Seed: that is not a number, kept 0")
    assert "“”" not in notices(page) and seed.input_value() == "0"
    page.get_by_label("Steps T").fill("")  # emptied: said so, not quoted either (QA36 F9)
    page.get_by_label("Steps T").press("Enter")
    expect(page.locator("#notices")).to_contain_text("Steps T: no number given, kept 1000")
    assert_still_working(page)


def test_code_that_lowers_the_recursion_limit_leaves_the_page_working(watched, base_url):
    """sys.setrecursionlimit(10) in a schedule's code broke every later change until a reload (QA33 F5)."""
    page = watched.open(f"{base_url}/forward.html")
    page.get_by_label("Code of betas(T)").fill("import sys\nsys.setrecursionlimit(10)\n\ndef betas(T):\n"
                                               "    return np.full(T, 0.01)\n")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#hook-status")).to_contain_text("In use: your betas(T)")
    page.get_by_role("button", name="Reset code").click()
    page.get_by_label("Image", exact=True).select_option("stripes")
    assert_still_working(page)


def enter(page, label: str, value: str) -> None:
    """Type a value into a number box and press Enter, as a student sets it."""
    page.get_by_label(label).fill(value)
    page.get_by_label(label).press("Enter")


def test_notices_do_not_pile_up_and_can_be_dismissed(watched, base_url):
    page = watched.open(f"{base_url}/forward.html?image=disc")
    seed, items = page.get_by_label("Seed"), page.locator("#notices li")
    for _ in range(3):  # the same mistake again: one notice, not three
        seed.fill("1.5")
        seed.press("Enter")
    expect(items).to_have_count(1)
    assert "Seed: “1.5” is not valid, kept 0" in items.first.inner_text()
    seed.fill("7")
    seed.press("Enter")
    expect(items).to_have_count(0)  # fine now: the notice about the seed goes

    upload(page, "notes.txt", "text/plain", b"not a picture")
    expect(items).to_have_count(1)
    upload(page, "empty.png", "image/png", b"")  # a second refusal replaces the first
    expect(items).to_have_count(1)
    assert "empty.png" in items.first.inner_text()
    upload(page, "good.png", "image/png", png_bytes(np.full((32, 32, 3), 90, np.uint8)))
    expect(page.get_by_label("Image", exact=True)).to_have_value("upload")
    expect(items).to_have_count(0)  # a picture arrived: the refusals no longer apply

    page.goto(f"{base_url}/reverse.html?sampler=ddim&ddim_steps=50&steps=100&size=16")
    page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
    enter(page, "Steps T", "20")
    expect(items).to_have_count(1)
    assert "DDIM steps: adjusted to 20" in items.first.inner_text()
    assert page.get_by_label("DDIM steps").input_value() == "20"
    enter(page, "Steps T", "100")  # room again: DDIM steps goes back to the link's 50
    expect(page.get_by_label("DDIM steps")).to_have_value("50")
    expect(items).to_have_count(0)
    enter(page, "Steps T", "20")
    expect(items).to_have_count(1)
    page.get_by_label("Sampler").select_option("ddpm")  # and back up under DDPM: the address had kept the 20
    expect(items).to_have_count(0)  # DDIM steps' field is hidden: its notice goes (QA28)
    enter(page, "Steps T", "30")  # part way: no notice about a setting DDPM does not use (QA27)
    expect(page.get_by_label("DDIM steps")).to_have_value("30")
    expect(items).to_have_count(0)
    enter(page, "Steps T", "100")
    expect(items).to_have_count(0)
    page.wait_for_function("!location.search.includes('ddim_steps=')")  # the link's 50 is the default
    page.get_by_label("Sampler").select_option("ddim")
    enter(page, "Steps T", "20")
    enter(page, "Seed", "-3")
    expect(items).to_have_count(2)
    page.get_by_role("button", name="Dismiss this notice").first.click()  # by mouse
    expect(items).to_have_count(1)
    assert "Seed: -3 is out of range, using 0" in items.first.inner_text()  # names the value typed
    expect(page.get_by_role("button", name="Dismiss this notice")).to_be_focused()  # the next one's
    page.keyboard.press("Enter")  # and by keyboard
    expect(page.locator("#notices")).to_be_hidden()
    expect(page.get_by_label("Timestep")).to_be_focused()  # not lost with the last button
    assert_still_working(page)


def test_a_links_notices_go_once_their_settings_are_set_right(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?seed=abc&sampler=ddim&ddim_steps=50&steps=20&colour=red")
    items = page.locator("#notices li")
    expect(items).to_have_count(3)  # the seed, DDIM steps lowered to fit T = 20, and an unknown setting
    page.get_by_label("Seed").fill("5")
    page.get_by_label("Seed").press("Enter")
    expect(items).to_have_count(2)  # the seed is fine now
    page.get_by_label("Steps T").fill("1000")
    page.get_by_label("Steps T").press("Enter")
    expect(page.get_by_label("DDIM steps")).to_have_value("50")  # back to what the link chose, now that it fits
    expect(items).to_have_count(1)
    assert "colour" in items.first.inner_text()  # about no setting: it stays until dismissed
    assert_still_working(page)


def test_a_links_notice_goes_once_the_page_itself_sets_that_setting(watched, base_url):
    """Reset, Step and Play set the time; the code panel's Run sets the code: the link's notice about that
    setting then said a value the page no longer used ("using 1000" beside t = 0)."""
    page = watched.open(f"{base_url}/forward.html?t=2000&steps=100&hook=@@@")
    items = page.locator("#notices li")
    expect(items).to_have_count(2)
    page.get_by_role("button", name="Reset", exact=True).click()
    expect(items).to_have_count(1)
    assert "Code of betas(T)" in items.first.inner_text()
    page.get_by_role("button", name="Run", exact=True).first.click()  # the original code, the page's own
    expect(items).to_have_count(0)
    assert_still_working(page)


def test_settings_written_after_a_hash_are_read_as_after_a_question_mark(watched, base_url):
    """forward.html#t=300, as a video's link gives a time: before, t = 0 and the "#t=300" rode on every copied link."""
    page = watched.open(f"{base_url}/forward.html?seed=3#t=300&seed=9")
    expect(page.get_by_label("Timestep")).to_have_value("300")
    expect(page.get_by_label("Seed")).to_have_value("3")  # the "?" part's own stays
    assert page.evaluate("location.search + '|' + location.hash") == "?seed=3&t=300|"
    page = watched.open(f"{base_url}/forward.html#main")  # the skip link's fragment stays one
    assert page.evaluate("location.hash") == "#main"


def test_a_transparent_png_is_composited_over_white(watched, base_url):
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:, :16] = (0, 0, 0, 255)  # opaque black left, fully transparent right
    page = watched.open(f"{base_url}/forward.html?size=32")
    upload(page, "clear.png", "image/png", png_bytes(rgba))
    page.wait_for_function("document.getElementById('image').value === 'upload'")
    shown = canvas_gray(page, "frame")
    assert shown[:, :14].max() < 10 and shown[:, 18:].min() > 245


def test_an_animated_gif_uses_its_first_frame(watched, base_url):
    frames = [Image.fromarray(np.full((32, 32), value, np.uint8)) for value in (0, 255, 128)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    page = watched.open(f"{base_url}/forward.html?size=32")
    upload(page, "anim.gif", "image/gif", buffer.getvalue())
    page.wait_for_function("document.getElementById('image').value === 'upload'")
    assert canvas_gray(page, "frame").max() < 10


def test_a_huge_picture_is_scaled_down_without_running_out_of_memory(watched, base_url):
    big = np.zeros((10_000, 10_000), np.uint8)
    big[:, 5000:] = 255  # black left half, white right half
    data = png_bytes(big, optimize=False, compress_level=9)
    page = watched.open(f"{base_url}/forward.html")
    upload(page, "huge.png", "image/png", data)
    page.wait_for_function("document.getElementById('image').value === 'upload'", timeout=60_000)
    shown = canvas_gray(page, "frame")
    assert shown[:, :28].max() < 10 and shown[:, 36:].min() > 245
    assert_still_working(page)


# -- Extreme settings -----------------------------------------------------------
def test_two_steps_and_a_thousand_at_256_pixels(watched, base_url):
    page = watched.open(f"{base_url}/forward.html?steps=2&t=2")
    assert page.inner_text("#readout").startswith("t = 2 of 2")
    values = images.from_uint8(canvas_gray(page, "frame"))
    assert abs(values.mean()) < 0.15  # the last step is noise even with T = 2
    page = watched.open(f"{base_url}/forward.html?size=256&t=1000")
    assert canvas_gray(page, "frame").shape == (256, 256)
    assert_still_working(page)


def test_reverse_extremes_finish(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?sampler=ddim&ddim_steps=1&eta=1")
    slider = page.get_by_label("Timestep")
    slider.focus()
    slider.press("End")
    page.wait_for_function("document.getElementById('readout').textContent.includes('step 1 of 1')")
    assert_same_image(canvas_gray(page, "frame"), images.make_image("gradient", 64))
    page = watched.open(f"{base_url}/reverse.html?size=256&variance=fixed_large")
    page.get_by_label("Timestep").focus()
    page.get_by_label("Timestep").press("End")
    page.wait_for_function("document.getElementById('readout').textContent.includes('step 1000 of 1000')"
                           " && !document.getElementById('readout').textContent.includes('computing')",
                           timeout=120_000)
    assert_same_image(canvas_gray(page, "frame"), images.make_image("gradient", 256))


def test_rapid_clicks_and_changes_while_running_never_run_two_chains(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?denoiser=ideal&size=32")
    play, step, reset = (page.get_by_role("button", name=name, exact=True) for name in ("Play", "Step", "Reset"))
    for _ in range(15):
        play.click()
        step.click()
        reset.click()
    page.get_by_role("button", name="Play").click()
    page.get_by_label("Seed").fill("3")
    page.get_by_label("Seed").press("Enter")  # a new chain while one plays
    page.get_by_label("Sampler").select_option("ddim")
    page.get_by_role("button", name="Play").click()
    page.wait_for_function("document.getElementById('readout').textContent.includes('step 50 of 50')",
                           timeout=60_000)
    expect(page.locator("#play")).to_have_text("Play")  # stopped at the end
    # The chain shown is the one of the final settings, from seed 3's noise.
    page.get_by_role("button", name="Reset", exact=True).click()  # not "Reset code"
    assert_same_image(canvas_gray(page, "frame"), np.random.default_rng(3).standard_normal((32, 32)))
    assert_still_working(page)


# -- A runtime that fails to load ---------------------------------------------
def broken_server(site, *, drop: str = "", wasm_type: str = ""):
    class Broken(build.Handler):
        extensions_map = {**build.Handler.extensions_map, **({".wasm": wasm_type} if wasm_type else {})}

        def send_head(self):
            if drop and self.path.split("?")[0].endswith(drop):
                self.send_error(404, "File not found")
                return None
            return super().send_head()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Broken, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_a_missing_wheel_says_what_failed(browser, site):
    wheel = next((site / "pyodide").glob("numpy-*.whl")).name
    server, url = broken_server(site, drop=wheel)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{url}/forward.html")
        # Pyodide's own error says nothing of a wheel; the page then looks for the missing file and names it.
        page.wait_for_function("document.querySelector('#error .error-title').textContent.includes('numpy')",
                               timeout=READY_TIMEOUT_MS)
        text = page.inner_text("#error")
        assert "could not" in text.lower() and wheel in text
        assert page.get_attribute("body", "data-phase") == "failed"
    finally:
        context.close()
        server.shutdown()


def test_a_connection_lost_while_the_figures_load_says_so_and_the_view_works_on(browser, base_url):
    """The network goes after the first frame, as a phone's Wi-Fi does in class: before, a traceback said the site
    "may be incomplete; reload, or rebuild it"."""
    context = browser.new_context(service_workers="block")
    try:
        page = context.new_page()
        page.route("**/pyodide/matplotlib-*.whl", lambda route: route.abort("internetdisconnected"))
        page.goto(f"{base_url}/forward.html")
        expect(page.locator("#error")).to_be_visible(timeout=READY_TIMEOUT_MS)
        expect(page.locator("#error .error-title")).to_have_text("The page could not finish loading.")
        expect(page.locator("#error .error-detail")).to_have_text(
            "The connection to this site was lost while the page was loading matplotlib. Reconnect and reload the "
            "page; after one complete visit it also works offline.")
        slider = page.get_by_label("Timestep")  # what had loaded works on
        slider.focus()
        page.keyboard.press("End")
        expect(page.locator("#readout")).to_contain_text("t = 1000 of 1000")
    finally:
        context.close()


def test_a_browser_that_blocks_this_sites_data_runs_the_views_all_the_same(browser, base_url, tmp_path):
    """"Block all cookies" (a profile setting, as a school may set it) refuses IndexedDB, which PyScript opens as
    it loads: the views failed at once with "Something went wrong while loading. [object Event]"."""
    profile = tmp_path / "profile"
    (profile / "Default").mkdir(parents=True)
    (profile / "Default" / "Preferences").write_text(
        json.dumps({"profile": {"default_content_setting_values": {"cookies": 2}}}))
    context = browser.browser_type.launch_persistent_context(
        profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS + shared_memory_args(),
        viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{base_url}/forward.html?t=300&seed=3")
        refused = page.evaluate("""() => new Promise((done) => {
            try { localStorage.length; } catch (error) { done("storage: " + error.name); }
            done("storage allowed");
        })""")
        assert refused == "storage: SecurityError"  # the setting took
        page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        expected = forward.q_sample(images.make_image("gradient", 64), 299,
                                    np.random.default_rng(3).standard_normal((64, 64)),
                                    schedules.get_schedule("linear", 1000))
        assert_same_image(canvas_gray(page, "frame"), expected)
        assert_still_working(page)
        # Code in the address may be the student's own, reloaded: the tab cannot remember which.
        page.get_by_label("Code of betas(T)").fill("def betas(T):\n    return np.full(T, 0.01)\n")
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page.locator("#hook-status")).to_contain_text("In use: your betas(T)")
        page.reload()
        page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        expect(page.locator("#hook-status")).to_have_text(
            "This page's address holds a betas(T), shown below (this browser keeps no record of the code you ran, "
            "so it cannot tell yours from a link's). Read it, then press Run to use it; until then the page uses "
            "the Linear (DDPM) schedule.")
        page.goto(f"{base_url}/reverse.html?steps=50")
        page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        expect(page.locator("#result")).to_contain_text("identical to the target", timeout=30_000)
        assert page.locator("#error").is_hidden()
        page.goto(f"{base_url}/index.html")  # nothing kept for a room without network: the home page says so
        expect(page.get_by_role("status")).to_have_text(
            "This browser keeps no data of this site (blocked by its settings), so the views need the network at "
            "every visit: for a room without network, use the offline edition.")
        assert errors == []
    finally:
        context.close()


def test_a_wrong_wasm_type_gets_a_message_not_an_endless_spinner(browser, site):
    server, url = broken_server(site, wasm_type="application/octet-stream")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{url}/forward.html")
        page.wait_for_function("""document.body.dataset.ready === 'true' ||
                                  !document.getElementById('error').hidden""", timeout=READY_TIMEOUT_MS)
        if page.get_attribute("body", "data-ready") != "true":  # the browser did not fall back
            assert "application/wasm" in page.inner_text("#error")
    finally:
        context.close()
        server.shutdown()


# -- Fuzz -----------------------------------------------------------------------
def random_query(rng: random.Random, view: str) -> str:
    pairs = []
    for control in controls.controls_for(view):
        if rng.random() < 0.5:
            continue
        if control.kind == "choice":
            value = rng.choice(control.choices + ("", "bogus", "<b>x</b>"))
        else:
            value = rng.choice([str(rng.randint(int(control.low), int(control.high))), str(rng.uniform(-5, 2000)),
                                "nan", "-inf", "1e400", "", "12abc", str(control.high + 1)])
        pairs.append((control.name, value))
    if rng.random() < 0.2:
        pairs.append(("unknown", "1"))
    return "&".join(f"{key}={value}" for key, value in pairs)


@pytest.mark.parametrize("view", ["forward", "reverse"])
def test_fuzz_random_urls_and_control_sequences(watched, base_url, view):
    rng = random.Random(20261127)
    page = watched.open(f"{base_url}/{view}.html?size=16&steps=100")
    selects = [c.name for c in controls.controls_for(view) if c.kind == "choice"]
    numbers = [c.name for c in controls.controls_for(view) if c.kind != "choice" and c.widget != "range"]
    slider = "t" if view == "forward" else "step"
    for round_ in range(150):
        if round_ % 3 == 0:  # a new URL state, as Back/Forward or a pasted link would bring
            query = random_query(rng, view)
            page.evaluate("(q) => { history.pushState(null, '', '?' + q); "
                          "window.dispatchEvent(new PopStateEvent('popstate')); }", query)
        action = rng.randrange(5)
        if action == 0:
            name = rng.choice(selects)
            options = page.eval_on_selector_all(f"#{name} option", "os => os.map(o => o.value)")
            if page.is_visible(f"#{name}") and page.is_enabled(f"#{name}"):
                page.select_option(f"#{name}", rng.choice(options))
        elif action == 1:
            name = rng.choice(numbers)
            if page.is_visible(f"#{name}") and page.is_enabled(f"#{name}"):
                # As typed: a number box hands the page "" for text it cannot read.
                value = rng.choice(["5", "0", "-3", "1e9", "abc", "16", "999", "0.5", "", "-0"])
                page.eval_on_selector(f"#{name}", "(el, v) => { el.value = v; "
                                      "el.dispatchEvent(new Event('change', {bubbles: true})); }", value)
        elif action == 2:
            page.focus(f"#{slider}")
            page.keyboard.press(rng.choice(["ArrowRight", "ArrowLeft", "End", "Home", "PageUp"]))
        else:
            page.click(rng.choice(["#play", "#step-button", "#reset"]))
    if page.inner_text("#play") == "Pause":
        page.click("#play")  # stop, so that the address (which follows the slider by 0.25 s) can catch up
    page.wait_for_timeout(1000)
    assert page.locator("#error").is_hidden(), page.inner_text("#error")
    assert page.get_attribute("body", "data-ready") == "true"
    # What the page shows still matches its own settings.
    search, shown = page.evaluate(f"[location.search, document.getElementById('{slider}').value]")
    state, _ = controls.parse_query(search, view)
    assert shown == str(state[slider])
