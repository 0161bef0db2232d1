"""The service worker (sw.js): a second visit comes from the browser's cache; a new build replaces it.

A copy of the built site is served, so the test can make a new build of it
(change a file, stamp it again with build.write_service_worker, as build.py
does) without touching the site the other tests use.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import threading
import time
import zipfile

import numpy as np
from playwright.sync_api import expect

import build
from conftest import READY_TIMEOUT_MS

# What a visit may still ask the server for once the worker has the site: the page ("not modified"), the
# runtime's .wasm (the HTTP cache's to revalidate) and sw.js (the browser's own update check).
NETWORK = {"forward.html", "pyodide/pyodide.asm.wasm", "sw.js"}
# What reaches the server from a context set offline: the browser's own update check of sw.js, which Chromium
# makes outside the pages' network (and which, on a real offline machine, fails quietly).
BROWSER_OWN = {"sw.js"}

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


def cache_of(build_id: str, site: str = "/") -> str:
    """The name of the cache in which sw.js keeps a build of the site at that path of its origin."""
    return f"diffusion-lab-{build_id}@{site}"


def copied(site, tmp_path):
    """A copy of the built site, which a test may change and stamp as a new build (as build.py does); its build."""
    copy = tmp_path / "dist"
    shutil.copytree(site, copy, ignore=shutil.ignore_patterns(build.OFFLINE_NAME))
    return copy, build.write_service_worker(copy)


def retrained(copy) -> None:
    """The copy's trained network as a retraining leaves it: other weights, the same names and shapes."""
    weights = copy / "models" / "digits.npz"
    with np.load(weights) as kept:
        arrays = {name: kept[name] * 1.5 if kept[name].dtype.kind == "f" else kept[name] for name in kept.files}
    np.savez(weights, **arrays)


def logging_server(directory):
    """build.Handler on 127.0.0.1, keeping the path of every request it answers."""
    asked = []

    class Logging(build.Handler):
        def send_head(self):
            asked.append(self.path.split("?")[0].lstrip("/"))
            return super().send_head()

    server = build.Server(("127.0.0.1", 0), functools.partial(Logging, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", asked


def visit(context, url: str) -> tuple[object, dict[str, bool], list[str]]:
    """Open `url` until ready; return the page, {path: served by the service worker} and its errors."""
    page = context.new_page()
    served, errors = {}, []
    base = url.split("?")[0].rsplit("/", 1)[0] + "/"  # the site's address: keys are paths in it
    page.on("response", lambda response: served.setdefault(response.url.removeprefix(base),
                                                           response.from_service_worker))
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
    return page, served, errors


def test_second_visit_comes_from_the_service_worker_and_a_new_build_replaces_it(browser, site, tmp_path):
    copy, _ = copied(site, tmp_path)
    an_hour_ago = time.time() - 3600  # files an hour old look fresh to the HTTP cache for minutes, as on a host
    for path in copy.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    first_build = build.write_service_worker(copy)  # the same files: the same build
    assert f'"{first_build}"' in (site / "sw.js").read_text()
    server, url, asked = logging_server(copy)
    context = browser.new_context()
    try:
        # The home page tells a teacher whether this browser keeps the lab for a room without network.
        home = visit(context, f"{url}/index.html")[0]
        expect(home.get_by_role("status")).to_have_text(
            "Once a view has opened, this browser keeps the lab, and its views open here again without a network.")

        # First visit: everything from the network; once ready, the page registers sw.js, which fills its cache.
        page, served, errors = visit(context, f"{url}/forward.html")
        assert not any(served.values())
        assert page.evaluate(WAIT_FOR_CACHE, cache_of(first_build)) == [cache_of(first_build)]
        page.close()
        home.reload()
        expect(home.get_by_role("status")).to_have_text(
            "This browser has kept the lab: its views open here again without a network (unless it clears this "
            "site's data when it closes, as private windows and some school computers do).")
        home.close()

        # Second visit: what the page loads comes from the cache (the page itself from the network, through it).
        asked.clear()
        page, served, errors = visit(context, f"{url}/forward.html?t=10")
        assert set(asked) <= NETWORK
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
        asked.clear()
        page, served, errors = visit(context, f"{url}/forward.html")
        assert "js/boot.js" in asked and "python.zip" in asked  # revalidated with the server, not taken from a cache
        assert page.evaluate("window.diffusionLabNewBuild") is True
        assert errors == []
        assert page.evaluate(WAIT_FOR_CACHE, cache_of(second_build)) == [cache_of(second_build)]
        page.close()

        asked.clear()
        page, served, errors = visit(context, f"{url}/forward.html")
        assert set(asked) <= NETWORK
        assert page.evaluate("window.diffusionLabNewBuild") is True
        assert errors == []
        page.close()
    finally:
        context.close()
        server.shutdown()


def test_every_machine_builds_the_same_site(site):
    """The build id (and so every visitor's cache) changes only when a file does, not with the machine that built it.

    matplotlib finds its fonts in the order of a set of paths, which is new in every
    Python process; the font list build.py ships is written sorted.
    """
    fonts = json.loads((site / build.FONT_LIST).read_text())
    for key in ("ttflist", "afmlist"):
        paths = [entry["fname"] for entry in fonts[key]]
        assert len(paths) > 10, key
        assert paths == sorted(paths), key


def test_a_site_visited_once_starts_again_without_a_network(browser, site, tmp_path):
    copy, build_id = copied(site, tmp_path)
    server, url, asked = logging_server(copy)
    context = browser.new_context()
    try:
        page, served, errors = visit(context, f"{url}/forward.html")
        page.evaluate(WAIT_FOR_CACHE, cache_of(build_id))
        # A classroom without a network, days later: the HTTP cache's copy of the runtime has expired or gone.
        context.new_cdp_session(page).send("Network.clearBrowserCache")
        page.close()
        context.set_offline(True)
        asked.clear()
        page, served, errors = visit(context, f"{url}/forward.html?t=10")
        assert served["pyodide/pyodide.asm.wasm"] is True  # from the worker's cache, the page having come from it
        assert page.input_value("#t") == "10" and set(asked) <= BROWSER_OWN
        assert page.locator("#error").is_hidden()
        page.close()

        # Minutes later the browser has stopped the idle worker, and the student picks the trained network,
        # whose files the page fetches only now: the worker started again never saw this page arrive.
        page, served, errors = visit(context, f"{url}/reverse.html")
        cdp = context.new_cdp_session(page)
        cdp.send("ServiceWorker.enable")
        cdp.send("ServiceWorker.stopAllWorkers")
        page.get_by_label("Denoiser").select_option("trained")
        expect(page.locator("#result")).to_contain_text("digit", timeout=READY_TIMEOUT_MS)
        assert served["models/digits.npz"] is True and set(asked) <= BROWSER_OWN

        # Without the runtime (a worker of an older build did not keep it): the page says why it cannot start.
        page.evaluate("""async (name) => (await caches.open(name)).delete("pyodide/pyodide.asm.wasm")""",
                      cache_of(build_id))
        context.new_cdp_session(page).send("Network.clearBrowserCache")
        page.close()
        page = context.new_page()
        page.goto(f"{url}/forward.html")
        expect(page.locator("#error .error-title")).to_have_text("Python cannot start: this browser is offline.")
        expect(page.locator("#error .error-detail")).to_contain_text("use the offline edition")
        page.close()

        page = context.new_page()
        page.goto(f"{url}/")  # the site's own address, as bookmarked, is its home page
        assert page.title().startswith("Diffusion Lab")
        assert page.get_by_role("link", name="Forward").first.is_visible()
        kept = {}
        page.on("response", lambda response: kept.setdefault(response.url.removeprefix(f"{url}/"),
                                                            response.ok and response.from_service_worker))
        page.get_by_role("link", name="an example course page").click()  # its frames are views this browser kept
        expect(page.locator("h1")).to_have_text("Lecture 7: diffusion models")
        page.wait_for_load_state("load")
        assert kept["examples/course.html"] and kept["embed.js"]
        page.close()
    finally:
        context.close()
        server.shutdown()


def test_a_newer_build_whose_files_the_network_loses_is_never_mixed_with_the_kept_one(browser, site, tmp_path):
    """A new deployment, and the network goes right after its page arrived: before, the page ran with the kept
    build's boot.js, PyScript and Python and said nothing. Now it says to reload, which offline is the kept build."""
    copy, first_build = copied(site, tmp_path)
    pages_only = []  # once set, the server answers pages and drops every other connection, as a network going

    class Dropping(build.Handler):
        def send_head(self):
            if pages_only and not self.path.split("?")[0].endswith(".html"):
                self.close_connection = True
                return None  # no answer at all: the browser's fetch fails
            return super().send_head()

    server = build.Server(("127.0.0.1", 0), functools.partial(Dropping, directory=str(copy)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    context = browser.new_context()
    try:
        page, served, errors = visit(context, f"{url}/forward.html")
        page.evaluate(WAIT_FOR_CACHE, cache_of(first_build))
        page.close()

        boot = copy / "js" / "boot.js"
        boot.write_text(boot.read_text() + "\nwindow.diffusionLabNewBuild = true;\n")
        build.write_service_worker(copy)
        pages_only.append(True)
        page = context.new_page()
        served = {}
        page.on("response", lambda response: served.setdefault(response.url.removeprefix(f"{url}/"),
                                                               response.from_service_worker))
        page.goto(f"{url}/forward.html")
        expect(page.locator("#error .error-title")).to_have_text(
            "The lab was updated, and the connection was lost before its new files arrived.", timeout=30_000)
        expect(page.locator("#error .error-detail")).to_contain_text("Reload the page")
        assert not served.get("python.zip") and not served.get("pyscript/core.js")  # nothing of the kept build's
        assert page.get_attribute("body", "data-ready") is None

        context.set_offline(True)  # the reload it asks for: without a network, the kept build, whole
        page.reload()
        page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        assert page.evaluate("window.diffusionLabNewBuild") is None and page.locator("#error").is_hidden()
        page.close()
    finally:
        context.close()
        server.shutdown()


def test_too_little_storage_leaves_no_empty_cache_that_looks_kept(browser, site, tmp_path):
    """A school profile with a small quota: the worker cannot keep the 60 MB site. It used to leave an empty cache
    behind, named as if the site were kept; the pages work on from the network."""
    copy, _ = copied(site, tmp_path)
    server, url, asked = logging_server(copy)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{url}/favicon.svg")
        context.new_cdp_session(page).send("Storage.overrideQuotaForOrigin",
                                           {"origin": url, "quotaSize": 8_000_000})
        page, served, errors = visit(context, f"{url}/forward.html")
        settled = page.evaluate("""async () => {  // the page's own registration, or this one: the same install
            const registration = await navigator.serviceWorker.register("sw.js");
            const worker = registration.installing || registration.waiting || registration.active;
            return await new Promise((resolve) => {
                const settle = () => {
                    if (worker.state === "redundant") resolve("not kept");
                    else if (worker.state === "activated") resolve("kept");
                };
                worker.addEventListener("statechange", settle);
                settle();
            }); }""")
        assert settled == "not kept"
        assert page.evaluate("caches.keys()") == []
        home = visit(context, f"{url}/index.html")[0]  # where a teacher learns it before the network goes
        expect(home.get_by_role("status")).to_have_text(
            "This browser could not keep the lab for visits without a network (too little storage, or a private "
            "window): for a room without network, use the offline edition.")
        page.get_by_label("Timestep").press("End")  # and the page works on
        expect(page.locator("#readout")).to_contain_text("t = 1000 of 1000")
    finally:
        context.close()
        server.shutdown()


def test_a_tab_left_open_across_a_deployment_never_gets_the_new_builds_weights(browser, site, tmp_path):
    """A worker the browser stopped when idle forgets which pages are whose: a tab of the kept build then got the
    new build's trained network from the server (QA17: another result, silently). Now such a file is the tab's
    build's; once a new worker has replaced the kept build, the tab is told to reload."""
    copy, first_build = copied(site, tmp_path)
    server, url, asked = logging_server(copy)
    context = browser.new_context()
    try:
        reference = browser.new_context(service_workers="block")  # the kept build's result, from the server
        page = reference.new_page()
        page.goto(f"{url}/reverse.html?denoiser=trained")
        expect(page.locator("#result")).to_contain_text("RMS distance", timeout=READY_TIMEOUT_MS)
        expected = page.inner_text("#result")
        reference.close()

        page, served, errors = visit(context, f"{url}/reverse.html")
        page.evaluate(WAIT_FOR_CACHE, cache_of(first_build))
        page.reload()  # a page the worker saw arrive
        page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        other = visit(context, f"{url}/reverse.html")[0]  # a second tab of the kept build

        retrained(copy)
        assert build.write_service_worker(copy) != first_build
        cdp = context.new_cdp_session(page)
        cdp.send("ServiceWorker.enable")
        cdp.send("ServiceWorker.stopAllWorkers")  # as the browser does to an idle one

        page.get_by_label("Denoiser").select_option("trained")
        expect(page.locator("#result")).to_have_text(expected, timeout=60_000)  # the kept build's network

        visit(context, f"{url}/index.html")[0].close()  # the new build's worker takes over
        page.evaluate(WAIT_FOR_CACHE, cache_of(build.write_service_worker(copy)))
        other.get_by_label("Denoiser").select_option("trained")  # a tab that had not needed the network yet
        expect(other.locator("#readout")).to_have_text(
            "The trained network could not be loaded: the lab was updated while this page was open, and the file "
            "is of the new version: reload the page.", timeout=30_000)
        assert other.locator("#error").is_hidden()
    finally:
        context.close()
        server.shutdown()


def test_a_tab_without_a_service_worker_is_told_to_reload_when_the_weights_changed_under_it(browser, site, tmp_path):
    """Where no worker keeps the page's build (a first visit, workers blocked), a tab open across a deployment
    fetched the new build's trained network from the server and showed another result without a word (QA19)."""
    copy, _ = copied(site, tmp_path)
    server, url, _ = logging_server(copy)
    context = browser.new_context(service_workers="block")
    try:
        page = visit(context, f"{url}/reverse.html")[0]
        retrained(copy)
        page.get_by_label("Denoiser").select_option("trained")
        expect(page.locator("#readout")).to_have_text(
            "The trained network could not be loaded: the site sent another version of the file than this page's "
            "(the lab was probably updated while this page was open): reload the page.", timeout=30_000)
        assert page.locator("#error").is_hidden(), page.inner_text("#error")
        page.get_by_label("Denoiser").select_option("oracle")  # the page works on
        expect(page.locator("#result")).to_contain_text("identical to the target", timeout=60_000)
    finally:
        context.close()
        server.shutdown()


def test_two_copies_of_the_lab_on_one_origin_keep_their_own_caches(browser, site, tmp_path):
    """On GitHub Pages every project site of a user shares USER.github.io: a fork at /diffusion-lab/ and a
    course's copy at /course/. Each worker deleted every other Diffusion Lab cache, so the site visited first
    no longer opened offline (QA21). A cache named as builds were before keeps its own site's files, and goes."""
    origin = tmp_path / "origin"
    origin.mkdir()
    copy, lab_build = copied(site, tmp_path)
    copy.rename(origin / "diffusion-lab")
    course = origin / "course"
    shutil.copytree(site, course, ignore=shutil.ignore_patterns(build.OFFLINE_NAME))
    (course / "js" / "boot.js").write_text((course / "js" / "boot.js").read_text() + "\n// the course's build\n")
    course_build = build.write_service_worker(course)
    server, url, _ = logging_server(origin)
    context = browser.new_context()
    try:
        page = visit(context, f"{url}/diffusion-lab/forward.html")[0]
        page.evaluate(WAIT_FOR_CACHE, cache_of(lab_build, "/diffusion-lab/"))
        legacy = page.evaluate("""async (site) => {  // a cache as the site's earlier builds named theirs
            const cache = await caches.open("diffusion-lab-0123456789abcdef");
            await cache.put(site + "index.html", new Response("an earlier build's home page"));
            return (await caches.keys()).sort(); }""", f"{url}/course/")
        page.close()
        page = visit(context, f"{url}/course/forward.html")[0]
        for _ in range(100):
            names = page.evaluate("caches.keys()")
            if cache_of(course_build, "/course/") in names and len(names) == 2:
                break
            page.wait_for_timeout(100)
        assert sorted(names) == sorted([cache_of(lab_build, "/diffusion-lab/"), cache_of(course_build, "/course/")])
        assert len(legacy) == 2  # the earlier cache was there, and went with the course's new build
        page.close()

        context.set_offline(True)
        for path in ("diffusion-lab/reverse.html", "course/forward.html?t=10"):
            page = visit(context, f"{url}/{path}")[0]
            assert page.locator("#error").is_hidden()
            page.close()
    finally:
        context.close()
        server.shutdown()


def deployed(copy, python: str, *, archive: bool = True) -> None:
    """The copy as a new build leaves it: pages (and, with `archive`, python.zip) carry a new id of its Python."""
    for page in copy.glob("*.html"):
        text = re.sub(r'(<meta name="diffusion-lab-python" content=")[^"]*', rf"\g<1>{python}", page.read_text())
        page.write_text(re.sub(r'(<meta name="diffusion-lab-build" content=")[^"]*', rf"\g<1>{python}", text))
    if archive:
        zipped = copy / build.PYTHON_ARCHIVE
        with zipfile.ZipFile(zipped) as old:
            entries = [(info, old.read(info)) for info in old.infolist()]
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as new:
            for info, data in entries:
                if info.filename == build.THIS_BUILD:
                    data = json.dumps({**json.loads(data), "python": python}).encode()
                new.writestr(info, data)


def test_a_page_whose_python_the_http_cache_kept_from_the_last_build_fetches_it_anew(browser, site, tmp_path):
    """Without a service worker (site data blocked, a private window), the HTTP cache held the last build's
    python.zip for minutes after a deployment (GitHub Pages: 10), and a reload ran the new build's page with the
    last build's Python, without a word (QA21)."""
    copy, _ = copied(site, tmp_path)
    an_hour_ago = time.time() - 3600  # files an hour old look fresh to the HTTP cache for minutes, as on a host
    for path in copy.rglob("*"):
        os.utime(path, (an_hour_ago, an_hour_ago))
    server, url, asked = logging_server(copy)
    context = browser.new_context(service_workers="block")
    try:
        page = visit(context, f"{url}/forward.html")[0]
        deployed(copy, "0123456789abcdef")
        asked.clear()
        page.reload()  # the page anew, its files from the HTTP cache: python.zip of the last build
        page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        assert "python.zip" in asked  # fetched anew, then the page reloaded itself
        assert page.evaluate("fetch('python.zip', {cache: 'only-if-cached', mode: 'same-origin'})"
                             ".then((r) => r.ok)")
        assert page.locator("#error").is_hidden()
        page.get_by_label("Timestep").press("End")  # and it works
        expect(page.locator("#readout")).to_contain_text("t = 1000 of 1000")

        deployed(copy, "fedcba9876543210", archive=False)  # a server still sending the last Python for a while
        asked.clear()
        page.reload()
        expect(page.locator("#error")).to_contain_text(
            "This page and its Python files are of two versions of the lab: it was updated moments ago, and the "
            "site or this browser still sends files of the last version. Reload the page in a minute.",
            timeout=60_000)
        assert page.get_attribute("body", "data-phase") == "failed"  # tried once, not a reload without end
        assert asked.count("forward.html") == 2 and "python.zip" in asked  # the one try
    finally:
        context.close()
        server.shutdown()


def test_the_home_page_says_when_an_update_found_no_room_beside_the_kept_version(browser, site, tmp_path):
    """Room for one build, not two: the update's install fails, and the last version still opens offline. The
    home page said that nothing was kept, and sent the teacher to the offline edition (QA23)."""
    copy, first_build = copied(site, tmp_path)
    server, url, _ = logging_server(copy)
    context = browser.new_context()
    try:
        page = visit(context, f"{url}/forward.html")[0]
        page.evaluate(WAIT_FOR_CACHE, cache_of(first_build))
        used = page.evaluate("navigator.storage.estimate().then((estimate) => estimate.usage)")
        context.new_cdp_session(page).send("Storage.overrideQuotaForOrigin",
                                           {"origin": url, "quotaSize": int(used * 1.4)})
        boot = copy / "js" / "boot.js"
        boot.write_text(boot.read_text() + "\n// the next build\n")
        build.write_service_worker(copy)
        page.reload()
        page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        page.wait_for_function("localStorage.getItem('diffusion-lab:not-kept') !== null", timeout=60_000)
        home = visit(context, f"{url}/index.html")[0]
        expect(home.get_by_role("status")).to_have_text(
            "This browser keeps an earlier version of the lab for visits without a network, and could not keep "
            "this one (too little storage).", timeout=30_000)
        assert home.evaluate("caches.keys()") == [cache_of(first_build)]
    finally:
        context.close()
        server.shutdown()
