"""What the student can change: a small named function, given as source text, run and checked.

The pages show the core's own functions and let the student edit a copy named
after its hook, for example ``betas(T)``, whose original is the selected
schedule's function in schedules.py (``schedules.linear_betas`` renamed). The
copy runs with exec in a namespace holding ``np``, ``math`` and the UPPER_CASE
constants of the module it came from. Its result is checked before anything
uses it; an error becomes a HookError naming the line of the student's code,
with a traceback of their code only. (exec is not a sandbox: the pages run
shared code only after the student has read it and pressed Run.)

A page runs the student's code on its only thread, so an endless loop would
freeze the tab for good. While their code runs, a trace function watches the
lines of the student's code only and stops it after TIME_LIMIT_S with a HookError.
(A single numpy or built-in call cannot be stopped this way: it is stopped
once it returns, and the message says how long it ran.)
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import linecache
import math
import re
import sys
import textwrap
import time
import traceback

import numpy as np

from . import denoisers, samplers, schedules

FILENAME = "<your {hook}>"  # what tracebacks call the student's code of a hook; each version of it is compiled
# under a name of its own ("<your betas>#1f3a9c02", from its text), so that a traceback quotes that code's lines, not
# those of code loaded since (the same code loaded again, at another T, keeps its name); tracebacks leave out the #
SCHEDULE_HOOK = "betas"
STEP_HOOK = "step"
DDIM_HOOK = "ddim_step"
NOISE_HOOK = "predict_noise"
MAX_STATE = 1e6  # a chain's state beyond this has run away (the states stay within a few units)
MAX_NOISE = 1e6  # so has a predicted noise beyond this (eps is a standard normal draw: a few units)
TIME_LIMIT_S = 2.0  # the student's code is stopped after this long (an endless loop, most likely)
ONE_CALL_S = 0.5  # stopped this long past the limit, one call took the time (a loop is stopped at once)


class HookError(Exception):
    """The student's code did not work: ``summary`` in one line, ``detail`` the traceback of their code.

    The page puts the summary inside a sentence of its own, so it never ends in a full stop.
    """

    def __init__(self, summary: str, detail: str = ""):
        summary = summary.rstrip().removesuffix(".")
        super().__init__(summary)
        self.summary, self.detail = summary, detail or summary
        self.hook = ""  # which hook failed, when it failed inside a chain (set by the hook's wrapper)
        self.timed_out = False  # stopped for running past TIME_LIMIT_S


@contextlib.contextmanager
def blamed(hook_name: str):
    """Tag a HookError raised inside with the hook it came from (a chain runs several)."""
    try:
        yield
    except HookError as error:
        error.hook = error.hook or hook_name
        raise


def template(function, hook_name: str) -> str:
    """The source of ``function``, read from its .py file, renamed to ``hook_name``."""
    source = textwrap.dedent(inspect.getsource(function))
    return re.sub(rf"^def {re.escape(function.__name__)}\(", f"def {hook_name}(", source, count=1, flags=re.M)


def namespace(module) -> dict:
    """What a hook's code can use: np, math and the module's public UPPER_CASE constants (and an input()
    that says why it cannot ask: the page has no prompt, and in a terminal it would wait for ever)."""
    constants = {name: value for name, value in vars(module).items() if name.isupper() and not name.startswith("_")}
    return {"np": np, "math": math, **constants, "input": _no_input, "__name__": "your_code"}


def _no_input(prompt=""):
    raise RuntimeError("input() cannot ask for a value here: write the value into the code")


def load(source: str, hook_name: str, module, **helpers):
    """Run ``source`` and return the function it defines as ``hook_name``, or raise HookError.

    ``helpers`` are functions of ``module`` its original calls (the DDIM step's ddim_coefficients)."""
    if not source.strip():
        raise HookError(f"The code is empty: write a function {hook_name}(…), or press Reset")
    filename = f"{FILENAME.format(hook=hook_name)}#{hash(source) & 0xFFFFFFFF:08x}"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)  # lines in tracebacks
    scope = {**namespace(module), **helpers}
    try:
        code = compile(source, filename, "exec")
    except Exception as error:  # noqa: BLE001  (any error in their code is reported, never raised)
        raise _explain(error) from None
    call(exec, code, scope)  # the student's own code, see the docstring
    function = scope.get(hook_name)
    if not callable(function):
        raise HookError(f"The code must define a function named {hook_name}, as the original does")
    return function


class TooLong(Exception):
    """Raised inside the student's code by the trace function once TIME_LIMIT_S has passed."""


def call(function, *args):
    """``function(*args)``, stopped after TIME_LIMIT_S; an exception becomes a HookError about the student's lines."""
    started = time.monotonic()
    deadline = started + TIME_LIMIT_S
    running = {}  # frame -> the line of the student's code it is running (the one before a new line event)

    def watch(frame, event, arg):  # called at each new frame: follow the lines of the student's frames only
        return watch_lines if _is_students(frame.f_code.co_filename) else None

    def watch_lines(frame, event, arg):
        if time.monotonic() > deadline:  # the line that took the time is the one that ran before this event
            raise TooLong(running.get(frame, frame.f_lineno))
        if event == "line":
            running[frame] = frame.f_lineno
        return watch_lines

    previous = sys.gettrace()  # a debugger's or coverage's, put back afterwards
    depth = sys.getrecursionlimit()  # and the page's depth, which their code may change (and could not undo)
    sys.settrace(watch)
    try:
        return function(*args)
    except RecursionError as error:
        if sys.getrecursionlimit() < depth:
            raise HookError(f"RecursionError: the code set sys.setrecursionlimit({sys.getrecursionlimit()}), "
                            "too low for the page") from None
        if "recursion limit" in str(error):  # "cannot set the recursion limit to 10 at the recursion depth 40"
            raise _explain(error) from None
        raise HookError("RecursionError: the function calls itself without end") from None
    except TooLong as error:
        line = error.args[0]
        frames = [frame for frame in traceback.extract_tb(error.__traceback__) if _is_students(frame.filename)]
        if frames:  # the innermost frame stands at the next line: show the one that was running
            frames[-1] = traceback.FrameSummary(frames[-1].filename, line, frames[-1].name)
        frames = _as_shown(frames)
        ran = time.monotonic() - started
        if ran < TIME_LIMIT_S + ONE_CALL_S:
            summary = f"Line {line}: stopped after {TIME_LIMIT_S:g} s; is it an endless loop?"
        else:  # one call took the time, and nothing stops a call midway
            summary = (f"Line {line}: stopped after {ran:.{0 if ran >= 10 else 1}f} s, most of them in one call on "
                       "that line, which could not be stopped sooner")
        detail = "".join(["Traceback (your code only):\n", *traceback.StackSummary.from_list(frames).format(),
                          f"Stopped here: still running after {ran:.1f} s."])
        stopped = HookError(summary, detail)
        stopped.timed_out = True
        raise stopped from None
    except (Exception, SystemExit, KeyboardInterrupt) as error:  # noqa: BLE001  (exit() ends their code, not the page)
        raise _explain(error) from None
    finally:
        sys.settrace(previous)
        sys.setrecursionlimit(depth)


def _is_students(filename: str) -> bool:
    prefix, suffix = FILENAME.split("{hook}")
    return filename.startswith(prefix) and f"{suffix}#" in filename


def _shown_name(filename: str) -> str:
    return filename.partition("#")[0]


def _as_shown(frames) -> list[traceback.FrameSummary]:
    """The student's frames with their lines, under the name the student knows (without the version)."""
    return [traceback.FrameSummary(_shown_name(frame.filename), frame.lineno, frame.name, line=frame.line)
            for frame in frames]


def _read(read, *args):
    """``read(*args)``, or the TypeError or ValueError it raised, returned: run it through call(), for reading
    what the student's code returned runs their own __array__ or __iter__, which may loop or fail too."""
    try:
        return read(*args)
    except (TypeError, ValueError) as error:
        return error


def _explain(error: BaseException) -> HookError:
    if isinstance(error, SyntaxError) and _is_students(error.filename or ""):
        error.filename = _shown_name(error.filename)
        where = f"Line {error.lineno}: " if error.lineno else ""
        curly = re.search(r"invalid character '[“”‘’]'", error.msg or "")  # a phone's keyboard "corrected" a quote
        hint = " (a curly quote: Python needs straight ones, \" or ')" if curly else ""
        return HookError(f"{where}{type(error).__name__}: {error.msg}{hint}",
                         "".join(traceback.format_exception_only(error)).rstrip() + hint)
    report = traceback.TracebackException.from_exception(error)
    frames = _as_shown(frame for frame in report.stack if _is_students(frame.filename))
    where = f"Line {frames[-1].lineno}: " if frames else ""
    lines = ["Traceback (your code only):\n"] if frames else []
    lines += traceback.StackSummary.from_list(frames).format()
    lines += report.format_exception_only()
    message = str(error).splitlines()[0] if str(error) else ""
    return HookError(f"{where}{type(error).__name__}{': ' if message else ''}{message}", "".join(lines).rstrip())


# -- the schedule hook -------------------------------------------------------------

def schedule_template(name: str) -> str:
    """The editable original of the named schedule: its betas function from schedules.py, as ``betas(T)``."""
    return template(schedules.BETAS[name], SCHEDULE_HOOK)


def schedule_from_source(source: str, num_steps: int) -> schedules.Schedule:
    """The Schedule of the student's ``betas(T)`` at T = num_steps, or HookError saying what is wrong."""
    function = load(source, SCHEDULE_HOOK, schedules)
    betas = call(function, num_steps)
    if betas is None:
        raise HookError(f"{SCHEDULE_HOOK}({num_steps}) returned nothing: end it with return and the T numbers")
    try:
        checked = call(_read, schedules.check_betas, betas, num_steps)
        if isinstance(checked, Exception):
            raise checked
        return schedules.from_betas(checked, name="custom")
    except (TypeError, ValueError) as error:
        raise HookError(f"{SCHEDULE_HOOK}({num_steps}) returned something unusable: {error}") from None


# -- the step hooks: the DDPM and DDIM updates -------------------------------------------------------

def step_template() -> str:
    """The editable original of the DDPM step: samplers._ddpm_update as ``step(...)``."""
    return template(samplers._ddpm_update, STEP_HOOK)


def ddim_template() -> str:
    """The editable original of the DDIM step: samplers._ddim_update as ``ddim_step(...)``."""
    return template(samplers._ddim_update, DDIM_HOOK)


def step_from_source(source: str, hook_name: str = STEP_HOOK):
    """The student's step (``step`` for DDPM, ``ddim_step`` for DDIM), wrapped so that every call is timed and
    its result checked (else HookError).

    Usable as ``update`` of samplers.sample, as the original: (x_t, t, eps, schedule, sigma, noise, clip) or
    (x_t, t, t_prev, eps, schedule, eta, noise, clip) -> (x_{t_prev}, x0_pred).
    """
    helpers = {"ddim_coefficients": samplers.ddim_coefficients} if hook_name == DDIM_HOOK else {}
    function = load(source, hook_name, samplers, **helpers)
    state = "x_{t-1}" if hook_name == STEP_HOOK else "x_{t_prev}"

    @blamed(hook_name)
    def step(x_t, t, *rest):
        result = call(function, x_t, t, *rest)
        pair = None  # up to three of what it returned (an endless iterator would never end), read as their code
        if not isinstance(result, (str, bytes, dict)):
            pair = call(_read, lambda: tuple(itertools.islice(result, 3)))
            pair = None if isinstance(pair, Exception) else pair  # not iterable
        if isinstance(result, np.ndarray) or pair is None or len(pair) != 2:
            got = (f"one array of shape {result.shape}" if isinstance(result, np.ndarray) else
                   type(result).__name__ + ("" if pair is None else f" of {len(pair)}"))
            raise HookError(f"{hook_name}(…) at t = {t + 1} must return two arrays, ({state}, x0_pred), not {got}")
        x_prev = _returned(pair[0], hook_name, state, t, x_t.shape)  # how large: see guarded()
        x0 = _returned(pair[1], hook_name, "x0_pred", t, x_t.shape)  # may be large where alpha_bar is tiny
        return x_prev, x0

    return step


def guarded(chain, hook_name: str):
    """The steps of ``chain`` (as samplers.sample yields them), stopped with a HookError blamed on ``hook_name``
    once a state runs past MAX_STATE: with the student's code in it, the chain ran away. The page blames the
    noise prediction when the student's is in use (a step only follows the noise it is given), else the step.
    """
    for t, x, x0 in chain:
        largest = float(np.abs(x).max(initial=0.0))
        if not largest <= MAX_STATE:
            error = HookError(f"the chain is running away: the step from t = {t + 1} gave a value of {largest:.3g} "
                              "(pictures lie in [-1, 1] and the noise about them)")
            error.hook = hook_name
            raise error
        yield t, x, x0


def _returned(item, hook: str, name: str, t: int, shape: tuple, limit: float = math.inf, why: str = "") -> np.ndarray:
    """What the hook returned as `name`: float64 numbers of the picture's shape, finite and at most `limit` in
    size, or HookError saying which (and `why` the limit)."""
    array = _numbers(item, hook, name, t)
    said = f"{hook}(…) at t = {t + 1} returned {name}"
    if array.shape != shape:
        raise HookError(f"{said} of shape {array.shape}; the picture is {shape}")
    if not np.isfinite(array).all():
        raise HookError(f"{said} with a value that is not finite")
    largest = float(np.abs(array).max(initial=0.0))
    if largest > limit:
        raise HookError(f"{said} with a value of {largest:.3g}: {why}")
    return array


def _numbers(item, hook: str, name: str, t: int) -> np.ndarray:
    """What the hook returned as `name`, as float64, or HookError naming what it is instead."""
    array = call(_read, np.asarray, item)  # a ragged list gives a ValueError
    if isinstance(array, Exception):
        array = None
    if array is None or array.dtype.kind not in "biufc":
        raise HookError(f"{hook}(…) at t = {t + 1} returned {name} as {type(item).__name__} "
                        f"{schedules._short(item)}: it must be an array of numbers")
    if array.dtype.kind == "c" and array.imag.any():
        raise HookError(f"{hook}(…) at t = {t + 1} returned complex numbers: pictures are real")
    return np.real(array).astype(np.float64)


def try_step(step, schedule: schedules.Schedule, shape: tuple[int, ...]) -> None:
    """Call a DDPM step from step_from_source at the first and the last step on random arrays; HookError if it
    fails."""
    rng = np.random.default_rng(0)
    sigmas = samplers._ddpm_sigmas(schedule, "fixed_small")
    for t in (schedule.num_steps - 1, 0):
        x_t, eps, noise = rng.standard_normal((3, *shape))
        step(x_t, t, eps, schedule, float(sigmas[t]), noise if t > 0 else None, False)


def try_ddim(step, schedule: schedules.Schedule, shape: tuple[int, ...]) -> None:
    """Call a DDIM step from step_from_source on a jump from t = T with noise (eta = 1) and on the last jump to
    the clean end, on random arrays; HookError if it fails."""
    rng = np.random.default_rng(0)
    last = schedule.num_steps - 1
    for t, t_prev, eta in ((last, last // 2 if last > 0 else -1, 1.0), (0, -1, 0.0)):
        x_t, eps, noise = rng.standard_normal((3, *shape))
        step(x_t, t, t_prev, eps, schedule, eta, noise if eta > 0 and t_prev >= 0 else None, False)


# -- the noise hook: the oracle's prediction ---------------------------------------------------

def noise_template() -> str:
    """The editable original of the oracle's noise prediction: denoisers.oracle_noise as ``predict_noise(...)``."""
    return template(denoisers.oracle_noise, NOISE_HOOK)


def noise_from_source(source: str):
    """The student's ``predict_noise``, wrapped so that every call is timed and its result checked (else HookError).

    Called as (x_t, t, x0, schedule) -> eps, as denoisers.oracle_noise is; ``Oracle`` makes it a denoiser.
    """
    function = load(source, NOISE_HOOK, denoisers)

    @blamed(NOISE_HOOK)
    def predict_noise(x_t, t, x0, schedule):
        return _returned(call(function, x_t, t, x0, schedule), NOISE_HOOK, "eps", t, x_t.shape, MAX_NOISE,
                         "the noise is a standard normal draw, a few units at most, so the chain would run away")

    return predict_noise


class Oracle(denoisers.Denoiser):
    """The oracle with the student's noise prediction in place of denoisers.oracle_noise.

    Its x0_pred follows from the eps it predicts (eq. 15), as for any denoiser:
    the student's noise, not the x0 the oracle knows, decides the chain.
    """

    def __init__(self, predict_noise, x0: np.ndarray, schedule: schedules.Schedule):
        self.predict, self.x0, self.schedule = predict_noise, _read_only(x0), schedule

    def predict_noise(self, x_t: np.ndarray, t: int) -> np.ndarray:
        return self.predict(x_t, t, self.x0, self.schedule)


def _read_only(x0: np.ndarray) -> np.ndarray:
    """A read-only copy: ``x0 *= 0.9`` in the student's code fails with a message, and never changes the
    picture the page measures the result against."""
    x0 = np.array(x0, dtype=np.float64)
    x0.setflags(write=False)
    return x0


def try_noise(predict_noise, schedule: schedules.Schedule, x0: np.ndarray) -> None:
    """Call a prediction from noise_from_source at the last and the first step; HookError if it fails."""
    rng = np.random.default_rng(0)
    x0 = _read_only(x0)
    for t in (schedule.num_steps - 1, 0):
        x_t = schedule.sqrt_alpha_bars[t] * x0 + schedule.sqrt_one_minus_alpha_bars[t] * rng.standard_normal(x0.shape)
        predict_noise(x_t, t, x0, schedule)
