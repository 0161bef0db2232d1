"""Schedules: invariants for every name and T, exactness at T = 1000, published values."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lab import schedules
from diffusion_lab.schedules import SCHEDULE_NAMES, Schedule, from_betas, get_schedule

SETTINGS = settings(database=None, deadline=None, max_examples=60)
ARRAYS = ("betas", "alphas", "alpha_bars", "alpha_bars_prev", "snr", "log_snr", "beta_tildes")


def check_invariants(s: Schedule, name: str, T: int) -> None:
    assert s.name == name and s.num_steps == T
    for field in ARRAYS:
        array = getattr(s, field)
        assert array.shape == (T,) and array.dtype == np.float64, field
        assert not array.flags.writeable, field
    assert np.all(s.betas > 0) and np.all(s.betas < 1)
    assert np.all(np.diff(s.alpha_bars) < 0), "alpha_bar must decrease strictly"
    np.testing.assert_allclose(s.alphas, 1 - s.betas, rtol=0, atol=0)
    np.testing.assert_allclose(s.alpha_bars, np.cumprod(1 - s.betas), rtol=1e-14)
    assert s.alpha_bars_prev[0] == 1.0
    np.testing.assert_array_equal(s.alpha_bars_prev[1:], s.alpha_bars[:-1])
    np.testing.assert_allclose(s.snr, s.alpha_bars / (1 - s.alpha_bars), rtol=1e-12)
    np.testing.assert_allclose(s.log_snr, np.log(s.snr), rtol=1e-12, atol=1e-12)
    assert s.alpha_bars[-1] < 0.01, f"{name} T={T}: last step is not noise"


@SETTINGS
@given(name=st.sampled_from(SCHEDULE_NAMES), T=st.integers(2, 1000))
def test_invariants_hypothesis(name, T):
    check_invariants(get_schedule(name, T), name, T)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_last_step_is_noise_for_every_T(name):
    worst = max(float(get_schedule.__wrapped__(name, T).alpha_bars[-1]) for T in range(2, 1001))
    assert worst < 0.01


@pytest.mark.parametrize("T", [2, 3, 7, 10, 50, 999, 1000])
@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_invariants_fixed(name, T):
    check_invariants(get_schedule(name, T), name, T)


def test_read_only():
    s = get_schedule("linear", 10)
    with pytest.raises(ValueError):
        s.betas[0] = 0.5
    with pytest.raises(AttributeError):
        s.name = "other"


def _reference_betas(name, T=1000):
    """diffusers' definitions, written out independently (python loops, math module)."""
    if name == "linear":
        return [1e-4 + (0.02 - 1e-4) * i / (T - 1) for i in range(T)]
    if name == "scaled_linear":
        a, b = math.sqrt(0.00085), math.sqrt(0.012)
        return [(a + (b - a) * i / (T - 1)) ** 2 for i in range(T)]
    if name == "sigmoid":
        return [1 / (1 + math.exp(-(-6 + 12 * i / (T - 1)))) * (0.02 - 1e-4) + 1e-4 for i in range(T)]
    f = lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    return [min(1 - f((i + 1) / T) / f(i / T), 0.999) for i in range(T)]


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_exact_at_1000(name):
    np.testing.assert_allclose(get_schedule(name, 1000).betas, _reference_betas(name), rtol=1e-12, atol=0)


def test_published_linear_alpha_bar():
    # Ho et al. 2020 linear schedule: alpha_bar_T ~ 4.04e-5 (e.g. diffusers' DDPMScheduler)
    assert get_schedule("linear", 1000).alpha_bars[999] == pytest.approx(4.036e-5, rel=1e-3)
    assert get_schedule("scaled_linear", 1000).alpha_bars[999] == pytest.approx(4.66e-3, rel=1e-3)


@pytest.mark.parametrize("name", ["linear", "scaled_linear", "sigmoid"])
@pytest.mark.parametrize("T", [20, 100, 250, 500])
def test_small_T_rule_scales_beta_ends(name, T):
    """Documented rule: the ends of beta scale by 1000/T (improved DDPM); clip at 0.999."""
    ref, s = get_schedule(name, 1000), get_schedule(name, T)
    scale = 1000 / T
    assert s.betas[0] == pytest.approx(min(scale * ref.betas[0], 0.999), rel=1e-9)
    assert s.betas[-1] == pytest.approx(min(scale * ref.betas[-1], 0.999), rel=1e-9)
    assert s.betas.sum() >= 0.999 * ref.betas.sum()  # as much total noise as at T = 1000
    assert np.all(s.betas <= 0.999)


def test_cosine_is_nichol_dhariwal_alpha_bar():
    T = 100
    f = lambda t: math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    s = get_schedule("cosine", T)
    expected = np.array([f(t + 1) / f(0) for t in range(T - 1)])
    np.testing.assert_allclose(s.alpha_bars[:-1], expected, rtol=1e-12)


def test_posterior_quantities():
    s = get_schedule("cosine", 50)
    t = 20
    beta_tilde = (1 - s.alpha_bars[t - 1]) / (1 - s.alpha_bars[t]) * s.betas[t]
    assert s.beta_tildes[t] == pytest.approx(beta_tilde, rel=1e-14)
    assert s.beta_tildes[0] == 0.0


@pytest.mark.parametrize("bad", [("nope", 10), ("linear", 1), ("linear", 1001), ("linear", 0), ("linear", 10.5)])
def test_validation(bad):
    with pytest.raises(ValueError, match="schedule|num_steps"):
        get_schedule(*bad)


def test_from_betas_validation():
    with pytest.raises(ValueError):
        from_betas([0.1, 1.0])
    with pytest.raises(ValueError):
        from_betas([])
    assert from_betas([0.1, 0.2]).alpha_bars[-1] == pytest.approx(0.9 * 0.8)
    with pytest.raises(ValueError, match="t = 2 is 1e-18"):
        from_betas([0.1, 1e-18])  # 1 - beta == 1
    with pytest.raises(ValueError, match="t = 308"):
        from_betas([0.9] * 400)  # alpha_bar = 0.1 ** t underflows
    tiny = from_betas([0.5] * 1000)  # alpha_bar_T = 2 ** -1000 still holds, and so do SNR and its log
    assert np.all(np.isfinite(tiny.log_snr)) and tiny.alpha_bars[-1] > 0
    assert schedules.lost_from(tiny) == 90  # 0.5 ** 90 < 1e-27: x_0 is under the rounding of the noise


def test_no_named_schedule_loses_x0_to_rounding():
    for name in SCHEDULE_NAMES:
        for T in (2, 3, 10, 1000):
            assert schedules.lost_from(get_schedule(name, T)) is None


def test_below_alpha_bar_lost_a_jump_to_the_clean_end_misses_by_a_grey_level():
    """ALPHA_BAR_LOST marks where float64's rounding of the noise in x_t, divided by sqrt(alpha_bar), passes a
    grey level (2 / 255): an oracle's one DDIM jump from there lands a grey level or more off, from 100 times
    above it well within one."""
    from diffusion_lab import denoisers, forward, images, samplers

    x0 = images.make_image("checkerboard", 64)
    noise = np.random.default_rng(0).standard_normal(x0.shape)

    def jump_error(alpha_bar_T: float) -> float:
        steps = 100
        schedule = from_betas(np.full(steps, -math.expm1(math.log(alpha_bar_T) / steps)))
        x_T = forward.q_sample(x0, steps - 1, noise, schedule)
        eps = denoisers.oracle_noise(x_T, steps - 1, x0, schedule)
        return float(np.abs(samplers.ddim_step(x_T, steps - 1, -1, eps, schedule) - x0).max())

    grey_level = 2 / 255
    assert jump_error(100 * schedules.ALPHA_BAR_LOST) < grey_level / 3
    assert jump_error(schedules.ALPHA_BAR_LOST / 10) > grey_level
