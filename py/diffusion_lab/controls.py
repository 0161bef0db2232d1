"""Every setting of every view, declared once.

The table below is the single source of the form (build.py renders it into the
pages), of the URL (`to_query` / `parse_query`), of validation (bad values are
replaced, with a notice naming them) and of the values the Python page code
receives. Standard library only, so build.py can import it without numpy.

Timesteps in the pages follow the DDPM paper: t = 0 is the clean image x_0 and
t = T is the last, noisiest step; the core's arrays are indexed t - 1.
"""
from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qsl, urlencode

VIEWS = ("forward", "reverse")
IMAGE_CHOICES = ("gradient", "checkerboard", "disc", "stripes", "face", "landscape", "cells")
SCHEDULE_CHOICES = ("linear", "scaled_linear", "cosine", "sigmoid")
MAX_SEED = 2**31 - 1
MAX_CODE_URL_CHARS = 2000  # a "code" value travels as base64url; longer code stays in the tab, out of links
TAB_KEY = re.compile(r"tab\.[0-9a-f]{16}")  # what a link holds instead of longer code (see tab_key)


@dataclass(frozen=True)
class Control:
    name: str  # the URL key and the form element's id
    label: str  # visible label; tests and screen readers find controls by it
    kind: str  # "choice", "int", "float" or "code" (Python source; base64url in the URL)
    default: object
    views: tuple[str, ...]
    group: str  # fieldset it belongs to; embeds can hide a group (?hide=group)
    choices: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()  # display text of each choice
    low: float = 0
    high: float = 0
    step: float = 1
    widget: str = ""  # "range" for sliders, else a number box or a select
    help: str = ""


CONTROLS: tuple[Control, ...] = (
    Control("image", "Image", "choice", "gradient", VIEWS, "image", IMAGE_CHOICES,
            ("Gradient", "Checkerboard", "Disc", "Stripes", "Face", "Landscape", "Cells")),
    Control("size", "Size (pixels)", "int", 64, VIEWS, "image", low=16, high=256, step=16,
            help="Images are square, 16 to 256 pixels in steps of 16."),
    Control("schedule", "Schedule", "choice", "linear", VIEWS, "process", SCHEDULE_CHOICES,
            ("Linear (DDPM)", "Scaled linear (Stable Diffusion)", "Cosine (improved DDPM)", "Sigmoid")),
    Control("steps", "Steps T", "int", 1000, VIEWS, "process", low=2, high=1000),
    Control("seed", "Seed", "int", 0, VIEWS, "process", low=0, high=MAX_SEED),
    Control("denoiser", "Denoiser", "choice", "oracle", ("reverse",), "sampler", ("oracle", "ideal", "trained"),
            ("Oracle (knows x₀)", "Ideal denoiser", "Trained network"),
            help="The oracle knows the clean image x₀; the ideal denoiser is the exact best one for the training "
                 "set; the network learned 8×8 digits."),
    Control("dataset", "Training set", "choice", "shapes", ("reverse",), "sampler", ("shapes", "digits"),
            ("32 built-in shapes", "Handwritten digits (8×8)"),
            help="What the ideal denoiser knows; the network learned the digits."),
    Control("sampler", "Sampler", "choice", "ddpm", ("reverse",), "sampler", ("ddpm", "ddim"),
            ("DDPM (ancestral)", "DDIM")),
    Control("variance", "DDPM variance", "choice", "fixed_small", ("reverse",), "sampler",
            ("fixed_small", "fixed_large"), ("Small: posterior beta tilde", "Large: beta")),
    Control("ddim_steps", "DDIM steps", "int", 50, ("reverse",), "sampler", low=1, high=1000),
    Control("eta", "DDIM eta", "float", 0.0, ("reverse",), "sampler", low=0.0, high=1.0, step=0.05,
            help="0 is deterministic DDIM; 1 adds DDPM-like noise (as DDPM with the small variance when DDIM "
                 "steps = T)."),
    Control("spacing", "DDIM spacing", "choice", "leading", ("reverse",), "sampler", ("leading", "trailing"),
            ("Leading", "Trailing"),
            help="Leading takes pure noise for the x_t of a smaller t (with 1 step, t = 1), so few steps leave "
                 "noise; trailing starts at t = T (Lin et al. 2024)."),
    Control("t", "Timestep", "int", 0, ("forward",), "time", low=0, high=1000, widget="range"),
    Control("step", "Timestep", "int", 0, ("reverse",), "time", low=0, high=1000, widget="range",
            help="Position in the reverse chain, from pure noise to the end."),
    # The student's edits of the schedule function, the oracle's noise prediction and the DDPM and DDIM
    # steps; "" is the original. The code panel (app/learn.py) owns their editors and runs them only on Run,
    # so they are not in the settings form.
    Control("hook", "Code of betas(T)", "code", "", VIEWS, "code"),
    Control("noise_hook", "Code of predict_noise(…)", "code", "", ("reverse",), "code"),
    Control("step_hook", "Code of step(…)", "code", "", ("reverse",), "code"),
    Control("ddim_hook", "Code of ddim_step(…)", "code", "", ("reverse",), "code"),
)
BY_NAME = {control.name: control for control in CONTROLS}
GROUPS = ("image", "process", "sampler", "time")  # the settings form's fieldsets; "code" is the code panel's
FLAG_NAMES = ("embed", "hide", "lock")  # presentation flags for embedding, applied by js/boot.js


def controls_for(view: str) -> tuple[Control, ...]:
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; views are {', '.join(VIEWS)}")
    return tuple(control for control in CONTROLS if view in control.views)


def defaults(view: str) -> dict[str, object]:
    return {control.name: control.default for control in controls_for(view)}


def coerce(control: Control, raw: str) -> object:
    """The value `raw` stands for, or ValueError if it is not a valid value of `control`."""
    raw = raw.strip()
    if control.kind == "code":
        return code_from_url(raw)
    if control.kind == "choice":
        if raw not in control.choices:
            raise ValueError(raw)
        return raw
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?", raw):
        raise ValueError(raw)
    number = float(raw) + 0.0  # -0 is 0: its minus would show in the box and the address
    if not math.isfinite(number):
        raise ValueError(raw)
    if control.kind == "int":
        if number != int(number):
            raise ValueError(raw)
        number = int(number)
    return number


def clamp(control: Control, value: float) -> float:
    return min(max(value, control.low), control.high)


def is_number(control: Control) -> bool:
    return control.kind in ("int", "float")


def code_to_url(source: str) -> str:
    """Python source as URL-safe base64 of its UTF-8, without padding."""
    return base64.urlsafe_b64encode(source.encode("utf-8")).decode("ascii").rstrip("=")


def code_from_url(raw: str) -> str:
    """The source `code_to_url` made, or ValueError (not base64url, too long, or not UTF-8 text)."""
    if len(raw) > MAX_CODE_URL_CHARS or not re.fullmatch(r"[A-Za-z0-9_-]*", raw) or len(raw) % 4 == 1:
        raise ValueError(raw)
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(raw) from None


def tab_key(source: str) -> str:
    """What a link holds in place of code too long for it: the key of the copy its browser tab keeps.

    Such a link brings the code back in that tab (a reload, Back and Forward),
    and elsewhere says the code stayed there; see `parse_query`'s `kept_code`.
    """
    return "tab." + digest(source)[:16]


def digest(source: str) -> str:
    """The SHA-256 of code, in hex: what a tab remembers of code it ran (never the code's text)."""
    import hashlib  # here, not at the top: it loads OpenSSL, ~13 ms of every page's start in the browser

    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def code_in_url(source: str) -> str:
    """The URL value of code: its base64url, or its tab_key when that would be too long for a link."""
    raw = code_to_url(source)
    return raw if len(raw) <= MAX_CODE_URL_CHARS else tab_key(source)


def fits_in_url(control: Control, value: object) -> bool:
    """Whether a link can hold `value` (code is limited to MAX_CODE_URL_CHARS)."""
    return control.kind != "code" or len(code_to_url(value)) <= MAX_CODE_URL_CHARS


TIME_NAMES = frozenset({"t", "step"})  # the time sliders: where a view is in its chain, not how it is set up


def constrain(state: dict[str, object], wanted: dict[str, object] | None = None) -> list[str]:
    """Apply the rules that tie controls together; return the names that changed.

    `wanted` holds the values the student chose: one lowered to fit another
    setting goes back up towards it when that setting allows again (DDIM steps
    50, lowered to 20 with Steps T 20, is 50 again with Steps T 1000).
    """
    changed = []
    wanted = wanted or {}

    def at_most(name: str, limit) -> None:
        if name not in state or limit is None:
            return
        value = min(max(state[name], wanted.get(name, state[name])), limit)
        if value != state[name]:
            state[name] = value
            changed.append(name)

    at_most("t", state.get("steps"))
    ddim = state.get("sampler") == "ddim"
    if ddim:
        at_most("ddim_steps", state.get("steps"))  # before "step", whose limit it may be
    elif "ddim_steps" in state and "steps" in state:
        # DDPM lowers no DDIM steps (see in_use), but a value lowered earlier goes back up as Steps T allows:
        # else the link kept the lowered one while this tab did not.
        back = min(wanted.get("ddim_steps", state["ddim_steps"]), state["steps"])
        if back > state["ddim_steps"]:
            state["ddim_steps"] = back
            changed.append("ddim_steps")
    at_most("step", state.get("ddim_steps") if ddim else state.get("steps"))
    if "size" in state and state["size"] % 16:
        state["size"] = clamp(BY_NAME["size"], round(state["size"] / 16) * 16)
        changed.append("size")
    return changed


def in_use(name: str, state: dict[str, object]) -> bool:
    """Whether a setting counts with the others as they are (DDIM steps only with DDIM): a notice about one
    not in use would only puzzle."""
    return name != "ddim_steps" or state.get("sampler") == "ddim"


class Notice(str):
    """A notice's text, which knows the setting it is `about` ("" for none): the page drops it once that is fine."""

    about: str

    def __new__(cls, text: str, about: str = "") -> Notice:
        notice = super().__new__(cls, text)
        notice.about = about
        return notice


def parse_query(query: str, view: str, *, kept_code: Callable[[str], str | None] = lambda key: None,
                wanted: dict[str, object] | None = None) -> tuple[dict[str, object], list[Notice]]:
    """State of `view` from a URL query string, and notices naming what was replaced.

    Unknown names are ignored, duplicated names keep the last value, values of
    the wrong type fall back to the default, numbers out of range are clamped.
    Code too long for a link comes as its tab_key: `kept_code(key)` gives the
    code the browser tab kept under that key, or None (another tab or browser).
    `wanted`, if given, receives the values the link chose before they were
    fitted together (see constrain): DDIM steps 50 lowered to fit Steps T 20
    goes back to 50 when Steps T allows. The time sliders stay where they landed.
    """
    state = defaults(view)
    notices = []
    out_of_range = {}  # name -> raw value, told after constrain: with the value the page ends up using
    known = {control.name: control for control in controls_for(view)}
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    last, counts = dict(pairs), Counter(key for key, _ in pairs)
    for key in sorted(key for key, count in counts.items() if count > 1 and key in known):
        notices.append(Notice(f"{known[key].label}: given more than once, using the last (“{_short(last[key])}”)",
                              key))
    for key, raw in last.items():  # the earlier values of a duplicated name are not used, nor judged
        if key in FLAG_NAMES:
            continue
        control = known.get(key)
        if control is None:
            elsewhere = [other for other in BY_NAME[key].views if other != view] if key in BY_NAME else []
            notices.append(Notice(f"ignored “{_short(key)}”, a setting of the {elsewhere[0]} view, not this one"
                                  if elsewhere else f"ignored unknown setting “{_short(key)}”"))
            continue
        if control.kind == "code" and TAB_KEY.fullmatch(raw):
            source = kept_code(raw)
            if source is None or tab_key(source) != raw:
                notices.append(Notice(f"{control.label}: this link names code that was too long for a link and "
                                      "stays in the browser tab where it was run, using the original", key))
                source = control.default
            state[key] = source
            continue
        try:
            value = coerce(control, raw)
        except ValueError:
            default = "the original" if control.kind == "code" else _told(control, control.default)
            if control.kind == "code" and len(raw) > MAX_CODE_URL_CHARS:  # whoever made the link wrote it so
                notices.append(Notice(f"{control.label}: too long for a link ({len(raw)} characters; a link holds "
                                      f"{MAX_CODE_URL_CHARS}), using the original", key))
            else:
                notices.append(Notice(f"{control.label}: “{_short(raw)}” is not valid, using {default}", key))
            state[key] = control.default
            continue
        if is_number(control) and clamp(control, value) != value:
            value = clamp(control, value)
            out_of_range[key] = raw
        state[key] = value
    chosen = dict(state)
    adjusted = constrain(state)
    if wanted is not None:
        wanted.update({name: chosen[name] if name not in TIME_NAMES else state[name] for name in state})
    for name, raw in out_of_range.items():  # one notice per setting says where it landed (t=2000&steps=10: 10)
        using = _chain_position(state) if name == "step" else _show(state[name])
        notices.append(Notice(f"{BY_NAME[name].label}: {_short(raw)} is out of range, using {using}", name))
    notices += [Notice(adjusted_notice(name, state), name) for name in adjusted if name not in out_of_range]
    return state, notices


def adjusted_notice(name: str, state: dict[str, object]) -> str:
    """What to tell the student of a setting `constrain` changed."""
    if name == "size":
        return f"{BY_NAME[name].label}: rounded to {_show(state[name])}, a multiple of 16"
    value = _chain_position(state) if name == "step" else _show(state[name])
    return f"{BY_NAME[name].label}: adjusted to {value} to fit the other settings"


def _chain_position(state: dict[str, object]) -> str:
    """The reverse view's step as its page shows it: which step of the chain, and t at either end.

    Its slider counts steps from x_T, so a bare number reads as the wrong t.
    """
    ddim = state["sampler"] == "ddim"
    last = state["ddim_steps"] if ddim else state["steps"]
    # DDIM's first t depends on its spacing (samplers.timesteps: 981 of 1000 for 50 leading steps).
    ends = {0: " (pure noise)" if ddim else f" (t = {state['steps']}, pure noise)",
            last: " (t = 0, the end of the chain)"}
    return f"step {state['step']} of {last}{ends.get(state['step'], '')}"


def to_query(state: dict[str, object], view: str, *, keep_flags_from: str = "") -> str:
    """The shortest query string that `parse_query` turns back into `state` (long code through its kept_code).

    Presentation flags (embed, hide, lock) found in `keep_flags_from` are kept:
    the page owns them (js/boot.js applies them), not the state.
    """
    pairs = [(control.name, code_in_url(state[control.name]) if control.kind == "code" else _show(state[control.name]))
             for control in controls_for(view) if state.get(control.name, control.default) != control.default]
    flags = [(key, raw) for key, raw in parse_qsl(keep_flags_from.lstrip("?"), keep_blank_values=True)
             if key in FLAG_NAMES]
    return urlencode(pairs + flags, safe=",")  # lists (hide=a,b) and code read as typed


def carried_names(view: str, to_view: str) -> list[str]:
    """The settings a link from `view` to `to_view` carries: those both views have (the picture, its size, the
    schedule, T, the seed). Not the code: each view has its own editor."""
    here = {control.name for control in controls_for(view)}
    return [control.name for control in controls_for(to_view) if control.kind != "code" and control.name in here]


def carried_query(state: dict[str, object], view: str, to_view: str) -> str:
    """The query of a link from `view` to `to_view`: its carried_names, as `state` has them."""
    carried = set(carried_names(view, to_view))
    return to_query({name: value for name, value in state.items() if name in carried}, to_view)


def form_html(view: str, *, escape: Callable[[str], str], groups: tuple[str, ...] = GROUPS) -> str:
    """The controls of `view` in `groups` (of GROUPS), a fieldset each, disabled until Python is ready.

    The code panel of the page has its own editor for "code". The pages place
    the "time" group under the picture and the others in the settings form.
    """
    legends = {"image": "Image", "process": "Noise schedule", "sampler": "Denoising", "time": "Time"}
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise ValueError(f"no such group of controls: {', '.join(sorted(unknown))}")
    parts = []
    for group in groups:
        members = [control for control in controls_for(view) if control.group == group]
        if not members:
            continue
        parts.append(f'<fieldset class="group group-{group}" data-group="{group}" disabled>'
                     f"<legend>{legends[group]}</legend>")
        for control in members:
            parts.append(_field_html(control, escape))
        parts.append("</fieldset>")
    return "\n".join(parts)


def _field_html(control: Control, escape: Callable[[str], str]) -> str:
    name = escape(control.name)
    described = f' aria-describedby="{name}-help"' if control.help else ""
    help_html = f'<small id="{name}-help" class="help">{escape(control.help)}</small>' if control.help else ""
    label = f'<label for="{name}">{escape(control.label)}</label>'
    if control.kind == "choice":
        options = "".join(
            f'<option value="{escape(value)}"{" selected" if value == control.default else ""}>{escape(text)}</option>'
            for value, text in zip(control.choices, control.labels))
        widget = f'<select id="{name}" name="{name}"{described}>{options}</select>'
    else:
        kind = control.widget or "number"
        widget = (f'<input id="{name}" name="{name}" type="{kind}" min="{_show(control.low)}" '
                  f'max="{_show(control.high)}" step="{_show(control.step)}" value="{_show(control.default)}"'
                  f'{described}>')
    if control.widget == "range":
        return (f'<div class="field field-range" data-control="{name}">{label}{widget}'
                f'<output id="{name}-value" for="{name}" aria-hidden="true"></output>{help_html}</div>')
    return f'<div class="field" data-control="{name}">{label}{widget}{help_html}</div>'


def _told(control: Control, value: object) -> str:
    """A value as a notice tells it: a choice by the label its menu shows (“Linear (DDPM)”, not linear)."""
    return control.labels[control.choices.index(value)] if control.choices else _show(value)


def _show(value: object) -> str:
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def _short(text: str, limit: int = 40) -> str:
    """Echo untrusted input safely short; the page inserts it as text, never as HTML."""
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
