"""The panel under each view: live equations, the code that drew the frame, the student's schedule, downloads.

The numbers, frames and files are checked against the core computed here in
CPython, as in test_pages.
"""
from __future__ import annotations

import inspect
import json
import math
import re

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from conftest import READY_TIMEOUT_MS, Watched
from diffusion_lab import controls, denoisers, export, forward, hooks, images, plots, samplers, schedules
from test_offline import offline, offline_url, usb_stick  # noqa: F401  (fixtures)
from test_accessibility import axe_violations
from test_pages import assert_same_image, canvas_gray, canvas_rgba, wait_for_result

CONSTANT = "def betas(T):\n    return np.full(T, 0.01)\n"
CONSTANT_SCHEDULE = schedules.from_betas(np.full(1000, 0.01))


def settled(page):
    """Wait until the equations and code show the last frame drawn (they follow it by SHOW_DELAY_S)."""
    page.wait_for_selector("#equation:not([data-pending])", state="attached")
    return page


def equation(page) -> str:
    """The equations' text as MathML holds it (textContent: innerText would restyle the letters)."""
    return "".join(settled(page).eval_on_selector("#equation", "e => e.textContent").split())


def numbers(page) -> dict:
    return json.loads(settled(page).get_attribute("#equation", "data-numbers"))


def three(value: float, digits: int = 3) -> str:
    """How the equations show a number from 0.01 to 0.9995: `digits` significant digits, at least three
    decimals (0.0502, not 0.050)."""
    assert 0.01 <= abs(value) < 0.9995, value
    return f"{value:.{max(3, digits - 1 - math.floor(math.log10(abs(value))))}f}".replace("-", "−")


def small(value: float) -> str:
    """How the equations show a number below 0.01: three significant digits."""
    assert 0 < abs(value) < 0.01, value
    return f"{value:.3g}"


def noise_of(seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((size, size))


def run_code(page, source: str) -> None:
    page.get_by_label("Code of betas(T)").fill(source)
    page.get_by_role("button", name="Run", exact=True).click()


def shrunk(picture: np.ndarray, n: int) -> np.ndarray:
    """A downloaded picture back at its own size: the pages enlarge each pixel into an n x n block."""
    assert picture.shape[0] % n == 0 and picture.shape[1] % n == 0, picture.shape
    blocks = picture.reshape(picture.shape[0] // n, n, picture.shape[1] // n, n)
    assert (blocks == blocks[:, :1, :, :1]).all()  # sharp squares, nothing smoothed
    return blocks[:, 0, :, 0]


def wait_for_new_pixels(page, canvas_id: str, before: np.ndarray) -> np.ndarray:
    for _ in range(100):
        now = canvas_rgba(page, canvas_id)
        if now.shape != before.shape or (now != before).any():
            return now
        page.wait_for_timeout(100)
    raise AssertionError(f"#{canvas_id} was not redrawn")


# -- live equations --------------------------------------------------------------

def test_forward_equations_carry_the_numbers_of_the_schedule_at_t(watched, base_url):
    page = watched.open(f"{base_url}/forward.html?t=120&schedule=cosine&steps=500")
    c = forward.coefficients(119, schedules.get_schedule("cosine", 500))
    text = equation(page)
    assert "x120=" in text
    assert f"={three(c.signal)}x0+{three(c.noise)}ε" in text  # x_t = 0.926 x_0 + 0.378 ε
    assert f"={three(c.alpha_bar, 4)}β" in text and f"={small(c.beta)}" in text  # ᾱ to 4 digits: 0.8581
    assert f"={three(c.step_signal)}x119+{three(c.step_noise)}ε" in text
    shown = numbers(page)
    assert shown["t"] == 120 and shown["index"] == 119
    for name in ("beta", "alpha_bar", "signal", "noise", "step_signal", "step_noise", "snr"):
        assert shown[name] == pytest.approx(getattr(c, name), rel=1e-12), name
    assert page.locator(".equation-line.active").inner_text().startswith("Any t at once")

    slider = page.get_by_label("Timestep")
    slider.focus()
    slider.press("ArrowRight")  # scrubbing updates the numbers (once the scrub pauses)
    c = forward.coefficients(120, schedules.get_schedule("cosine", 500))
    assert f"={three(c.signal)}x0+{three(c.noise)}ε" in equation(page)
    page.get_by_role("button", name="Step", exact=True).click()  # the chain: eq. 2 is the one applied
    expect(page.locator(".equation-line.active")).to_contain_text("One step")
    slider.press("Home")
    assert "clean image" in settled(page).inner_text("#equation")
    gap = page.evaluate("""() => {  // the subscript of x₀ sits right after its x, not a flex gap away
        const sub = document.querySelector('#equation sub'), x = sub.previousSibling, range = document.createRange();
        range.setStart(x, x.length - 1);
        range.setEnd(x, x.length);
        return sub.getBoundingClientRect().left - range.getBoundingClientRect().right; }""")
    assert -1 <= gap <= 2


def test_equations_write_numbers_at_the_ends_of_float64_readably(watched, base_url):
    page = watched.open(f"{base_url}/forward.html?t=1")
    run_code(page, "def betas(T):\n    return np.full(T, 1e-16)\n")  # alpha_bar_1 = 1 - 1.11e-16
    shown = equation(page)
    assert "(1−1.11×10−16)x0" in shown  # not 1.000000, which reads as exactly 1
    assert "=1.000×1016" in shown  # the SNR, 9.999999999999999e15, in powers of ten
    assert shown.count("x0+1×10−8ε") == 2  # the closed form and one step agree: 1 - alpha_bar_1 is beta_1
    assert "1.000000" not in shown
    # alpha_bar_1 = 1 - beta_1, as the schedule keeps it: 1 - alpha_bar_1 computed from the rounded alpha_bar
    # said 1.11e-16 beside beta_1 = 1e-16.
    assert "(1−βs)=(1−1×10−16)" in shown
    expect(page.locator("#readout")).to_contain_text("ᾱt = 1 − 1 × 10−16,")  # as the equations write it
    run_code(page, "def betas(T):\n    return np.full(T, 0.0099999)\n")
    assert "β1=0.0100" in equation(page)  # rounded up to 3 digits, said with them: not 0.01, which reads exact


def test_reverse_equations_carry_the_ddpm_and_ddim_coefficients_of_the_step(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?steps=200&step=50&variance=fixed_large")
    page.wait_for_function("!document.getElementById('readout').textContent.includes('computing')")
    schedule = schedules.get_schedule("linear", 200)
    c = samplers.ddpm_coefficients(149, schedule, "fixed_large")  # step 50 starts from t = 150
    text = equation(page)
    assert f"x149={small(c.mean_x0)}x^0+{three(c.mean_xt)}x150+{three(c.sigma)}z" in text
    assert f"=1{three(c.x0_scale)}(x150−{three(c.eps_scale)}ε^)" in text  # x0 = 1/0.xx (x_t - 0.xx eps)
    shown = numbers(page)
    assert shown["t"] == 150 and shown["t_prev"] == 149
    for name in ("mean_x0", "mean_xt", "sigma", "alpha_bar", "beta"):
        assert shown[name] == pytest.approx(getattr(c, name), rel=1e-12), name

    page.get_by_label("Sampler").select_option("ddim")
    page.get_by_label("DDIM eta").fill("0.5")
    page.get_by_label("DDIM eta").press("Enter")
    page.wait_for_function("!document.getElementById('readout').textContent.includes('computing')")
    slider = page.get_by_label("Timestep")
    slider.focus()
    for _ in range(10):
        slider.press("ArrowRight")
    ts = samplers.timesteps(200, 50, "leading")
    t, t_prev = int(ts[10]), int(ts[11])
    c = samplers.ddim_coefficients(t, t_prev, schedule, 0.5)
    shown = numbers(page)
    assert (shown["t"], shown["t_prev"]) == (t + 1, t_prev + 1)
    for name in ("signal", "direction", "sigma", "alpha_bar_prev"):
        assert shown[name] == pytest.approx(getattr(c, name), rel=1e-12), name
    assert f"={three(c.signal)}x^0+{three(c.direction)}ε^+{three(c.sigma)}z" in equation(page)

    # DDPM's last step adds no noise whatever sigma_1 is: no "sigma_1 = sqrt(beta_1) = 0" beside beta_1 = 0.0001.
    page.get_by_label("Sampler").select_option("ddpm")
    page.wait_for_function("!document.getElementById('readout').textContent.includes('computing')")
    slider.press("End")
    slider.press("ArrowLeft")
    assert numbers(page)["t"] == 1
    text = equation(page)
    maths, last_note = text.split("Laststep")
    assert "σ" not in maths and "z" not in maths, maths
    assert last_note == "Nonoiseisaddedatt=1(Algorithm2ofHoetal.:z=0):thesampleistheposteriormean."


def test_the_where_lines_give_each_number_the_step_is_worked_out_from(watched, base_url):
    """ᾱ_t and ᾱ of the next t to four digits (three showed ᾱ_500 = ᾱ_499 = 0.079 beside σ_500 = 0.100), near 1
    as 1 − (1 − ᾱ), DDPM's ᾱ_{t−1} beside ᾱ_t, and DDIM's σ_t from η (Song et al. eq. 16)."""
    s = schedules.get_schedule("linear", 1000)
    page = watched.open(f"{base_url}/reverse.html?sampler=ddim&ddim_steps=1000&eta=1&step=500")
    page.wait_for_function("!document.getElementById('readout').textContent.includes('computing')")
    text = equation(page)
    where = text[text.index("where"):]
    assert f"α¯500={s.alpha_bars[499]:.4g}" in where and f"α¯499={s.alpha_bars[498]:.4g}" in where  # 0.07859
    c = samplers.ddim_coefficients(499, 498, s, 1.0)
    assert f"σ500=η1−α¯4991−α¯5001−α¯500α¯499={three(c.sigma)}" in where, where

    page = watched.open(f"{base_url}/reverse.html?step=995")  # DDPM from t = 5
    page.wait_for_function("!document.getElementById('readout').textContent.includes('computing')")
    text = equation(page)
    where = text[text.index("where"):]
    gaps = s.one_minus_alpha_bars
    assert f"α¯5=(1−{gaps[4]:.4g})α¯4=(1−{gaps[3]:.4g})β5=" in where, where  # 1 − 0.000699, 1 − 0.0005194


def test_the_forward_readout_writes_the_snr_as_the_equations_do(watched, base_url):
    """Its numbers as the equations write theirs: not 1e+04, nor β = 1 for a β below it (QA39 F4, F5)."""
    page = settled(watched.open(f"{base_url}/forward.html?steps=2&t=2"))
    run_code(page, "def betas(T):\n    return np.full(T, 0.999999)\n")
    expect(page.locator("#readout")).to_contain_text(
        "βt = 0.999999, ᾱt = 1 × 10−12, SNR = 1 × 10−12 (−120.0 dB)")
    page = settled(watched.open(f"{base_url}/forward.html?t=1"))
    expect(page.locator("#readout")).to_contain_text("SNR = 9999 (40.0 dB)")  # not 1e+04
    assert "SNR=⋯=9999" in equation(page).replace("α¯11−α¯1", "⋯")
    page.get_by_label("Timestep").press("End")
    snr = schedules.get_schedule("linear", 1000).snr[-1]
    mantissa, power = f"{snr:.2e}".split("e")
    said = f"SNR = {float(mantissa):.3g} × 10{int(power)} ({10 * math.log10(snr):.1f} dB)".replace("-", "−")
    expect(page.locator("#readout")).to_contain_text(said)  # 4.04 × 10−5 (−43.9 dB), as the equations say


# -- the code ---------------------------------------------------------------------

def test_the_code_panel_shows_the_running_functions_highlighted(watched, base_url):
    page = settled(watched.open(f"{base_url}/forward.html?t=10&schedule=sigmoid"))
    listing = page.locator("#code-listing")
    sources = listing.locator("pre").all_inner_texts()
    for function in (forward.q_sample, schedules.sigmoid_betas, images.to_uint8):
        assert inspect.getsource(function).rstrip("\n") in [text.rstrip("\n") for text in sources]
    assert "diffusion_lab/forward.py, lines" in listing.inner_text()
    assert listing.locator("span.tok-keyword", has_text="return").count() >= 3
    assert listing.locator("span.tok-def", has_text="q_sample").count() == 1
    page.get_by_role("button", name="Step", exact=True).click()
    expect(listing).to_contain_text("def q_step(")
    # The editor starts as the schedule's own function, renamed betas.
    assert page.get_by_label("Code of betas(T)").input_value() == hooks.schedule_template("sigmoid")

    reverse = watched.page.context.new_page()
    try:
        reverse.goto(f"{base_url}/reverse.html?denoiser=ideal&size=16&sampler=ddim")
        reverse.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        texts = settled(reverse).locator("#code-listing pre").all_inner_texts()
        for function in (samplers._ddim_update, denoisers.IdealDenoiser.predict_noise):
            assert inspect.getsource(function).rstrip("\n") in [text.rstrip("\n") for text in texts]
    finally:
        reverse.close()


# -- the student's schedule --------------------------------------------------------

def test_a_constant_beta_changes_the_plot_and_the_frames(watched, base_url):
    page = watched.open(f"{base_url}/forward.html?t=150&seed=2")
    page.wait_for_selector("body[data-figures-t='150']")
    before = canvas_rgba(page, "schedule-plot")
    run_code(page, CONSTANT)
    x0 = images.make_image("gradient", 64)
    assert_same_image(canvas_gray(page, "frame"), forward.q_sample(x0, 149, noise_of(2), CONSTANT_SCHEDULE))
    assert numbers(page)["alpha_bar"] == pytest.approx(0.99**150, rel=1e-12)
    assert "In use: your betas(T)" in page.inner_text("#hook-status")

    # The schedule figure now draws the constant betas: closer to CPython's drawing of them than of linear.
    after = wait_for_new_pixels(page, "schedule-plot", before)

    def drawn(schedule):  # at the size the page drew it, which fits its box
        figure = plots.ScheduleFigure(schedule, width_px=after.shape[1], height_px=after.shape[0])
        figure.set_t(149)
        return plots.to_rgba(figure)[..., :3].astype(int)

    def distance(a, b):
        return np.abs(a[..., :3].astype(int) - b).mean()

    custom, linear = drawn(CONSTANT_SCHEDULE), drawn(schedules.get_schedule("linear", 1000))
    assert distance(after, custom) < distance(after, linear)
    assert distance(before, linear) < distance(before, custom)

    # The strip follows too, and a link carries the code.
    assert f"hook={controls.code_to_url(CONSTANT)}" in page.url
    slider = page.get_by_label("Timestep")
    slider.focus()
    slider.press("End")
    assert_same_image(canvas_gray(page, "frame"), forward.q_sample(x0, 999, noise_of(2), CONSTANT_SCHEDULE))

    expect(page).to_have_url(re.compile(r"[?&]t=1000(&|$)"))  # the address follows the slider by page.URL_DELAY_S
    page.reload()  # code the student ran in this tab runs again by itself
    page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
    assert_same_image(canvas_gray(page, "frame"), forward.q_sample(x0, 999, noise_of(2), CONSTANT_SCHEDULE))

    page.get_by_role("button", name="Reset code").click()
    assert "hook=" not in page.url
    assert page.get_by_label("Code of betas(T)").input_value() == hooks.schedule_template("linear")
    assert_same_image(canvas_gray(page, "frame"),
                      forward.q_sample(x0, 999, noise_of(2), schedules.get_schedule("linear", 1000)))


def test_errors_are_shown_inline_and_the_last_working_schedule_stays(watched, base_url):
    page = watched.open(f"{base_url}/forward.html?seed=1&t=100")
    run_code(page, CONSTANT)
    run_code(page, "def betas(T):\n    return np.full(T, 0.02\n")
    error = page.locator("#hook-error")
    expect(error).to_be_visible()
    expect(page.get_by_label("Code of betas(T)")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("What went wrong in your code")).to_contain_text("SyntaxError")
    assert axe_violations(page) == []  # with the error box shown
    assert "SyntaxError" in error.inner_text() and "line 2" in error.inner_text()
    status = page.inner_text("#hook-status")
    assert "did not run" in status and "Line 2" in status and "last working betas(T)" in status
    assert f"hook={controls.code_to_url(CONSTANT)}" in page.url  # links keep the working code

    # The page keeps working with the constant schedule: the slider still redraws.
    x0 = images.make_image("gradient", 64)
    slider = page.get_by_label("Timestep")
    slider.focus()
    for _ in range(50):
        slider.press("ArrowRight")
    assert page.inner_text("#readout").startswith("t = 150 of 1000")
    assert_same_image(canvas_gray(page, "frame"), forward.q_sample(x0, 149, noise_of(1), CONSTANT_SCHEDULE))

    run_code(page, "def betas(T):\n    return np.full(T, 1.5)\n")
    assert "between 0 and 1" in page.inner_text("#hook-status")
    run_code(page, "def betas(T):\n    return np.full(T, 0.9)\n")  # alpha_bar = 0.1 ** t underflows to 0
    assert "falls below" in page.inner_text("#hook-status") and "t = 308" in page.inner_text("#hook-status")
    assert numbers(page)["alpha_bar"] == pytest.approx(0.99**150, rel=1e-12)  # the constant schedule stays
    run_code(page, "def betas(T):\n    return np.full(T - 1, 0.01)\n")
    assert "T = 1000 numbers" in page.inner_text("#hook-status")
    run_code(page, "def betas(T):\n    return np.full(T, 0.01) / undefined\n")
    assert "NameError" in error.inner_text() and "line 2, in betas" in error.inner_text()
    assert page.locator("#error").is_hidden()  # reported in the panel, not as a page failure

    # An endless loop is stopped, and the tab is not frozen: the slider answers at once afterwards.
    run_code(page, "def betas(T):\n    while True:\n        T = T + 1\n")
    expect(page.locator("#hook-status")).to_contain_text(f"stopped after {hooks.TIME_LIMIT_S:g} s", timeout=10_000)
    assert "in betas" in error.inner_text()
    slider.press("ArrowLeft")
    expect(page.locator("#readout")).to_contain_text("t = 149 of 1000", timeout=2_000)
    run_code(page, CONSTANT.replace("0.01", "0.005"))
    expect(error).to_be_hidden()
    expect(page.get_by_label("Code of betas(T)")).to_have_attribute("aria-invalid", "false")
    assert numbers(page)["alpha_bar"] == pytest.approx(0.995**149, rel=1e-12)


def test_a_failed_run_names_what_the_page_uses_when_the_last_working_code_fails_at_this_t(watched, base_url):
    """The status said the page kept "your last working betas(T)" where that code fails with this T."""
    page = watched.open(f"{base_url}/forward.html?t=5")
    run_code(page, "def betas(T):\n    return np.linspace(1e-4, 0.02, T) * 1000 / T\n")  # past 1 for T < 20
    expect(page.locator("#hook-status")).to_contain_text("In use: your betas(T)")
    page.get_by_label("Steps T").fill("10")
    page.get_by_label("Steps T").press("Enter")
    expect(page.locator("#hook-status")).to_contain_text("does not work with T = 10")
    run_code(page, "def betas(T):\n    return np.full(T, 0.01) / undefined\n")
    expect(page.locator("#hook-status")).to_contain_text(
        "The page keeps using the Linear (DDPM) schedule (your last working betas(T) does not work with T = 10).")
    assert numbers(page)["beta"] == pytest.approx(schedules.get_schedule("linear", 10).betas[4], rel=1e-12)
    page.get_by_label("Schedule", exact=True).select_option("cosine")  # the words follow it (QA28)
    expect(page.locator("#hook-status")).to_contain_text("the page uses the Cosine (improved DDPM) schedule")


def test_a_betas_that_works_again_with_a_new_t_says_so(watched, base_url):
    # The status kept "does not work with T = 600" once T = 400 worked again (QA28).
    page = watched.open(f"{base_url}/forward.html?t=5&steps=400")
    run_code(page, "def betas(T):\n    assert T <= 500\n    return np.full(T, 0.01)\n")
    titles = settled(page).locator("#code-listing figcaption code")
    assert "schedules.linear_betas" not in titles.all_inner_texts()  # the student's computes, in the editor
    page.get_by_label("Steps T").fill("600")
    page.get_by_label("Steps T").press("Enter")
    expect(page.locator("#hook-status")).to_contain_text("does not work with T = 600")
    assert "schedules.linear_betas" in settled(page).locator("#code-listing figcaption code").all_inner_texts()
    page.get_by_label("Steps T").fill("400")
    page.get_by_label("Steps T").press("Enter")
    expect(page.locator("#hook-status")).to_contain_text("In use: your betas(T)")
    expect(page.locator("#hook-error")).to_be_hidden()
    assert "schedules.linear_betas" not in settled(page).locator("#code-listing figcaption code").all_inner_texts()


def test_what_the_code_prints_on_run_is_shown_under_it(watched, base_url):
    page = watched.open(f"{base_url}/forward.html")
    printed, output = page.locator("#hook-printed"), page.locator("#hook-output")
    expect(printed).to_be_hidden()
    run_code(page, "def betas(T):\n    b = np.full(T, 0.01)\n    print('T is', T, 'sum', b.sum())\n    return b\n")
    expect(page.locator("#hook-status")).to_contain_text("In use: your betas(T)")
    expect(output).to_have_text("T is 1000 sum 10.0\n")
    # What goes to stderr too, as numpy's warnings do.
    run_code(page, "import sys\ndef betas(T):\n    print('to stderr', file=sys.stderr)\n    return np.full(T, 0.01)\n")
    expect(output).to_have_text("to stderr\n")
    # Printed before a failure too; a loop that prints until the time limit is cut short, and the page answers.
    run_code(page, "print('checking')\ndef betas(T):\n    return np.full(T, 0.01) / undefined\n")
    expect(output).to_have_text("checking\n")
    run_code(page, "def betas(T):\n    while True:\n        print('again')\n")
    expect(page.locator("#hook-status")).to_contain_text("stopped after", timeout=10_000)
    assert output.inner_text().startswith("again\nagain") and "more characters" in output.inner_text()
    page.get_by_role("button", name="Reset code").click()
    expect(printed).to_be_hidden()
    assert page.locator("#error").is_hidden()


def test_code_from_a_link_waits_for_run_and_long_code_stays_in_its_tab(watched, shared_context, base_url):
    page = watched.open(f"{base_url}/forward.html?t=300&hook={controls.code_to_url(CONSTANT)}")
    x0 = images.make_image("gradient", 64)
    assert page.get_by_label("Code of betas(T)").input_value() == CONSTANT
    assert "press Run" in page.inner_text("#hook-status")
    linear = schedules.get_schedule("linear", 1000)
    assert_same_image(canvas_gray(page, "frame"), forward.q_sample(x0, 299, noise_of(0), linear))
    page.get_by_role("button", name="Run", exact=True).click()
    assert_same_image(canvas_gray(page, "frame"), forward.q_sample(x0, 299, noise_of(0), CONSTANT_SCHEDULE))

    long_code = CONSTANT + "# " + "a long comment " * 110 + "\n"
    run_code(page, long_code)
    assert "too long to share" in page.inner_text("#hook-status")
    expect(page).to_have_url(re.compile(r"[?&]t=300(&|$)"))
    assert f"hook={controls.tab_key(long_code)}" in page.url and len(page.url) < 200
    copies_leave_the_key_out(page)
    assert_same_image(canvas_gray(page, "frame"), forward.q_sample(x0, 299, noise_of(0), CONSTANT_SCHEDULE))

    # A reload keeps it in use: the tab kept it.
    page.reload()
    page.wait_for_selector("body[data-ready='true']")
    assert page.get_by_label("Code of betas(T)").input_value() == long_code
    assert "In use: your betas(T)" in page.inner_text("#hook-status")
    assert_same_image(canvas_gray(page, "frame"), forward.q_sample(x0, 299, noise_of(0), CONSTANT_SCHEDULE))
    assert page.locator("#notices li").count() == 0
    copies_leave_the_key_out(page)  # after a reload too (the key went into copies without a word; QA30)

    # The same link in another tab: the code stayed behind, and the page says so.
    other = Watched(shared_context.new_page())
    try:
        other.open(page.url)
        expect(other.page.locator("#notices")).to_contain_text("too long for a link and stays in the browser tab")
        assert_same_image(canvas_gray(other.page, "frame"), forward.q_sample(x0, 299, noise_of(0), linear))
        assert other.errors == []
    finally:
        other.page.close()


def copies_leave_the_key_out(page) -> None:
    """What is copied leaves the key to code kept in the tab out (it finds nothing elsewhere), and says so."""
    for button, what in (("Copy link", "Link"), ("Copy embed code", "Embed code")):
        page.get_by_role("button", name=button).click()
        expect(page.locator("#share-status")).to_contain_text(f"{what} copied to the clipboard.")
        expect(page.locator("#share-status")).to_contain_text(
            "Your code of betas(T) is too long for a link: it stays in this tab, and the link opens with the original.")
        copied = page.input_value("#share-text")
        assert "t=300" in copied and "hook=" not in copied


def test_the_reverse_chain_runs_with_the_students_schedule(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?steps=100&size=32&seed=6")
    run_code(page, CONSTANT)
    slider = page.get_by_label("Timestep")
    slider.focus()
    slider.press("End")
    page.wait_for_function("document.getElementById('readout').textContent.includes('step 100 of 100')")
    schedule = schedules.from_betas(np.full(100, 0.01))
    rng = np.random.default_rng(6)
    x = rng.standard_normal((32, 32))
    target = images.make_image("gradient", 32)
    for _, x, _ in samplers.sample(x, denoisers.Oracle(target, schedule), schedule, rng):
        pass
    assert_same_image(canvas_gray(page, "frame"), x)
    slider.press("Home")
    assert numbers(page)["alpha_bar"] == pytest.approx(0.99**100, rel=1e-12)


def run_step(page, source: str) -> None:
    page.get_by_label("Code of step(x_t, t, eps, schedule, sigma, noise, clip)").fill(source)
    page.get_by_role("button", name="Run the step").click()


def final_state(page, steps: int) -> np.ndarray:
    """Move the slider to the end of the chain once it is computed; the picture shown there."""
    slider = page.get_by_label("Timestep")
    slider.focus()
    slider.press("End")
    page.wait_for_function(f"document.getElementById('readout').textContent === 't = 0, step {steps} of {steps}'")
    return canvas_gray(page, "frame")


def test_a_schedule_that_loses_x0_to_rounding_says_so(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?sampler=ddim&ddim_steps=3&spacing=trailing&size=16")
    run_code(page, "def betas(T):\n    return np.full(T, 0.5)\n")  # accepted: alpha_bar_T = 2 ** -1000
    expect(page.locator("#hook-status")).to_contain_text("From t = 90 on, ᾱ is below 1e-27")
    slider = page.get_by_label("Timestep")
    slider.focus()
    slider.press("End")
    wait_for_result(page)  # three steps from t = 1000: the oracle cannot land on the target
    expect(page.locator("#result")).to_contain_text("Your betas(T) takes ᾱ below 1e-27 from t = 90 on")
    page.get_by_label("Sampler").select_option("ddpm")  # small steps can
    slider.press("End")
    wait_for_result(page)
    expect(page.locator("#result")).to_have_text("Result at the end of the chain (step 1000): identical to the target.")


def test_the_reverse_chain_runs_with_the_students_step_and_survives_a_broken_one(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?steps=60&size=32&seed=4&image=disc")
    editor = page.get_by_label("Code of step(x_t, t, eps, schedule, sigma, noise, clip)")
    assert editor.input_value() == hooks.step_template()  # the sampler's own code, renamed
    status = page.locator("#step-hook-status")
    expect(status).to_contain_text("In use: the DDPM step, as samplers.py defines it")

    # Without the noise, the chain lands on the posterior mean at every step: the CPython chain says where.
    quiet = hooks.step_template().replace("x_prev += sigma * noise", "x_prev = x_prev  # no noise")
    run_step(page, quiet)
    expect(status).to_contain_text("In use: your step(…)")
    assert f"step_hook={controls.code_to_url(quiet)}" in page.url
    schedule = schedules.get_schedule("linear", 60)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((32, 32))
    target = images.make_image("disc", 32)
    for _, x, _ in samplers.sample(x, denoisers.Oracle(target, schedule), schedule, rng,
                                   update=hooks.step_from_source(quiet)):
        pass
    assert_same_image(final_state(page, 60), x)
    titles = settled(page).locator("#code-listing figcaption code").all_inner_texts()
    assert "samplers._ddpm_update" not in titles  # the step in use is the student's, in the editor
    page.get_by_label("Timestep").press("Home")  # the equations are samplers.py's, and say so
    assert equation(page).startswith("YourstepYourstep(…)isinuse:thesearetheformulasofsamplers.py'sstep")

    # A step that fails halfway down the chain: the error is shown and the chain runs again with the original.
    run_step(page, quiet.replace("    return x_prev, x0", "    return (1 / 0 if t == 20 else x_prev), x0"))
    expect(status).to_contain_text("stopped the chain", timeout=10_000)
    assert "ZeroDivisionError" in page.inner_text("#step-hook-error") and "in step" in page.inner_text("#step-hook-error")
    expect(page.locator("#result")).to_contain_text("identical to the target", timeout=30_000)
    assert page.locator("#error").is_hidden()
    page.get_by_role("button", name="Copy link").click()  # the address keeps it (the tab's copy): a link says so
    expect(page.locator("#share-status")).to_contain_text("The link holds your step(…), which stopped the chain")

    # One that fails at once is refused on Run: the page keeps what it used.
    run_step(page, "def step(x_t, t, eps, schedule, sigma, noise, clip):\n    return x_t\n")
    expect(status).to_contain_text("did not run")
    assert "two arrays" in page.inner_text("#step-hook-status")

    # DDIM takes its own step, whose editor takes this one's place; Reset brings back the original.
    run_step(page, quiet)
    page.get_by_label("Sampler").select_option("ddim")
    expect(status).to_contain_text("changes the DDPM sampler's step; choose DDPM to see yours")
    expect(editor).to_be_hidden()
    expect(page.get_by_label("Code of ddim_step(x_t, t, t_prev, eps, schedule, eta, noise, clip)")).to_be_visible()
    page.get_by_label("Sampler").select_option("ddpm")
    page.get_by_role("button", name="Reset code of the step").click()
    expect(status).to_contain_text("In use: the DDPM step, as samplers.py defines it")
    assert "step_hook=" not in page.url and editor.input_value() == hooks.step_template()


def test_code_that_froze_the_page_says_how_long_and_waits_for_run_after_a_reload(watched, base_url):
    """A loop is stopped after the time limit, a single call only once it returns: the message gives the time
    the page froze, and a reload, which would run the student's own code again by itself, holds it instead.
    So does the next page of a tab whose code was still running when it went (frozen by a call that never
    ends, then reloaded)."""
    page = watched.open(f"{base_url}/reverse.html?steps=60&size=32&seed=4&image=disc")
    status = page.locator("#step-hook-status")
    slow = "import time\n" + hooks.step_template().replace(
        "    return x_prev, x0", "    if t == 30:\n        time.sleep(4.5)  # one call\n    return x_prev, x0")
    run_step(page, slow)  # Run tries it at t = T and t = 1 only
    expect(status).to_contain_text("stopped the chain", timeout=30_000)
    said = status.inner_text()
    assert re.search(r"Line \d+: stopped after 4\.\d s, most of them in one call on that line", said), said
    assert "time.sleep(4.5)" in page.inner_text("#step-hook-error")
    expect(page.locator("#result")).to_contain_text("identical to the target", timeout=30_000)

    page.reload()
    page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
    expect(status).to_contain_text("Your step(…) below ran too long when it last ran in this tab (Line ")
    expect(status).to_contain_text("so it waits for Run; until then the page uses the DDPM step")
    expect(page.locator("#result")).to_contain_text("identical to the target", timeout=30_000)  # samplers.py's step
    page.get_by_role("button", name="Reset code of the step").click()

    # Code the student ran that was running still when its page went: the tab kept its hash meanwhile.
    quiet = hooks.step_template().replace("x_prev += sigma * noise", "x_prev = x_prev  # no noise")
    run_step(page, quiet)
    expect(status).to_contain_text("In use: your step(…)")
    page.evaluate("(digest) => sessionStorage.setItem('diffusion-lab:code-running', JSON.stringify([digest]))",
                  controls.digest(quiet))
    page.reload()
    page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
    expect(status).to_contain_text("ran too long when it last ran in this tab (the page was reloaded or closed "
                                   "while it ran)")
    page.get_by_role("button", name="Run the step").click()  # the student's choice: it runs again
    expect(status).to_contain_text("In use: your step(…)")
    page.reload()
    page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
    expect(status).to_contain_text("In use: your step(…)")  # it finished: trusted again
    assert page.evaluate("sessionStorage.getItem('diffusion-lab:code-running')") == "[]"

    # Of the student's code in a chain, only what ran too long is held: here the noise prediction, not the step.
    slow_noise = "import time\n" + hooks.noise_template().replace(
        "    return", "    if t == 30:\n        time.sleep(4.5)\n    return", 1)
    run_noise(page, slow_noise)
    noise_status = page.locator("#noise-hook-status")
    expect(noise_status).to_contain_text("stopped the chain", timeout=30_000)
    page.reload()
    page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
    expect(noise_status).to_contain_text("ran too long when it last ran in this tab")
    expect(status).to_contain_text("In use: your step(…)")


def test_the_ddim_chain_runs_with_the_students_ddim_step(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?steps=60&size=32&seed=4&image=disc&sampler=ddim&ddim_steps=6"
                        "&eta=1")
    expect(page.get_by_label("Code of step(x_t, t, eps, schedule, sigma, noise, clip)")).to_be_hidden()
    editor = page.get_by_label("Code of ddim_step(x_t, t, t_prev, eps, schedule, eta, noise, clip)")
    assert editor.input_value() == hooks.ddim_template()  # the sampler's own code, renamed
    status = page.locator("#ddim-hook-status")
    expect(status).to_contain_text("In use: the DDIM step, as samplers.py defines it")

    # eta = 1 without its noise: the CPython chain with the same step says where the chain ends.
    quiet = hooks.ddim_template().replace("x_prev += c.sigma * noise", "x_prev = x_prev  # no noise")
    editor.fill(quiet)
    page.get_by_role("button", name="Run the DDIM step").click()
    expect(status).to_contain_text("In use: your ddim_step(…)")
    assert f"ddim_hook={controls.code_to_url(quiet)}" in page.url
    schedule = schedules.get_schedule("linear", 60)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((32, 32))
    oracle = denoisers.Oracle(images.make_image("disc", 32), schedule)
    for _, x, _ in samplers.sample(x, oracle, schedule, rng, sampler="ddim", steps=6, eta=1.0,
                                   update=hooks.step_from_source(quiet, hooks.DDIM_HOOK)):
        pass
    assert_same_image(final_state(page, 6), x)
    titles = settled(page).locator("#code-listing figcaption code").all_inner_texts()
    assert "samplers._ddim_update" not in titles  # the step in use is the student's, in the editor

    # One that fails halfway (Run tries the first jump and the last): the error is shown, and the chain runs
    # again with samplers.py's step.
    editor.fill(quiet.replace("    return x_prev, x0", "    if t == 20:\n        1 / 0\n    return x_prev, x0"))
    page.get_by_role("button", name="Run the DDIM step").click()
    expect(status).to_contain_text("stopped the chain", timeout=10_000)
    expect(status).to_contain_text("run again with the DDIM step of samplers.py")
    assert "ZeroDivisionError" in page.inner_text("#ddim-hook-error")
    expect(page.locator("#result")).to_contain_text("identical to the target", timeout=30_000)
    expect(page.locator("#noise-hook-status")).to_contain_text("In use: the oracle's exact noise prediction")


def test_a_step_for_the_digits_is_tried_on_their_shape_and_exit_stops_only_the_step(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?denoiser=ideal&dataset=digits&steps=40")
    status = page.locator("#step-hook-status")
    # The digits are 8x8 whatever the hidden Size says (64): Run tries the step on pictures of their shape.
    checked = hooks.step_template().replace(
        "    return x_prev, x0", "    assert x_t.shape == (8, 8), x_t.shape\n    return x_prev, x0")
    run_step(page, checked)
    expect(status).to_contain_text("In use: your step(…)")
    expect(page.locator("#result")).to_contain_text("Result", timeout=30_000)

    # exit() halfway down the chain ends the student's step, not the page: the chain runs again with the original.
    run_step(page, hooks.step_template().replace(
        "    return x_prev, x0", "    if t == 20:\n        exit()\n    return x_prev, x0"))
    expect(status).to_contain_text("stopped the chain", timeout=10_000)
    assert "SystemExit" in page.inner_text("#step-hook-error")
    expect(page.locator("#result")).to_contain_text("Result", timeout=30_000)
    assert page.locator("#error").is_hidden()


def run_noise(page, source: str) -> None:
    page.get_by_label("Code of predict_noise(x_t, t, x0, schedule)").fill(source)
    page.get_by_role("button", name="Run the noise prediction").click()


def test_the_oracle_runs_with_the_students_noise_prediction_in_ddim_and_ddpm(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?steps=60&size=32&seed=5&image=disc&sampler=ddim&ddim_steps=6"
                        "&spacing=trailing")
    editor = page.get_by_label("Code of predict_noise(x_t, t, x0, schedule)")
    assert editor.input_value() == hooks.noise_template()  # the oracle's own code, renamed
    status = page.locator("#noise-hook-status")
    expect(status).to_contain_text("In use: the oracle's exact noise prediction, as denoisers.py defines it")
    assert "denoisers.oracle_noise" in settled(page).locator("#code-listing figcaption code").all_inner_texts()

    # A prediction 10% too large: DDIM's result misses the target by what the CPython chain says.
    larger = hooks.noise_template().replace("    return (", "    return 1.1 * (")
    run_noise(page, larger)
    expect(status).to_contain_text("In use: your predict_noise(…), in place of the oracle's exact noise prediction")
    assert f"noise_hook={controls.code_to_url(larger)}" in page.url
    schedule = schedules.get_schedule("linear", 60)
    target = images.make_image("disc", 32)

    def cpython(**options):
        rng = np.random.default_rng(5)
        x = rng.standard_normal((32, 32))
        oracle = hooks.Oracle(hooks.noise_from_source(larger), target, schedule)
        for _, x, _ in samplers.sample(x, oracle, schedule, rng, **options):
            pass
        return x

    expected = cpython(sampler="ddim", steps=6, spacing="trailing")
    assert_same_image(final_state(page, 6), expected)
    wait_for_result(page)
    expect(page.locator("#result")).to_have_text(
        f"Result at the end of the chain (step 6): PSNR {images.psnr(expected, target):.1f} dB against the target.")
    assert "denoisers.oracle_noise" not in settled(page).locator("#code-listing figcaption code").all_inner_texts()

    # DDPM uses it too.
    page.get_by_label("Sampler").select_option("ddpm")
    assert_same_image(final_state(page, 60), cpython())
    expect(status).to_contain_text("In use: your predict_noise(…)")

    # One that fails halfway down the chain: the error is shown and the chain runs again with the oracle's own.
    run_noise(page, larger.replace("    return 1.1 * (", "    if t == 20:\n        1 / 0\n    return 1.1 * ("))
    expect(status).to_contain_text("stopped the chain", timeout=10_000)
    expect(status).to_contain_text("run again with the oracle's exact noise prediction of denoisers.py")
    error = page.inner_text("#noise-hook-error")
    assert "ZeroDivisionError" in error and "in predict_noise" in error
    expect(page.locator("#result")).to_contain_text("identical to the target", timeout=30_000)
    expect(page.locator("#step-hook-status")).to_contain_text("In use: the DDPM step")  # the step is not blamed
    assert page.locator("#error").is_hidden()
    with page.expect_download() as info:  # the file's settings are those of its chain: not the failed code
        page.get_by_role("button", name="Download arrays (.npz)").click()
    assert "noise_hook" not in json.loads(str(np.load(info.value.path())["settings"]))

    # One that runs the chain away through samplers.py's step is blamed for it, not the step.
    run_noise(page, "def predict_noise(x_t, t, x0, schedule):\n    return np.full_like(x_t, 5e5)\n")
    expect(status).to_contain_text("stopped the chain (the chain is running away", timeout=10_000)
    expect(page.locator("#step-hook-status")).to_contain_text("In use: the DDPM step")

    # One that fails at once is refused on Run; the ideal denoiser makes its own prediction; Reset.
    run_noise(page, "def predict_noise(x_t, t, x0, schedule):\n    return 0\n")
    expect(status).to_contain_text("did not run")
    assert "eps of shape ()" in page.inner_text("#noise-hook-status")
    run_noise(page, larger)
    expect(status).to_contain_text("In use: your predict_noise(…)")
    page.get_by_label("Denoiser").select_option("ideal")
    expect(status).to_contain_text("the ideal denoiser and the trained network make their own")
    page.get_by_role("button", name="Reset code of the noise prediction").click()
    expect(status).to_contain_text("Not in use: this is the oracle's prediction")  # not "In use" (QA24)
    assert "noise_hook=" not in page.url and editor.input_value() == hooks.noise_template()

    # Code from a link, with the ideal denoiser: Run alone would not put it to work, and the status says so.
    unrun = "def predict_noise(x_t, t, x0, schedule):\n    return np.zeros_like(x_t)\n"  # not run in this tab
    page = watched.open(f"{base_url}/reverse.html?denoiser=ideal&noise_hook={controls.code_to_url(unrun)}")
    expect(page.locator("#noise-hook-status")).to_contain_text("press Run to use it")
    expect(page.locator("#noise-hook-status")).to_contain_text("choose the oracle to see it at work")


# -- downloads ----------------------------------------------------------------------

def download(page, name: str):
    with page.expect_download() as info:
        page.get_by_role("button", name=name).click()
    return info.value


def test_forward_downloads_open_in_cpython_and_hold_the_frames(watched, base_url):
    page = watched.open(f"{base_url}/forward.html?t=60&steps=100&size=32&seed=4&image=disc")
    page.wait_for_selector("body[data-figures-t='60']")
    x0, noise = images.make_image("disc", 32), noise_of(4, 32)
    schedule = schedules.get_schedule("linear", 100)

    frame = download(page, "Download frame (PNG)")
    assert frame.suggested_filename == "diffusion-lab-forward-t60.png"
    assert_same_image(shrunk(np.asarray(Image.open(frame.path())), 8), forward.q_sample(x0, 59, noise, schedule))

    strip = download(page, "Download strip (PNG)")
    assert (np.asarray(Image.open(strip.path()).convert("RGBA")) == canvas_rgba(page, "strip")).all()

    animation = download(page, "Download animation (GIF)")
    gif = Image.open(animation.path())
    ts = export.frame_indices(101)
    assert gif.n_frames == len(ts) == 101
    for k in (0, 1, 30, 100):
        gif.seek(k)
        expected = x0 if ts[k] == 0 else forward.q_sample(x0, ts[k] - 1, noise, schedule)
        assert_same_image(shrunk(np.asarray(gif.convert("L")), 8), expected)

    arrays = np.load(download(page, "Download arrays (.npz)").path())
    np.testing.assert_array_equal(arrays["x0"], x0)
    np.testing.assert_array_equal(arrays["noise"], noise)
    np.testing.assert_array_equal(arrays["betas"], schedule.betas)
    assert int(arrays["t"]) == 60
    np.testing.assert_allclose(arrays["x_t"], forward.q_sample(x0, 59, noise, schedule), atol=1e-12)
    assert list(arrays["frames_t"]) == list(ts)
    assert_same_image(arrays["frames"][50], forward.q_sample(x0, 49, noise, schedule))
    assert json.loads(str(arrays["settings"]))["seed"] == 4
    status = page.inner_text("#export-status")
    assert "Download of diffusion-lab-forward-t60.npz" in status and "embedded" not in status  # a page of its own
    assert str(arrays["x_t_from"]) == "closed form q(x_t | x_0)"
    page.get_by_role("button", name="Step", exact=True).click()  # the chain's x_t, from its own noise
    expect(page.locator("#readout")).to_contain_text("t = 61 of 100")
    arrays = np.load(download(page, "Download arrays (.npz)").path())
    assert str(arrays["x_t_from"]) == "iterated chain q(x_t | x_t−1)" and int(arrays["t"]) == 61


def test_reverse_downloads_hold_the_chain(watched, base_url):
    page = watched.open(f"{base_url}/reverse.html?steps=50&size=16&seed=8")
    page.wait_for_function("!document.getElementById('readout').textContent.includes('computing')")
    page.wait_for_function("document.getElementById('result').textContent.length > 0")
    x_T = noise_of(8, 16)
    target = images.make_image("gradient", 16)

    frame = download(page, "Download frame (PNG)")
    assert frame.suggested_filename == "diffusion-lab-reverse-step0-t50.png"
    assert_same_image(shrunk(np.asarray(Image.open(frame.path())), 16), x_T)

    gif = Image.open(download(page, "Download animation (GIF)").path())
    assert 2 <= gif.n_frames <= 51  # Pillow merges runs of identical frames
    assert_same_image(shrunk(np.asarray(gif.convert("L")), 16), x_T)
    gif.seek(gif.n_frames - 1)
    assert_same_image(shrunk(np.asarray(gif.convert("L")), 16), target)

    arrays = np.load(download(page, "Download arrays (.npz)").path())
    assert arrays["frames"].shape == (51, 16, 16) and arrays["frames"].dtype == np.uint8
    assert list(arrays["frames_t"][:3]) == [50, 49, 48] and arrays["frames_t"][-1] == 0
    assert_same_image(arrays["frames"][0], x_T)
    np.testing.assert_array_equal(arrays["x_T"], x_T)  # the exact noise, not only its picture
    # The states themselves, unclipped, as float32 (the frames are their pictures).
    assert arrays["states"].shape == arrays["predicted_x0"].shape == (51, 16, 16)
    np.testing.assert_array_equal(arrays["states"][0], x_T.astype(np.float32))
    np.testing.assert_allclose(arrays["states"][-1], target, atol=1e-6)
    np.testing.assert_allclose(arrays["predicted_x0"][10], target, atol=1e-6)  # the oracle's x0 is the target
    np.testing.assert_allclose(arrays["final"], target, atol=1e-6)
    settings = json.loads(str(arrays["settings"]))
    assert settings["seed"] == 8 and settings["size"] == 16 and settings["image"] == "gradient"
    assert not {"ddim_steps", "eta", "spacing", "dataset"} & set(settings)  # DDPM with the oracle ignores them

    strip = download(page, "Download strip (PNG)")
    assert (np.asarray(Image.open(strip.path()).convert("RGBA")) == canvas_rgba(page, "strip")).all()


def test_a_chains_arrays_are_made_in_pieces_while_the_page_paints(watched, base_url):
    """The default chain's .npz is 19 MB: made in one call it froze a slow phone for 3.6 s. A bar fills, frame
    after frame, and the slider answers meanwhile; the status line, a live region, says it once (QA39 F3), and
    a second press makes no second file (F7)."""
    page = watched.open(f"{base_url}/reverse.html")
    page.wait_for_function("!document.getElementById('readout').textContent.includes('computing')")
    page.evaluate("""() => { window.__seen = []; const look = () => {
        const bar = document.getElementById('export-progress'), said = document.getElementById('export-status');
        window.__seen.push([bar.hidden ? null : bar.value, said.textContent]);
        if (!said.textContent.startsWith('Download of')) requestAnimationFrame(look); };
        requestAnimationFrame(look); }""")
    with page.expect_download() as info:
        button = page.get_by_role("button", name="Download arrays (.npz)")
        button.click()
        page.wait_for_function("(window.__seen || []).some(([share]) => share > 0 && share < 0.5)")
        page.get_by_label("Timestep").press("End")  # answered between two pieces
        expect(page.locator("#readout")).to_contain_text("t = 0, step 1000 of 1000")
        button.click()
        expect(page.locator("#export-status")).to_have_text("Still making the arrays: one file at a time.")
    seen = page.evaluate("window.__seen")
    shares = {share for share, _ in seen if share is not None and 0 < share < 1}
    assert len(shares) >= 3, seen  # painted at several shares, not once at the end
    assert {said for _, said in seen} <= {"", "Making the arrays…", "Still making the arrays: one file at a time."} | \
        {said for _, said in seen if said.startswith("Download of diffusion-lab-reverse.npz")}
    expect(page.locator("#export-progress")).to_be_hidden()
    arrays = np.load(info.value.path())
    assert arrays["states"].shape == (1001, 64, 64)  # the chain as it was when Download was pressed


def test_the_offline_edition_runs_code_and_downloads_from_disk(offline, offline_url):
    page = offline.page
    page.goto(f"{offline_url}#forward")
    offline.wait_ready("forward")
    run_code(page, CONSTANT)
    slider = page.get_by_label("Timestep")
    slider.focus()
    slider.press("End")
    offline.wait_for_readout("t = 1000 of 1000")
    frame = download(page, "Download frame (PNG)")
    x0 = images.make_image("gradient", 64)
    assert_same_image(shrunk(np.asarray(Image.open(frame.path())), 4),
                      forward.q_sample(x0, 999, noise_of(0), CONSTANT_SCHEDULE))
    arrays = np.load(download(page, "Download arrays (.npz)").path())
    np.testing.assert_allclose(arrays["alpha_bars"], CONSTANT_SCHEDULE.alpha_bars, rtol=1e-12)


# -- small screens --------------------------------------------------------------------

def test_the_panel_fits_320_px_with_long_lines_scrolling_in_their_own_box(browser, base_url):
    context = browser.new_context(viewport={"width": 320, "height": 640}, device_scale_factor=2)
    try:
        page = context.new_page()
        page.goto(f"{base_url}/reverse.html?step=10")
        page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        run_code(page, "def betas(T):\n    return np.full(T, 0.01) + 0 * np.linspace(0, 1, T) / undefined_name_that_is_long\n")
        expect(page.locator("#hook-error")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 320
        widths = page.eval_on_selector_all("pre.code", "es => es.map(e => [e.scrollWidth, e.clientWidth])")
        assert any(scroll > client for scroll, client in widths)  # a long line scrolls inside its box
    finally:
        context.close()
