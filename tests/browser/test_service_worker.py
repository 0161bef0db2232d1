"""The service worker (sw.js): a second visit comes from the browser's cache; a new build replaces it.

A copy of the built site is served, so the test can make a new build of it
(change a file, stamp it again with build.write_service_worker, as build.py
does) without touching the site the other tests use.
"""
from __future__ import annotations

import shutil

import build
from conftest import READY_TIMEOUT_MS, start_server

WAIT_FOR_CACHE = """async (name) => {
    for (let i = 0; i < 1200; i++) {
        const registration = await navigator.serviceWorker.getRegistration();
        const names = await caches.keys();
        if (registration && registration.active && !registration.installing && !registration.waiting
            && names.length === 1 && names[0] === name) return names;
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return await caches.keys();
}"""


def visit(context, url: str) -> tuple[object, dict[str, bool], list[str]]:
    """Open `url` until ready; return the page, {path: served by the service worker} and its errors."""
    page = context.new_page()
    served, errors = {}, []
    base = url.split("/forward.html")[0] + "/"
    page.on("response", lambda response: served.setdefault(response.url.removeprefix(base),
                                                           response.from_service_worker))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
    return page, served, errors


def test_second_visit_comes_from_the_service_worker_and_a_new_build_replaces_it(browser, site, tmp_path):
    copy = tmp_path / "dist"
    shutil.copytree(site, copy, ignore=shutil.ignore_patterns(build.OFFLINE_NAME))
    first_build = build.write_service_worker(copy)  # the same files: the same build
    assert f'"{first_build}"' in (site / "sw.js").read_text()
    server, url = start_server(copy)
    context = browser.new_context()
    try:
        # First visit: everything from the network; once ready, the page registers sw.js, which fills its cache.
        page, served, errors = visit(context, f"{url}/forward.html")
        assert not any(served.values())
        assert page.evaluate(WAIT_FOR_CACHE, f"diffusion-lab-{first_build}") == [f"diffusion-lab-{first_build}"]
        page.close()

        # Second visit: what the page loads comes from the cache (the page itself from the network, through it).
        page, served, errors = visit(context, f"{url}/forward.html?t=10")
        for path in ("pyodide/python_stdlib.zip", "pyodide/pyodide.asm.js", "python.zip", "js/boot.js",
                     "pyscript/core.js", "pyodide/matplotlib-3.8.4-cp312-cp312-pyodide_2024_0_wasm32.whl"):
            assert served[path] is True, path
        assert served["pyodide/pyodide.asm.wasm"] is False  # left to the HTTP cache, which keeps its compiled code
        assert page.input_value("#t") == "10"
        assert errors == []
        page.close()

        # A new build: its page gets the new files at once, never the old cache, and a new cache replaces it.
        boot = copy / "js" / "boot.js"
        boot.write_text(boot.read_text() + "\nwindow.diffusionLabNewBuild = true;\n")
        second_build = build.write_service_worker(copy)
        assert second_build != first_build
        page, served, errors = visit(context, f"{url}/forward.html")
        assert page.evaluate("window.diffusionLabNewBuild") is True
        assert not any(cached for path, cached in served.items() if not path.startswith("forward.html"))
        assert page.evaluate(WAIT_FOR_CACHE, f"diffusion-lab-{second_build}") == [f"diffusion-lab-{second_build}"]
        page.close()

        page, served, errors = visit(context, f"{url}/forward.html")
        assert page.evaluate("window.diffusionLabNewBuild") is True
        assert served["js/boot.js"] is True and served["pyodide/python_stdlib.zip"] is True
        assert errors == []
        page.close()
    finally:
        context.close()
        server.shutdown()

