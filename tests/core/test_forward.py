"""Forward process: closed form (eq. 4) against many iterated chains (eq. 2)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lab.forward import q_mean_std, q_sample, q_step, trajectory
from diffusion_lab.schedules import SCHEDULE_NAMES, get_schedule

SETTINGS = settings(database=None, deadline=None, max_examples=25)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_chains_match_closed_form(name):
    """4000 chains on a 3x3 image: per-pixel mean and variance of x_t match q(x_t | x0)."""
    schedule = get_schedule(name, 100)
    x0 = np.linspace(-1, 1, 9).reshape(3, 3)
    chains = np.broadcast_to(x0, (4000, 3, 3))
    n = chains.shape[0]
    for t, x_t in enumerate(trajectory(chains, schedule, np.random.default_rng(1))):
        if t not in (0, 10, 50, 99):
            continue
        mean, std = q_mean_std(x0, t, schedule)
        var = std**2
        # 6 standard errors: mean se = std/sqrt(n), variance se = var*sqrt(2/(n-1))
        np.testing.assert_array_less(np.abs(x_t.mean(axis=0) - mean), 6 * std / np.sqrt(n))
        np.testing.assert_array_less(np.abs(x_t.var(axis=0, ddof=1) - var), 6 * var * np.sqrt(2 / (n - 1)))


def test_chain_is_not_trivially_close():
    """The statistical test above can fail: a wrong schedule is detected."""
    schedule, wrong = get_schedule("linear", 100), get_schedule("cosine", 100)
    x0 = np.ones((4000, 2))
    x_t = list(trajectory(x0, schedule, np.random.default_rng(2)))[30]
    mean, _ = q_mean_std(x0[0], 30, wrong)
    assert np.min(np.abs(x_t.mean(axis=0) - mean)) > 6 / np.sqrt(4000)


@SETTINGS
@given(name=st.sampled_from(SCHEDULE_NAMES), T=st.integers(2, 1000), seed=st.integers(0, 2**32 - 1))
def test_one_step_equals_closed_form_at_t0(name, T, seed):
    """At t = 0 the Markov step and the closed form coincide (alpha_bar_0 = 1 - beta_0)."""
    s = get_schedule(name, T)
    rng = np.random.default_rng(seed)
    x0, noise = rng.uniform(-1, 1, (4, 4)), rng.standard_normal((4, 4))
    np.testing.assert_allclose(q_step(x0, 0, noise, s), q_sample(x0, 0, noise, s), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(name=st.sampled_from(SCHEDULE_NAMES), seed=st.integers(0, 2**32 - 1), t=st.integers(1, 49))
def test_two_steps_compose(name, seed, t):
    """q_step of q_sample(t-1) has the mean and variance of q_sample(t): noise combines in quadrature."""
    s = get_schedule(name, 50)
    rng = np.random.default_rng(seed)
    x0, n1, n2 = rng.uniform(-1, 1, 5), rng.standard_normal(5), rng.standard_normal(5)
    x_t = q_step(q_sample(x0, t - 1, n1, s), t, n2, s)
    a, b = np.sqrt(1 - s.betas[t]), np.sqrt(s.betas[t])
    combined = (a * np.sqrt(1 - s.alpha_bars[t - 1]) * n1 + b * n2) / np.sqrt(1 - s.alpha_bars[t])
    np.testing.assert_allclose(x_t, q_sample(x0, t, combined, s), rtol=1e-12, atol=1e-12)


def test_same_seed_same_arrays():
    s = get_schedule("linear", 30)
    x0 = np.zeros((8, 8))
    a = list(trajectory(x0, s, np.random.default_rng(7)))
    b = list(trajectory(x0, s, np.random.default_rng(7)))
    c = list(trajectory(x0, s, np.random.default_rng(8)))
    assert len(a) == 30
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[-1], c[-1])


def test_trajectory_uses_standard_normal_in_order():
    """Same stream as drawing rng.standard_normal(shape) once per step (what Pyodide reproduces)."""
    s = get_schedule("cosine", 5)
    x0 = np.full((2, 3), 0.5)
    rng = np.random.default_rng(3)
    x, expected = x0, []
    for t in range(5):
        x = np.sqrt(1 - s.betas[t]) * x + np.sqrt(s.betas[t]) * rng.standard_normal((2, 3))
        expected.append(x)
    got = list(trajectory(x0, s, np.random.default_rng(3)))
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g, e, rtol=1e-15, atol=1e-15)


def test_q_mean_std():
    s = get_schedule("linear", 1000)
    mean, std = q_mean_std(np.ones((2, 2)), 999, s)
    assert isinstance(std, float) and std == pytest.approx(np.sqrt(1 - 4.036e-5), rel=1e-6)
    np.testing.assert_allclose(mean, np.sqrt(s.alpha_bars[999]))
