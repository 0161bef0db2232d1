"""Read it and change it: the live equation, the code that drew the frame, the student's code, downloads.

The panel under each view. A view calls it at three points: ``schedule()``
when it rebuilds (the Schedule setting's schedule, or the student's betas(T);
the reverse view also asks ``update()`` for the student's DDPM step),
``show()`` when it draws, and ``changed`` comes back to the view after Run or
Reset. Each hook has an Editor and a setting of its own. The numbers come
from the core (forward.coefficients, samplers.ddpm_coefficients and
ddim_coefficients), the code from the very .py
files this page runs (inspect reads them from Pyodide's file system), the
student's code is run and checked by diffusion_lab.hooks, the files are made
by diffusion_lab.export. Page glue only: no arithmetic on images here.

Code in a shared link is put in the editor but runs only when the student
presses Run (exec is not a sandbox, and a link can come from anyone); code the
student ran in this tab runs again by itself after a reload, unless it ran too
long (see ``running``): a reload must not freeze the tab again.
"""
from __future__ import annotations

import asyncio
import builtins
import contextlib
import html
import inspect
import io
import json
import keyword
import math
import tokenize

import js
from pyodide.ffi import create_once_callable, to_js

from app import page
from app.page import element
from diffusion_lab import controls  # stdlib only: numpy is not loaded yet when this is imported

TRUSTED_KEY = "diffusion-lab:code-you-ran"  # sessionStorage: hashes of code the student ran in this tab
HELD_KEY = "diffusion-lab:code-that-ran-too-long"  # sessionStorage: {hash: why} of code that waits for Run again
RUNNING_KEY = "diffusion-lab:code-running"  # sessionStorage: hashes of the student's code running now
MAX_TRUSTED = 20
MAX_PRINTED = 4000  # characters of what the student's code prints on Run that the page shows
NEAR_ONE = 5e-7  # closer to 1 than this, six decimals show 1.000000: the equations write 1 ± the difference
ARRAY_BYTES = 8_000_000  # a .npz holds every frame of a chain up to this many bytes of pixels
# Redrawing the MathML costs the browser about 10 ms of layout, so a scrub paints only the canvas: the
# equations and code follow this long after the last draw, and at least this often while Play runs.
SHOW_DELAY_S, SHOW_MAX_WAIT_S = 0.05, 0.5


# -- MathML, built as text from numbers and fixed symbols (never from the student's text) ---------------------

def fmt(value: float, significant: int = 3) -> str:
    """At least three decimals and `significant` digits, more when that would show 0 or 1 for a number that is
    not; tiny numbers in e-notation."""
    if not math.isfinite(value) or (value == int(value) and abs(value) < 1e6):
        text = str(int(value)) if math.isfinite(value) else str(value)
    elif abs(value) < 0.01 or abs(value) >= 100:
        # From 100 its zeros stay: 9999.5 is 1.000 × 10⁴ beside 9999, not 1 × 10⁴
        text = f"{value:.{significant}g}" if abs(value) < 0.01 else f"{value:#.{max(4, significant)}g}".rstrip(".")
        if abs(value) < 0.01 and abs(float(text)) >= 10 ** (math.floor(math.log10(abs(value))) + 1):
            text = f"{value:#.{significant}g}"  # rounded up to a power of ten: 0.0099999 is 0.0100, not 0.01
    else:  # 0.0786 and 0.0794, not 0.079 twice
        for decimals in range(max(3, significant - 1 - math.floor(math.log10(abs(value)))), 7):
            text = f"{value:.{decimals}f}"
            if abs(float(text)) not in (0.0, 1.0):
                break
    return text.replace("-", "−")  # a minus sign, not a hyphen


def mn(value, gap: float | None = None, near: float = NEAR_ONE, significant: int = 3) -> str:
    """A number; `gap`, if given, is 1 - value as the schedule keeps it (exact where 1 - value, rounded, is not).
    Closer to 1 than `near`, it is written 1 − gap."""
    kind, first, second = written(value, gap, near, significant)
    if kind == "near one":  # its digits would show 1, or hide how far from 1 it is: say that
        return f"<mrow><mo>(</mo><mn>1</mn>{mo(first)}{mn(second, significant=significant)}<mo>)</mo></mrow>"
    if not second:
        return f"<mn>{first}</mn>"
    return f"<mrow><mn>{first}</mn><mo>×</mo><msup><mn>10</mn><mn>{second}</mn></msup></mrow>"


def number_html(value, gap: float | None = None, near: float = NEAR_ONE, significant: int = 3) -> str:
    """The same number in the page's text, as the equations write it: 9999, 4.04 × 10<sup>−5</sup>, 1 − 0.0007
    (not 1e+04, nor 1 for 0.9999995)."""
    kind, first, second = written(value, gap, near, significant)
    if kind == "near one":
        return f"1 {first} {number_html(second, significant=significant)}"
    return f"{first} × 10<sup>{second}</sup>" if second else first


def written(value, gap: float | None, near: float, significant: int) -> tuple:
    """How the page writes a number: ("near one", "−" or "+", |1 - value|), or ("plain", mantissa, its power of
    ten or "") from fmt: 4.04e-05 is ("plain", "4.04", "−5")."""
    if isinstance(value, int):
        return "plain", str(value), ""
    gap = 1 - value if gap is None else float(gap)
    if 0 < abs(gap) < near:
        return "near one", "−" if gap > 0 else "+", abs(gap)
    mantissa, _, exponent = fmt(value, significant).partition("e")
    return "plain", mantissa, str(int(exponent.replace("−", "-"))).replace("-", "−") if exponent else ""


def mi(name: str) -> str:
    return f"<mi>{html.escape(name)}</mi>"


def mo(op: str) -> str:
    # + − = are always binary here, also where a wrapped piece starts with one (which MathML takes for a sign)
    form = ' form="infix"' if op in ("+", "−", "=") else ""
    return f"<mo{form}>{html.escape(op)}</mo>"


def row(*parts: str) -> str:
    return "<mrow>" + "".join(parts) + "</mrow>"


def sub(base: str, script) -> str:
    return f"<msub>{base}{script if isinstance(script, str) else mn(script)}</msub>"


def sqrt(*parts: str) -> str:
    return "<msqrt>" + "".join(parts) + "</msqrt>"


def frac(top: str, bottom: str) -> str:
    return f"<mfrac>{top}{bottom}</mfrac>"


def accent(base: str, mark: str) -> str:
    # (No accent="true": without a math font Chromium then draws no mark at all.)
    return f"<mover>{base}<mo>{mark}</mo></mover>"


def x(t) -> str:
    return sub(mi("x"), t)


def abar(t) -> str:
    return sub(accent(mi("α"), "¯"), t)


ABAR_NEAR_ONE = 0.01  # ᾱ above 0.99 is written 1 − (1 − ᾱ): the step between two is 1 − their ratio


def abar_value(schedule, t: int, write=mn) -> str:
    """ᾱ_t's number at the paper's t (1 at t = 0), to four digits: enough to work a step's coefficients out from
    it (three showed ᾱ_500 = 0.079 = ᾱ_499); near 1 written from 1 - ᾱ_t as the schedule keeps it. In MathML,
    or in the page's text with ``write=number_html``."""
    if t == 0:
        return write(1.0)
    return write(float(schedule.alpha_bars[t - 1]), schedule.one_minus_alpha_bars[t - 1], near=ABAR_NEAR_ONE,
                 significant=4)


def beta(t) -> str:
    return sub(mi("β"), t)


EPS, Z = mi("ε"), mi("z")
EPS_HAT = accent(mi("ε"), "^")
X0_HAT = sub(accent(mi("x"), "^"), 0)


def term(coefficient: float, symbol: str, first: bool = False) -> str:
    """' + 0.871 x_0' (or the first term without the sign)."""
    sign = "" if first else mo("−" if coefficient < 0 else "+")
    return sign + mn(abs(coefficient) if not first else coefficient) + symbol


def product(t: int) -> str:
    """The product sign from s = 1 to t."""
    return f"<munderover>{mo('∏')}{row(mi('s'), mo('='), mn(1))}{mn(t)}</munderover>"


def note(label: str, markup: str) -> str:
    """A line of fixed text (trusted markup written here) in place of an equation."""
    return (f'<li class="equation-line"><span class="equation-label">{html.escape(label)}</span>'
            f'<span class="equation-maths"><span>{markup}</span></span></li>')  # one item: x<sub>0</sub> holds


def line(label: str, *pieces, active: bool = False) -> str:
    """A labelled line of equations; each piece is one <math>, or a tuple of them that wrap as one equation."""
    maths = "".join('<span class="equation-group">' + "".join(f"<math>{part}</math>" for part in
                    ((piece,) if isinstance(piece, str) else piece)) + "</span>" for piece in pieces)
    return (f'<li class="equation-line{" active" if active else ""}"><span class="equation-label">'
            f"{html.escape(label)}</span><span class=\"equation-maths\">{maths}</span></li>")


# -- syntax highlighting, with tokenize: (class, text) pieces put in the page as text -------------------------

BUILTINS = frozenset(dir(builtins)) | {"self"}


def highlight(source: str) -> list[tuple[str, str]]:
    """The source cut into (css class or "", text) pieces that join back into it exactly."""
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for text in lines:
        offsets.append(offsets[-1] + len(text))
    pieces, position, previous = [], 0, None
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return [("", source)]
    for token in tokens:
        start = offsets[token.start[0] - 1] + token.start[1] if token.start[0] <= len(lines) else len(source)
        end = offsets[token.end[0] - 1] + token.end[1] if token.end[0] <= len(lines) else len(source)
        if start > position:
            pieces.append(("", source[position:start]))
            position = start
        kind = ""
        if token.type == tokenize.COMMENT:
            kind = "tok-comment"
        elif token.type == tokenize.STRING or token.type in _FSTRING_TYPES:
            kind = "tok-string"
        elif token.type == tokenize.NUMBER:
            kind = "tok-number"
        elif token.type == tokenize.NAME:
            if previous is not None and previous.string in ("def", "class"):
                kind = "tok-def"
            elif keyword.iskeyword(token.string):
                kind = "tok-keyword"
            elif token.string in BUILTINS:
                kind = "tok-builtin"
        if end > start:
            pieces.append((kind, source[start:end]))
            position = end
        if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            previous = token
    if position < len(source):
        pieces.append(("", source[position:]))
    merged = []
    for kind, text in pieces:
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


_FSTRING_TYPES = {getattr(tokenize, name) for name in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END")
                  if hasattr(tokenize, name)}


def code_figure(function, title: str):
    """A <figure> with the highlighted source of `function` as its file holds it, and where it is."""
    try:
        lines, first = inspect.getsourcelines(function)
        path = inspect.getsourcefile(function) or "?"
    except (OSError, TypeError):  # not defined in a .py file (a compiled function)
        lines, first, path = ["# (no Python source to show)\n"], 0, "compiled code"
    source = "".join(lines)
    where = path[path.rfind("diffusion_lab/"):] if "diffusion_lab/" in path else path.rsplit("/", 1)[-1]
    document = js.document
    figure = document.createElement("figure")
    figure.className = "code-figure"
    caption = document.createElement("figcaption")
    name = document.createElement("code")
    name.textContent = title
    caption.append(name, f" · {where}, lines {first}–{first + len(lines) - 1}")
    pre = document.createElement("pre")
    pre.className = "code"
    pre.tabIndex = 0  # it scrolls sideways on a narrow screen, so the keyboard must reach it: named, then,
    pre.setAttribute("role", "region")  # and described by its caption
    pre.setAttribute("aria-label", "Python source")
    caption.id = f"code-{title}"
    pre.setAttribute("aria-describedby", caption.id)
    code = document.createElement("code")
    for kind, text in highlight(source):
        if kind:
            span = document.createElement("span")
            span.className = kind
            span.textContent = text
            code.append(span)
        else:
            code.append(text)
    pre.append(code)
    figure.append(caption, pre)
    return figure


# -- downloads ----------------------------------------------------------------------------------------------

FRAMED_DOWNLOAD = (" If no file arrives, the page this view is embedded in blocks downloads: open the view in a tab "
                   "of its own.")


def save(data: bytes, name: str, mime: str) -> None:
    """Hand `data` to the browser as a download named `name` (a blob: URL on an <a download>)."""
    array = js.Uint8Array.new(len(data))
    array.assign(data)
    blob = js.Blob.new(to_js([array]), to_js({"type": mime}, dict_converter=js.Object.fromEntries))
    url = js.URL.createObjectURL(blob)
    link = js.document.createElement("a")
    link.href, link.download, link.hidden = url, name, True
    js.document.body.append(link)
    link.click()
    link.remove()
    js.setTimeout(create_once_callable(lambda: js.URL.revokeObjectURL(url)), 60_000)


def size_text(count: int) -> str:
    return f"{count / 1e6:.1f} MB" if count >= 1e6 else f"{max(1, round(count / 1e3))} kB"


class Unavailable(Exception):
    """A download that cannot be made yet; the message says why."""


# -- the editors: one per hook, each with its own setting ----------------------------------------------------

class Editor:
    """One hook the student can change: its textarea, Run and Reset buttons, status line, error box and setting.

    The code in use is ``in_use`` ("" = the original). ``check(source)`` raises
    HookError if the code does not work; Run keeps the last working code in use
    when it does. ``original()`` names what the page uses without the student's
    code, and ``origin`` the file it comes from.
    """

    def __init__(self, panel, setting: str, ids: str, name: str, origin: str, original, check,
                 scope=lambda: "") -> None:
        self.panel, self.settings, self.setting, self.ids = panel, panel.settings, setting, ids
        self.name, self.origin, self.original, self.check = name, origin, original, check
        self.scope = scope  # what code from a link adds to its status: "" where the page would use it
        self.in_use = ""  # the student's code the page computes with; "" = the original
        self.seen = None  # the setting last taken into the editor
        self.template = ""  # the editor's original
        self.pending = False  # the editor holds code from a link that has not been run
        self.held = ""  # why code the student ran in this tab waits for Run all the same (see `running`)
        self.failure = None  # the last HookError to show, if any
        self.failed = lambda: ""  # the status that says so
        self.remark = ""  # what the status adds about the student's code in use (set by the panel)
        page.on(self.part(""), "keydown", self._keydown)
        page.on(self.part("").closest("fieldset"), "focusin", lambda event: self.listen())
        page.on(self.part("-run"), "click", lambda event: self.run())
        page.on(self.part("-reset"), "click", lambda event: self.reset())

    def part(self, suffix: str):
        return element(self.ids + suffix)

    def take_setting(self, template: str) -> None:
        """Bring the editor in line with the settings (page load, Back/Forward, another original)."""
        editor, code = self.part(""), self.settings[self.setting]
        if code != self.seen:
            self.seen, self.failure, self.pending, self.held = code, None, False, ""
            if not code:
                self.in_use, editor.value = "", template
            elif code != self.in_use:
                editor.value = code
                if _is_trusted(code):
                    self.in_use = code
                else:
                    self.in_use, self.pending, self.held = "", True, _held(code)
        elif editor.value == self.template:
            editor.value = template  # an untouched editor follows the settings
        self.template = template
        self.status()
        self.show_failure()
        if self.pending and self.part("").closest("[data-group]").hidden:  # the link's hide=code: no Run
            page.show_notice(f"This link brings its own {self.name} but hides the code (hide=code), where it would "
                             f"be read and run, so the page uses {self.original()}.", self.setting)

    def listen(self) -> None:
        """From the student's first visit to this editor on, its status line is spoken when it changes.

        Until then it is silent (aria-live="off" in the page): the page fills every editor's line as it loads
        and again on each change of the settings, and a screen reader read them all out unasked.
        """
        self.part("-status").setAttribute("aria-live", "polite")

    def status(self, text: str | None = None) -> None:
        if text is None:
            locked = self.part("").readOnly  # by the link's lock= (js/boot.js): Run only
            if self.failure is not None:
                text = self.failed()  # what went wrong stays said while its error box shows
            elif self.held:
                text = (f"Your {self.name} below ran too long when it last ran in this tab ({self.held}), so it "
                        f"waits for Run; until then the page uses {self.original()}.{self.scope()}")
            elif self.pending:
                came = (f"This link came with its own {self.name}, shown below" if page.tab_keeps_values() else
                        f"This page's address holds a {self.name}, shown below (this browser keeps no record of "
                        "the code you ran, so it cannot tell yours from a link's)")
                text = (f"{came}. Read it, then press Run to use it; until then the page uses "
                        f"{self.original()}.{self.scope()}")
            elif self.in_use:
                text = f"In use: your {self.name}, in place of {self.original()}."
                if not locked:
                    text += " Reset code goes back to the original."
                if not controls.fits_in_url(self.settings.controls[self.setting], self.in_use):
                    text += (f" It is too long to share in a link (written for a link it takes "
                             f"{len(controls.code_to_url(self.in_use))} characters; a link holds "
                             f"{controls.MAX_CODE_URL_CHARS}): this tab keeps it when you reload, "
                             "but a copied link brings the original.")
                text += self.remark
            else:
                text = f"In use: {self.original()}, as {self.origin} defines it."
                if not locked:
                    text += " Change the code and press Run."
        status = self.part("-status")
        if status.textContent != text:  # once a live region (see listen), say it again only when it changes
            status.textContent = text

    def show_failure(self) -> None:
        box = self.part("-error")
        box.hidden = self.failure is None
        box.textContent = "" if self.failure is None else self.failure.detail
        editor = self.part("")
        editor.setAttribute("aria-invalid", "false" if self.failure is None else "true")
        # What went wrong, in the status line's summary (the error box's own name would stand in for its text),
        # is read with the code it is about; the other descriptions stay (the link's lock=, js/boot.js).
        status = f"{self.ids}-status"
        ids = [id_ for id_ in (editor.getAttribute("aria-describedby") or "").split() if id_ != status]
        editor.setAttribute("aria-describedby", " ".join(ids + ([] if self.failure is None else [status])))

    def fail(self, error, text) -> None:
        """Show `error`; `text` is the status (a function for words that follow the settings while it shows)."""
        self.failure, self.failed = error, text if callable(text) else lambda: text
        self.show_failure()
        self.status()

    def run(self) -> None:
        """Run the editor's code; on success the views recompute with it, on failure the last working stays."""
        self.listen()  # Safari does not focus a clicked button
        source = self.part("").value.replace("\r\n", "\n")
        printed = Printed()
        try:
            with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed), running(source):
                self.check(source)  # redirected: what it prints, warnings too
        except self.panel.hooks.HookError as error:
            summary = error.summary  # the name `error` goes with the except block
            self.fail(error, lambda: f"Your code did not run ({summary}). The page keeps using {self.kept()}.")
            return
        finally:
            self.show_printed(str(printed))
        custom = "" if source == self.template else source
        _trust(custom)
        self.in_use, self.seen, self.pending, self.held, self.failure = custom, custom, False, "", None
        if not controls.fits_in_url(self.settings.controls[self.setting], custom):
            page.keep_in_tab(custom)  # the link holds its key (controls.tab_key)
        self.settings.set(self.setting, custom)
        self.panel.view.changed({self.setting})

    def kept(self) -> str:
        """What the page computes with while the student's last Run failed: their last working code, or not."""
        if not self.in_use:
            return self.original()
        unused = self.panel.unused_why(self)
        if unused:  # nor does the last that worked, now
            return f"{self.original()} (your last working {self.name} {unused})"
        return f"your last working {self.name}"

    def show_printed(self, text: str) -> None:
        """What print() wrote while Run checked the code (later calls, in the chain, go to the browser's console)."""
        self.part("-printed").hidden = not text
        self.part("-output").textContent = text

    def reset(self) -> None:
        self.listen()
        self.show_printed("")
        self.in_use, self.seen, self.pending, self.held, self.failure = "", "", False, "", None
        self.part("").value = self.template
        self.settings.set(self.setting, "")
        self.panel.view.changed({self.setting})

    def _keydown(self, event) -> None:
        if event.key == "Enter" and (event.ctrlKey or event.metaKey):  # Ctrl+Enter runs, as in notebooks
            event.preventDefault()
            self.run()


class Printed:
    """sys.stdout and sys.stderr while the student's code runs: keeps the first MAX_PRINTED characters (a loop
    that prints until the time limit stops it must not fill the memory)."""

    def __init__(self) -> None:
        self.parts, self.size, self.dropped = [], 0, 0

    def write(self, text: str) -> int:
        room = MAX_PRINTED - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        self.dropped += max(0, len(text) - room)
        return len(text)

    def flush(self) -> None:
        pass

    def __str__(self) -> str:
        more = f"\n… and {self.dropped} more characters" if self.dropped else ""
        return "".join(self.parts) + more


# -- the panel ------------------------------------------------------------------------------------------------

class Panel:
    """What both views share: the schedule's editor, the code listing, the download buttons."""

    prefix = "diffusion-lab"
    making = None  # the file a download is making now ("arrays"), if any

    def __init__(self, view) -> None:
        from diffusion_lab import hooks  # numpy is loaded by now

        self.view, self.settings, self.core, self.hooks = view, view.settings, view.core, hooks
        hold_interrupted()  # before any editor takes the code in the address
        self.steps_failure = None  # the last failure of the student's betas(T) with a new T
        self.students_schedule = False  # whether the view computes with the student's betas(T)
        self.listing = None  # the functions the code panel shows now
        self.figures = {}  # cached <figure> per function
        self.schedules = {}  # (source, T) -> Schedule of the student's code
        self.betas = Editor(self, "hook", "hook", "betas(T)", "schedules.py",
                            lambda: f"the {self._schedule_label()} schedule",
                            lambda source: self._custom(source, self.settings["steps"]))
        self.shown = None  # the arguments of the last show(), drawn by show_now
        self.unavailable = ""  # the download's "try again" message on show, if any
        self.later = page.Later(SHOW_DELAY_S, self.show_now, SHOW_MAX_WAIT_S, "The equations could not be shown.")
        for what in ("frame", "strip", "animation", "arrays"):
            page.on(element(f"download-{what}"), "click", lambda event, what=what: self.download(what))

    # -- the schedule: the setting's, or the student's --------------------------------------------------------
    def schedule(self):
        """The schedule the view computes with (called whenever it rebuilds)."""
        name, steps, editor = self.settings["schedule"], self.settings["steps"], self.betas
        editor.take_setting(self.hooks.schedule_template(name))
        self.students_schedule = False
        if editor.in_use:
            try:
                schedule = self._custom(editor.in_use, steps)
            except self.hooks.HookError as error:
                self.steps_failure = error
                editor.fail(error, f"Your betas(T) does not work with T = {steps} ({error.summary}), so the page "
                                   f"uses the {self._schedule_label()} schedule until it does.")
                return self.core.schedules.get_schedule(name, steps)
            lost = self.core.schedules.lost_from(schedule)
            remark = "" if lost is None else (
                f" From t = {lost} on, ᾱ is below {self.core.schedules.ALPHA_BAR_LOST:g}: x_0's finest detail (about "
                "a grey level) is in x_t below float64's rounding of the noise, so a step from there straight to "
                "t = 0 (DDIM with few steps) brings the image back about a grey level off, more the smaller ᾱ; "
                "small steps do not.")
            if remark != editor.remark:
                editor.remark = remark
                editor.status()
            if editor.failure is not None and editor.failure is self.steps_failure:
                editor.failure = None  # it works with this T again
                editor.show_failure()
                editor.status()
            self.students_schedule = True
            return schedule
        return self.core.schedules.get_schedule(name, steps)

    def unused_why(self, editor) -> str:
        """Why the page computes without the editor's code in use, or "" if it computes with it."""
        if editor is self.betas and not self.students_schedule:
            return f"does not work with T = {self.settings['steps']}"
        return ""

    def _custom(self, source: str, steps: int):
        key = (source, steps)
        if key not in self.schedules:
            with running(source):
                schedule = self.hooks.schedule_from_source(source, steps)
            if len(self.schedules) > 8:
                self.schedules.clear()
            self.schedules[key] = schedule
        return self.schedules[key]

    def _schedule_label(self) -> str:
        control = controls.BY_NAME["schedule"]
        return control.labels[control.choices.index(self.settings["schedule"])]

    # -- the equations and the code, a moment after the picture -----------------------------------------------
    def show(self, *args) -> None:
        """Show the equations and code of what the view just drew, once the scrub pauses (see SHOW_DELAY_S).

        #equation carries data-pending until then (tests wait for it to go).
        """
        self.shown = args
        box = element("equation")
        if not box.hasAttribute("data-pending"):
            box.setAttribute("data-pending", "true")
        self.later.schedule()

    def show_now(self) -> None:
        self.draw(*self.shown)
        element("equation").removeAttribute("data-pending")

    def draw(self, *args) -> None:
        raise NotImplementedError

    # -- the code listing ------------------------------------------------------------------------------------
    def show_code(self, functions: list[tuple[str, object]]) -> None:
        """Show the sources of `functions` ((title, function) pairs), rebuilt only when they change."""
        key = tuple(title for title, _ in functions)
        if key == self.listing:
            return
        self.listing = key
        for title, function in functions:
            if title not in self.figures:
                self.figures[title] = code_figure(function, title)
        element("code-listing").replaceChildren(*[self.figures[title] for title, _ in functions])

    def schedule_function(self) -> list[tuple[str, object]]:
        if self.students_schedule:
            return []  # the student's own is in the editor below (in use: it works with this T)
        function = self.core.schedules.BETAS[self.settings["schedule"]]
        return [(f"schedules.{function.__name__}", function)]

    def show_equation(self, lines: list[str], numbers: dict) -> None:
        box = element("equation")
        box.innerHTML = "".join(lines)  # MathML from numbers and fixed symbols only, see line()
        box.dataset.numbers = json.dumps(numbers)

    # -- downloads -------------------------------------------------------------------------------------------
    async def download(self, what: str) -> None:
        status = element("export-status")
        if self.making:  # one file at a time: two at once took twice the memory, and their counts mixed
            status.textContent = f"Still making the {self.making}: one file at a time."
            return
        self.making = what
        try:
            status.textContent = f"Making the {what}…"
            await asyncio.sleep(0.02)  # let the message paint
            await page.load_package("pillow")
            from diffusion_lab import export

            made = getattr(self, f"make_{what}")(export)
            data, name, mime = (await made) if inspect.isawaitable(made) else made
        except Unavailable as reason:
            status.textContent = str(reason)
            self.unavailable = status.textContent  # gone once what it waited for is there (ready)
            return
        except Exception:
            status.textContent = f"The {what} could not be made: see the message at the top of the page."
            raise  # to that message, with what went wrong
        finally:
            self.making = None
            element("export-progress").hidden = True
        save(data, name, mime)
        # The page cannot see a download arrive, and a frame sandboxed without allow-downloads drops it unsaid.
        framed = "" if js.Object.is_(js.window.parent, js.window) else FRAMED_DOWNLOAD
        status.textContent = f"Download of {name} ({size_text(len(data))}) started.{framed}"

    async def npz(self, export, **arrays) -> bytes:
        """export.npz in pieces, the page answering between them; a bar under the status line fills (the status
        line, a live region, says "Making the arrays…" once: a count there was spoken forty times a second)."""
        buffer, progress = io.BytesIO(), element("export-progress")
        progress.value, progress.hidden = 0, False
        for share in export.npz_written(buffer, self.settings_record(), **arrays):
            progress.value = share
            await page.next_turn()
        return buffer.getvalue()

    def settings_record(self) -> dict:
        """The settings that made the pictures: code in an editor only if the view computes with it (not code
        from a link that waits for Run, nor code that failed)."""
        unused = set() if self.students_schedule else {"hook"}
        return {"view": self.settings.view,
                **{name: value for name, value in self.settings.state.items() if name not in unused}}

    def ready(self) -> None:
        """What a download waited for is there: its "try again" message goes."""
        status = element("export-status")
        if self.unavailable and status.textContent == self.unavailable:
            status.textContent = ""
        self.unavailable = ""

    def waiting(self, text: str) -> None:
        """No chain to explain yet (the network is loading, or could not): say so in place of the equations."""
        self.later.cancel()
        self.show_equation([note("Waiting", html.escape(text))], {})
        element("equation").removeAttribute("data-pending")


class ForwardPanel(Panel):
    """The forward view's equations (eq. 4 and eq. 2), code and files."""

    def draw(self, t: int, iterated: bool) -> None:
        core, schedule = self.core, self.view.schedule
        main = ("forward.q_step", core.forward.q_step) if iterated else ("forward.q_sample", core.forward.q_sample)
        self.show_code([main, *self.schedule_function(), ("images.to_uint8", core.images.to_uint8)])
        if t == 0:
            self.show_equation([note("t = 0", "x<sub>0</sub> is the clean image: no noise yet. Move the Timestep "
                                              "slider to see the equations with their numbers.")], {"t": 0})
            return
        c = core.forward.coefficients(t - 1, schedule)
        closed = line("Any t at once (Ho et al. eq. 4)",
                      (row(x(t), mo("="), sqrt(abar(t)), x(0)), row(mo("+"), sqrt(mn(1), mo("−"), abar(t)), EPS)),
                      (row(mo("="), term(c.signal, x(0), first=True)), row(term(c.noise, EPS))),
                      active=not iterated)
        values = line("where",  # a value may go to the next line, as on a phone with a large font
                      (row(abar(t), mo("="), product(t), row(mo("("), mn(1), mo("−"), beta(mi("s")), mo(")"))),
                       row(mo("="), abar_value(schedule, t))),
                      row(beta(t), mo("="), mn(c.beta)),
                      (row(mi("SNR"), mo("="), frac(abar(t), row(mn(1), mo("−"), abar(t)))),
                       row(mo("="), mn(c.snr))))
        eps_t = sub(mi("ε"), t)  # a fresh draw each step; eq. 4's ε stands for all of them, in distribution
        step = line("One step (Ho et al. eq. 2)",
                    (row(x(t), mo("="), sqrt(mn(1), mo("−"), beta(t)), x(t - 1)), row(mo("+"), sqrt(beta(t)), eps_t)),
                    (row(mo("="), term(c.step_signal, x(t - 1), first=True)), row(term(c.step_noise, eps_t))),
                    active=iterated)
        self.show_equation([closed, values, step], {**c._asdict(), "index": c.t, "t": t})

    def make_frame(self, export):
        data = export.png(export.enlarged(self.core.images.to_uint8(self.view.x_t)))
        return data, f"{self.prefix}-forward-t{self.settings['t']}.png", "image/png"

    def make_strip(self, export):
        if self.view.figures is None:
            raise Unavailable("The strip is still being drawn: try again in a moment.")
        self.view.figures.redraw_if_stale()  # the strip of the settings of the moment
        from diffusion_lab import plots

        return export.png(plots.to_rgba(self.view.figures.strip.figure)), f"{self.prefix}-forward-strip.png", \
            "image/png"

    def trajectory(self, export):
        """Page times and uint8 frames of the closed form from t = 0 to T, at most GIF_MAX_FRAMES of them."""
        ts = export.frame_indices(self.view.schedule.num_steps + 1)
        return ts, [self.core.images.to_uint8(self.view.closed_form(int(t))) for t in ts]

    def make_animation(self, export):
        _, frames = self.trajectory(export)
        return export.gif([export.enlarged(frame) for frame in frames]), f"{self.prefix}-forward.gif", "image/gif"

    async def make_arrays(self, export):
        view, schedule, t = self.view, self.view.schedule, self.settings["t"]  # as they are now: the page
        ts, frames = self.trajectory(export)  # answers while the file is made
        data = await self.npz(export, x0=view.x0, noise=view.noise, betas=schedule.betas,
                              alpha_bars=schedule.alpha_bars, t=t, x_t=view.x_t,
                              x_t_from=view.x_t_source,  # after Step or Play the chain's, which the frames are not
                              frames_t=ts, frames=self.core.np.stack(frames))
        return data, f"{self.prefix}-forward-t{t}.npz", "application/octet-stream"


class ReversePanel(Panel):
    """The reverse view's equations (DDPM eq. 15 and 7, or DDIM eq. 12), the editors of the oracle's noise
    prediction and of the DDPM and DDIM steps, the code and the files."""

    denoiser = None  # the reverse view tells the panel which denoiser its chain uses
    students_step = None  # the student's step the chain uses, if any

    def __init__(self, view) -> None:
        super().__init__(view)
        self.noise = Editor(self, "noise_hook", "noise-hook", "predict_noise(…)", "denoisers.py",
                            lambda: "the oracle's exact noise prediction", self._check_noise,
                            lambda: "" if self.settings["denoiser"] == "oracle" else
                            " It changes the oracle's prediction only (the ideal denoiser and the trained network "
                            "make their own): choose the oracle to see it at work.")
        self.step = Editor(self, "step_hook", "step-hook", "step(…)", "samplers.py", lambda: "the DDPM step",
                           lambda source: self._check_step(source, self.step))
        self.ddim = Editor(self, "ddim_hook", "ddim-hook", "ddim_step(…)", "samplers.py", lambda: "the DDIM step",
                           lambda source: self._check_step(source, self.ddim))
        self.checked = {}  # (editor's setting, the student's code) -> their function, checked
        self.students_prediction = None  # the student's noise prediction the chain uses, if any
        self.broken = None  # (editor, the student's code, its HookError) when it failed in the middle of a chain

    def new_chain(self, denoiser) -> None:
        self.denoiser = denoiser

    def _in_use(self, editor, applies: bool, elsewhere: str, idle: str = ""):
        """The student's function of `editor` for the chain about to start, or None for the original
        (called when the view rebuilds): not when it failed in the last chain, or does not apply here.
        `elsewhere` is the status of the student's code where it does not apply, `idle` that of the original."""
        page.link_caveat(f"stopped {editor.setting}",  # the link brings it: whoever presses Run meets the same
                         f"The link holds your {editor.name}, which stopped the chain: it stops theirs too if "
                         "they press Run." if editor.in_use and self._broken(editor) else "")
        if not editor.in_use:
            if idle and not applies and not (editor.pending or editor.held or editor.failure):  # they say more
                editor.status(idle)
            return None
        if self._broken(editor):
            error = self.broken[2]
            editor.fail(error, f"Your {editor.name} stopped the chain ({error.summary}). The chain was run again "
                               f"with {editor.original()} of {editor.origin}; change the code and press Run.")
            return None
        if not applies:
            editor.status(elsewhere)
            return None
        if (editor.setting, editor.in_use) not in self.checked:  # code run in this tab before a reload
            try:
                with running(editor.in_use):
                    editor.check(editor.in_use)
            except self.hooks.HookError as error:
                editor.fail(error, f"Your {editor.name} did not run ({error.summary}); the page uses "
                                   f"{editor.original()}.")
                return None
        return self.checked[editor.setting, editor.in_use]

    def chain_failed(self, error) -> None:
        """The student's code failed in the middle of the chain; the view starts it again with the original."""
        editor = {self.hooks.NOISE_HOOK: self.noise, self.hooks.DDIM_HOOK: self.ddim}.get(error.hook, self.step)
        self.broken = (editor, editor.in_use, error)  # _in_use() says so

    def unused_why(self, editor) -> str:
        return "stopped the chain" if self._broken(editor) else super().unused_why(editor)

    def _broken(self, editor) -> bool:
        """Whether the editor's code in use is the one that failed in the middle of a chain."""
        return self.broken is not None and self.broken[0] is editor and editor.in_use == self.broken[1]

    def _keep(self, editor, source: str, function) -> None:
        """The editor's code passed its trial: keep its function (the last only), and let it run a chain again."""
        self.checked = {key: kept for key, kept in self.checked.items() if key[0] != editor.setting}
        self.checked[editor.setting, source] = function
        if self.broken is not None and self.broken[0] is editor:
            self.broken = None

    def _trial(self):
        """The schedule and the picture the chain uses, to try the student's code on (made up while the
        network loads)."""
        view, s = self.view, self.settings
        schedule = getattr(view, "schedule", None) or self.core.schedules.get_schedule(s["schedule"], s["steps"])
        picture = getattr(view, "target", None)
        if picture is None or picture.shape != view.picture_shape():
            picture = self.core.np.zeros(view.picture_shape())
        return schedule, picture

    # -- the oracle's noise prediction: denoisers.py's, or the student's ---------------------------------------
    def _check_noise(self, source: str) -> None:
        """Run the student's prediction at the first and last step (most mistakes show at once), and keep it."""
        predict = self.hooks.noise_from_source(source)
        self.hooks.try_noise(predict, *self._trial())
        self._keep(self.noise, source, predict)

    # -- the DDPM and DDIM steps: samplers.py's, or the student's ---------------------------------------------
    def _check_step(self, source: str, editor) -> None:
        """Run the student's step on trial arrays (most mistakes show at once), and keep it."""
        ddim = editor is self.ddim
        update = self.hooks.step_from_source(source, self.hooks.DDIM_HOOK if ddim else self.hooks.STEP_HOOK)
        schedule, picture = self._trial()
        (self.hooks.try_ddim if ddim else self.hooks.try_step)(update, schedule, picture.shape)
        self._keep(editor, source, update)

    def update(self):
        """The step the chain takes: the student's for its sampler, or None for samplers.py's (called when the
        view rebuilds). Only the editor of the chosen sampler's step shows."""
        self.step.take_setting(self.hooks.step_template())
        self.ddim.take_setting(self.hooks.ddim_template())
        ddim = self.settings["sampler"] == "ddim"
        for editor, shown in ((self.step, not ddim), (self.ddim, ddim)):
            editor.part("").closest("fieldset").classList.toggle("elsewhere", not shown)
        ddpm_step = self._in_use(self.step, not ddim, "Your step(…) changes the DDPM sampler's step; choose DDPM "
                                                      "to see yours.")
        ddim_step = self._in_use(self.ddim, ddim, "Your ddim_step(…) changes the DDIM sampler's step; choose DDIM "
                                                  "to see yours.")
        self.students_step = ddim_step if ddim else ddpm_step
        return self.students_step

    def blame(self, prediction, step) -> str:
        """The hook a runaway chain is blamed on: the student's noise prediction if the chain uses it (a step
        only follows the noise it is given), else their step, else none ("")."""
        if prediction is not None:  # only ever the oracle's
            return self.hooks.NOISE_HOOK
        if step is not None:
            return self.hooks.DDIM_HOOK if self.settings["sampler"] == "ddim" else self.hooks.STEP_HOOK
        return ""

    def step_setting(self) -> str:
        """The setting of the step editor for the chosen sampler."""
        return (self.ddim if self.settings["sampler"] == "ddim" else self.step).setting

    def prediction(self):
        """The oracle's noise prediction: the student's, or None for denoisers.py's (called when the view
        rebuilds, whatever the denoiser, so that the editor follows the settings)."""
        self.noise.take_setting(self.hooks.noise_template())
        self.students_prediction = self._in_use(
            self.noise, self.settings["denoiser"] == "oracle", "Your predict_noise(…) changes the oracle's "
            "prediction; the ideal denoiser and the trained network make their own. Choose the oracle to see yours.",
            "Not in use: this is the oracle's prediction, and the ideal denoiser and the trained network make their "
            "own. Choose the oracle to use it or your change of it.")
        return self.students_prediction

    def running_chain(self):
        """`running` for the student's code in the chain (around each slice of its computation)."""
        ddim = self.settings["sampler"] == "ddim"
        step = self.ddim if ddim else self.step
        return running(self.noise.in_use if self.students_prediction else "",
                       step.in_use if self.students_step else "",
                       hooks=(self.hooks.NOISE_HOOK, self.hooks.DDIM_HOOK if ddim else self.hooks.STEP_HOOK))

    def draw(self) -> None:
        view, core, s = self.view, self.core, self.settings
        ddim = s["sampler"] == "ddim"
        update = core.samplers._ddim_update if ddim else core.samplers._ddpm_update
        theirs = self.students_step is not None  # the student's step is in its editor, not listed
        functions = [] if theirs else [(f"samplers.{update.__name__}", update)]
        if ddim:
            functions.append(("samplers.ddim_coefficients", core.samplers.ddim_coefficients))
        if isinstance(self.denoiser, core.denoisers.Oracle):
            functions.append(("denoisers.oracle_noise", core.denoisers.oracle_noise))
        elif self.denoiser is not None and not isinstance(self.denoiser, self.hooks.Oracle):
            kind = type(self.denoiser)
            functions.append((f"{kind.__module__.rsplit('.', 1)[-1]}.{kind.__name__}.predict_noise",
                              kind.predict_noise))
        self.show_code(functions + self.schedule_function())
        k = min(s["step"], len(view.frames) - 1)
        total = len(view.times) - 1
        if k >= total:
            self.show_equation([note("The end", "The chain has reached t = 0: the picture is the sample "
                                                "x<sub>0</sub>.")], {"t": 0})
            return
        t, t_prev = view.times[k], view.times[k + 1]
        schedule = view.schedule
        if ddim:
            c = core.samplers.ddim_coefficients(t - 1, t_prev - 1, schedule, s["eta"])
            sigma = c.sigma if t_prev > 0 else 0.0  # the sampler adds no noise at the clean end
        else:
            c = core.samplers.ddpm_coefficients(t - 1, schedule, s["variance"])
            sigma = c.sigma if t > 1 else 0.0
        predict = line("Predicted clean image (Ho et al. eq. 15)",
                       (row(X0_HAT, mo("="), frac(mn(1), sqrt(abar(t)))),  # two parts: on a phone at t = 1000
                        row(mo("("), x(t), mo("−"), sqrt(mn(1), mo("−"), abar(t)), EPS_HAT, mo(")"))),  # they wrap
                       (row(mo("="), frac(mn(1), mn(c.x0_scale))), row(mo("("), x(t)),
                        row(term(-c.eps_scale, EPS_HAT), mo(")"))))  # 1 − 1.21×10⁻⁹ near ᾱ = 0 (cosine)
        noise = [term(sigma, Z)] if sigma > 0 else []
        if ddim:
            sigma_symbol = sub(mi("σ"), t)
            symbolic = (row(x(t_prev), mo("="), sqrt(abar(t_prev)), X0_HAT),
                        row(mo("+"), sqrt(mn(1), mo("−"), abar(t_prev), mo("−"), sub(mi("σ"), t), "<mo>²</mo>"),
                            EPS_HAT),
                        row(mo("+"), sigma_symbol, Z))
            numeric = (row(mo("="), term(c.signal, X0_HAT, first=True)), row(term(c.direction, EPS_HAT)), *noise)
            spread = (row(sigma_symbol, mo("="), mi("η"),  # Song et al. eq. 16, in parts that wrap on a phone
                          sqrt(frac(row(mn(1), mo("−"), abar(t_prev)), row(mn(1), mo("−"), abar(t))))),
                      row(sqrt(mn(1), mo("−"), frac(abar(t), abar(t_prev)))), row(mo("="), mn(sigma)))
            where = line("where", row(mi("η"), mo("="), mn(float(s["eta"]))),
                         row(abar(t), mo("="), abar_value(schedule, t)),
                         row(abar(t_prev), mo("="), abar_value(schedule, t_prev)), spread)
            step = line(f"DDIM step to t = {t_prev} (Song et al. eq. 12)", symbolic, numeric, active=True)
        else:
            mean = sub(accent(mi("μ"), "~"), t)
            last = t == 1  # Algorithm 2 of Ho et al. adds no noise at t = 1, whatever sigma_1 is
            symbolic = row(x(t - 1), mo("="), mean, *([] if last else [mo("+"), sub(mi("σ"), t), Z]))
            mean_form = (row(mean, mo("="), frac(row(sqrt(abar(t - 1)), beta(t)), row(mn(1), mo("−"), abar(t))),
                             X0_HAT),
                         row(mo("+"), frac(row(sqrt(sub(mi("α"), t)), mo("("), mn(1), mo("−"), abar(t - 1), mo(")")),
                                           row(mn(1), mo("−"), abar(t))), x(t)))
            numeric = (row(x(t - 1), mo("="), term(c.mean_x0, X0_HAT, first=True)), row(term(c.mean_xt, x(t))),
                       *noise)
            variance = accent(mi("β"), "~") if s["variance"] == "fixed_small" else mi("β")
            spread = [] if last else [(row(sub(mi("σ"), t), mo("="), sqrt(sub(variance, t))),
                                       row(mo("="), mn(sigma)))]
            where = line("where", mean_form, *spread, row(abar(t), mo("="), abar_value(schedule, t)),
                         row(abar(t - 1), mo("="), abar_value(schedule, t - 1)), row(beta(t), mo("="), mn(c.beta)))
            step = line("DDPM step (Ho et al. eq. 7 for the mean, Algorithm 2)", symbolic, numeric, active=True)
        lines = [predict, step, where]
        if self.students_step is not None:
            editor = self.ddim if ddim else self.step
            lines.insert(0, note("Your step", f"Your {html.escape(editor.name)} is in use: these are the formulas "
                                              "of samplers.py's step, for comparison; your code decides the next "
                                              "picture."))
        if not ddim and t == 1:
            lines.append(note("Last step", "No noise is added at t = 1 (Algorithm 2 of Ho et al.: z = 0): the "
                                           "sample is the posterior mean."))
        self.show_equation(lines, {**c._asdict(), "index": c.t, "t": t, "t_prev": t_prev, "sigma_used": sigma})

    def settings_record(self) -> dict:
        """The settings the chain used: not the ones it ignores (the Size of the 8x8 digits, DDIM's with DDPM,
        code of a hook the chain does not have)."""
        ignored = {name for name, used in self.view.relevant().items() if not used}
        ignored |= set() if isinstance(self.denoiser, self.hooks.Oracle) else {"noise_hook"}
        ignored |= {"ddim_hook", "step_hook"} - ({self.step_setting()} if self.students_step else set())
        return {name: value for name, value in super().settings_record().items() if name not in ignored}

    def _finished(self):
        if self.view.final is None:
            raise Unavailable("The chain is still being computed: try again when it has finished.")

    def make_frame(self, export):
        view = self.view
        if not view.frames:
            raise Unavailable("The chain starts once the trained network and its digits have loaded: "
                              "try again in a moment.")
        k = min(self.settings["step"], len(view.frames) - 1)
        name = f"{self.prefix}-reverse-step{k}-t{view.times[k]}.png"
        return export.png(export.enlarged(view.frames[k])), name, "image/png"

    def make_strip(self, export):
        self._finished()
        if self.view.strip is None:
            raise Unavailable("The strip is still being drawn: try again in a moment.")
        return export.png(self.view.plots.to_rgba(self.view.strip.figure)), f"{self.prefix}-reverse-strip.png", \
            "image/png"

    def make_animation(self, export):
        self._finished()
        frames = self.view.frames
        return export.gif([export.enlarged(frames[k]) for k in export.frame_indices(len(frames))]), \
            f"{self.prefix}-reverse.gif", "image/gif"

    async def make_arrays(self, export):
        self._finished()
        view, np = self.view, self.core.np
        frames = view.frames
        ks = export.frame_indices(len(frames), max(export.GIF_MAX_FRAMES, ARRAY_BYTES // frames[0].size))
        exact = {"states": frames.states(ks), "predicted_x0": view.predictions.states(ks)}  # None beyond budget
        data = await self.npz(export, steps_k=ks, frames_t=np.array([view.times[k] for k in ks]),
                              x_T=view.x_T, frames=np.stack([frames[k] for k in ks]),
                              x0_predictions=np.stack([view.predictions[k] for k in ks]), final=view.final,
                              betas=view.schedule.betas, alpha_bars=view.schedule.alpha_bars,
                              **{name: array for name, array in exact.items() if array is not None})
        return data, f"{self.prefix}-reverse.npz", "application/octet-stream"


# -- code the student ran in this tab ---------------------------------------------------------------------------

def _trusted_digests() -> list[str]:
    return page.tab_value(TRUSTED_KEY, [])  # storage off: shared code always waits for Run


def _is_trusted(source: str) -> bool:
    return controls.digest(source) in _trusted_digests()


def _trust(source: str) -> None:
    if not source:
        return
    key = controls.digest(source)
    digests = [d for d in _trusted_digests() if d != key] + [key]
    page.keep_tab_value(TRUSTED_KEY, digests[-MAX_TRUSTED:])
    page.keep_tab_value(HELD_KEY, {d: why for d, why in page.tab_value(HELD_KEY, {}).items() if d != key})


def _held(source: str) -> str:
    """Why code the student ran in this tab waits for Run after all, or ""."""
    why = page.tab_value(HELD_KEY, {}).get(controls.digest(source), "")
    return why if isinstance(why, str) else ""


def _hold(digests: list[str], why: str) -> None:
    """Code that ran too long: after a reload it waits for Run (saying `why`) instead of running by itself."""
    held = {d: reason for d, reason in page.tab_value(HELD_KEY, {}).items() if d not in digests}
    held.update(dict.fromkeys(digests, why))
    page.keep_tab_value(HELD_KEY, dict(list(held.items())[-MAX_TRUSTED:]))
    page.keep_tab_value(TRUSTED_KEY, [d for d in _trusted_digests() if d not in digests])


@contextlib.contextmanager
def running(*sources: str, hooks: tuple[str, ...] = ()):
    """Around every run of the student's code. One call that never ends (a loop is stopped after the time
    limit, a single numpy call is not) freezes the tab, and a reload would run the code again by itself: the
    hashes of the code running are kept in the tab meanwhile, and a page that finds them there, left by one
    that never finished, holds that code. So is code stopped for running past the time limit: of the sources
    of a chain, with `hooks` their hook names, the one the error blames."""
    digests = [controls.digest(source) for source in sources if source]
    if not digests:
        yield
        return
    before = page.tab_value(RUNNING_KEY, [])
    page.keep_tab_value(RUNNING_KEY, before + digests)
    try:
        yield
    except Exception as error:
        if getattr(error, "timed_out", False):  # a HookError of diffusion_lab.hooks
            blamed = [source for source, hook in zip(sources, hooks) if source and hook == error.hook]
            _hold([controls.digest(source) for source in blamed] if blamed else digests, error.summary)
        raise
    finally:
        page.keep_tab_value(RUNNING_KEY, before)


def hold_interrupted() -> None:
    """At the start of a page: code a page of this tab was still running when it went (frozen, most likely) is
    held."""
    left = page.tab_value(RUNNING_KEY, [])
    if left:
        _hold([d for d in left if isinstance(d, str)], "the page was reloaded or closed while it ran")
        page.keep_tab_value(RUNNING_KEY, [])
