"""What the learning panel takes from the core: coefficients, the student's schedule code, export files."""
import inspect
import io
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusion_lab import denoisers, export, forward, hooks, images, samplers, schedules
from diffusion_lab.schedules import SCHEDULE_NAMES, get_schedule


# -- coefficients: the numbers the equations show are the ones the steps use ------------------------

@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("t", [0, 9, 49])
def test_forward_coefficients_are_what_q_sample_and_q_step_apply(name, t):
    s = get_schedule(name, 50)
    c = forward.coefficients(t, s)
    ab = float(np.prod(1 - s.betas[: t + 1]))
    assert c.alpha_bar == pytest.approx(ab, rel=1e-12) and c.beta == s.betas[t]
    assert (c.signal, c.noise) == pytest.approx((math.sqrt(ab), math.sqrt(1 - ab)), rel=1e-12)
    assert c.snr == pytest.approx(ab / (1 - ab), rel=1e-10)
    x0, eps = np.random.default_rng(t).standard_normal((2, 3, 4))
    np.testing.assert_array_equal(forward.q_sample(x0, t, eps, s), c.signal * x0 + c.noise * eps)
    np.testing.assert_array_equal(forward.q_step(x0, t, eps, s), c.step_signal * x0 + c.step_noise * eps)


@pytest.mark.parametrize("variance", samplers.VARIANCES)
@pytest.mark.parametrize("t", [0, 1, 30])
def test_ddpm_coefficients_give_the_step(variance, t):
    s = get_schedule("cosine", 40)
    c = samplers.ddpm_coefficients(t, s, variance)
    x_t, eps, z = np.random.default_rng(t).standard_normal((3, 5, 5))
    x0 = (x_t - c.eps_scale * eps) / c.x0_scale
    expected = c.mean_x0 * x0 + c.mean_xt * x_t + (c.sigma * z if t > 0 else 0)
    np.testing.assert_allclose(samplers.ddpm_step(x_t, t, eps, s, variance=variance, noise=z), expected,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("t, t_prev, eta", [(39, 29, 0.0), (20, 10, 0.5), (5, -1, 1.0)])
def test_ddim_coefficients_give_the_step(t, t_prev, eta):
    s = get_schedule("linear", 40)
    c = samplers.ddim_coefficients(t, t_prev, s, eta)
    x_t, eps, z = np.random.default_rng(t).standard_normal((3, 5, 5))
    x0 = (x_t - c.eps_scale * eps) / c.x0_scale
    expected = c.signal * x0 + c.direction * eps + c.sigma * z
    np.testing.assert_array_equal(samplers.ddim_step(x_t, t, t_prev, eps, s, eta=eta, noise=z), expected)
    assert c.signal ** 2 + c.direction ** 2 + c.sigma ** 2 == pytest.approx(1.0)


# -- the student's schedule code ------------------------------------------------------------------

@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_each_template_is_the_schedules_own_code_and_gives_the_same_betas(name):
    source = hooks.schedule_template(name)
    assert source.startswith("def betas(T: int) -> np.ndarray:\n")
    assert source.split("\n", 1)[1] in Path(schedules.__file__).read_text()  # the body, as schedules.py has it
    for T in (2, 3, 10, 999, 1000):
        np.testing.assert_array_equal(hooks.schedule_from_source(source, T).betas, get_schedule(name, T).betas)


def test_betas_as_a_list_or_with_a_zero_imaginary_part_are_taken_as_they_are():
    for returned in ("[0.01] * T", "np.full(T, 0.01 + 0j)", "np.array([0.01] * T, dtype=object)"):
        schedule = hooks.schedule_from_source(f"def betas(T):\n    return {returned}\n", 50)
        np.testing.assert_array_equal(schedule.betas, np.full(50, 0.01))


def test_a_constant_beta_hook_is_from_betas():
    s = hooks.schedule_from_source("def betas(T):\n    return np.full(T, 0.01)\n", 100)
    np.testing.assert_allclose(s.alpha_bars, 0.99 ** np.arange(1, 101), rtol=1e-12)
    assert s.name == "custom"


@pytest.mark.parametrize("source, words", [
    ("def betas(T):\n    return np.full(T, 0.01\n", ["Line 2", "SyntaxError"]),
    ("def betas(T):\n    return np.full(T, 0.01) / nothing\n", ["Line 2", "NameError", "nothing"]),
    ("def betas(T):\n    return np.full(T + 1, 0.01)\n", ["T = 50 numbers", "(51,)"]),
    ("def betas(T):\n    return np.full(T, 1.0)\n", ["between 0 and 1", "t = 1"]),
    ("def betas(T):\n    b = np.full(T, 0.01)\n    b[7] = np.nan\n    return b\n", ["finite", "t = 8"]),
    ("def betas(T):\n    return 'abc'\n", ["numbers", "str"]),
    ("def schedule(T):\n    return np.full(T, 0.01)\n", ["function named betas"]),
    ("   \n", ["empty"]),
    ("def betas(T):\n    return betas(T)\n", ["RecursionError"]),
    ("def betas(T):\n    while True:\n        pass\n", ["Line ", "stopped after 2 s", "endless loop"]),
    ("while True:\n    pass\n", ["Line ", "stopped after 2 s"]),  # at the top level, when the code is run
    ("def betas(T):\n    return np.array([b for b in iter(lambda: 0.01, None)])\n", ["Line 2", "stopped"]),
    ("def betas(T):\n    exit()\n", ["Line 2", "SystemExit"]),
    ("def betas(T):\n    print(“T”)\n    return np.full(T, 0.01)\n", ["Line 2", "a curly quote", "straight"]),  # exit() ends the student's code, not the page
    ("def betas(T):\n    x = input('beta? ')\n    return np.full(T, 0.01)\n",  # no prompt in a page, nor a hang
     ["Line 2", "input() cannot ask for a value here"]),
    ("def betas(T):\n    b = np.full(T, 0.01)\n", ["returned nothing", "return"]),  # no return
    ("def betas(T):\n    return np.full(T, 0.01 + 0.5j)\n", ["real numbers", "t = 1", "0.01+0.5j"]),
    ("def betas(T):\n    return [0.01] * (T - 1) + [None]\n", ["numbers", "t = 50 is None"]),
    ("def betas(T):\n    return [0.01] * 7 + ['0.02'] + [0.01] * (T - 8)\n", ["numbers", "t = 8 is str '0.02'"]),
    ("raise KeyboardInterrupt\n", ["Line 1", "KeyboardInterrupt"]),
    # in (0, 1), but past float64: 1 - beta rounds to 1 (alpha_bar_1 = 1, SNR infinite), or alpha_bar reaches 0
    ("def betas(T):\n    b = np.full(T, 0.01)\n    b[0] = 1e-20\n    return b\n", ["t = 1 is 1e-20", "too small"]),
    ("def betas(T):\n    return np.full(T, 1e-17)\n", ["t = 1 is 1e-17", "rounds to 1"]),
    ("def betas(T):\n    return np.full(T, 0.9999999)\n", ["alpha_bar", "t = 44", "smaller betas"]),
    ("def betas(T):\n    return np.ma.masked_greater(np.linspace(0.01, 0.2, T), 0.1)\n", ["t = 25 is masked"]),
])
def test_bad_code_gets_a_message_naming_the_problem(source, words):
    with pytest.raises(hooks.HookError) as caught:
        hooks.schedule_from_source(source, 50)
    for word in words:
        assert word in caught.value.summary
    assert "hooks.py" not in caught.value.detail  # the traceback shows the student's code only
    assert "TooLong" not in caught.value.summary + caught.value.detail  # no names of ours
    assert not caught.value.summary.endswith(".")  # the page puts it in a sentence of its own


def test_a_traceback_shows_the_lines_of_the_code_that_failed_though_other_code_loaded_since():
    """The reverse view loads the student's predict_noise, then their betas(T), and runs the chain (QA35 F1)."""
    failing = hooks.noise_template().replace("    return", "    if t == 500:\n        return 1 / 0\n    return", 1)
    predict = hooks.noise_from_source(failing)
    hooks.schedule_from_source("def betas(T):\n    b = np.full(T, 0.01)\n    return b\n", 1000)
    schedule, x0 = get_schedule("linear", 1000), np.zeros((4, 4))
    with pytest.raises(hooks.HookError) as caught:
        predict(np.zeros((4, 4)), 500, x0, schedule)
    line = failing.splitlines().index("        return 1 / 0") + 1
    assert caught.value.summary == f"Line {line}: ZeroDivisionError: division by zero"
    assert f'line {line}, in predict_noise\n    return 1 / 0\n' in caught.value.detail


@pytest.mark.parametrize("returned, words", [
    ("[10**(10 * t) for t in range(T)]", "beta at t = 32 is 1000000"),  # past float64: OverflowError (QA33 F1)
    ("[0.01] * (T - 1) + [10**400]", "beta at t = 50 is 1000000"),
])
def test_betas_that_no_float_can_hold_or_that_fail_to_be_read_get_the_panels_message(returned, words):
    source = (f"class Broken:\n    def __array__(self, *args, **kwargs):\n        raise KeyError('its own bug')\n"
              f"def betas(T):\n    return {returned}\n")
    with pytest.raises(hooks.HookError) as caught:
        hooks.schedule_from_source(source, 50)
    assert caught.value.summary.startswith("betas(50) returned something unusable") and words in caught.value.summary


BROKEN = ("class Broken:\n    def __array__(self, *args, **kwargs):\n        raise KeyError('its own bug')\n"
          "    def __iter__(self):\n        raise KeyError('its own bug')\n"
          "class Endless:\n    def __array__(self, *args, **kwargs):\n        while True:\n            pass\n"
          "    def __iter__(self):\n        while True:\n            pass\n")


@pytest.mark.parametrize("hook", ["betas", "predict_noise", "step"])
@pytest.mark.parametrize("returned, summary, lines", [  # the lines of its __array__ or its __iter__
    ("Broken()", "KeyError: 'its own bug'", {3, 5}),
    ("Endless()", f"stopped after {hooks.TIME_LIMIT_S:g} s; is it an endless loop?", {8, 9, 11, 12}),
])
def test_what_the_code_returned_is_read_as_the_code_itself_runs(hook, returned, summary, lines):
    """Reading a result runs its own __array__ or __iter__: a failure there is the student's, with its line, and a
    loop there is stopped, not the tab frozen (QA36 F4, F6)."""
    schedule, x = get_schedule("linear", 10), np.zeros((4, 4))
    with pytest.raises(hooks.HookError) as caught:
        if hook == "betas":
            hooks.schedule_from_source(f"{BROKEN}def betas(T):\n    return {returned}\n", 10)
        elif hook == "predict_noise":
            hooks.noise_from_source(f"{BROKEN}def predict_noise(x_t, t, x0, schedule):\n    return {returned}\n")(
                x, 5, x, schedule)
        else:
            hooks.step_from_source(f"{BROKEN}def step(x_t, t, eps, schedule, sigma, noise, clip):\n"
                                   f"    return {returned}\n")(x, 5, x, schedule, 0.1, None, False)
    line, said = caught.value.summary.removeprefix("Line ").split(": ", 1)
    assert said == summary and int(line) in lines
    assert f'File "<your {hook}>", line {line}' in caught.value.detail


def test_a_traceback_quotes_the_code_in_use_not_a_later_run_that_failed():
    """An editor's later Run of other code that failed left its lines under the name of the code in use (QA36 F2)."""
    failing = hooks.noise_template().replace("    return", "    if t == 500:\n        return 1 / 0\n    return", 1)
    predict = hooks.noise_from_source(failing)
    with pytest.raises(hooks.HookError):
        hooks.noise_from_source("# first\n# second\n# third\n# fourth\n# fifth\n# sixth\n# seventh\n" * 2 + "x = y\n")
    with pytest.raises(hooks.HookError) as caught:
        predict(np.zeros((4, 4)), 500, np.zeros((4, 4)), get_schedule("linear", 1000))
    assert "return 1 / 0" in caught.value.detail and "seventh" not in caught.value.detail


def test_code_that_lowers_the_recursion_limit_is_told_so_and_leaves_the_limit_as_it_was():
    """The page's own calls need their depth: a limit of 10 left behind broke every later change (QA33 F5)."""
    limit, low = sys.getrecursionlimit(), len(inspect.stack()) + 20  # room for their code to start, not to run
    with pytest.raises(hooks.HookError) as caught:
        hooks.schedule_from_source(f"import sys\ndef betas(T):\n    sys.setrecursionlimit({low})\n"
                                   "    return np.full(T, 0.01) + (0 if T < 2 else 0 * betas(T - 1).sum())\n", 50)
    assert caught.value.summary == f"RecursionError: the code set sys.setrecursionlimit({low}), too low for the page"
    assert sys.getrecursionlimit() == limit

    hooks.schedule_from_source("import sys\nsys.setrecursionlimit(5000)\ndef betas(T):\n    return np.full(T, 0.01)\n", 50)
    assert sys.getrecursionlimit() == limit


def test_a_step_returning_an_endless_iterator_is_refused_not_run_for_ever():
    step = hooks.step_from_source("import itertools\ndef step(x_t, t, eps, schedule, sigma, noise, clip):\n"
                                  "    return itertools.repeat(x_t)\n")
    x = np.zeros((4, 4))
    with pytest.raises(hooks.HookError) as caught:
        step(x, 5, x, get_schedule("linear", 10), 0.1, None, False)
    assert "must return two arrays" in caught.value.summary


def test_the_time_limit_names_the_slow_line_not_the_next():
    """A single slow call cannot be stopped; the limit names it once it returns, not the line after it."""
    source = "import time\ndef betas(T):\n    b = np.full(T, 0.01)\n    time.sleep(2.2)\n    return b * 1.0\n"
    with pytest.raises(hooks.HookError) as caught:
        hooks.schedule_from_source(source, 50)
    assert caught.value.summary.startswith("Line 4: stopped after 2 s")
    assert 'line 4, in betas\n    time.sleep(2.2)\nStopped here' in caught.value.detail
    assert "return b" not in caught.value.detail


def test_a_single_call_past_the_limit_is_said_to_have_run_that_long(monkeypatch):
    """The page could not stop it midway: the message gives the time it froze the page, not the limit."""
    monkeypatch.setattr(hooks, "TIME_LIMIT_S", 0.2)
    source = "import time\ndef betas(T):\n    b = np.full(T, 0.01)\n    time.sleep(0.8)\n    return b\n"
    with pytest.raises(hooks.HookError) as caught:
        hooks.schedule_from_source(source, 50)
    summary = caught.value.summary
    said = re.match(r"Line 4: stopped after (\d+\.\d) s, most of them in one call on that line", summary)
    assert said and 0.8 <= float(said[1]) < 1.6, summary  # the time it took: a busy machine's sleep may overrun
    assert caught.value.timed_out
    with pytest.raises(hooks.HookError) as caught:
        hooks.schedule_from_source("def betas(T):\n    while True:\n        pass\n", 50)
    assert caught.value.summary.endswith(": stopped after 0.2 s; is it an endless loop?")
    assert caught.value.timed_out
    with pytest.raises(hooks.HookError) as caught:
        hooks.schedule_from_source("def betas(T):\n    return np.full(T, 2.0)\n", 50)
    assert not caught.value.timed_out


def test_the_time_limit_stops_only_the_students_code_and_leaves_no_trace_function():
    def tracer(frame, event, arg):  # a debugger's or coverage's trace function is put back afterwards
        return None

    sys.settrace(tracer)
    try:
        start = time.monotonic()
        with pytest.raises(hooks.HookError):
            hooks.schedule_from_source("def betas(T):\n    while True:\n        T += 1\n", 50)
        assert hooks.TIME_LIMIT_S <= time.monotonic() - start < hooks.TIME_LIMIT_S + 1.0
        assert sys.gettrace() is tracer
    finally:
        sys.settrace(None)
    slow_but_finishing = "def betas(T):\n    b = [0.01] * T\n    for i in range(200_000):\n        b[i % T] += 0\n    return np.array(b)\n"
    assert hooks.schedule_from_source(slow_but_finishing, 50).betas[0] == 0.01


# -- export -------------------------------------------------------------------------------------------

# -- the step hook ----------------------------------------------------------------------------------

def chain(update=None, variance="fixed_small", predict=None, guard="", **options):
    """The states of a 50-step oracle chain (DDPM unless `options` say otherwise) on a 16x16 disc, seed 3, with
    the student's step `update` and noise prediction `predict` if any, and a runaway blamed on `guard`, as the
    reverse view runs it."""
    schedule = get_schedule("cosine", 50)
    rng = np.random.default_rng(3)
    x_T = rng.standard_normal((16, 16))
    disc = images.make_image("disc", 16)
    oracle = denoisers.Oracle(disc, schedule) if predict is None else hooks.Oracle(predict, disc, schedule)
    steps = samplers.sample(x_T, oracle, schedule, rng, variance=variance, update=update, **options)
    return [x for _, x, _ in (hooks.guarded(steps, guard) if guard else steps)]


def test_the_step_template_is_the_samplers_own_code_and_gives_the_same_chain():
    source = hooks.step_template()
    assert source.startswith("def step(x_t, t, eps, schedule, sigma, noise, clip):")
    assert source.split("\n", 1)[1] == inspect.getsource(samplers._ddpm_update).split("\n", 1)[1]
    for variance in samplers.VARIANCES:
        for ours, original in zip(chain(hooks.step_from_source(source), variance), chain(variance=variance)):
            np.testing.assert_array_equal(ours, original)


def test_a_step_that_changes_x_t_in_place_leaves_the_callers_x_T():
    zeroing = hooks.step_template().replace("    return x_prev, x0", "    x_t[...] = 0\n    return x_prev, x0")
    schedule = get_schedule("cosine", 50)
    x_T = np.random.default_rng(3).standard_normal((16, 16))
    kept = x_T.copy()
    oracle = denoisers.Oracle(images.make_image("disc", 16), schedule)
    list(samplers.sample(x_T, oracle, schedule, np.random.default_rng(3), update=hooks.step_from_source(zeroing)))
    np.testing.assert_array_equal(x_T, kept)  # the reverse .npz saves it as the chain's start


def test_a_step_without_noise_lands_on_the_posterior_mean():
    quiet = hooks.step_template().replace("x_prev += sigma * noise", "pass")
    schedule = get_schedule("cosine", 50)
    oracle_x0 = images.make_image("disc", 16)
    x_t = np.random.default_rng(0).standard_normal((16, 16))
    eps = samplers.eps_from_x0(x_t, 30, oracle_x0, schedule)
    x_prev, x0 = hooks.step_from_source(quiet)(x_t, 30, eps, schedule, 0.1, np.ones_like(x_t), False)
    mean, _ = samplers.posterior_mean_variance(oracle_x0, x_t, 30, schedule)
    np.testing.assert_allclose(x_prev, mean, atol=1e-12)
    np.testing.assert_allclose(x0, oracle_x0, atol=1e-12)
    assert not np.array_equal(chain(hooks.step_from_source(quiet))[-2], chain()[-2])


@pytest.mark.parametrize("body, words", [
    ("return x_t", ["t = 50", "two arrays", "not one array of shape (16, 16)"]),  # not "ndarray of 16"
    ("return x_t[1:], x_t", ["t = 50", "x_{t-1}", "(15, 16)", "(16, 16)"]),
    ("return x_t, x_t * np.inf", ["t = 50", "x0_pred", "not finite"]),
    ("return (1 / 0 if t == 20 else x_t), x_t", ["Line 2", "ZeroDivisionError"]),  # fails halfway down
    ("if t == 20:\n        raise SystemExit\n    return x_t, x_t", ["Line 3", "SystemExit"]),  # partway down
    ("raise KeyboardInterrupt", ["Line 2", "KeyboardInterrupt"]),
    ("return x_t + 0.5j, x_t", ["t = 50", "complex"]),
    ("return 'a', 'b'", ["t = 50", "x_{t-1} as str 'a'", "array of numbers"]),  # the item, not the tuple
    ("return x_t, {'a': x_t}", ["x0_pred as dict", "array of numbers"]),
    ("return [x_t, x_t, x_t]", ["two arrays", "not list of 3"]),
    ("return x_t * 1.5, x_t", ["running away", "from t = "]),  # finite, but 1e176 by the end: refused on the way
])
def test_a_bad_step_gets_a_message_naming_the_step(body, words):
    source = f"def step(x_t, t, eps, schedule, sigma, noise, clip):\n    {body}\n"
    with pytest.raises(hooks.HookError) as caught:
        chain(hooks.step_from_source(source), guard=hooks.STEP_HOOK)
    for word in words:
        assert word in caught.value.summary


@pytest.mark.parametrize("eta, spacing", [(0.0, "leading"), (1.0, "trailing")])
def test_the_ddim_template_is_the_samplers_own_code_and_gives_the_same_chain(eta, spacing):
    source = hooks.ddim_template()
    assert source.startswith("def ddim_step(x_t, t, t_prev, eps, schedule, eta, noise, clip):")
    assert source.split("\n", 1)[1] == inspect.getsource(samplers._ddim_update).split("\n", 1)[1]
    options = {"sampler": "ddim", "steps": 7, "eta": eta, "spacing": spacing}
    for ours, original in zip(chain(hooks.step_from_source(source, hooks.DDIM_HOOK), **options), chain(**options)):
        np.testing.assert_array_equal(ours, original)


def test_a_ddim_step_that_jumps_straight_to_x0_pred_lands_on_the_oracles_target_at_once():
    """Drop the direction term and the noise: each jump lands on x0_pred itself, which the oracle knows."""
    straight = "def ddim_step(x_t, t, t_prev, eps, schedule, eta, noise, clip):\n" \
               "    x0 = (x_t - np.sqrt(1 - schedule.alpha_bars[t]) * eps) / np.sqrt(schedule.alpha_bars[t])\n" \
               "    return x0, x0\n"
    states = chain(hooks.step_from_source(straight, hooks.DDIM_HOOK), sampler="ddim", steps=5)
    np.testing.assert_allclose(states[0], images.make_image("disc", 16), atol=1e-9)


@pytest.mark.parametrize("body, words", [
    ("return x_t", ["ddim_step(…) at t = ", "two arrays, (x_{t_prev}, x0_pred)"]),
    ("return x_t[1:], x_t", ["x_{t_prev} of shape (15, 16)"]),
    ("return x_t * 1e7, x_t", ["running away"]),
    ("return (1 / 0 if t_prev == -1 else x_t), x_t", ["Line 2", "ZeroDivisionError"]),  # the last jump
])
def test_a_bad_ddim_step_gets_a_message_naming_it(body, words):
    source = f"def ddim_step(x_t, t, t_prev, eps, schedule, eta, noise, clip):\n    {body}\n"
    with pytest.raises(hooks.HookError) as caught:
        chain(hooks.step_from_source(source, hooks.DDIM_HOOK), sampler="ddim", steps=5, guard=hooks.DDIM_HOOK)
    for word in words:
        assert word in caught.value.summary
    assert caught.value.hook == hooks.DDIM_HOOK


def test_a_ddim_step_is_tried_on_a_noisy_jump_and_the_last():
    noisy_only = "def ddim_step(x_t, t, t_prev, eps, schedule, eta, noise, clip):\n" \
                 "    assert noise is None, 'noise'\n    return x_t, x_t\n"
    with pytest.raises(hooks.HookError, match="AssertionError: noise"):
        hooks.try_ddim(hooks.step_from_source(noisy_only, hooks.DDIM_HOOK), get_schedule("linear", 50), (4, 4))
    last_only = "def ddim_step(x_t, t, t_prev, eps, schedule, eta, noise, clip):\n" \
                "    assert t_prev >= 0, 'last'\n    return x_t, x_t\n"
    with pytest.raises(hooks.HookError, match="AssertionError: last"):
        hooks.try_ddim(hooks.step_from_source(last_only, hooks.DDIM_HOOK), get_schedule("linear", 50), (4, 4))
    hooks.try_ddim(hooks.step_from_source(hooks.ddim_template(), hooks.DDIM_HOOK), get_schedule("linear", 50), (4, 4))


# -- the noise hook: the oracle's prediction ----------------------------------------------------------

SAMPLERS = ({"sampler": "ddpm"}, {"sampler": "ddpm", "variance": "fixed_large"},
            {"sampler": "ddim", "steps": 7, "eta": 0.0}, {"sampler": "ddim", "steps": 7, "eta": 1.0})


@pytest.mark.parametrize("options", SAMPLERS)
def test_the_noise_template_is_the_oracles_own_code_and_gives_the_same_chain(options):
    source = hooks.noise_template()
    assert source.startswith("def predict_noise(x_t, t, x0, schedule):")
    assert source.split("\n", 1)[1] == inspect.getsource(denoisers.oracle_noise).split("\n", 1)[1]
    for ours, original in zip(chain(predict=hooks.noise_from_source(source), **options), chain(**options)):
        np.testing.assert_array_equal(ours, original)


def test_a_prediction_of_no_noise_makes_ddim_scale_x_T_up():
    """With eps = 0, each DDIM step (eta = 0) multiplies x_t by sqrt(alpha_bar_prev / alpha_bar_t): the chain
    ends at x_T / sqrt(alpha_bar_T), the noise blown up, not a picture."""
    none = "def predict_noise(x_t, t, x0, schedule):\n    return np.zeros_like(x_t)\n"
    states = chain(predict=hooks.noise_from_source(none), sampler="ddim", steps=5, spacing="trailing")
    x_T = np.random.default_rng(3).standard_normal((16, 16))  # as chain draws it
    np.testing.assert_allclose(states[-1], x_T / get_schedule("cosine", 50).sqrt_alpha_bars[-1], rtol=1e-12)


def test_a_prediction_ten_percent_too_large_still_lands_near_the_target():
    """The oracle's x0 corrects the error at each step: the result is close, not exact (the lesson: a biased
    noise estimate leaves a biased picture)."""
    larger = hooks.noise_template().replace("    return (", "    return 1.1 * (")
    disc = images.make_image("disc", 16)
    exact = chain()[-1]
    biased = chain(predict=hooks.noise_from_source(larger))[-1]
    assert images.psnr(exact, disc) > 100 > images.psnr(biased, disc) > 30


@pytest.mark.parametrize("body, words", [
    ("return 0", ["t = 50", "eps of shape ()", "(16, 16)"]),
    ("return x_t[1:]", ["t = 50", "eps of shape (15, 16)"]),
    ("return x_t * np.nan", ["t = 50", "not finite"]),
    ("return 'a'", ["t = 50", "eps as str 'a'", "array of numbers"]),
    ("return x_t + 1j", ["complex"]),
    ("return -(x_t - np.sqrt(schedule.alpha_bars[t]) * x0) / np.sqrt(1 - schedule.alpha_bars[t])",
     ["eps with a value of", "run away"]),  # the wrong sign: the chain runs away, refused on the way
    ("return 1 / 0 if t == 20 else x_t", ["Line 2", "ZeroDivisionError"]),  # fails halfway down
])
def test_a_bad_noise_prediction_gets_a_message_naming_it(body, words):
    source = f"def predict_noise(x_t, t, x0, schedule):\n    {body}\n"
    with pytest.raises(hooks.HookError) as caught:
        chain(predict=hooks.noise_from_source(source))
    for word in words:
        assert word in caught.value.summary
    assert caught.value.hook == hooks.NOISE_HOOK  # the page tells which editor's code stopped the chain


def test_the_students_prediction_cannot_change_the_target_it_is_given():
    """x0 is a read-only copy: `x0 *= 0.99` fails with a message instead of rewriting the picture the page
    measures the result against (it had said "identical to the target" of a picture 40% fainter)."""
    disc = images.make_image("disc", 16)
    kept = disc.copy()
    fainter = "def predict_noise(x_t, t, x0, schedule):\n    x0 *= 0.99\n    return x_t\n"
    schedule = get_schedule("cosine", 50)
    with pytest.raises(hooks.HookError, match="Line 2: ValueError: output array is read-only"):
        hooks.try_noise(hooks.noise_from_source(fainter), schedule, disc)
    with pytest.raises(hooks.HookError, match="read-only"):
        hooks.Oracle(hooks.noise_from_source(fainter), disc, schedule).predict_noise(np.zeros((16, 16)), 3)
    np.testing.assert_array_equal(disc, kept)


def test_a_runaway_is_blamed_on_the_noise_prediction_that_drives_it():
    """A prediction just under MAX_NOISE runs the chain away through samplers.py's own step, or a copy of it:
    the blame goes to the prediction, whichever step is in use (the step only follows the noise it is given)."""
    large = "def predict_noise(x_t, t, x0, schedule):\n    return np.full_like(x_t, 5e5)\n"
    for update in (None, hooks.step_from_source(hooks.step_template())):
        with pytest.raises(hooks.HookError, match="running away") as caught:
            chain(update, predict=hooks.noise_from_source(large), guard=hooks.NOISE_HOOK)
        assert caught.value.hook == hooks.NOISE_HOOK


def test_a_chain_tells_which_hook_failed():
    breaking = "def step(x_t, t, eps, schedule, sigma, noise, clip):\n    return 1 / 0\n"
    with pytest.raises(hooks.HookError) as caught:
        chain(hooks.step_from_source(breaking), predict=hooks.noise_from_source(hooks.noise_template()))
    assert caught.value.hook == hooks.STEP_HOOK


def test_the_noise_prediction_is_tried_at_both_ends_of_the_schedule():
    late = "def predict_noise(x_t, t, x0, schedule):\n    assert t < 40, t\n    return x_t\n"
    with pytest.raises(hooks.HookError, match="AssertionError: 49"):
        hooks.try_noise(hooks.noise_from_source(late), get_schedule("linear", 50), np.zeros((4, 4)))
    hooks.try_noise(hooks.noise_from_source(hooks.noise_template()), get_schedule("linear", 50), np.zeros((4, 4)))


def test_frame_indices_are_evenly_spaced_with_both_ends():
    assert list(export.frame_indices(5)) == [0, 1, 2, 3, 4]
    ks = export.frame_indices(1001, 101)
    assert len(ks) == 101 and ks[0] == 0 and ks[-1] == 1000 and set(np.diff(ks)) == {10}
    assert export.frame_indices(5).dtype == ks.dtype == np.int64  # the same in a .npz from CPython or Pyodide


def test_pictures_are_enlarged_into_square_blocks_until_256_px():
    digit = np.arange(64, dtype=np.uint8).reshape(8, 8)
    big = export.enlarged(digit)
    assert big.shape == (256, 256) and big.dtype == np.uint8
    np.testing.assert_array_equal(big[::32, ::32], digit)
    np.testing.assert_array_equal(big[31::32, 31::32], digit)  # each pixel fills its whole 32 x 32 block
    assert export.enlarged(np.zeros((100, 60), dtype=np.uint8)).shape == (300, 180)  # n = 3: the longer side
    assert export.enlarged(np.zeros((5, 6, 4), dtype=np.uint8)).shape == (215, 258, 4)  # RGBA
    assert export.enlarged(np.zeros((256, 256), dtype=np.uint8)).shape == (256, 256)  # big enough already
    with pytest.raises(ValueError, match="at least 1x1"):
        export.enlarged(np.zeros((0, 4), dtype=np.uint8))


def test_png_gif_and_npz_read_back():
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (12, 9), dtype=np.uint8) for _ in range(4)]
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(export.png(frames[0])))), frames[0])
    rgba = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(export.png(rgba)))), rgba)
    gif = Image.open(io.BytesIO(export.gif(frames)))
    assert gif.n_frames == 4 and gif.info["loop"] == 0
    for k, frame in enumerate(frames):
        gif.seek(k)
        np.testing.assert_array_equal(np.asarray(gif.convert("L")), frame)
    arrays = np.load(io.BytesIO(export.npz({"seed": 3}, frames=np.stack(frames), t=7)))
    np.testing.assert_array_equal(arrays["frames"], np.stack(frames))
    assert int(arrays["t"]) == 7 and json.loads(str(arrays["settings"])) == {"seed": 3}
    with pytest.raises(ValueError):
        export.png(np.zeros((3, 3), dtype=np.float64))


def test_the_npz_is_written_in_pieces_and_holds_what_savez_would():
    """The page writes a chain's arrays a piece at a time, answering between them: the file is numpy's own."""
    rng = np.random.default_rng(1)
    arrays = {"states": rng.standard_normal((600, 32, 32)).astype(np.float32),  # 2.4 MB: three pieces
              "frames": rng.integers(0, 256, (50, 32, 32), dtype=np.uint8), "t": np.int64(7), "x_t_from": "chain",
              "fortran": np.asfortranarray(rng.standard_normal((5, 7))),
              "strided": np.arange(60.0).reshape(6, 10)[::2, ::3], "none": np.zeros((0, 3)), "flag": True}
    buffer = io.BytesIO()
    shares = list(export.npz_written(buffer, {"seed": 3}, **arrays))
    assert len(shares) >= 4 and shares == sorted(shares) and shares[-1] == 1.0  # three before the end
    loaded = np.load(io.BytesIO(buffer.getvalue()))  # allow_pickle=False
    assert sorted(loaded.files) == sorted([*arrays, "settings"])
    for name, value in arrays.items():
        value = np.asarray(value)
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape, name
        np.testing.assert_array_equal(loaded[name], value)
    assert json.loads(str(loaded["settings"])) == {"seed": 3}
    assert buffer.getvalue() != b"" and export.npz({"seed": 3}, **arrays)[:4] == b"PK\x03\x04"
