"""What every view shares: the status line, errors, canvases, the settings form.

Page glue only: reads controls, calls diffusion_lab, draws. It uses `js` and
`pyodide.ffi`, which PyScript and a plain Pyodide loader both provide.
"""
from __future__ import annotations

import asyncio
import importlib
import json
import os
import time
import traceback

import js
import pyodide_js
from pyodide.ffi import create_proxy, to_js

from diffusion_lab import controls

REDUCED_MOTION_SCALE = 8  # prefers-reduced-motion: one frame of Play in this many, each this many times the steps
MAX_CATCH_UP = 8  # a frame of Play on a slow device takes the steps of at most this many frames it missed
# history.replaceState costs 2-7 ms and Chromium throttles more than 200 calls in 10 s, so the address
# follows the time sliders and Play this long after the last tick (and at least this often); every other
# change, Copy link and leaving the page write it at once.
URL_DELAY_S, URL_MAX_WAIT_S = 0.25, 1.0
KEPT_CODE_KEY = "diffusion-lab:code-too-long-for-links"  # sessionStorage: {controls.tab_key(code): code}
MAX_KEPT_CODE = 8  # the last codes too long for links run in this tab
PHASES = ("runtime", "numpy", "first frame", "matplotlib", "figures", "ready")  # #progress counts them
_proxies = []  # event handlers must outlive the call that made them


def element(id_: str):
    found = js.document.getElementById(id_)
    if found is None:
        raise LookupError(f"the page has no element #{id_}")
    return found


def set_phase(phase: str, text: str) -> None:
    """Show a named loading phase; the status line is the page's progress indicator."""
    js.document.body.dataset.phase = phase
    if element("phase").textContent != text:  # a live region: the same words again would be spoken again
        element("phase").textContent = text
    element("progress").value = PHASES.index(phase)
    if phase == "ready":
        element("status").hidden = True
        element("announce").textContent = "Ready."  # the controls work now; the picture's words follow


async def next_turn() -> None:
    """Let the browser paint and answer input before the next slow part of start-up.

    Each part is one task (0.1-0.4 s here, several times that on a slow phone);
    in one task they froze a slow phone's page for 4-7 s.
    """
    await asyncio.sleep(0)  # Pyodide's event loop resumes the task from a browser timer


async def import_plots():
    """``diffusion_lab.plots`` in turns: matplotlib's text, its axes, then the rest (0.1-0.2 s each here)."""
    for name in ("matplotlib.text", "matplotlib.axes", "diffusion_lab.plots"):
        await next_turn()
        module = importlib.import_module(name)
    return module


class Outdated(Exception):
    """The site was deployed anew while this page was open: a file it fetches now is of the new build."""


class Unreachable(Exception):
    """The site could not be reached (the network went): nothing is wrong with the site, and the message says
    what to do."""


def _unreachable(failure: str) -> bool:
    """Whether a failed fetch's message is the network's (Chromium's and Firefox's words), not the server's."""
    return not js.navigator.onLine or "Failed to fetch" in failure or "NetworkError" in failure


def show_error(title: str, error: BaseException | None = None) -> None:
    """A readable message in the page (not only the console), with the traceback folded in."""
    detail = "".join(traceback.format_exception(error)) if error is not None else ""
    js.diffusionLabShowError(title, detail)


def on(target, event: str, handler) -> None:
    """Attach `handler(event)`; a sync or async handler's errors are shown in the page."""

    def guarded(evt):
        try:
            result = handler(evt)
            if asyncio.iscoroutine(result):
                task = asyncio.ensure_future(result)
                task.add_done_callback(_report_task_error)
        except Exception as error:  # noqa: BLE001  (the page must keep working)
            show_error("That did not work.", error)

    proxy = create_proxy(guarded)
    _proxies.append(proxy)
    target.addEventListener(event, proxy)


def _report_task_error(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        show_error("That did not work.", task.exception())


FONT_LIST = "pyodide/matplotlib-fontlist.json"  # written by build.py (matplotlib_font_list)


async def load_package(name: str) -> None:
    """Load a package bundled with the site (never micropip, never another server).

    numpy is installed as the runtime starts (pyscript.json), so its call returns at once.
    """
    if getattr(pyodide_js.loadedPackages, name, None) is not None:
        return
    failures = []
    options = to_js({"messageCallback": _quiet, "errorCallback": failures.append},
                    dict_converter=js.Object.fromEntries)
    # The hosted site ships matplotlib's font list; fetch it while the wheels load.
    font_list = js.fetch(FONT_LIST) if name == "matplotlib" and js.location.protocol in ("http:", "https:") else None
    await pyodide_js.loadPackage(name, options)
    if failures and _unreachable(" ".join(map(str, failures))):
        raise Unreachable(f"The connection to this site was lost while the page was loading {name}. "
                          "Reconnect and reload the page; after one complete visit it also works offline.")
    if failures:
        raise RuntimeError(f"Could not load the Python package {name} from this site's pyodide/ folder: "
                           f"{' '.join(map(str, failures))} The site may be incomplete; reload, or rebuild it.")
    if name == "matplotlib":
        import logging

        # First import builds the font cache and says so on stderr; that is not an error.
        logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
        if font_list is not None:
            await _use_font_list(font_list)


async def _use_font_list(response) -> None:
    """Put the prebuilt font list where matplotlib looks, so its first import skips reading every font (~1 s)."""
    import json
    from pathlib import Path

    try:
        response = await response
        text = await response.text() if response.ok else "{}"
        version = json.loads(text).get("_version")
    except Exception:  # noqa: BLE001  (no list: matplotlib builds its own, as without this)
        return
    if version is not None:
        import matplotlib

        # Pyodide's matplotlib keeps the list next to font_manager.py; matplotlib itself in its cache folder.
        Path(matplotlib.__file__).with_name("fontlist.json").write_text(text)
        Path(matplotlib.get_cachedir(), f"fontlist-v{version}.json").write_text(text)


def _quiet(message) -> None:
    pass


THIS_BUILD = "this_build.json"  # build.py's THIS_BUILD, unpacked into the working directory


def this_build() -> dict:
    """The id of this Python and the sha256 of each data file of its build; {} without them (the offline
    edition holds one build whole)."""
    try:
        with open(THIS_BUILD) as file:
            return json.load(file)
    except OSError:
        return {}


async def site_file(path: str) -> bytes:
    """A data file shipped with the site (site/models/...), loaded only when a view needs it.

    The offline edition has written it into Pyodide's file system already;
    the hosted site fetches it from its own origin.
    """
    if os.path.exists(path):
        with open(path, "rb") as file:
            return file.read()
    stamp = js.document.querySelector('meta[name="diffusion-lab-build"]')
    headers = {"X-Diffusion-Lab-Build": stamp.content} if stamp is not None and stamp.content else {}
    try:
        response = await js.fetch(path, to_js({"headers": headers}, dict_converter=js.Object.fromEntries))
    except Exception as error:  # noqa: BLE001  (a JavaScript TypeError: no answer at all)
        if _unreachable(str(error)):
            raise Unreachable("the connection to this site was lost") from None
        raise
    if response.status == 409:  # site/sw.js: the server and this browser keep another build's file only
        raise Outdated("the lab was updated while this page was open, and the file is of the new version: "
                       "reload the page")
    if not response.ok:
        raise RuntimeError(f"Could not load {path} from this site (HTTP {response.status}); "
                           "the site may be incomplete.")
    data = (await response.arrayBuffer()).to_bytes()
    expected = this_build().get("data_files", {}).get(path)
    import hashlib  # here, not at the top, as in controls.digest

    if expected is not None and hashlib.sha256(data).hexdigest() != expected:  # no worker kept this page's build
        raise Outdated("the site sent another version of the file than this page's (the lab was probably "
                       "updated while this page was open): reload the page")
    return data


def of_another_build() -> bool:
    """Whether this page's Python is of another build than the page: where no service worker keeps the page's
    build, the HTTP cache may hold the last build's files for minutes after a deployment (see build.py)."""
    stamp = js.document.querySelector('meta[name="diffusion-lab-python"]')
    python = this_build().get("python")
    return stamp is not None and python is not None and stamp.content != python


async def _checked(main) -> None:
    if of_another_build():
        done = await js.diffusionLabRefresh()  # js/boot.js: fetches the page's files anew, then reloads it
        if done == "reloading":
            return
        if done == "unreachable":
            raise Unreachable("the connection to this site was lost while the page fetched its files anew, after "
                              "an update of the lab: reconnect and reload")
        raise Outdated("This page and its Python files are of two versions of the lab: it was updated moments "
                       "ago, and the site or this browser still sends files of the last version. Reload the page "
                       "in a minute.")
    await main()


def run(main) -> None:
    """Start a view's async main(); any error ends in a message in the page."""
    task = asyncio.ensure_future(_checked(main))

    def done(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            error = task.exception()
            js.document.body.dataset.phase = "failed"
            if isinstance(error, Unreachable):
                js.diffusionLabShowError("The page could not finish loading.", str(error))
            elif isinstance(error, Outdated):
                js.diffusionLabShowError("The page could not start.", str(error))
            else:
                show_error("The page could not start.", error)

    task.add_done_callback(done)


def import_core():
    """The core modules, imported once numpy is loaded."""
    import types

    import numpy as np

    from diffusion_lab import denoisers, forward, images, samplers, schedules

    return types.SimpleNamespace(np=np, images=images, schedules=schedules, forward=forward,
                                 samplers=samplers, denoisers=denoisers)


# -- figures sized to where they show ----------------------------------------------------------------------------

NARROWEST_FIGURE_PX = 120  # a figure's text fits down to this width
MAX_FIGURE_SCALE = 2.0  # figure pixels per CSS pixel at most on a dense screen: drawing costs their square
MAX_TEXT_SCALE = 2.0  # the figures' text grows with the reader's font size up to twice (plots allow a scale of 4),
ROOMY_FIGURE_PX = 280  # as long as the figure is made this wide at least, where its text has room (on a phone)
NARROW_FIGURE_PX = 420  # below this, the schedule's panels stack and the histogram leaves its legend room
STRIP_FRAMES = ((560, 8), (320, 5), (240, 4), (0, 3))  # (from this width in CSS pixels, pictures in the strip of
# evenly spaced steps): their labels ("t = 1000") keep 12 px apart, down to a 288-px course frame on a 320-px phone


def figure_fit(canvas_id: str, widest: int) -> tuple[int, float]:
    """The width a figure is made at (at most `widest`, its width on a wide screen) and the scale to draw it at,
    so that its text shows at the size it was made for, neither shrunk onto a phone nor stretched across a wide
    frame. Its text follows the reader's font size, as the page's does (Chromium's "Very large" is 24 px, 1.5
    times 16), as far as the figure keeps room for it: the figure is made that many times narrower than it
    shows, and drawn that many times larger."""
    canvas = element(canvas_id)
    text = text_scale()
    canvas.style.maxWidth = f"{round(widest * text)}px"
    box = int(canvas.parentElement.clientWidth)
    screen = min(MAX_FIGURE_SCALE, max(1.0, float(js.window.devicePixelRatio or 1)))
    if box <= 0:  # hidden by a hide= flag: drawn as on a wide screen
        return widest, screen
    shown = min(widest * text, box)
    text = max(1.0, min(text, shown / ROOMY_FIGURE_PX))
    # narrower than the least a figure's text fits in: drawn at that and shrunk
    return max(round(shown / text), NARROWEST_FIGURE_PX), screen * text


def text_scale() -> float:
    """The reader's font size against the 16 px the figures' text was made for, from 1 to MAX_TEXT_SCALE."""
    root = js.window.getComputedStyle(js.document.documentElement).fontSize  # "24px"
    try:
        return min(MAX_TEXT_SCALE, max(1.0, float(root.removesuffix("px")) / 16))
    except ValueError:
        return 1.0


STRIP_WIDEST = 800  # the strip's width on a wide screen


def strip_figure(plots):
    """The strip of evenly spaced steps, fitted to its canvas (#strip); its n_frames is how many it shows."""
    width, scale = figure_fit("strip", STRIP_WIDEST)
    frames = next(n for least, n in STRIP_FRAMES if width >= least)
    height = max(plots.MIN_FIGURE_PX, round(1.5 * width / frames))  # a frame 120 px wide: 3 pictures of 40
    return plots.StripFigure(frames, width_px=width, height_px=height, scale=scale)


RESIZE_DELAY_S = 0.3  # a phone turned or a window dragged: the figures are redrawn once it settles


def refit_on_resize(fits, refit) -> None:
    """Redraw figures at a new width: `refit()` once the window settles at a size where `fits()` (the
    figure_fit of each figure) differs from the last. A phone's toolbar showing, which changes only the
    height, redraws nothing."""
    last = [fits()]

    def settled() -> None:
        now = fits()
        if now != last[0]:
            last[0] = now
            refit()

    later = Later(RESIZE_DELAY_S, settled, failure="The figures could not be redrawn at the new size.")
    on(js.window, "resize", lambda event: later.schedule())


MAX_DECODE_SIDE = 2048  # big pictures are scaled down while decoding, never held at full size


class UnreadablePicture(Exception):
    """An uploaded file the page cannot use; the message says why, for the student."""


async def read_picture(file, core):
    """Decode an uploaded file with the browser's own decoder into uint8 RGBA pixels.

    The file's first bytes say what it is, whatever its name: a drawing (SVG)
    or a format browsers cannot decode (TIFF, HEIC) gets a message saying so
    (UnreadablePicture). The file is read in memory only.
    """
    name = f"“{file.name}”"
    if file.size == 0:
        raise UnreadablePicture(f"{name} is empty: choose a picture file.")
    head = (await file.slice(0, core.images.HEAD_BYTES).arrayBuffer()).to_bytes()
    kind = core.images.file_format(head)
    readable = ", ".join(core.images.READABLE_FORMATS[:-1]) + " or " + core.images.READABLE_FORMATS[-1]
    if kind == "SVG" or file.type == "image/svg+xml":  # drawn, not pixels; and never decoded here
        raise UnreadablePicture(f"{name} is a drawing (SVG), not a picture this page can read ({readable}): "
                                "export it as PNG first.")
    try:
        bitmap = await js.createImageBitmap(file)
    except Exception:  # noqa: BLE001  (a JS DOMException: corrupt or unsupported)
        if kind in core.images.READABLE_FORMATS:
            raise UnreadablePicture(f"{name} could not be decoded: the {kind} file may be damaged.") from None
        if kind:
            raise UnreadablePicture(f"{name} is a {kind} file, which browsers cannot show: "
                                    "save it as PNG or JPEG first.") from None
        raise UnreadablePicture(f"{name} is not a picture this page can read ({readable}).") from None
    width, height = bitmap.width, bitmap.height
    scale = min(1.0, MAX_DECODE_SIDE / max(width, height))
    if scale < 1:  # decoded again, scaled, so the page never holds the full size in Python
        bitmap.close()
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        options = js.Object.fromEntries(to_js({"resizeWidth": width, "resizeHeight": height,
                                                "resizeQuality": "high"}))
        bitmap = await js.createImageBitmap(file, options)
    canvas = js.document.createElement("canvas")
    canvas.width, canvas.height = width, height
    context = canvas.getContext("2d")
    context.drawImage(bitmap, 0, 0)
    bitmap.close()
    data = context.getImageData(0, 0, width, height).data
    return core.np.asarray(data.to_py(), dtype=core.np.uint8).reshape(height, width, 4)


def show_notice(text: str, about: str = "") -> None:
    """Tell the student something was refused or replaced (js/boot.js shows it; see diffusionLabNotice there).

    A notice `about` the same thing (a setting's name, "upload") replaces the last one about it.
    """
    js.diffusionLabNotice(text, about)


def clear_notices(about: str) -> None:
    """Remove the notices about `about` (it is fine now)."""
    js.diffusionLabClearNotices(about)


_link_caveats: dict[str, str] = {}  # why a copied link will not show what this tab shows, by cause


def link_caveat(cause: str, text: str = "") -> None:
    """Say (or, with no text, stop saying) what a copied link will not bring; js/boot.js adds it on copy."""
    if _link_caveats.get(cause, "") == text:
        return
    _link_caveats[cause] = text
    js.document.body.dataset.linkCaveats = " ".join(text for text in _link_caveats.values() if text)


def _lower_first(label: str) -> str:
    return label[:1].lower() + label[1:]  # "Code of betas(T)" in a sentence keeps its T


def strip_words(process: str, ts) -> str:
    """A strip of pictures in words, for its text alternative: which t it shows."""
    *ts, last = [str(t) for t in ts]
    return f"Pictures of the {process} at t = {', '.join(ts)} and {last}" if ts else \
        f"A picture of the {process} at t = {last}"


def blit(canvas, rgba) -> None:
    """Put an (H, W, 4) uint8 array onto a canvas at one canvas pixel per image pixel."""
    height, width = rgba.shape[:2]
    if canvas.width != width or canvas.height != height:
        canvas.width, canvas.height = width, height
    pixels = js.Uint8ClampedArray.new(rgba.size)
    pixels.assign(rgba.reshape(-1))
    canvas.getContext("2d").putImageData(js.ImageData.new(pixels, width, height), 0, 0)


def clear(canvas) -> None:
    """Blank a canvas (transparent: the page shows through) until there is a picture for it."""
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height)


class Later:
    """Call `callback` once, `delay_s` after the last `schedule()`: a debounce on the browser's timer.

    With `max_wait_s`, a stream of calls (Play) still fires at least that often.
    With `patient`, the delay is at least the time the callback last took: on a
    slow device a slow figure waits for a pause in the input instead of filling
    the gaps between inputs (a slider dragged by touch stalled 230 ms a move).
    (Pyodide 0.27's event loop reports cancelled asyncio tasks as errors, so
    nothing here cancels a task: timers are cleared, loops check a token.)
    """

    def __init__(self, delay_s: float, callback, max_wait_s: float | None = None,
                 failure: str = "A figure could not be drawn.", patient: bool = False) -> None:
        self.delay_ms, self.callback, self.handle, self.failure = int(delay_s * 1000), callback, None, failure
        self.max_wait_ms = None if max_wait_s is None else max_wait_s * 1000
        self.patient, self.took_ms = patient, 0.0
        self.first = 0.0  # when the pending call was first asked for
        self.proxy = create_proxy(self._fire)

    def schedule(self) -> None:
        now = js.performance.now()
        if self.handle is None:
            self.first = now
        delay = max(self.delay_ms, int(self.took_ms)) if self.patient else self.delay_ms
        if self.max_wait_ms is not None:
            delay = max(0, min(delay, int(self.first + self.max_wait_ms - now)))
        self.cancel()
        self.handle = js.setTimeout(self.proxy, delay)

    def cancel(self) -> None:
        if self.handle is not None:
            js.clearTimeout(self.handle)
            self.handle = None

    def _fire(self) -> None:
        self.handle = None
        started = js.performance.now()
        try:
            self.callback()
        except Exception as error:  # noqa: BLE001  (the page must keep working)
            show_error(self.failure, error)
        self.took_ms = js.performance.now() - started


class Announcer:
    """The polite live region that describes the canvas: the latest text, at most once per interval, and
    nothing while Play runs (a sentence a second queued half a minute of numbers already out of date): the
    picture where it stopped, once."""

    def __init__(self, interval_s: float = 1.0) -> None:
        self.text = ""
        self.later = Later(interval_s, self._flush)
        self.held = False

    def __call__(self, text: str) -> None:
        self.text = text
        if self.later.handle is None and not self.held:
            self.later.schedule()

    def hold(self, held: bool) -> None:
        was, self.held = self.held, held
        if held:
            self.later.cancel()
        elif was:
            self.later.cancel()
            self._flush()

    def _flush(self) -> None:
        element("announce").textContent = self.text


announce = Announcer()


class Player:
    """Play/Pause for a view: calls `advance(scale)` on a timer until it returns False or Pause is pressed; each
    call takes `scale` times the view's steps of a frame (more with reduced motion, or where frames come late).

    One run at a time: a new start or a stop invalidates the running loop's
    token, so two loops never advance together.
    """

    def __init__(self, button_id: str, advance, *, frames_per_s: float, on_stop=None) -> None:
        self.button, self.advance, self.interval_s = element(button_id), advance, 1 / frames_per_s
        self.on_stop = on_stop  # called once Play stops (the address takes the step it stopped at)
        self.token = None

    @property
    def playing(self) -> bool:
        return self.token is not None

    def toggle(self) -> None:
        if self.playing:
            self.stop()
        else:
            self.start()

    def start(self) -> None:
        token = self.token = object()
        self._show(True)
        task = asyncio.ensure_future(self._loop(token))
        task.add_done_callback(_report_task_error)

    def stop(self) -> None:
        was_playing, self.token = self.playing, None
        self._show(False)
        if was_playing and self.on_stop is not None:
            self.on_stop()

    async def _loop(self, token) -> None:
        # prefers-reduced-motion: an eighth of the frames, each as many steps as eight, so the picture changes
        # a few times a second and Play takes as long as without.
        scale = REDUCED_MOTION_SCALE if js.matchMedia("(prefers-reduced-motion: reduce)").matches else 1
        frame_s = self.interval_s * scale
        last = time.perf_counter()
        while self.token is token:
            # A slow device (or a busy one) spends longer than a frame on each: take the steps of the frames it
            # missed as well, so a chain plays in about the same time on an old phone, in fewer pictures.
            now = time.perf_counter()
            missed = min(MAX_CATCH_UP, max(1, round((now - last) / frame_s)))
            last = now
            if not self.advance(scale * missed):
                if self.token is token:
                    self.stop()
                return
            await asyncio.sleep(frame_s)

    def _show(self, playing: bool) -> None:
        self.button.textContent = "Pause" if playing else "Play"  # its name says what it does: no aria-pressed
        announce.hold(playing)


# -- what this browser tab keeps across reloads (sessionStorage) -----------------------------------------------

def tab_value(key: str, empty):
    """The JSON value this tab keeps under `key`, or `empty` if none of its type (or storage is off)."""
    try:
        value = json.loads(js.sessionStorage.getItem(key) or "null")
    except Exception:  # noqa: BLE001  (storage off or not ours: as if nothing were kept)
        return empty
    return value if isinstance(value, type(empty)) else empty


def tab_keeps_values() -> bool:
    """Whether this tab can keep values across reloads (a browser that blocks the site's data refuses)."""
    try:
        js.sessionStorage.setItem("diffusion-lab:probe", "1")
        js.sessionStorage.removeItem("diffusion-lab:probe")
    except Exception:  # noqa: BLE001
        return False
    return True


def keep_tab_value(key: str, value) -> None:
    """Keep a JSON value in this tab; if storage is full or off, it lasts until the tab reloads."""
    try:
        js.sessionStorage.setItem(key, json.dumps(value))
    except Exception:  # noqa: BLE001
        pass


def keep_in_tab(source: str) -> None:
    """Keep code too long for a link in this tab, so a reload or Back brings it back from its key."""
    key = controls.tab_key(source)
    kept = {k: v for k, v in tab_value(KEPT_CODE_KEY, {}).items() if k != key}
    kept[key] = source
    keep_tab_value(KEPT_CODE_KEY, dict(list(kept.items())[-MAX_KEPT_CODE:]))


def kept_in_tab(key: str) -> str | None:
    """The code this tab kept under `key` (see controls.tab_key), or None."""
    source = tab_value(KEPT_CODE_KEY, {}).get(key)
    return source if isinstance(source, str) else None


class Settings:
    """The form of one view, backed by the controls table and mirrored in the URL.

    A "code" control (the student's schedule function) has no field in the form:
    the code panel (app/learn.py) owns its editor and sets it with `set` on Run.
    """

    def __init__(self, view: str, on_change) -> None:
        self.view = view
        self.controls = {control.name: control for control in controls.controls_for(view)}
        self.wanted = {}  # the values chosen, which one lowered to fit another goes back to
        self.state, notices = controls.parse_query(js.location.search, view, kept_code=kept_in_tab,
                                                   wanted=self.wanted)
        self.local = {}  # choices only this tab has (an uploaded picture), kept out of the URL
        self.restoring = False  # True while the view takes the settings of another history entry
        self.written = js.location.search  # the address's settings as last read or written
        self.written_at = 0.0  # when the page last wrote them (time.perf_counter)
        self.notify(notices)
        self._on_change = on_change
        self.url_later = Later(URL_DELAY_S, self.sync_url, URL_MAX_WAIT_S, "The address could not be updated.")
        for name in self.controls:
            self.write(name)
            if self.controls[name].kind != "code":
                on(element(name), "input" if self.controls[name].widget == "range" else "change",
                   lambda event, name=name: self._changed(name))
        self.key_repeats = False  # whether the last key on a time slider is held down, repeating
        for name in controls.TIME_NAMES & set(self.controls):  # let go (or a key): the address now, before Back
            on(element(name), "keydown", lambda event: setattr(self, "key_repeats", bool(event.repeat)))
            on(element(name), "change", lambda event: self.settle_url())
            on(element(name), "keyup", lambda event: self.flush_url())
        on(js.window, "popstate", lambda event: self.reload_from_url())  # also on following a #link
        on(js.window, "pagehide", lambda event: self.flush_url())
        on(js.window, "diffusion-lab:flush-url", lambda event: self.flush_url())  # js/boot.js, before Copy link
        if notices:
            self.sync_url()  # the address shows the values in use, not the ones replaced
        else:
            self.describe_links()  # code kept in this tab, after a reload: a copied link leaves its key out

    def __getitem__(self, name: str):
        return self.state[name]

    def locked(self, name: str) -> bool:
        """Whether the link that opened the page fixes this setting (its lock=, which js/boot.js applies)."""
        return element(name).getAttribute("data-locked") == "true"

    def set(self, name: str, value) -> None:
        """Change a setting from code (Play, Step, Reset, the code panel's Run) and keep the form and URL in step.
        The page's own value is one it can use: a notice of the link's about this setting no longer holds."""
        self.state[name] = self.wanted[name] = value
        self.write(name)
        clear_notices(name)
        self.sync_url_for({name})

    def write(self, name: str) -> None:
        control, value = self.controls[name], self.state[name]
        if control.kind == "code":
            return  # the code panel shows it
        widget = element(name)
        if control.widget == "range":
            widget.max = self.limit(name)  # first: a browser clamps a slider's value to its current max
        widget.value = controls._show(value)
        if control.widget == "range":
            element(f"{name}-value").textContent = widget.value

    def limit(self, name: str) -> int:
        """The upper end of a slider, which depends on other settings."""
        if name == "t":
            return self.state["steps"]
        if name == "step":
            return self.state["ddim_steps"] if self.state["sampler"] == "ddim" else self.state["steps"]
        return int(self.controls[name].high)

    def _changed(self, name: str):
        control = self.controls[name]
        raw = element(name).value
        if self.local.get(name) == raw:
            self.state[name] = raw
            self.sync_url()  # the link goes back to the default: the picture stays in this tab
            return self._on_change({name})
        try:
            value = controls.coerce(control, raw)
        except ValueError:  # a number box gives "" for text it cannot read ("--1", "1e"): say what it held
            said = "that is not a number" if raw == "" and element(name).validity.badInput else \
                "no number given" if not raw.strip() else f"“{controls._short(raw)}” is not valid"
            show_notice(f"{control.label}: {said}, kept {controls._show(self.state[name])}", name)
            self.write(name)
            return None
        if controls.is_number(control) and controls.clamp(control, value) != value:
            value = controls.clamp(control, value)
            show_notice(f"{control.label}: {controls._short(raw)} is out of range, using {controls._show(value)}",
                        name)
        else:
            clear_notices(name)
        self.state[name] = self.wanted[name] = value
        adjusted = controls.constrain(self.state, self.wanted)
        for other in self.controls:
            if not controls.in_use(other, self.state):
                clear_notices(other)  # its field is hidden: no notice about it
            elif other in adjusted and other not in controls.TIME_NAMES:  # a slider's new range shows itself
                if self.state[other] == self.wanted.get(other):
                    clear_notices(other)  # back to what the student chose
                else:
                    show_notice(controls.adjusted_notice(other, self.state), other)
        changed = {name, *adjusted}
        for other in changed | controls.TIME_NAMES & set(self.controls):
            self.write(other)
        try:
            return self._on_change(changed)
        finally:  # after the view, which may move a time slider (a new chain starts at x_T): one address
            self.sync_url_for(changed)

    def reload_from_url(self):
        """Back/Forward to another entry of this page: show its settings, as a fresh load of its address would.

        Only what differs changes: an entry of the same settings (a #link such as "Skip to the demo" makes one)
        changes nothing, one of another step only moves the reverse view's slider. A choice only this tab has
        (an uploaded picture) shows where the entry's address has the default, as every address of it does.
        """
        if self.url_later.handle is not None and js.location.search == self.written:
            self.sync_url()  # this entry's address is the last written, older than what the page shows: a #link
            return None  # made it a moment after a slider moved (or Back went to an entry of the same address)
        self.url_later.cancel()  # a write still due was the entry's just left
        self.written = js.location.search
        wanted = {}
        state, notices = controls.parse_query(js.location.search, self.view, kept_code=kept_in_tab, wanted=wanted)
        state.update({name: value for name, value in self.local.items()
                      if state[name] == self.controls[name].default})
        changed = {name for name in self.controls if state[name] != self.state[name]}
        self.state, self.wanted = state, wanted
        self.notify(notices)
        if notices:
            self.sync_url()
        else:
            self.describe_links()
        for name, control in self.controls.items():  # with nothing changed, only a box holding what it did not
            if changed or (control.kind != "code" and element(name).value != controls._show(self.state[name])):
                self.write(name)  # take (the view says "t = 700" beside the slider its own way: kept)
        if not changed:
            return None
        self.restoring = True
        try:
            return self._on_change(changed)
        finally:
            self.restoring = False

    def sync_url_for(self, changed: set) -> None:
        """Write the address now; a time slider's moves that follow one another (a drag, Play, a held key) at
        most every URL_DELAY_S, and their last once they pause. A single move (Step, Reset) is in the address at
        once: a reload just after it came back a step, or a second of Play, earlier."""
        if changed <= controls.TIME_NAMES and (self.url_later.handle is not None or
                                              time.perf_counter() - self.written_at < URL_DELAY_S):
            self.url_later.schedule()
        else:
            self.sync_url()

    def settle_url(self) -> None:
        """A time slider let go, or moved by a key: the address now, but for a key held down, whose repeats (30 a
        second, each with its own "change") are written as a drag's moves are, and its last as it goes up:
        written at each, Chromium refused the writes after 13 s ("Throttling navigation") and the address stayed
        behind the page."""
        if not self.key_repeats:
            self.flush_url()

    def flush_url(self) -> None:
        if self.url_later.handle is not None:
            self.sync_url()

    def sync_url(self) -> None:
        """Replace (not push) the history entry, so slider ticks don't flood Back."""
        self.url_later.cancel()
        query = controls.to_query(self.shared(), self.view, keep_flags_from=js.location.search)
        url = js.location.pathname + (f"?{query}" if query else "") + js.location.hash
        js.history.replaceState(js.history.state, "", url)
        self.written = js.location.search  # as the browser writes it
        self.written_at = time.perf_counter()
        self.describe_links()

    def describe_links(self) -> None:
        """Keep what the page's links carry up to date: the header's links to the other views, and what
        js/boot.js says when a link is copied: that the link brings the default in place of a choice only this
        tab has, and leaves out code too long for a link, whose key finds it only in this tab."""
        here_only, shared = self.here_only(), self.shared()
        self.link_views(shared)
        labels = ", ".join(_lower_first(self.controls[name].label) for name in here_only)
        link_caveat("here only", labels and f"Your own choice of {labels} stays in this browser: the link opens "
                                           f"with the default instead.")
        in_tab = [name for name, value in shared.items() if not controls.fits_in_url(self.controls[name], value)]
        js.document.body.dataset.tabOnly = ",".join(in_tab)
        link_caveat("in tab", " ".join(f"Your {_lower_first(self.controls[name].label)} is too long for a link: "
                                       f"it stays in this tab, and the link opens with the original."
                                       for name in in_tab))

    def here_only(self) -> list[str]:
        """The settings whose value only this tab has (an uploaded picture)."""
        return [name for name, value in self.state.items() if self.local.get(name) == value]

    def shared(self) -> dict:
        """The settings as a link gives them: the default in place of what only this tab has."""
        return {**self.state, **{name: self.controls[name].default for name in self.here_only()}}

    def link_views(self, shared: dict) -> None:
        """The header's links to the other views carry the settings they share (see controls.carried_query)."""
        for link in js.document.querySelectorAll(".site-header a[data-view]"):
            if link.dataset.view != self.view:
                url = js.URL.new(link.href)  # reverse.html, or the offline edition's file.html#reverse
                url.search = controls.carried_query(shared, self.view, link.dataset.view)
                link.href = url.href

    def notify(self, notices: list[controls.Notice]) -> None:
        """Show the link's notices; each about a setting goes once the student sets that setting right."""
        lines = []  # [about, text]: one per setting, since a second notice about it would replace the first
        for notice in notices:
            same = next((line for line in lines if notice.about and line[0] == notice.about), None)
            if same:
                same[1] += f"; {notice}"
            else:
                lines.append([notice.about, str(notice)])
        for about, text in lines:
            show_notice(text, about)

    def use_local_choice(self, name: str, value: str, text: str) -> None:
        """Select a choice only this tab has (an uploaded picture); links keep the default."""
        widget = element(name)
        if not any(option.value == value for option in widget.options):
            option = js.document.createElement("option")
            option.value, option.textContent = value, text
            widget.appendChild(option)
        self.local[name] = value
        self.state[name] = value
        widget.value = value
        self.sync_url()

    def enable(self) -> None:
        for fieldset in js.document.querySelectorAll("fieldset[data-group]"):
            fieldset.disabled = False
