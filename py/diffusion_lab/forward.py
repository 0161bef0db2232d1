"""How noise is added: the forward process q of Ho et al. 2020.

``x0`` is the clean image (the paper's x_0); the state at index t = 0 .. T-1
has had t+1 noising steps (diffusers' indexing), so it is the paper's x_{t+1}:
q_step at index 0 takes x0 to x_1.
Only ``Generator.standard_normal`` (float64) draws noise, so a seed gives the
same arrays in CPython and in Pyodide.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from .schedules import Schedule


class Coefficients(NamedTuple):
    """The numbers in eq. 2 and eq. 4 at index t, as q_step and q_sample use them."""

    t: int
    beta: float  # beta_t
    alpha_bar: float  # alpha_bar_t
    signal: float  # sqrt(alpha_bar_t): x_t = signal x0 + noise eps (eq. 4)
    noise: float  # sqrt(1 - alpha_bar_t)
    step_signal: float  # sqrt(1 - beta_t): x_t = step_signal x_{t-1} + step_noise eps (eq. 2)
    step_noise: float  # sqrt(beta_t)
    snr: float  # alpha_bar_t / (1 - alpha_bar_t)


def coefficients(t: int, schedule: Schedule) -> Coefficients:
    """The coefficients of q(x_t | x0) and q(x_t | x_{t-1}) at index t (Ho et al. 2020, eq. 2 and 4)."""
    beta = float(schedule.betas[t])
    return Coefficients(t=int(t), beta=beta, alpha_bar=float(schedule.alpha_bars[t]),
                        signal=float(schedule.sqrt_alpha_bars[t]),
                        noise=float(schedule.sqrt_one_minus_alpha_bars[t]),
                        step_signal=math.sqrt(1.0 - beta), step_noise=math.sqrt(beta),
                        snr=float(schedule.snr[t]))


def q_sample(x0: np.ndarray, t: int, noise: np.ndarray, schedule: Schedule) -> np.ndarray:
    """Ho et al. 2020, eq. 4: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise (index t: the paper's t + 1)."""
    return schedule.sqrt_alpha_bars[t] * x0 + schedule.sqrt_one_minus_alpha_bars[t] * noise


def q_step(x_prev: np.ndarray, t: int, noise: np.ndarray, schedule: Schedule) -> np.ndarray:
    """Ho et al. 2020, eq. 2 at index t (the paper's step t + 1): sqrt(1 - beta) x_prev + sqrt(beta) noise, where
    x_prev is x0 at t = 0."""
    beta = float(schedule.betas[t])
    return math.sqrt(1.0 - beta) * x_prev + math.sqrt(beta) * noise


def q_mean_std(x0: np.ndarray, t: int, schedule: Schedule) -> tuple[np.ndarray, float]:
    """Mean and standard deviation of q(x_t | x0) = N(sqrt(alpha_bar_t) x0, (1 - alpha_bar_t) I)."""
    return schedule.sqrt_alpha_bars[t] * x0, float(schedule.sqrt_one_minus_alpha_bars[t])


def trajectory(x0: np.ndarray, schedule: Schedule, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Yield x_t for t = 0 .. T-1 by iterating eq. 2, one rng.standard_normal(x0.shape) per step."""
    x = np.asarray(x0, dtype=np.float64)
    for t in range(schedule.num_steps):
        x = q_step(x, t, rng.standard_normal(x.shape), schedule)
        yield x
