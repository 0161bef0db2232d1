"""The offline edition, opened from disk with no server and no network, in Chromium and Firefox ESR.

The file is copied alone into a folder with a space in its name, under the name
a browser gives a second download, next to an unrelated file: as on a USB stick.
What the canvas shows is checked against the same core computed here in CPython.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

import build
from diffusion_lab import forward, images, schedules

READY_TIMEOUT_MS = 120_000
FIREFOX = os.environ.get("FIREFOX", "/usr/bin/firefox-esr")
FIREFOX_SCRIPT = Path(__file__).with_name("offline_firefox.mjs")
LOCAL_SCHEMES = ("file:", "data:", "blob:")


@pytest.fixture(scope="session")
def usb_stick(site, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("offline") / "USB stick"
    folder.mkdir()
    shutil.copyfile(site / build.OFFLINE_NAME, folder / "diffusion-lab-offline (1).html")
    (folder / "notes.txt").write_text("another file on the stick\n")
    return folder


@pytest.fixture(scope="session")
def offline_url(usb_stick) -> str:
    return (usb_stick / "diffusion-lab-offline (1).html").as_uri()


class Offline:
    """A Chromium page whose every request other than file:, data: and blob: is aborted and recorded."""

    def __init__(self, context):
        self.requests: list[str] = []
        self.errors: list[str] = []
        context.route("**/*", self._route)
        self.page = context.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url[:200]))
        self.page.on("console", lambda message: message.type == "error" and self.errors.append(message.text))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def _route(self, route) -> None:
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            route.abort()

    def wait_ready(self, view: str) -> None:
        self.page.wait_for_selector(f"body[data-view='{view}'][data-ready='true']", timeout=READY_TIMEOUT_MS)

    def wait_for_readout(self, text: str) -> None:
        """(Not wait_for_function: the file's Content-Security-Policy forbids the eval that it uses.)"""
        expect(self.page.locator("#readout")).to_contain_text(text, timeout=READY_TIMEOUT_MS)


@pytest.fixture
def offline(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    offline = Offline(context)
    yield offline
    context.close()
    assert [url for url in offline.requests if not url.startswith(LOCAL_SCHEMES)] == [], "a request left the disk"
    assert offline.errors == [], "the console showed errors"


def gray(width: int, height: int, rgba: list[int]) -> np.ndarray:
    pixels = np.array(rgba, dtype=np.uint8).reshape(height, width, 4)
    assert (pixels[..., 3] == 255).all() and (pixels[..., 0] == pixels[..., 2]).all()
    return pixels[..., 0]


def canvas_gray(page, canvas_id: str) -> np.ndarray:
    return gray(**page.evaluate(
        """(id) => { const c = document.getElementById(id);
                     const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                     return {width: c.width, height: c.height, rgba: Array.from(d)}; }""", canvas_id))


def assert_same_image(shown: np.ndarray, expected_float: np.ndarray) -> None:
    """Pixel for pixel, allowing a rounding flip of one level (wasm vs x86 float last bits)."""
    expected = images.to_uint8(expected_float)
    assert shown.shape == expected.shape
    difference = np.abs(shown.astype(int) - expected.astype(int))
    assert difference.max() <= 1 and (difference == 0).mean() > 0.999


def noisy_gradient(seed: int, t: int = 1000) -> np.ndarray:
    """x_t (x_T by default) of the forward view's default image and schedule, from its closed form."""
    x0 = images.make_image("gradient", 64)
    noise = np.random.default_rng(seed).standard_normal(x0.shape)
    return forward.q_sample(x0, t - 1, noise, schedules.get_schedule("linear", 1000))


# -- the file ---------------------------------------------------------------------

def test_the_hosted_site_offers_the_offline_edition_with_its_size(site):
    index = (site / "index.html").read_text()
    link = re.search(r'<a href="diffusion-lab-offline.html" download>Download the offline\s+edition</a> '
                     r"\(one HTML file, (\d+) MB\)", index)
    assert link, "index.html has no download link for the offline edition"
    assert int(link.group(1)) == round((site / build.OFFLINE_NAME).stat().st_size / 1e6)


def test_the_offline_edition_holds_the_same_python_and_wheels_and_loads_nothing(site):
    text = (site / build.OFFLINE_NAME).read_text()
    manifest = json.loads(re.search(r'<script id="offline-manifest" type="application/json">(.*?)</script>',
                                    text, re.S).group(1))
    config = json.loads((site / "pyscript.json").read_text())
    assert config["files"] == {f"./{build.PYTHON_ARCHIVE}": "./*"}  # the hosted pages get one zip, unpacked
    with zipfile.ZipFile(site / build.PYTHON_ARCHIVE) as archive:
        python = {name: archive.read(name).decode() for name in archive.namelist() if name.endswith(".py")}
        bytecode = {name for name in archive.namelist() if name.endswith(".pyc")}  # see test_pyodide_core
    ours = {name for name in bytecode if not name.startswith("pyscript/")}  # PyScript writes its own source
    assert len(ours) == len(python) and all("/__pycache__/" in name for name in bytecode)
    assert {name.rpartition("/")[2] for name in bytecode - ours} >= {"__init__.cpython-312.pyc", "magic_js.cpython-312.pyc"}
    scripts = set(re.findall(r'data-script="([^"]+)"', text)) - {""}  # the pages' own, fetched as its <script src>
    assert scripts == {"app/start.py"}
    assert python == {path: text for path, text in manifest["files"].items() if path.endswith(".py") and path not in scripts}
    assert all((site / script).read_text() == manifest["files"][script] for script in scripts)
    assert not any(name.endswith(("/train.py", "/evaluate.py")) for name in manifest["files"])  # CPython only
    lock = json.loads((site / "pyodide" / "pyodide-lock.json").read_text())
    assert {entry["file_name"] for entry in lock["packages"].values()} <= set(manifest["assets"])
    for name in manifest["assets"]:
        assert f'data-asset="{name}"' in text
    markup = re.sub(r"<script\b[^>]*>.*?</script>", "", text, flags=re.S)
    assert re.findall(r'\b(?:src|href)="(?!#|https?:|mailto:|data:)([^"]*)"', markup) == []
    assert "default-src 'none'" in re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', text).group(1)


# -- Chromium -----------------------------------------------------------------------

def test_chromium_runs_every_view_from_disk(offline, offline_url, tmp_path):
    page = offline.page
    page.goto(offline_url)
    offline.wait_ready("home")
    page.get_by_role("link", name="Forward diffusion").click()
    offline.wait_ready("forward")

    slider = page.get_by_label("Timestep")
    assert_same_image(canvas_gray(page, "frame"), images.make_image("gradient", 64))
    slider.focus()
    slider.press("End")
    offline.wait_for_readout("t = 1000 of 1000")
    assert_same_image(canvas_gray(page, "frame"), noisy_gradient(seed=0))
    expect(page).to_have_url(re.compile(r"[?&]t=1000(?!\d).*#forward$"))

    page.get_by_role("button", name="Copy embed code").click()  # a file:// address is no use to a course site
    expect(page.locator("#share-status")).to_contain_text("opens only on this computer")
    assert 'src="file://' in page.input_value("#share-text")

    page.get_by_role("link", name="Skip to the demo").press("Enter")  # in-page links keep the view
    expect(page.locator("main")).to_be_focused()
    assert page.url.endswith("#forward")

    slider.press("Home")
    pixels = np.zeros((40, 60, 4), dtype=np.uint8)
    pixels[:, :30], pixels[..., 3] = 250, 255  # left half light, right half black
    Image.fromarray(pixels).save(tmp_path / "mine.png")
    page.get_by_label("Upload a picture").set_input_files(tmp_path / "mine.png")
    expect(page.get_by_label("Image", exact=True)).to_have_value("upload")
    assert_same_image(canvas_gray(page, "frame"), images.from_pixels(pixels, 64))

    page.get_by_role("navigation").get_by_role("link", name="Reverse").click()
    offline.wait_ready("reverse")
    assert "t=1000" not in page.url  # the forward view's settings stay behind
    page.get_by_role("button", name="Play").click()
    offline.wait_for_readout("step 1000 of 1000")
    assert_same_image(canvas_gray(page, "frame"), images.make_image("gradient", 64))
    assert "identical to the target" in page.inner_text("#result")

    page.go_back()  # Back shows the view the address names (before, it kept this one, at its defaults)
    offline.wait_ready("forward")
    page.go_back()
    offline.wait_ready("home")
    assert "#" not in page.url


def test_settings_written_after_the_view_open_that_view_with_them(offline, offline_url):
    page = offline.page
    page.goto(f"{offline_url}#forward?t=300&seed=2")  # the way round a hosted link has them
    offline.wait_ready("forward")
    offline.wait_for_readout("t = 300 of 1000")
    assert_same_image(canvas_gray(page, "frame"), noisy_gradient(seed=2, t=300))
    expect(page).to_have_url(re.compile(r"\?t=300&seed=2#forward$"))


@pytest.mark.parametrize("address", ["?schedule=cosine&steps=500&t=300&seed=7#forward",
                                     "#forward?schedule=cosine&steps=500&t=300&seed=7"])  # the hosted way round
def test_the_header_link_carries_the_settings_while_python_starts(offline, offline_url, address):
    page = offline.page
    page.add_init_script("WebAssembly.instantiateStreaming = WebAssembly.instantiate = () => new Promise(() => {})")
    page.goto(f"{offline_url}{address}")
    expect(page.locator("#phase")).to_have_text("Starting Python…", timeout=READY_TIMEOUT_MS)
    page.get_by_role("navigation", name="Views").get_by_role("link", name="Reverse").click()
    expect(page).to_have_url(re.compile(r"\?schedule=cosine&steps=500&seed=7#reverse$"))


def test_a_truncated_download_says_so(offline, usb_stick, tmp_path):
    whole = (usb_stick / "diffusion-lab-offline (1).html").read_bytes()
    cut = tmp_path / "diffusion-lab-offline.html"
    cut.write_bytes(whole[: len(whole) * 2 // 3])
    offline.page.goto(f"{cut.as_uri()}#forward")
    error = offline.page.locator("#error")
    error.wait_for(timeout=READY_TIMEOUT_MS)
    assert "This file is incomplete." in error.inner_text()
    # What arrived of what it carries (its blocks of Python and data: 28 of its 31 MB; "of its 28 MB" read as
    # the whole file's size, QA30), about two thirds.
    arrived, carried = map(int, re.search(r"Only (\d+) MB of the (\d+) MB of Python and data it carries arrived",
                                          error.inner_text()).groups())
    assert 0.5 < arrived / carried < 0.7
    assert "Download the offline edition again" in error.inner_text()


def test_a_browser_without_decompression_streams_is_told_so(offline, offline_url):
    offline.page.add_init_script("delete window.DecompressionStream")
    offline.page.goto(f"{offline_url}#reverse")
    error = offline.page.locator("#error")
    error.wait_for(timeout=READY_TIMEOUT_MS)
    assert "This browser is too old for Diffusion Lab." in error.inner_text()


def test_python_that_never_starts_is_explained_after_the_deadline(offline, offline_url):
    page = offline.page
    page.clock.install()
    page.add_init_script("WebAssembly.instantiateStreaming = () => new Promise(() => {})")  # a hung start
    page.goto(f"{offline_url}#forward")
    expect(page.locator("#phase")).to_have_text("Starting Python…", timeout=READY_TIMEOUT_MS)
    assert page.locator("#error").is_hidden()
    page.clock.run_for(121_000)
    error = page.locator("#error")
    error.wait_for()
    assert "Python did not start." in error.inner_text()
    assert "close other tabs" in error.inner_text()
    assert page.evaluate("document.body.dataset.phase") == "failed"


# -- Firefox ESR ---------------------------------------------------------------------

def test_firefox_esr_runs_every_view_from_disk_with_its_default_file_policy(usb_stick):
    assert Path(FIREFOX).exists(), f"{FIREFOX} is missing: bash tests/run.sh installs Debian's firefox-esr"
    assert (build.ROOT / "node_modules" / "puppeteer-core").exists(), "node_modules is missing: run `npm ci`"
    run = subprocess.run(["node", str(FIREFOX_SCRIPT), str(usb_stick / "diffusion-lab-offline (1).html"),
                          str(usb_stick / "notes.txt")],
                         cwd=build.ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert "failure" not in report, report["failure"]
    assert report["browser"].startswith("firefox/")
    assert report["strictOriginPolicy"] is True
    assert report["siblingFetch"] == "blocked"  # so the page really ran under the strict file policy
    assert [url for url in report["requests"] if not url.startswith(LOCAL_SCHEMES)] == []
    assert report["errors"] == []

    views = report["views"]
    assert [name for name, _ in views["home"]["links"]] == ["Forward diffusion", "Reverse diffusion"]
    assert views["home"]["links"][1][1].endswith("%20(1).html#reverse")
    assert_same_image(gray(**views["forward"]["before"]), images.make_image("gradient", 64))
    assert views["forward"]["readout"].startswith("t = 1000 of 1000")
    assert_same_image(gray(**views["forward"]["after"]), noisy_gradient(seed=3))
    assert "step 1000 of 1000" in views["reverse"]["readout"]
    assert_same_image(gray(**views["reverse"]["frame"]), images.make_image("gradient", 64))
    assert "identical to the target" in views["reverse"]["result"]
