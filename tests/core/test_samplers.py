"""Samplers: DDPM (Ho et al. 2020, eq. 7, 11) and DDIM (Song et al. 2021, eq. 12) against hand-written formulas."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lab import samplers
from diffusion_lab.denoisers import Oracle
from diffusion_lab.forward import q_sample
from diffusion_lab.samplers import ddim_step, ddpm_step, posterior_mean_variance, sample, timesteps
from diffusion_lab.schedules import SCHEDULE_NAMES, from_betas, get_schedule

SETTINGS = settings(database=None, deadline=None, max_examples=25)


def hand(schedule, t):
    """beta_t, alpha_t, alpha_bar_t, alpha_bar_{t-1} recomputed from the betas alone."""
    betas = np.array(schedule.betas)
    alpha_bars = np.cumprod(1 - betas)
    return betas[t], 1 - betas[t], alpha_bars[t], (alpha_bars[t - 1] if t > 0 else 1.0)


def random_state(seed, shape=(4, 5)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal(shape), rng.standard_normal(shape)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("t", [1, 7, 49])
def test_ddpm_step_is_eq7(name, t):
    s = get_schedule(name, 50)
    x_t, eps, z = random_state(t)
    beta, alpha, ab, ab_prev = hand(s, t)
    x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    mu = math.sqrt(ab_prev) * beta / (1 - ab) * x0 + math.sqrt(alpha) * (1 - ab_prev) / (1 - ab) * x_t
    beta_tilde = (1 - ab_prev) / (1 - ab) * beta
    np.testing.assert_allclose(ddpm_step(x_t, t, eps, s), mu, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ddpm_step(x_t, t, eps, s, noise=z), mu + math.sqrt(beta_tilde) * z, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        ddpm_step(x_t, t, eps, s, noise=z, variance="fixed_large"), mu + math.sqrt(beta) * z, rtol=1e-10, atol=1e-10
    )
    # eq. 11: mu = (x_t - beta / sqrt(1 - alpha_bar) eps) / sqrt(alpha)
    np.testing.assert_allclose(mu, (x_t - beta / math.sqrt(1 - ab) * eps) / math.sqrt(alpha), rtol=1e-10, atol=1e-10)
    mean, var = posterior_mean_variance(x0, x_t, t, s)
    np.testing.assert_allclose(mean, mu, rtol=1e-10, atol=1e-10)
    assert var == pytest.approx(beta_tilde, rel=1e-12)


def test_ddpm_t0_has_no_noise_and_returns_x0():
    s = get_schedule("linear", 20)
    x_t, eps, z = random_state(0)
    x0 = samplers.predict_x0(x_t, 0, eps, s)
    for variance in samplers.VARIANCES:
        np.testing.assert_allclose(ddpm_step(x_t, 0, eps, s, noise=z, variance=variance), x0, rtol=1e-12, atol=1e-12)
    assert posterior_mean_variance(x0, x_t, 0, s)[1] == 0.0


def test_ddpm_clip():
    s = get_schedule("linear", 20)
    x_t, eps, _ = random_state(1)
    x0 = np.clip(samplers.predict_x0(x_t, 5, eps, s), -1, 1)
    assert np.abs(samplers.predict_x0(x_t, 5, eps, s)).max() > 1  # the clip matters here
    np.testing.assert_allclose(ddpm_step(x_t, 5, eps, s, clip=True), posterior_mean_variance(x0, x_t, 5, s)[0])


def test_ddpm_bad_variance():
    s = get_schedule("linear", 20)
    with pytest.raises(ValueError, match="variance"):
        ddpm_step(np.zeros(2), 3, np.zeros(2), s, variance="learned")


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
@pytest.mark.parametrize("t", [1, 10, 99])
def test_ddim_eta1_is_ddpm_posterior(name, t):
    """Song et al. 2021, eq. 16: eta = 1 and t_prev = t-1 gives sigma^2 = beta_tilde and the DDPM step."""
    s = get_schedule(name, 100)
    x_t, eps, z = random_state(t)
    noisy = ddim_step(x_t, t, t - 1, eps, s, eta=1.0, noise=z)
    mean = ddim_step(x_t, t, t - 1, eps, s, eta=1.0)
    sigma = (noisy - mean) / z
    np.testing.assert_allclose(sigma**2, s.beta_tildes[t], rtol=1e-8)
    np.testing.assert_allclose(noisy, ddpm_step(x_t, t, eps, s, noise=z), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", SCHEDULE_NAMES)
def test_ddim_coefficients_of_short_schedules_match_exact_arithmetic(name):
    """sigma (eq. 16), the direction sqrt(1 - alpha_bar_prev - sigma^2) and the signal of every DDIM jump the
    pages can take on short schedules, against the same formulas in exact rational arithmetic of the betas.
    There alpha_bar falls to 1e-21 at once (betas clipped at 0.999), where a difference of two 1 - alpha_bar
    cancels: sigma had come out 0 and the direction 1 (sigmoid, T = 19, eta = 1)."""
    from fractions import Fraction

    for T in (2, 3, 5, 10, 13, 19, 40):
        schedule = get_schedule(name, T)
        alpha_bars = [Fraction(1)]
        for beta in schedule.betas:
            alpha_bars.append(alpha_bars[-1] * (1 - Fraction(float(beta))))  # [k]: alpha_bar at index k - 1
        jumps = {(int(t), int(t_prev)) for steps in {1, 2, 5, T} for spacing in ("leading", "trailing")
                 for ts in [timesteps(T, min(steps, T), spacing).tolist()] for t, t_prev in zip(ts, ts[1:] + [-1])}
        for t, t_prev in sorted(jumps):
            for eta in (0.0, 0.5, 1.0):
                ab, ab_prev = alpha_bars[t + 1], alpha_bars[t_prev + 1]
                sigma2 = Fraction(eta) ** 2 * (1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev)
                c = samplers.ddim_coefficients(t, t_prev, schedule, eta)
                where = (name, T, t, t_prev, eta)
                assert c.sigma == pytest.approx(math.sqrt(sigma2), rel=1e-12, abs=1e-300), where
                assert c.direction == pytest.approx(math.sqrt(1 - ab_prev - sigma2), rel=1e-12), where
                assert c.signal == pytest.approx(math.sqrt(ab_prev), rel=1e-12), where
                if eta == 1.0 and t_prev == t - 1:  # eq. 16: DDPM's posterior variance
                    assert c.sigma == pytest.approx(math.sqrt(schedule.beta_tildes[t]), rel=1e-12), where


def test_ddim_beyond_eta_1_has_no_direction_left_but_works():
    """eta > 1 (the core allows it; the pages stop at 1): sigma^2 passes 1 - alpha_bar_prev, the direction is 0."""
    c = samplers.ddim_coefficients(40, 10, get_schedule("linear", 50), eta=3.0)
    assert c.direction == 0.0 and c.sigma > 0


def test_ddim_eta0_formula_and_determinism():
    s = get_schedule("cosine", 100)
    x_t, eps, z = random_state(5)
    _, _, ab, _ = hand(s, 60)
    ab_prev = hand(s, 40)[2]
    x0 = (x_t - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    expected = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
    np.testing.assert_allclose(ddim_step(x_t, 60, 40, eps, s), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(ddim_step(x_t, 60, 40, eps, s, noise=z), ddim_step(x_t, 60, 40, eps, s))
    np.testing.assert_allclose(ddim_step(x_t, 60, -1, eps, s), x0, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("t, t_prev, eta", [(5, 5, 0.0), (5, 6, 0.0), (5, -2, 0.0), (100, 3, 0.0), (5, 3, -0.5)])
def test_ddim_validation(t, t_prev, eta):
    with pytest.raises(ValueError):
        ddim_step(np.zeros(2), t, t_prev, np.zeros(2), get_schedule("linear", 100), eta=eta)


@SETTINGS
@given(name=st.sampled_from(SCHEDULE_NAMES), T=st.integers(2, 1000), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_parametrisation_round_trips(name, T, data, seed):
    s = get_schedule(name, T)
    t = data.draw(st.integers(0, T - 1))
    rng = np.random.default_rng(seed)
    x0, eps = rng.uniform(-1, 1, (3, 3)), rng.standard_normal((3, 3))
    x_t = q_sample(x0, t, eps, s)
    tol = dict(rtol=1e-6, atol=1e-6 / float(s.sqrt_alpha_bars[t]))  # division by sqrt(alpha_bar) loses digits
    np.testing.assert_allclose(samplers.predict_x0(x_t, t, eps, s), x0, **tol)
    np.testing.assert_allclose(samplers.eps_from_x0(x_t, t, x0, s), eps, rtol=1e-6, atol=1e-6 / float(s.sqrt_one_minus_alpha_bars[t]))
    v = samplers.v_from_eps(x_t, t, eps, s)
    np.testing.assert_allclose(v, s.sqrt_alpha_bars[t] * eps - s.sqrt_one_minus_alpha_bars[t] * x0, **tol)
    np.testing.assert_allclose(samplers.eps_from_v(x_t, t, v, s), eps, **tol)
    np.testing.assert_allclose(samplers.x0_from_v(x_t, t, v, s), x0, **tol)


ORACLE_RUNS = [("ddpm", "fixed_small", None, "leading"), ("ddpm", "fixed_large", None, "leading")] + [
    ("ddim", "fixed_small", steps, spacing) for steps in (1, 7, 50) for spacing in ("leading", "trailing")
]


@SETTINGS
@given(
    run=st.sampled_from(ORACLE_RUNS),
    name=st.sampled_from(SCHEDULE_NAMES),
    T=st.sampled_from([50, 200, 1000]),
    seed=st.integers(0, 2**32 - 1),
    eta=st.sampled_from([0.0, 1.0]),
)
def test_oracle_reverse_chain_recovers_x0(run, name, T, seed, eta):
    sampler, variance, steps, spacing = run
    s = get_schedule(name, T)
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, (6, 6))
    x_T = 3 * rng.standard_normal((6, 6))  # any x_T, not only a q_sample
    out = list(sample(x_T, Oracle(x0, s), s, rng, sampler=sampler, variance=variance, steps=steps, eta=eta, spacing=spacing))
    assert len(out) == (T if sampler == "ddpm" else steps)
    np.testing.assert_allclose(out[-1][1], x0, rtol=0, atol=1e-6)
    assert out[0][0] == timesteps(T, len(out), spacing)[0]


def test_one_ddim_jump_from_x_T_misses_x0_by_the_rounding_of_x_T_over_sqrt_alpha_bar_T():
    """README's bound: within 1e-9, or about 4e-16 / sqrt(alpha_bar_T) where that is more (alpha_bar_T below
    about 2e-13: linear T = 7..18, sigmoid T = 9..20), at most 1.6e-5 (sigmoid, T = 18)."""
    from diffusion_lab.images import make_image

    x0 = make_image("gradient", 64)
    worst = {}
    for name in SCHEDULE_NAMES:
        for T in range(2, 41):
            s = get_schedule(name, T)
            for seed in range(3):
                x_T = np.random.default_rng(seed).standard_normal(x0.shape)  # the reverse page's start
                *_, (_, final, _) = sample(x_T, Oracle(x0, s), s, np.random.default_rng(seed), sampler="ddim",
                                           steps=1, spacing="trailing")
                error = float(np.abs(final - x0).max())
                assert error <= max(1e-9, 5e-16 / math.sqrt(s.alpha_bars[-1])), (name, T, seed)
                worst[name, T] = max(worst.get((name, T), 0.0), error)
    assert {key for key, error in worst.items() if error > 1e-9} <= {
        *(("linear", T) for T in range(7, 19)), *(("sigmoid", T) for T in range(9, 21))}
    assert max(worst.values()) < 2e-5


@pytest.mark.parametrize("beta", [6e-17, 1e-16, 1e-12])
def test_tiny_betas_keep_the_oracle_exact(beta):
    # 1 - (1 - beta) is not beta in float64 (6e-17 comes back as 1.1e-16): computed so, the last DDPM step
    # took 0.54 x0_hat. The schedule's 1 - alpha_bar is exact to rounding, and every sampler lands on x0.
    s = from_betas(np.full(1000, beta))
    assert s.posterior_coef_x0[0] == 1.0 and s.one_minus_alpha_bars[0] == pytest.approx(beta, rel=1e-15)
    x0 = np.linspace(-1, 1, 36).reshape(6, 6)
    for options in ({}, {"variance": "fixed_large"}, {"sampler": "ddim", "steps": 3, "spacing": "trailing"},
                    {"sampler": "ddim", "steps": 50, "eta": 1.0}):
        rng = np.random.default_rng(0)
        *_, (_, final, _) = sample(rng.standard_normal((6, 6)), Oracle(x0, s), s, rng, **options)
        np.testing.assert_allclose(final, x0, rtol=0, atol=1e-9)
    c = samplers.ddim_coefficients(1, 0, s, eta=1.0)  # one step back: DDIM's sigma is DDPM's sqrt(beta_tilde)
    assert c.sigma == pytest.approx(math.sqrt(s.beta_tildes[1]), rel=1e-12)


def test_sample_yields_t_state_and_x0_and_consumes_noise_only_when_needed():
    s = get_schedule("linear", 30)
    x0 = np.zeros((4, 4))
    rng = np.random.default_rng(0)
    steps = list(sample(np.ones((4, 4)), Oracle(x0, s), s, rng, sampler="ddim", steps=10, eta=0.0))
    assert [t for t, _, _ in steps] == list(timesteps(30, 10))
    assert rng.bit_generator.state == np.random.default_rng(0).bit_generator.state  # eta = 0 draws nothing
    rng = np.random.default_rng(0)
    list(sample(np.ones((4, 4)), Oracle(x0, s), s, rng))
    reference = np.random.default_rng(0)
    for _ in range(29):  # DDPM: one draw per step except t = 0
        reference.standard_normal((4, 4))
    assert rng.bit_generator.state == reference.bit_generator.state


def test_ddpm_sample_matches_manual_loop():
    s = get_schedule("cosine", 40)
    rng = np.random.default_rng(4)
    x0, x_T = rng.uniform(-1, 1, (3, 3)), rng.standard_normal((3, 3))
    oracle = Oracle(x0, s)
    got = list(sample(x_T, oracle, s, np.random.default_rng(9), variance="fixed_large"))
    rng, x = np.random.default_rng(9), x_T
    for i, t in enumerate(range(39, -1, -1)):
        noise = rng.standard_normal(x.shape) if t > 0 else None
        x = ddpm_step(x, t, oracle.predict_noise(x, t), s, variance="fixed_large", noise=noise)
        np.testing.assert_array_equal(got[i][1], x)


def test_timesteps_diffusers_definitions():
    T, n = 1000, 50
    np.testing.assert_array_equal(timesteps(T, n, "leading"), np.arange(0, 1000, 20)[::-1])
    np.testing.assert_array_equal(timesteps(T, n, "trailing"), np.arange(999, 0, -20))
    np.testing.assert_array_equal(timesteps(T, n, "linspace"), np.round(np.linspace(0, 999, 50))[::-1])
    np.testing.assert_array_equal(timesteps(1000, 3, "trailing"), [999, 666, 332])  # round(1000 - k 1000/3) - 1
    np.testing.assert_array_equal(timesteps(10, 3, "leading"), [6, 3, 0])


@SETTINGS
@given(T=st.integers(1, 1000), data=st.data(), spacing=st.sampled_from(samplers.SPACINGS))
def test_timesteps_properties(T, data, spacing):
    n = data.draw(st.integers(1, T))
    ts = timesteps(T, n, spacing)
    assert ts.dtype == np.int64 and ts.shape == (n,)
    assert np.all(np.diff(ts) < 0) and ts.min() >= 0 and ts.max() <= T - 1
    if spacing == "trailing":
        assert ts[0] == T - 1
    if spacing == "leading":
        assert ts[-1] == 0


@pytest.mark.parametrize(
    "args", [(1000, 0, "leading"), (10, 11, "leading"), (10, 5, "middle"), (0, 1, "leading")]
)
def test_timesteps_validation(args):
    with pytest.raises(ValueError):
        timesteps(*args)


@pytest.mark.parametrize(
    "kwargs",
    [dict(sampler="euler"), dict(sampler="ddpm", steps=10), dict(variance="learned"), dict(sampler="ddim", steps=0),
     dict(sampler="ddim", eta=-1.0), dict(sampler="ddim", spacing="middle")],
)
def test_sample_validation_is_eager(kwargs):
    s = get_schedule("linear", 20)
    with pytest.raises(ValueError):
        sample(np.zeros(2), Oracle(np.zeros(2), s), s, np.random.default_rng(0), **kwargs)
