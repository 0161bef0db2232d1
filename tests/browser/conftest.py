"""Fixtures for the browser tests: a fresh build served on 127.0.0.1 and Debian's Chromium.

Every page a test opens records its console errors, page errors and requests;
a test fails if any request leaves 127.0.0.1 or the console shows an error.

A test whose page's renderer process crashed runs once more (pytest-rerunfailures); a
second crash fails it. Chromium's own stderr goes to a log file, and the end of the run
lists every crash with what that log, the kernel and the machine said about it.
"""
from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import build  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Chromium 156 renders its own omnibox popup as a web page ("WebUI Top Renderer", chrome://omnibox-popup.top-chrome)
# even headless, where no one can see it: 1 to 2 s of CPU for every page a test opens, on a 2-core machine,
# beside the page under test. These three features off, that renderer never starts (unknown names are ignored).
NO_OMNIBOX_POPUP = "--disable-features=WebUIOmniboxPopup,WebUIOmniboxFullPopup,WebUIOmniboxAimPopup"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", NO_OMNIBOX_POPUP]
READY_TIMEOUT_MS = 90_000
CRASH = re.compile(r"(Target|Page) crashed")
CRASH_CLUES = re.compile(r"crash|fatal|check failed|out of memory|oom|signal|segv|shared memory|/dev/shm|"
                         r"terminat|bad.?message|kill|gone", re.I)
SMALL_SHM = 4_080_218_931  # bytes: below this Debian's launcher moves shared memory to /tmp
crashed_tests: list[str] = []
chromium_logs: list[Path] = []


def shared_memory_args() -> list[str]:
    """Debian's launcher passes --disable-dev-shm-usage when /dev/shm is small, but its
    check breaks (a shell error, no flag) where /dev/shm is mounted twice, as on our machines."""
    try:
        small = shutil.disk_usage("/dev/shm").free < SMALL_SHM
    except OSError:
        small = True
    return ["--disable-dev-shm-usage"] if small else []


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "dist"
    mirror = os.environ.get("PYODIDE_MIRROR")
    build.build(out, Path(mirror) if mirror else None)
    return out


def start_server(directory: Path) -> tuple[build.Server, str]:
    handler = functools.partial(build.Handler, directory=str(directory))
    server = build.Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="session")
def base_url(site):
    server, url = start_server(site)
    yield url
    server.shutdown()


@contextlib.contextmanager
def stderr_to(log: Path):
    """Playwright's driver copies Chromium's stderr to its own under DEBUG=pw:browser, and
    its own stderr is whatever sys.stderr is when it starts."""
    saved = os.environ.get("DEBUG")
    os.environ["DEBUG"] = "pw:browser"
    try:
        with open(log, "w") as file, contextlib.redirect_stderr(file):
            yield
    finally:
        os.environ.pop("DEBUG") if saved is None else os.environ.update(DEBUG=saved)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    log = tmp_path_factory.mktemp("chromium") / "stderr.log"
    chromium_logs.append(log)
    with stderr_to(log):
        playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=CHROMIUM_ARGS + shared_memory_args())
        yield browser
        browser.close()
    finally:
        playwright.stop()


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(item.path).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.flaky(reruns=1, only_rerun=[CRASH.pattern]))


def pytest_runtest_logreport(report):
    if report.outcome in ("failed", "rerun") and CRASH.search(report.longreprtext):
        crashed_tests.append(f"{report.outcome}: {report.nodeid}")


def pytest_terminal_summary(terminalreporter):
    if not crashed_tests:
        return
    write = terminalreporter.write_line
    terminalreporter.section("Chromium's renderer crashed")
    for line in crashed_tests:
        write(line)
    for log in chromium_logs:
        write(f"clues in {log} (first time, count, line):")
        clues: dict[str, list] = {}
        for line in log.read_text(errors="replace").splitlines():
            if CRASH_CLUES.search(line):
                time, _, message = line.partition(" ")
                message = re.sub(r"\[[\d:/.]+:", "[", message)  # Chromium's own pid and clock
                clues.setdefault(message, [time, 0])[1] += 1
        for message, (time, count) in clues.items():
            write(f"  {time} {count}x {message[:400]}")
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    write(f"memory available: {meminfo['MemAvailable'].strip()}; /dev/shm free: "
          f"{shutil.disk_usage('/dev/shm').free >> 20} MiB; load: {os.getloadavg()}")
    try:
        kernel = subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()
    except OSError:
        kernel = []
    for line in kernel:
        if re.search(r"chrom|oom|killed process|segfault", line, re.I):
            write("kernel: " + line)


class Watched:
    """A page plus what it said and asked for."""

    def __init__(self, page):
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("request", lambda request: self.requests.append(request.url))

    def open(self, url: str, *, ready: bool = True):
        self.page.goto(url)
        if ready:
            self.page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        return self.page

    def foreign_requests(self) -> list[str]:
        return [url for url in self.requests
                if not url.startswith(("http://127.0.0.1:", "data:", "blob:"))]


@pytest.fixture(scope="session")
def shared_context(browser):
    """One profile for most tests, so its HTTP cache spares each test a cold download."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context
    context.close()


@pytest.fixture
def watched(shared_context):
    page = shared_context.new_page()
    watched = Watched(page)
    yield watched
    page.close()
    assert watched.foreign_requests() == [], "requests left 127.0.0.1"
    assert watched.errors == [], "the console showed errors"
