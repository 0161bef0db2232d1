"""How fast the pages are, side by side with the floor of Pyodide itself (a benchmark, not a test).

    PYODIDE_MIRROR=DIR python tests/benchmarks/pages.py [--runs 5] [--inputs 200]
        [--only load,scrub,reverse] [--pages release,pyscript,forward,reverse] [--network 20/40]

Builds the site into a temporary folder (build.build), adds the floor pages to it,
serves it on 127.0.0.1 (build.Handler) and drives Debian's Chromium
(/usr/bin/chromium, headless, through Playwright; never `playwright install`).

The floor page (bench-floor.html, written here) is what no page can beat: the
same dist/pyodide files, loadPyodide, loadPackage("numpy"), `import numpy`, one
64x64 array drawn to a canvas, nothing else. Every figure is taken in the same
run as the floor's, and the pages are compared with it as ratios, because this
machine is shared and its speed drifts. The PyScript floor (bench-pyscript.html)
does the same through PyScript, as the pages must: between the two floors is
PyScript's own cost, between it and a view is the view's. The release floor
(bench-release.html) is the floor page on Pyodide's files as released, source
and all, where the site's are compiled to bytecode by build.py: between it and
the floor is what that compiling saves.

- load (each run loads release, floor, pyscript, forward and reverse in an order of balanced_orders, each in a fresh
  browser profile on disk; cold is the first visit, warm the second; from 127.0.0.1 at once,
  where only CPU counts, or with --network over a network as slow as a classroom's):
  - runtime: navigation start to the Python runtime being up (the floor's
    loadPyodide done; PyScript's py:ready event, just before the page script);
  - first frame: navigation start to performance.mark("first-frame"), which the
    page code sets right after its first blit to the main canvas (the floor page
    likewise), and its ratio to the floor's of the same run;
  - CPU to first frame: CPU time of all the browser's processes from navigation
    to that mark (read from /proc): steadier than wall time when other jobs
    share the machine, and it shows work done in vain (say, compiling again
    what a cache should have kept);
  - ready: navigation start to performance.mark("ready"): every figure drawn;
  - sent, requests: what the server sent during the visit, headers included,
    counted in the server (so a service worker's own fetches count too).
- scrub: a Timestep slider `input` event dispatched at the start of a frame
  (inside requestAnimationFrame, where browsers dispatch real input) until that
  frame is painted (a task queued then runs after the frame's rendering);
  p50/p95/max over --inputs inputs at 64x64 and 256x256. "handler" is the part
  spent in the page's event handler (the canvas is updated when it returns).
- reverse run, core: the core's sample loop alone, timed inside Pyodide (in the
  floor page's runtime, with py/diffusion_lab from dist): T = 1000 DDPM with the
  oracle at 64x64, and DDIM 50 steps with the ideal denoiser of 32 images.
- reverse run, page: the reverse page from a new seed (a `change` event) until
  its chain is done and the result shown, everything the page does included.

Prints a table and writes the numbers to tests/benchmarks/results/pages-<time>.json.
Times in ms; min and median over --runs.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "browser"))

import build  # noqa: E402
from conftest import CHROMIUM, CHROMIUM_ARGS, shared_memory_args  # noqa: E402  (the browser tests' Chromium)

RESULTS = Path(__file__).resolve().parent / "results"
VIEWPORT = {"width": 1280, "height": 900}
READY_TIMEOUT_MS = 180_000
ARGS = CHROMIUM_ARGS + shared_memory_args()  # the browser tests' flags

FLOOR_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Floor: Pyodide + numpy</title><link rel="icon" href="favicon.svg">
<script type="module" src="bench-floor.mjs"></script></head>
<body><canvas id="frame" width="64" height="64"></canvas></body></html>
"""
# Every floor's one frame: numpy imported, a 64x64 array drawn on the canvas.
FLOOR_FRAME = """gray = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (64, 1))
rgba = np.empty((64, 64, 4), np.uint8)
rgba[..., :3] = gray[..., None]
rgba[..., 3] = 255
pixels = js.Uint8ClampedArray.new(rgba.size)
pixels.assign(rgba.reshape(-1))
js.document.getElementById("frame").getContext("2d").putImageData(js.ImageData.new(pixels, 64, 64), 0, 0)
"""
FLOOR_JS = """import { loadPyodide } from "./pyodide/pyodide.mjs";
const pyodide = await loadPyodide();
performance.mark("runtime");
await pyodide.loadPackage("numpy");
pyodide.runPython(`
import js
import numpy as np
""" + FLOOR_FRAME + """`);
performance.mark("first-frame");
performance.mark("ready");
window.floorPyodide = pyodide;
document.body.dataset.ready = "true";
"""

# The PyScript floor: the floor's work done the way the pages do it, through PyScript with the site's
# pyscript.json (which has numpy installed while the runtime starts). What it costs above the floor is
# PyScript's; what a page costs above it is the page's own.
PYSCRIPT_FLOOR_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Floor: PyScript + numpy</title><link rel="icon" href="favicon.svg">
<script type="module" src="pyscript/core.js"></script></head>
<body><canvas id="frame" width="64" height="64"></canvas>
<script type="py" src="bench-pyscript.py" config="pyscript.json"></script></body></html>
"""
PYSCRIPT_FLOOR_PY = """import js
import pyodide_js

await pyodide_js.loadPackage("numpy")  # installed already: as the pages ask for it
import numpy as np

""" + FLOOR_FRAME + """js.performance.mark("first-frame")
js.performance.mark("ready")
js.document.body.dataset.ready = "true"
"""

# Runs in the floor page: the diffusion_lab files from dist into Pyodide's file system.
INSTALL_CORE = """async (names) => {
    const py = window.floorPyodide;
    py.FS.mkdirTree("/home/pyodide/diffusion_lab");
    for (const name of names) {
        const text = await (await fetch("py/diffusion_lab/" + name)).text();
        py.FS.writeFile("/home/pyodide/diffusion_lab/" + name, text);
    }
}"""
CORE_RUNS = """
import time
import numpy as np
from diffusion_lab import denoisers, images, samplers, schedules

def _bench_ddpm():
    s = schedules.get_schedule("linear", 1000)
    x0 = images.make_image("gradient", 64)
    rng = np.random.default_rng(0)
    x_T = rng.standard_normal(x0.shape)
    denoiser = denoisers.Oracle(x0, s)
    start = time.perf_counter()
    for _ in samplers.sample(x_T, denoiser, s, rng, sampler="ddpm"):
        pass
    return time.perf_counter() - start

def _bench_ddim():
    s = schedules.get_schedule("linear", 1000)
    denoiser = denoisers.IdealDenoiser(images.training_set(64, 32), s)
    rng = np.random.default_rng(0)
    x_T = rng.standard_normal((64, 64))
    start = time.perf_counter()
    for _ in samplers.sample(x_T, denoiser, s, rng, sampler="ddim", steps=50):
        pass
    return time.perf_counter() - start
"""

MARKS = """() => Object.fromEntries(["runtime", "first-frame", "ready"].map(
    (name) => [name, (performance.getEntriesByName(name)[0] || {}).startTime ?? null]))"""

WAIT_FOR_SERVICE_WORKER = """async () => {
    if (!("serviceWorker" in navigator)) return false;
    for (let i = 0; i < 600; i++) {
        const registration = await navigator.serviceWorker.getRegistration();
        if (registration && registration.active && !registration.installing && !registration.waiting) return true;
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return false;
}"""

SCRUB = """async ({id, inputs}) => {
    const slider = document.getElementById(id);
    const canvas = document.getElementById("frame");
    const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
    const afterRendering = () => new Promise((resolve) => {
        const channel = new MessageChannel();
        channel.port1.onmessage = () => resolve(performance.now());
        channel.port2.postMessage(null);
    });
    const top = Number(slider.max);
    const total = [], handler = [];
    for (let i = 0; i < inputs; i++) {
        await frame();
        await new Promise((resolve) => requestAnimationFrame(() => {
            const start = performance.now();
            slider.value = String(1 + (i * 37) % top);
            slider.dispatchEvent(new Event("input", { bubbles: true }));
            handler.push(performance.now() - start);
            afterRendering().then((end) => { total.push(end - start); resolve(); });
        }));
    }
    return { total, handler, width: canvas.width };
}"""

CHAIN = """async (seed) => {
    const result = document.getElementById("result");
    const seedBox = document.getElementById("seed");
    const done = new Promise((resolve) => {
        const observer = new MutationObserver(() => {  // a new chain first clears the last one's result
            if (!result.textContent.startsWith("Result")) return;
            observer.disconnect();
            resolve(performance.now());
        });
        observer.observe(result, { childList: true, characterData: true, subtree: true });
    });
    const start = performance.now();
    seedBox.value = String(seed);
    seedBox.dispatchEvent(new Event("change", { bubbles: true }));
    return (await done) - start;
}"""


class CountingHandler(build.Handler):
    """build.Handler that counts the bytes and requests it sends."""

    lock = threading.Lock()
    sent = 0
    requests = 0

    def setup(self):
        super().setup()
        raw, handler = self.wfile, type(self)

        class Counting:
            def write(self, data):
                with handler.lock:
                    handler.sent += len(data)
                return raw.write(data)

            def __getattr__(self, name):
                return getattr(raw, name)

        self.wfile = Counting()

    def send_response(self, code, message=None):
        with type(self).lock:
            type(self).requests += 1
        super().send_response(code, message)

    @classmethod
    def take(cls) -> tuple[int, int]:
        with cls.lock:
            counts, cls.sent, cls.requests = (cls.sent, cls.requests), 0, 0
        return counts


RELEASE = "pyodide-release"  # the release floor's runtime folder


def release_runtime(site: Path, mirror: Path | None) -> None:
    """site/pyodide-release/: the runtime and the site's wheels as Pyodide releases them (source, no bytecode)."""
    target = site / RELEASE
    target.mkdir()
    for name in build.RUNTIME_FILES:
        (target / name).write_bytes((build.PYODIDE_NPM / name).read_bytes())
    official = json.loads((build.PYODIDE_NPM / "pyodide-lock.json").read_text())["packages"]
    lock = json.loads((site / "pyodide" / "pyodide-lock.json").read_text())
    for name, entry in lock["packages"].items():
        entry["sha256"] = official[name]["sha256"]
        (target / entry["file_name"]).write_bytes(build.fetch_wheel(entry["file_name"], entry["sha256"], mirror).read_bytes())
    (target / "pyodide-lock.json").write_text(json.dumps(lock))


def browser_cpu_s(profile: str) -> dict[int, float]:
    """CPU seconds used so far by each process of the browser running with `profile` (it and its children).

    Wall time on a shared machine swings with the other jobs; the CPU a page
    costs swings much less, so the table gives both (see cpu_since).
    """
    tick = os.sysconf("SC_CLK_TCK")
    parents, cpu, named = {}, {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if f"--user-data-dir={profile}" in (entry / "cmdline").read_bytes().decode(errors="replace"):
                named.add(int(entry.name))
        except OSError:  # the process ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry.name)], cpu[int(entry.name)] = int(fields[1]), (int(fields[11]) + int(fields[12])) / tick
    # The browser is the process with the profile whose parent has none; not the first one listed: process
    # ids wrap around, so a child may come before its parent.
    tree, changed = {pid for pid in named if parents.get(pid) not in named}, True
    while changed:
        grown = tree | {pid for pid, parent in parents.items() if parent in tree}
        changed, tree = grown != tree, grown
    return {pid: cpu[pid] for pid in tree if pid in cpu}


def cpu_since(profile: str, before: dict[int, float]) -> float:
    """CPU seconds the browser used since `before` (processes that ended meanwhile are not counted)."""
    return sum(max(0.0, used - before.get(pid, 0.0)) for pid, used in browser_cpu_s(profile).items())


def balanced_orders(n: int) -> list[list[int]]:
    """Orders of n pages in which each page comes first equally often and follows every other equally often.

    A Williams design: a visit is slowed by what the machine still does for the
    visit before it, so no page may always follow the same one (a rotation puts
    every page after the same neighbour). n orders when n is even, 2n when odd.
    """
    first, low, high = [0], 1, n - 1
    while len(first) < n:
        first.append(low)
        low += 1
        if len(first) < n:
            first.append(high)
            high -= 1
    orders = [[(page + shift) % n for page in first] for shift in range(n)]
    return orders + [order[::-1] for order in orders] if n % 2 else orders


def summary(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "n": len(values)}


def median_interval(values: list[float], confidence: float = 0.9, resamples: int = 4000) -> list[float]:
    """A bootstrap interval of the median: where the median of as many runs falls on this machine's noise.

    Every visit swings by up to 30% here, so a median of 7 ratios may land on
    either side of a 15% target by chance; the interval says whether it could.
    """
    draw = random.Random(0)  # the same runs give the same interval
    medians = sorted(statistics.median(draw.choices(values, k=len(values))) for _ in range(resamples))
    tail = round((1 - confidence) / 2 * resamples)
    return [medians[tail], medians[resamples - 1 - tail]]


# The targets of issue 6, judged on this run's numbers (see verdicts).
FIRST_FRAME_TARGET = 1.15  # a view's first frame within this many times the floor's, cold and warm
SCRUB_TARGETS_MS = {64: 16, 256: 33}  # p95 from a Timestep input to the painted frame
CHAIN_TARGET_MS = 500  # T = 1000 DDPM with the oracle at 64x64, in the page
WARM_TARGET_KB = 10  # a second visit sends "almost nothing": a few requests' headers at most


def judge(value: float, target: float, interval: list[float] | None = None) -> str:
    """'met' or 'missed'; with an interval, 'noise' when the machine's noise alone could decide it."""
    if interval is None:
        return "met" if value < target else "missed"
    low, high = interval
    return "met" if high <= target else "missed" if low > target else "noise"


def verdicts(results: dict) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for each target this run measured."""
    rows = []
    loads = results.get("loads", {})
    for name in ("forward", "reverse"):
        for visit in ("cold", "warm"):
            ratio = loads.get(name, {}).get(visit, {}).get("first_frame_ratio")
            if ratio:
                low, high = ratio["interval"]
                rows.append((f"{name}, first frame {visit}: within {FIRST_FRAME_TARGET}x the floor",
                             f"{ratio['median']:.2f}x (90% interval {low:.2f}-{high:.2f})",
                             judge(ratio["median"], FIRST_FRAME_TARGET, ratio["interval"])))
        warm = loads.get(name, {}).get("warm")
        if warm:
            sent = warm["bytes"]["median"] / 1e3
            rows.append((f"{name}, warm visit: sends under {WARM_TARGET_KB} kB", f"{sent:.1f} kB",
                         judge(sent, WARM_TARGET_KB)))
    for size, target in SCRUB_TARGETS_MS.items():
        scrub = results.get("scrub", {}).get(f"forward {size}")
        if scrub:
            p95 = scrub["total"]["p95"]
            rows.append((f"scrub {size}x{size}: p95 under {target} ms", f"{p95:.1f} ms", judge(p95, target)))
    chain = results.get("reverse", {}).get("page ddpm")
    if chain:
        rows.append((f"DDPM T=1000 in the page: under {CHAIN_TARGET_MS} ms", f"{chain['median']:.0f} ms median",
                     judge(chain["median"], CHAIN_TARGET_MS)))
    return rows


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    chromium = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "load_average": os.getloadavg(), "platform": platform.platform(),
            "python": platform.python_version(), "chromium": chromium, "pyodide": build.PYODIDE_VERSION}


class Bench:
    def __init__(self, playwright, url: str, site: Path, args) -> None:
        self.playwright, self.url, self.site, self.args = playwright, url, site, args
        self.browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        self.service_worker = (site / "sw.js").exists()

    def visit(self, context, profile: str, path: str) -> dict:
        """Open `path` in `context`, wait until ready, return its marks, CPU time and what the server sent."""
        CountingHandler.take()
        page = context.new_page()
        if self.args.network:
            self.throttle(context, page)
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        # PyScript about to run the page's script: the runtime is up (the floor marks "runtime" itself).
        page.add_init_script("addEventListener('py:ready', () => performance.mark('runtime'), {once: true})")
        cpu = browser_cpu_s(profile)
        page.goto(f"{self.url}/{path}", wait_until="commit")
        page.wait_for_function("performance.getEntriesByName('first-frame').length > 0", polling=20,
                               timeout=READY_TIMEOUT_MS)
        cpu_first_frame = cpu_since(profile, cpu)
        page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
        marks = page.evaluate(MARKS)
        if self.service_worker and not path.startswith("bench-"):
            page.evaluate(WAIT_FOR_SERVICE_WORKER)
        page.wait_for_timeout(300)  # stragglers (a service worker's cache fill) finish
        sent, requests = CountingHandler.take()
        page.close()
        if errors:
            raise RuntimeError(f"{path}: {errors}")
        return {"runtime": marks["runtime"], "first_frame": marks["first-frame"], "ready": marks["ready"],
                "cpu_first_frame": 1000 * cpu_first_frame, "bytes": sent, "requests": requests}

    def throttle(self, context, page) -> None:
        """Give the page the network of --network (Chromium's own throttling, as DevTools does)."""
        mbit, latency_ms = self.args.network
        session = context.new_cdp_session(page)
        session.send("Network.enable")
        session.send("Network.emulateNetworkConditions", {
            "offline": False, "latency": latency_ms,
            "downloadThroughput": mbit * 1e6 / 8, "uploadThroughput": mbit * 1e6 / 8})

    def loads(self) -> dict:
        pages = {"floor": "bench-floor.html", "release": "bench-release.html", "pyscript": "bench-pyscript.html",
                 "forward": "forward.html", "reverse": "reverse.html"}
        pages = {name: path for name, path in pages.items() if name == "floor" or name in self.args.pages}
        runs = {name: {"cold": [], "warm": []} for name in pages}
        orders = balanced_orders(len(pages))
        for run in range(self.args.runs):
            names = [list(pages)[i] for i in orders[run % len(orders)]]
            for name in names:
                # A fresh profile on disk, as a student's browser has (an incognito context
                # keeps its cache in memory and does not keep the 10 MB runtime at all).
                with tempfile.TemporaryDirectory(prefix="diffusion-lab-profile-") as profile:
                    context = self.playwright.chromium.launch_persistent_context(
                        profile, executable_path=CHROMIUM, args=ARGS, viewport=VIEWPORT)
                    try:
                        runs[name]["cold"].append(self.visit(context, profile, pages[name]))
                        runs[name]["warm"].append(self.visit(context, profile, pages[name]))
                    finally:
                        context.close()
            print(f"  load run {run + 1}/{self.args.runs}: " + ", ".join(
                f"{name} {runs[name]['cold'][-1]['first_frame']:.0f}/{runs[name]['warm'][-1]['first_frame']:.0f} ms"
                for name in pages), flush=True)
        result = {}
        for name in pages:
            result[name] = {}
            for visit in ("cold", "warm"):
                entries = runs[name][visit]
                result[name][visit] = {key: summary([entry[key] for entry in entries])
                                       for key in ("runtime", "first_frame", "cpu_first_frame", "ready", "bytes",
                                                   "requests")}
                result[name][visit]["runs"] = entries
                if name != "floor":
                    for key in ("first_frame", "cpu_first_frame"):
                        ratios = [entry[key] / floor[key] for entry, floor in zip(entries, runs["floor"][visit])]
                        result[name][visit][f"{key}_ratio"] = {**summary(ratios), "interval": median_interval(ratios)}
                if name not in ("floor", "release") and "release" in runs:
                    ratios = [entry["first_frame"] / release["first_frame"]
                              for entry, release in zip(entries, runs["release"][visit])]
                    result[name][visit]["first_frame_release_ratio"] = summary(ratios)
        return result

    def scrub(self) -> dict:
        result = {}
        context = self.browser.new_context(viewport=VIEWPORT)
        try:
            for size in (64, 256):
                page = context.new_page()
                page.goto(f"{self.url}/forward.html?size={size}")
                page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
                data = page.evaluate(SCRUB, {"id": "t", "inputs": self.args.inputs})
                assert data["width"] == size, data["width"]
                page.close()
                result[f"forward {size}"] = {
                    "total": {"p50": percentile(data["total"], 50), "p95": percentile(data["total"], 95),
                              "max": max(data["total"])},
                    "handler": {"p50": percentile(data["handler"], 50), "p95": percentile(data["handler"], 95),
                                "max": max(data["handler"])},
                    "inputs": len(data["total"])}
                print(f"  scrub {size}: p50 {result[f'forward {size}']['total']['p50']:.1f} ms, "
                      f"p95 {result[f'forward {size}']['total']['p95']:.1f} ms", flush=True)
        finally:
            context.close()
        return result

    def reverse(self) -> dict:
        result = {}
        context = self.browser.new_context(viewport=VIEWPORT)
        try:
            page = context.new_page()
            page.goto(f"{self.url}/bench-floor.html")
            page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
            page.evaluate(INSTALL_CORE, [path.name for path in (self.site / "py" / "diffusion_lab").glob("*.py")])
            page.evaluate("(code) => window.floorPyodide.runPython(code)", CORE_RUNS)
            for name in ("ddpm", "ddim"):
                times = [1000 * page.evaluate(f"() => window.floorPyodide.runPython('_bench_{name}()')")
                         for _ in range(self.args.runs)]
                result[f"core {name}"] = summary(times)
            page.close()
            for name, query in (("ddpm", ""), ("ddim", "?denoiser=ideal&sampler=ddim&ddim_steps=50")):
                page = context.new_page()
                page.goto(f"{self.url}/reverse.html{query}")
                page.wait_for_selector("body[data-ready='true']", timeout=READY_TIMEOUT_MS)
                page.wait_for_function("document.getElementById('result').textContent !== ''",
                                       timeout=READY_TIMEOUT_MS)
                times = [page.evaluate(CHAIN, seed) for seed in range(1, self.args.runs + 1)]
                result[f"page {name}"] = summary(times)
                page.close()
        finally:
            context.close()
        print("  reverse: " + ", ".join(f"{key} {value['median']:.0f} ms" for key, value in result.items()),
              flush=True)
        return result


def table(results: dict) -> str:
    lines = []
    if "loads" in results:
        loads = results["loads"]
        lines.append(f"{'page':<9}{'visit':<6}{'runtime ms':>10}{'first frame ms':>17}{'x floor':>12}{'x release':>10}"
                     f"{'CPU to first':>15}{'x floor':>12}{'ready ms':>16}{'kB sent':>10}{'requests':>9}")
        lines.append(f"{'':<15}{'median':>10}{'min / median':>17}{'min / med':>12}{'median':>10}{'frame ms, min':>15}"
                     f"{'min / med':>12}{'min / median':>16}{'median':>10}{'median':>9}")
        for name, visits in loads.items():
            for visit, values in visits.items():
                ff, ready, cpu = values["first_frame"], values["ready"], values["cpu_first_frame"]
                ratios = [values.get(f"{key}_ratio") for key in ("first_frame", "cpu_first_frame")]
                texts = [f"{r['min']:.2f} / {r['median']:.2f}" if r else "1" for r in ratios]
                release = values.get("first_frame_release_ratio")
                release = f"{release['median']:.2f}" if release else "1" if name == "release" else ""
                lines.append(f"{name:<9}{visit:<6}{values['runtime']['median']:>10.0f}"
                             f"{ff['min']:>10.0f} / {ff['median']:<5.0f}{texts[0]:>12}{release:>10}"
                             f"{cpu['min']:>15.0f}{texts[1]:>12}"
                             f"{ready['min']:>8.0f} / {ready['median']:<5.0f}{values['bytes']['median'] / 1e3:>10.1f}"
                             f"{values['requests']['median']:>9.0f}")
        lines.append("")
    if "scrub" in results:
        lines.append(f"{'scrub (input to painted)':<26}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}"
                     f"{'handler p50':>13}{'p95':>6}")
        for name, values in results["scrub"].items():
            total, handler = values["total"], values["handler"]
            lines.append(f"{name:<26}{total['p50']:>8.1f}{total['p95']:>8.1f}{total['max']:>8.1f}"
                         f"{handler['p50']:>13.1f}{handler['p95']:>6.1f}")
        lines.append("")
    if "reverse" in results:
        lines.append(f"{'reverse run at 64x64':<52}{'min ms':>8}{'median ms':>11}")
        labels = {"core ddpm": "core, DDPM T=1000, oracle (Pyodide, floor page)",
                  "core ddim": "core, DDIM 50 steps, ideal of 32 (Pyodide)",
                  "page ddpm": "page, DDPM T=1000, oracle (new seed to result)",
                  "page ddim": "page, DDIM 50 steps, ideal of 32"}
        for name, values in results["reverse"].items():
            lines.append(f"{labels[name]:<52}{values['min']:>8.0f}{values['median']:>11.0f}")
        lines.append("")
    rows = results.get("verdicts", [])
    if rows:
        lines.append(f"{'target':<52}{'measured':<36}verdict")
        lines += [f"{row['target']:<52}{row['measured']:<36}{row['verdict']}" for row in rows]
        if any(row["verdict"] == "noise" for row in rows):
            lines.append("(noise: the 90% interval of the median straddles the target; more --runs narrow it)")
    return "\n".join(lines)


def network(text: str) -> tuple[float, float]:
    """--network 20 or 20/40: megabits per second and milliseconds of latency."""
    mbit, _, latency = text.partition("/")
    try:
        values = float(mbit), float(latency or 40)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give megabits per second, optionally /latency in ms") from None
    if values[0] <= 0 or values[1] < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the speed must be above 0 and the latency not below 0")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (default 5)")
    parser.add_argument("--inputs", type=int, default=200, help="slider inputs per scrub measurement (default 200)")
    parser.add_argument("--only", default="load,scrub,reverse",
                        help="comma-separated parts among load (first frame, figures, bytes), scrub (the slider's "
                             "latency) and reverse (full runs in the page); default: all three")
    parser.add_argument("--pages", default="release,pyscript,forward,reverse",
                        help="pages whose loading is timed beside the floor (default: the other floors and both views)")
    parser.add_argument("--network", type=network, metavar="MBIT[/MS]",
                        help="load the pages over a network of MBIT megabits per second and MS milliseconds of "
                             "latency (default 40), as a classroom's; without it 127.0.0.1 sends at once")
    parser.add_argument("--pyodide-mirror", type=Path, default=os.environ.get("PYODIDE_MIRROR") or None,
                        metavar="DIR", help="folder with the Pyodide wheels (default: $PYODIDE_MIRROR, else the CDN)")
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))

    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine(),
               "runs": args.runs, "network": args.network and {"mbit": args.network[0], "latency_ms": args.network[1]}}
    with tempfile.TemporaryDirectory(prefix="diffusion-lab-bench-") as temp:
        site = Path(temp) / "dist"
        build.build(site, args.pyodide_mirror)
        (site / "bench-floor.html").write_text(FLOOR_HTML)
        (site / "bench-floor.mjs").write_text(FLOOR_JS)
        (site / "bench-pyscript.html").write_text(PYSCRIPT_FLOOR_HTML)
        (site / "bench-pyscript.py").write_text(PYSCRIPT_FLOOR_PY)
        release_runtime(site, args.pyodide_mirror)
        (site / "bench-release.html").write_text(FLOOR_HTML.replace("bench-floor.mjs", "bench-release.mjs"))
        (site / "bench-release.mjs").write_text(FLOOR_JS.replace("./pyodide/", f"./{RELEASE}/"))
        handler = functools.partial(CountingHandler, directory=str(site))
        server = build.Server(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            with sync_playwright() as playwright:
                bench = Bench(playwright, url, site, args)
                if "load" in parts:
                    results["loads"] = bench.loads()
                if "scrub" in parts:
                    results["scrub"] = bench.scrub()
                if "reverse" in parts:
                    results["reverse"] = bench.reverse()
                bench.browser.close()
        finally:
            server.shutdown()
    results["machine"]["load_average_after"] = os.getloadavg()
    results["verdicts"] = [{"target": target, "measured": measured, "verdict": verdict}
                           for target, measured, verdict in verdicts(results)]

    print()
    print(table(results))
    if args.network:
        print(f"\nloaded over {args.network[0]:g} Mbit/s with {args.network[1]:g} ms latency (Chromium's throttling)", end="")
    print(f"\nmachine: {results['machine']['cpu']}, {results['machine']['cores']} cores, load average "
          f"{results['machine']['load_average'][0]:.1f} before / {results['machine']['load_average_after'][0]:.1f} "
          f"after; {results['machine']['chromium']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / f"pages-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps(results, indent=1))
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
