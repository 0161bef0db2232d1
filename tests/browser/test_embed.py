"""Shareable links and embedding in a course page on another origin."""
from __future__ import annotations

import re

import numpy as np
from playwright.sync_api import expect

from conftest import READY_TIMEOUT_MS, start_server
from diffusion_lab import controls, forward, images, schedules
from test_pages import assert_same_image, canvas_gray


def test_a_shared_link_reproduces_the_same_pixels(watched, browser, base_url):
    page = watched.open(f"{base_url}/forward.html")
    page.get_by_label("Schedule").select_option("sigmoid")
    page.get_by_label("Seed").fill("42")
    page.get_by_label("Seed").press("Enter")
    page.get_by_label("Image", exact=True).select_option("landscape")
    slider = page.get_by_label("Timestep")
    slider.focus()
    for _ in range(120):
        slider.press("ArrowRight")
    original = canvas_gray(page, "frame")
    page.get_by_role("button", name="Copy link").click()
    page.wait_for_function("document.getElementById('share-text').value !== ''")
    link = page.input_value("#share-text")
    assert link == page.url
    for part in ("schedule=sigmoid", "seed=42", "image=landscape", "t=120"):
        assert part in link

    # A friend opens it in a fresh profile.
    context = browser.new_context()
    try:
        friend = context.new_page()
        friend.goto(link)
        friend.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        assert np.array_equal(canvas_gray(friend, "frame"), original)
        assert friend.get_by_label("Timestep").input_value() == "120"
    finally:
        context.close()


def test_slider_ticks_replace_the_history_entry(watched, base_url):
    page = watched.open(f"{base_url}/forward.html")
    length = page.evaluate("history.length")
    slider = page.get_by_label("Timestep")
    slider.focus()
    for _ in range(10):
        slider.press("ArrowRight")
    expect(page).to_have_url(re.compile(r"[?&]t=10(&|$)"))  # a moment after the last tick (page.URL_DELAY_S)
    assert page.evaluate("history.length") == length


def test_embed_code_is_an_accessible_lazy_iframe(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?denoiser=ideal")
    page.get_by_role("button", name="Copy embed code").click()
    page.wait_for_function("document.getElementById('share-text').value !== ''")
    code = page.input_value("#share-text")
    assert code.startswith("<iframe ") and 'title="Diffusion Lab: reverse diffusion"' in code
    assert 'loading="lazy"' in code and "embed=1" in code and "denoiser=ideal" in code
    # With the script that fits the frame to the view's height, which the status line explains.
    assert code.endswith(f'</iframe>\n<script src="{base_url}/embed.js" defer></script>')
    # The line is written once the clipboard has answered, after the code is shown.
    expect(page.locator("#share-status")).to_contain_text("script line fits the frame")
    assert "only on this computer" not in page.inner_text("#share-status")  # said offline only


def test_a_course_page_on_another_origin_embeds_and_resizes(watched, site, tmp_path):
    server, demo = start_server(site)
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    view = "forward.html?embed=1&schedule=cosine&t=300&seed=7&hide=image,process,share&lock=schedule,seed"
    (host_dir / "index.html").write_text(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Course</title><link rel="icon" href="data:,"><script src="{demo}/embed.js" defer></script></head><body>
<h1>Lecture</h1><iframe id="demo" src="{demo}/{view}" title="Diffusion Lab" width="1000" height="760"
style="border:0"></iframe></body></html>""")
    host, host_url = start_server(host_dir)
    try:
        page = watched.open(f"{host_url}/index.html", ready=False)
        assert host_url.split(":")[-1] != demo.split(":")[-1]  # two origins
        frame = page.frame_locator("#demo")
        frame.locator("body[data-ready='true']").wait_for(state="attached", timeout=READY_TIMEOUT_MS)
        # Resized to the content height by the host script.
        page.wait_for_function("document.getElementById('demo').style.height.endsWith('px')", timeout=10_000)
        height = page.evaluate("parseFloat(document.getElementById('demo').style.height)")
        assert 200 < height < 3000 and height != 760
        inner = frame.locator("html").evaluate("el => Math.ceil(el.getBoundingClientRect().height)")
        assert abs(inner - height) <= 2
        # Nothing is left to scroll inside the frame once the figures are drawn and the frame resized to fit.
        overflow = frame.locator("html").evaluate("""el => new Promise((done) => { const start = performance.now();
            (function check() { const left = el.scrollHeight - el.clientHeight;
              if (left <= 1 || performance.now() - start > 5000) done(left); else setTimeout(check, 100); })(); })""")
        assert overflow <= 1
        # Hidden groups are absent; the site chrome is gone.
        assert frame.locator("fieldset[data-group='image']").first.is_hidden()
        assert frame.locator("fieldset[data-group='process']").is_hidden()
        assert frame.locator(".site-header").is_hidden()
        assert frame.get_by_label("Timestep").is_visible()
        # Wide enough for a settings column, but every group in it is hidden: the picture takes its place.
        assert frame.locator("#controls").is_hidden()
        assert frame.locator(".stage").evaluate("el => el.getBoundingClientRect().left") < 40
        assert frame.locator("#notices li").count() == 0  # every flag was understood
        # Locked settings hold, after Python enabled the form.
        assert frame.locator("#schedule").is_disabled() and frame.locator("#seed").is_disabled()
        assert frame.locator("#schedule").input_value() == "cosine"
        assert not frame.locator("#hook").is_editable()  # the schedule's code is fixed with it
        slider = frame.get_by_label("Timestep")
        slider.focus()
        slider.press("ArrowRight")
        assert frame.locator("#readout").inner_text().startswith("t = 301")
    finally:
        host.shutdown()
        server.shutdown()


def test_a_sandboxed_frame_says_what_it_lacks(browser, site, tmp_path):
    """A learning platform's sandbox: without allow-same-origin, Python cannot start, which the view says at once
    (not after its 120 s limit, blaming the server); without allow-downloads, downloads vanish, so the view never
    says one arrived."""
    server, demo = start_server(site)
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    view = f"{demo}/forward.html?embed=1&t=300"
    (host_dir / "index.html").write_text(f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Course</title></head><body>
<iframe id="opaque" sandbox="allow-scripts" src="{view}" title="Demo one" width="900" height="760"></iframe>
<iframe id="no-downloads" sandbox="allow-scripts allow-same-origin" src="{view}" title="Demo two" width="900"
height="760"></iframe></body></html>""")
    host, host_url = start_server(host_dir)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{host_url}/index.html")
        opaque = page.frame_locator("#opaque")
        expect(opaque.locator("#error")).to_be_visible(timeout=10_000)
        expect(opaque.locator("#error")).to_contain_text("Python cannot start in this frame")
        expect(opaque.locator("#error")).to_contain_text("allow-same-origin")
        expect(opaque.locator("#error")).to_contain_text(f"{demo}/forward.html?t=300")  # where to link instead
        expect(opaque.get_by_role("link", name="Open this view on its own page")).to_have_attribute(
            "href", f"{demo}/forward.html?t=300")
        expect(opaque.locator("#status")).to_be_hidden()  # not a loading line standing still above the message
        page.wait_for_timeout(3000)  # PyScript's own failures, which follow, leave the message as it is
        expect(opaque.locator("#error")).to_contain_text("Python cannot start in this frame")
        expect(opaque.locator("#status")).to_be_hidden()

        framed = page.frame_locator("#no-downloads")
        framed.locator("body[data-ready='true']").wait_for(state="attached", timeout=READY_TIMEOUT_MS)
        framed.get_by_role("button", name="Download frame (PNG)").click()
        status = framed.locator("#export-status")
        expect(status).to_contain_text("Download of diffusion-lab-forward-t300.png")
        expect(status).to_contain_text("If no file arrives, the page this view is embedded in blocks downloads")
    finally:
        context.close()
        host.shutdown()
        server.shutdown()


def test_a_mistyped_flag_gets_a_notice_and_the_others_still_apply(watched, base_url):
    # A flag given twice counts both times (lock=sede&lock=schedule: the first alone did, without a word; QA25 F5).
    page = watched.open(f"{base_url}/forward.html?embed=1&hide=imgae&hide=time&lock=sede&lock=schedule")
    text = page.inner_text("#notices")
    assert "hide: ignored “imgae”, not a group of this page (time, image, process, share, equations, code, export)" in text
    assert "lock: ignored “sede”, not a control of this page (t, image, size, schedule, steps, seed, hook)" in text
    assert page.locator("fieldset[data-group='time']").count() == 2
    assert all(box.is_hidden() for box in page.locator("fieldset[data-group='time']").all())
    assert page.locator("#schedule").is_disabled() and page.locator("#seed").is_enabled()


def test_a_locked_time_looks_locked_and_says_why_play_does_nothing(watched, base_url):
    page = watched.open(f"{base_url}/forward.html?embed=1&t=300&lock=t")
    for name in ("Play", "Step", "Reset"):
        button = page.get_by_role("button", name=name, exact=True)
        expect(button).to_be_disabled()
        assert float(button.evaluate("b => getComputedStyle(b).opacity")) < 0.7  # touch shows no cursor
    expect(page.get_by_text(  # each button it turned off (Reset went unsaid; QA30)
        "The link that opened this page fixes the time at this step, so Play, Step and Reset are off.")).to_be_visible()
    expect(page.get_by_label("Timestep")).to_be_disabled()
    assert page.inner_text("#readout").startswith("t = 300")


def test_a_locked_step_of_the_reverse_chain_stays_through_other_changes(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?step=500&lock=step")
    expect(page.locator("#readout")).to_contain_text("step 500 of 1000")
    page.get_by_label("Seed").fill("3")
    page.get_by_label("Seed").press("Enter")  # a new chain, shown at the step the link fixes, not at x_T
    expect(page.locator("#readout")).to_contain_text("step 500 of 1000")
    expect(page).to_have_url(re.compile(r"[?&]step=500(&|$)"))
    page.get_by_label("Steps T").fill("100")  # fewer steps than that: the end of the chain
    page.get_by_label("Steps T").press("Enter")
    expect(page.locator("#readout")).to_contain_text("step 100 of 100")
    page.get_by_label("Steps T").fill("1000")  # and back where the link put it once there is room
    page.get_by_label("Steps T").press("Enter")
    expect(page.locator("#readout")).to_contain_text("step 500 of 1000")
    expect(page.get_by_label("Timestep")).to_be_disabled()


def test_a_teacher_can_lock_the_code_which_stays_readable_and_runnable(watched, base_url):
    code = "def betas(T):\n    return np.full(T, 0.01)\n"
    page = watched.open(f"{base_url}/forward.html?embed=1&t=300&hook={controls.code_to_url(code)}&lock=schedule")
    assert page.locator("#notices li").count() == 0
    expect(page.get_by_label("Schedule", exact=True)).to_be_disabled()  # and its code with it:
    editor = page.get_by_label("Code of betas(T)")
    expect(editor).not_to_be_editable()
    assert editor.input_value() == code and editor.is_enabled()  # readable, selectable, in the tab order
    expect(page.get_by_role("button", name="Reset code")).to_be_disabled()
    expect(page.get_by_text("The link that opened this page fixes this code")).to_be_visible()
    expect(editor).to_have_accessible_description(re.compile(r"^The link that opened this page fixes this code"))
    help_text = page.locator("#hook-help").inner_text()  # no advice on editing what cannot be edited:
    assert "Indent" not in help_text and "carry your code" not in help_text and "Ctrl+Enter" in help_text
    editor.focus()
    page.keyboard.type("# a student's change")
    assert editor.input_value() == code
    page.get_by_role("button", name="Run", exact=True).click()  # the link's code, as for any link with code
    expect(page.locator("#hook-status")).to_have_text("In use: your betas(T), in place of the Linear (DDPM) "
                                                      "schedule.")  # nothing said of Reset code, which is off
    x0 = images.make_image("gradient", 64)
    constant = schedules.from_betas(np.full(1000, 0.01))
    noise = np.random.default_rng(0).standard_normal((64, 64))
    assert_same_image(canvas_gray(page, "frame"), forward.q_sample(x0, 299, noise, constant))
    broken = "def betas(T):\n    return np.full(T, 0.01) / undefined\n"  # the lock stays said beside the error
    page = watched.open(f"{base_url}/forward.html?embed=1&hook={controls.code_to_url(broken)}&lock=schedule")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#hook-status")).to_contain_text("did not run")
    expect(page.get_by_label("Code of betas(T)")).to_have_accessible_description(
        re.compile(r"^The link that opened this page fixes this code.*Your code did not run \(.*NameError"))
    # The reverse view's step(…) locks the same way.
    page = watched.open(f"{base_url}/reverse.html?embed=1&lock=step_hook")
    assert page.locator("#notices li").count() == 0
    expect(page.locator("#step-hook")).not_to_be_editable()
    expect(page.get_by_role("button", name="Reset code of the step")).to_be_disabled()
    expect(page.locator("#step-hook-status")).to_have_text("In use: the DDPM step, as samplers.py defines it.")
    expect(page.get_by_label("Code of betas(T)")).to_be_editable()
    page = watched.open(f"{base_url}/reverse.html?embed=1&lock=hook")  # the code alone, named as it is in links
    assert page.locator("#notices li").count() == 0
    expect(page.get_by_label("Code of betas(T)")).not_to_be_editable()
    expect(page.get_by_label("Schedule", exact=True)).to_be_enabled()
    # The oracle's noise prediction is part of the denoiser: fixing the denoiser fixes it too.
    page = watched.open(f"{base_url}/reverse.html?embed=1&lock=denoiser")
    assert page.locator("#notices li").count() == 0
    expect(page.get_by_label("Denoiser")).to_be_disabled()
    expect(page.locator("#noise-hook")).not_to_be_editable()
    expect(page.get_by_role("button", name="Reset code of the noise prediction")).to_be_disabled()
    expect(page.locator("#step-hook")).to_be_editable()
    # So are the steps' code by the sampler.
    page = watched.open(f"{base_url}/reverse.html?embed=1&lock=sampler")
    assert page.locator("#notices li").count() == 0
    expect(page.locator("#step-hook")).not_to_be_editable()
    expect(page.locator("#ddim-hook")).not_to_be_editable()
    expect(page.locator("#noise-hook")).to_be_editable()


def test_hide_takes_the_equations_the_code_and_with_the_downloads_the_whole_panel(watched, base_url):
    """hide=code hid only the editor, though the README said the equations and code: a course page's frame stayed
    2000 px tall; and a link's code, which waits for Run, was silently not used with Run hidden."""
    page = watched.open(f"{base_url}/forward.html?embed=1&hide=code")
    expect(page.locator("#equation")).to_be_visible()
    for hidden in ("#code-listing", "#hook"):
        expect(page.locator(hidden)).to_be_hidden()
    code = controls.code_to_url("def betas(T):\n    return np.full(T, 0.01)\n")
    page = watched.open(f"{base_url}/forward.html?embed=1&t=300&hide=equations,code,export&hook={code}")
    expect(page.locator("#learn")).to_be_hidden()
    expect(page.locator("#notices")).to_contain_text(
        "This link brings its own betas(T) but hides the code (hide=code), where it would be read and run, so the "
        "page uses the Linear (DDPM) schedule.")
    assert page.inner_text("#readout").startswith("t = 300 of 1000: βt = 0.006")  # linear's, not 0.01
    page = watched.open(f"{base_url}/reverse.html?embed=1&hide=equations,code")
    expect(page.locator("#learn")).to_be_visible()  # the downloads are left
    expect(page.get_by_role("button", name="Download frame (PNG)")).to_be_visible()
    expect(page.get_by_label("Code of step(x_t, t, eps, schedule, sigma, noise, clip)")).to_be_hidden()
