"""Fixtures for the browser tests: a fresh build served on 127.0.0.1 and Debian's Chromium.

Every page a test opens records its console errors, page errors and requests;
a test fails if any request leaves 127.0.0.1 or the console shows an error.
"""
from __future__ import annotations

import functools
import os
import sys
import threading
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import build  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
READY_TIMEOUT_MS = 90_000


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


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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
