"""How a step is undone: DDPM (Ho et al. 2020) and DDIM (Song et al. 2021) reverse steps.

Symbols as in the papers: alpha_bar_t, beta_tilde_t = (1 - alpha_bar_{t-1}) /
(1 - alpha_bar_t) beta_t. Indices t = 0 .. T-1 (diffusers); alpha_bar at the
clean end (t = -1) is 1. ``eps`` is the predicted noise, ``v`` the velocity
v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho 2022, sec. 4).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .schedules import Schedule

if TYPE_CHECKING:
    from .denoisers import Denoiser

VARIANCES = ("fixed_small", "fixed_large")  # Ho et al. 2020, sec. 3.2: beta_tilde_t or beta_t
SAMPLERS = ("ddpm", "ddim")
SPACINGS = ("leading", "trailing", "linspace")  # diffusers; Lin et al. 2024, table 2


def predict_x0(x_t: np.ndarray, t: int, eps: np.ndarray, schedule: Schedule) -> np.ndarray:
    """Ho et al. 2020, eq. 15 (eq. 4 solved for x0): (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    return (x_t - schedule.sqrt_one_minus_alpha_bars[t] * eps) / schedule.sqrt_alpha_bars[t]


def eps_from_x0(x_t: np.ndarray, t: int, x0: np.ndarray, schedule: Schedule) -> np.ndarray:
    """Ho et al. 2020, eq. 4 solved for eps: (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t)."""
    return (x_t - schedule.sqrt_alpha_bars[t] * x0) / schedule.sqrt_one_minus_alpha_bars[t]


def v_from_eps(x_t: np.ndarray, t: int, eps: np.ndarray, schedule: Schedule) -> np.ndarray:
    """Salimans & Ho 2022, sec. 4: v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 = (eps - sqrt(1 - alpha_bar) x_t) / sqrt(alpha_bar)."""
    return (eps - schedule.sqrt_one_minus_alpha_bars[t] * x_t) / schedule.sqrt_alpha_bars[t]


def eps_from_v(x_t: np.ndarray, t: int, v: np.ndarray, schedule: Schedule) -> np.ndarray:
    """Salimans & Ho 2022, sec. 4: eps = sqrt(1 - alpha_bar) x_t + sqrt(alpha_bar) v."""
    return schedule.sqrt_one_minus_alpha_bars[t] * x_t + schedule.sqrt_alpha_bars[t] * v


def x0_from_v(x_t: np.ndarray, t: int, v: np.ndarray, schedule: Schedule) -> np.ndarray:
    """Salimans & Ho 2022, sec. 4: x0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v."""
    return schedule.sqrt_alpha_bars[t] * x_t - schedule.sqrt_one_minus_alpha_bars[t] * v


def posterior_mean_variance(
    x0: np.ndarray, x_t: np.ndarray, t: int, schedule: Schedule
) -> tuple[np.ndarray, float]:
    """Ho et al. 2020, eq. 6-7: q(x_{t-1} | x_t, x0) = N(mu_tilde, beta_tilde_t I)."""
    mean = schedule.posterior_coef_x0[t] * x0 + schedule.posterior_coef_xt[t] * x_t
    return mean, float(schedule.beta_tildes[t])


def _ddpm_sigmas(schedule: Schedule, variance: str) -> np.ndarray:
    if variance == "fixed_small":
        return np.sqrt(schedule.beta_tildes)
    if variance == "fixed_large":
        return np.sqrt(schedule.betas)
    raise ValueError(f"unknown variance {variance!r}; choose one of {', '.join(VARIANCES)}")


class DDPMCoefficients(NamedTuple):
    """The numbers of one DDPM step from index t, as the sampler uses them (Ho et al. 2020, eq. 4, 7)."""

    t: int
    alpha_bar: float  # alpha_bar_t
    alpha_bar_prev: float  # alpha_bar_{t-1} (1 at the clean end)
    beta: float  # beta_t
    eps_scale: float  # sqrt(1 - alpha_bar_t): x0 = (x_t - eps_scale eps) / x0_scale
    x0_scale: float  # sqrt(alpha_bar_t)
    mean_x0: float  # mu_tilde = mean_x0 x0 + mean_xt x_t (eq. 7)
    mean_xt: float
    sigma: float  # sqrt(beta_tilde_t) or sqrt(beta_t); no noise is added at t = 0


def ddpm_coefficients(t: int, schedule: Schedule, variance: str = "fixed_small") -> DDPMCoefficients:
    """The coefficients of the DDPM step x_t -> x_{t-1} at index t."""
    return DDPMCoefficients(
        t=int(t), alpha_bar=float(schedule.alpha_bars[t]), alpha_bar_prev=float(schedule.alpha_bars_prev[t]),
        beta=float(schedule.betas[t]), eps_scale=float(schedule.sqrt_one_minus_alpha_bars[t]),
        x0_scale=float(schedule.sqrt_alpha_bars[t]), mean_x0=float(schedule.posterior_coef_x0[t]),
        mean_xt=float(schedule.posterior_coef_xt[t]), sigma=float(_ddpm_sigmas(schedule, variance)[t]))


def _ddpm_update(x_t, t, eps, schedule, sigma, noise, clip):
    """One DDPM step given sigma_t; returns (x_{t-1}, x0_pred). In-place ops: this is the hot loop.

    x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)                     (eq. 15: eq. 4 for x0)
    x_prev = posterior_coef_xt x_t + posterior_coef_x0 x0 + sigma noise            (eq. 7, Algorithm 2)
    where noise ~ N(0, I) is None at index t = 0 (the paper's t = 1: nothing is added at the clean end).
    """
    x0 = np.multiply(eps, -schedule.sqrt_one_minus_alpha_bars[t])
    x0 += x_t
    x0 *= 1.0 / schedule.sqrt_alpha_bars[t]
    if clip:
        np.clip(x0, -1.0, 1.0, out=x0)
    x_prev = np.multiply(x_t, schedule.posterior_coef_xt[t])
    x_prev += schedule.posterior_coef_x0[t] * x0
    if noise is not None and t > 0 and sigma > 0:
        x_prev += sigma * noise
    return x_prev, x0


def ddpm_step(
    x_t: np.ndarray,
    t: int,
    eps: np.ndarray,
    schedule: Schedule,
    *,
    variance: str = "fixed_small",
    noise: np.ndarray | None = None,
    clip: bool = False,
) -> np.ndarray:
    """Ho et al. 2020, eq. 7 with x0 from eq. 4 (equivalently eq. 11): x_{t-1} ~ N(mu_tilde, sigma_t^2).

    sigma_t^2 = beta_tilde_t ("fixed_small") or beta_t ("fixed_large"); no noise
    is added at t = 0 or when ``noise`` is None. ``clip`` clips x0 to [-1, 1].
    """
    sigma = float(_ddpm_sigmas(schedule, variance)[t])
    return _ddpm_update(x_t, t, eps, schedule, sigma, noise, clip)[0]


class DDIMCoefficients(NamedTuple):
    """The numbers of one DDIM step from index t to t_prev (Song et al. 2021, eq. 12 and 16)."""

    t: int
    t_prev: int  # -1 is the clean end
    alpha_bar: float  # alpha_bar_t
    alpha_bar_prev: float  # alpha_bar_{t_prev} (1 at the clean end)
    eps_scale: float  # sqrt(1 - alpha_bar_t): x0 = (x_t - eps_scale eps) / x0_scale
    x0_scale: float  # sqrt(alpha_bar_t)
    signal: float  # sqrt(alpha_bar_prev): x_{t_prev} = signal x0 + direction eps + sigma z
    direction: float  # sqrt(1 - alpha_bar_prev - sigma^2)
    sigma: float  # eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev)


def ddim_coefficients(t: int, t_prev: int, schedule: Schedule, eta: float = 0.0) -> DDIMCoefficients:
    """The coefficients of the DDIM step x_t -> x_{t_prev}; the sampler computes with exactly these."""
    alpha_bar = float(schedule.alpha_bars[t])
    alpha_bar_prev = float(schedule.alpha_bars[t_prev]) if t_prev >= 0 else 1.0
    # 1 - alpha_bar as the schedule sums it, exact for tiny betas. No difference of two such numbers appears
    # below: near the noisy end of a short schedule both are within 1e-12 of 1, and it would cancel.
    noise, noise_prev = float(schedule.one_minus_alpha_bars[t]), (
        float(schedule.one_minus_alpha_bars[t_prev]) if t_prev >= 0 else 0.0)
    sigma = eta * math.sqrt(noise_prev / noise * _one_minus_ratio(schedule, t, t_prev))
    # 1 - alpha_bar_prev - sigma^2 = noise_prev ((1 - eta^2) + eta^2 alpha_bar noise_prev / (alpha_bar_prev noise)),
    # a sum of positive terms for eta <= 1 (beyond, sigma^2 can pass 1 - alpha_bar_prev and the direction is 0).
    kept = max((1.0 - eta * eta) + eta * eta * (alpha_bar * noise_prev) / (alpha_bar_prev * noise), 0.0)
    return DDIMCoefficients(
        t=int(t), t_prev=int(t_prev), alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev,
        eps_scale=math.sqrt(noise), x0_scale=math.sqrt(alpha_bar), signal=math.sqrt(alpha_bar_prev),
        direction=math.sqrt(noise_prev * kept), sigma=sigma)


def _one_minus_ratio(schedule: Schedule, t: int, t_prev: int) -> float:
    """1 - alpha_bar_t / alpha_bar_{t_prev}, the noise one DDIM jump adds: 1 - prod (1 - beta_s) over
    t_prev < s <= t, summed term by term (beta_s times the product before it) as the schedule sums 1 - alpha_bar."""
    betas = schedule.betas[t_prev + 1:t + 1]
    before = np.cumprod(np.concatenate(([1.0], schedule.alphas[t_prev + 1:t])))
    return float(np.cumsum(before * betas)[-1])


def _ddim_update(x_t, t, t_prev, eps, schedule, eta, noise, clip):
    """One DDIM step; returns (x_{t_prev}, x0_pred)."""
    c = ddim_coefficients(t, t_prev, schedule, eta)
    x0 = (x_t - c.eps_scale * eps) / c.x0_scale
    if clip:
        x0 = np.clip(x0, -1.0, 1.0)  # eps is kept, as diffusers (use_clipped_model_output=False)
    x_prev = c.signal * x0 + c.direction * eps
    if noise is not None and c.sigma > 0:
        x_prev += c.sigma * noise
    return x_prev, x0


def _check_ddim(t: int, t_prev: int, eta: float, schedule: Schedule) -> None:
    if not 0 <= t < schedule.num_steps or not -1 <= t_prev < t:
        raise ValueError(f"need -1 <= t_prev < t < {schedule.num_steps}, got t={t}, t_prev={t_prev}")
    if not eta >= 0:
        raise ValueError(f"eta must be >= 0, got {eta}")


def ddim_step(
    x_t: np.ndarray,
    t: int,
    t_prev: int,
    eps: np.ndarray,
    schedule: Schedule,
    *,
    eta: float = 0.0,
    noise: np.ndarray | None = None,
    clip: bool = False,
) -> np.ndarray:
    """Song et al. 2021, eq. 12: x_{t_prev} = sqrt(alpha_bar_prev) x0 + sqrt(1 - alpha_bar_prev - sigma^2) eps + sigma z.

    sigma = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev)
    (eq. 16); t_prev = -1 is the clean end (alpha_bar = 1). eta = 0 is
    deterministic; ``noise`` None adds nothing.
    """
    _check_ddim(t, t_prev, eta, schedule)
    return _ddim_update(x_t, t, t_prev, eps, schedule, eta, noise, clip)[0]


def timesteps(num_steps: int, num_inference_steps: int, spacing: str = "leading") -> np.ndarray:
    """Decreasing int64 timesteps, as diffusers' DDIMScheduler.set_timesteps (steps_offset 0).

    leading: (arange(n) * (T // n))[::-1], ends at 0; trailing: round(T - k T/n) - 1
    for k = 0..n-1, starts at T-1 (Lin et al. 2024); linspace: round(linspace(0, T-1, n))[::-1].
    """
    if spacing not in SPACINGS:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    if not 1 <= num_steps:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if not 1 <= num_inference_steps <= num_steps:
        raise ValueError(f"num_inference_steps must be between 1 and num_steps={num_steps}, got {num_inference_steps}")
    n = num_inference_steps
    if spacing == "leading":
        steps = np.arange(n)[::-1] * (num_steps // n)
    elif spacing == "trailing":
        steps = np.round(num_steps - np.arange(n) * (num_steps / n)) - 1
    else:
        steps = np.round(np.linspace(0, num_steps - 1, n))[::-1]
    return np.ascontiguousarray(steps, dtype=np.int64)


def sample(
    x_T: np.ndarray,
    denoiser: Denoiser,
    schedule: Schedule,
    rng: np.random.Generator,
    *,
    sampler: str = "ddpm",
    variance: str = "fixed_small",
    steps: int | None = None,
    eta: float = 0.0,
    spacing: str = "leading",
    clip: bool = False,
    update=None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Run the reverse process from x_T; yield (t, state after the step, x0 predicted at t).

    "ddpm" (Ho et al. 2020, Algorithm 2) takes all T steps; "ddim" (Song et al.
    2021, eq. 12) takes ``steps`` timesteps (default T) with ``spacing``. The
    last yielded state is the clean end. Noise is drawn with
    rng.standard_normal only when the step adds it. ``update`` replaces the
    sampler's step, with the signature and result of _ddpm_update or
    _ddim_update (the pages' step hooks).
    """
    x = np.array(x_T, dtype=np.float64)  # a copy: a step that changes x_t in place leaves the caller's x_T
    if sampler == "ddpm":
        if steps not in (None, schedule.num_steps):
            raise ValueError(f"DDPM takes all {schedule.num_steps} steps; use sampler='ddim' for steps={steps}")
        sigmas = _ddpm_sigmas(schedule, variance).tolist()
        return _ddpm_loop(x, denoiser, schedule, rng, sigmas, clip, update or _ddpm_update)
    if sampler == "ddim":
        ts = timesteps(schedule.num_steps, schedule.num_steps if steps is None else steps, spacing).tolist()
        _check_ddim(ts[0], -1, eta, schedule)
        return _ddim_loop(x, denoiser, schedule, rng, ts, eta, clip, update or _ddim_update)
    raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")


def _ddpm_loop(x, denoiser, schedule, rng, sigmas, clip, update):
    for t in range(schedule.num_steps - 1, -1, -1):
        eps = denoiser.predict_noise(x, t)
        noise = rng.standard_normal(x.shape) if t > 0 and sigmas[t] > 0 else None
        x, x0 = update(x, t, eps, schedule, sigmas[t], noise, clip)
        yield t, x, x0


def _ddim_loop(x, denoiser, schedule, rng, ts, eta, clip, update):
    for t, t_prev in zip(ts, ts[1:] + [-1]):
        eps = denoiser.predict_noise(x, t)
        noise = rng.standard_normal(x.shape) if eta > 0 and t_prev >= 0 else None
        x, x0 = update(x, t, t_prev, eps, schedule, eta, noise, clip)
        yield t, x, x0
