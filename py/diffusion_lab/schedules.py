"""What noise level at step t: variance schedules beta_t and what follows from them.

Notation (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", sec. 2):
alpha_t = 1 - beta_t, alpha_bar_t = prod_{s<=t} alpha_s, and the
posterior variance beta_tilde_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t
(eq. 7). Indices are t = 0 .. T-1 as in diffusers (index t is the paper's t+1).

At T = 1000 every schedule is the diffusers definition (computed in float64,
where diffusers computes in float32: equal to its rounding). For other T:

- ``cosine`` is defined for any T (Nichol & Dhariwal 2021, eq. 17).
- ``linear``, ``scaled_linear`` and ``sigmoid`` scale both ends of beta by
  1000 / T, as improved-DDPM does (Nichol & Dhariwal 2021, code
  ``get_named_beta_schedule``), then clip beta at 0.999. The sum of the betas
  is then (up to the discrete-linspace term and the clip) the T = 1000 one,
  and since -log(1 - beta) >= beta, -log alpha_bar_{T-1} >= sum(beta): the
  last step stays nearly pure noise, alpha_bar_{T-1} < 0.01 for every T in
  2..1000 (checked by the tests; a clipped beta alone gives < 0.001), though
  not always below its T = 1000 value (linear at T = 2: 9.5e-4, not 4e-5).
"""

from __future__ import annotations

import functools
import math
import numbers
import sys
from dataclasses import dataclass

import numpy as np

SCHEDULE_NAMES = ("linear", "scaled_linear", "cosine", "sigmoid")
MAX_BETA = 0.999  # clip, as diffusers' betas_for_alpha_bar and improved-DDPM
REFERENCE_STEPS = 1000  # T at which the schedules are the published ones
BETA_START, BETA_END = 1e-4, 0.02  # Ho et al. 2020, sec. 4
SCALED_BETA_START, SCALED_BETA_END = 0.00085, 0.012  # Stable Diffusion (diffusers "scaled_linear")
# Below this alpha_bar, x_0's finest detail in x_t (about a grey level of it) is under float64's rounding of
# the noise (1e-16 of it): a step straight to t = 0 brings x_0 back about a grey level off, more the smaller
# alpha_bar (at 1e-30, 20 to 43 grey levels in the worst pixel and 6 RMS, by the picture and the seed).
ALPHA_BAR_LOST = 1e-27
ALPHA_BAR_MIN = float(np.finfo(np.float64).tiny)  # the smallest normal float64; below it 1/alpha_bar can overflow
COSINE_S = 0.008  # offset s, Nichol & Dhariwal 2021, eq. 17


@dataclass(frozen=True, eq=False)
class Schedule:
    """A variance schedule; every array is float64, length T, read-only.

    ``alpha_bars_prev[t]`` is alpha_bar_{t-1} with alpha_bar_{-1} = 1 (clean end);
    ``snr`` = alpha_bar / (1 - alpha_bar) (Kingma et al. 2021, "Variational Diffusion Models", sec. 2).
    ``one_minus_alpha_bars`` is 1 - alpha_bar summed step by step, exact to rounding even where alpha_bar is
    within 1e-16 of 1 (a beta of 1e-16): every coefficient divides by it.
    The ``posterior_*`` arrays are q(x_{t-1} | x_t, x_0) of Ho et al. eq. 7:
    mean = coef_x0 * x_0 + coef_xt * x_t, variance = beta_tilde.
    """

    name: str
    num_steps: int
    betas: np.ndarray
    alphas: np.ndarray
    alpha_bars: np.ndarray
    alpha_bars_prev: np.ndarray
    snr: np.ndarray
    log_snr: np.ndarray
    sqrt_alpha_bars: np.ndarray
    one_minus_alpha_bars: np.ndarray
    sqrt_one_minus_alpha_bars: np.ndarray
    beta_tildes: np.ndarray
    posterior_coef_x0: np.ndarray
    posterior_coef_xt: np.ndarray


def from_betas(betas, *, name: str = "custom") -> Schedule:
    """Build a Schedule from any betas in (0, 1) (Ho et al. 2020, eq. 4 and 7)."""
    betas = np.array(betas, dtype=np.float64).ravel()
    if betas.size < 1 or not np.all((betas > 0) & (betas < 1)):
        raise ValueError("betas must be a non-empty sequence of numbers in (0, 1)")
    alphas = 1.0 - betas
    alpha_bars = np.cumprod(alphas)
    _check_float64_limits(betas, alphas, alpha_bars)
    alpha_bars_prev = np.concatenate(([1.0], alpha_bars[:-1]))
    # 1 - alpha_bar_t = (1 - alpha_bar_{t-1}) + alpha_bar_{t-1} beta_t: exact to rounding for tiny betas, which
    # 1 - alpha_bars rounds away, and with + and * only, so bit-identical in Pyodide (no libm, as below)
    one_minus = np.cumsum(alpha_bars_prev * betas)
    one_minus_prev = np.concatenate(([0.0], one_minus[:-1]))
    snr = alpha_bars / one_minus
    arrays = dict(
        betas=betas,
        alphas=alphas,
        alpha_bars=alpha_bars,
        alpha_bars_prev=alpha_bars_prev,
        snr=snr,
        log_snr=np.log(snr),
        sqrt_alpha_bars=np.sqrt(alpha_bars),
        one_minus_alpha_bars=one_minus,
        sqrt_one_minus_alpha_bars=np.sqrt(one_minus),
        beta_tildes=one_minus_prev / one_minus * betas,
        posterior_coef_x0=np.sqrt(alpha_bars_prev) * betas / one_minus,
        posterior_coef_xt=np.sqrt(alphas) * one_minus_prev / one_minus,
    )
    for array in arrays.values():
        array.setflags(write=False)
    return Schedule(name=name, num_steps=int(betas.size), **arrays)


def linear_betas(T: int) -> np.ndarray:
    """Ho et al. 2020, sec. 4: beta_t rises linearly from 1e-4 to 0.02 (at T = 1000)."""
    scale = REFERENCE_STEPS / T  # improved-DDPM rule: both ends scale by 1000 / T
    betas = np.linspace(scale * BETA_START, scale * BETA_END, T)
    return np.minimum(betas, MAX_BETA)


def scaled_linear_betas(T: int) -> np.ndarray:
    """Rombach et al. 2022 (Stable Diffusion, diffusers "scaled_linear"): sqrt(beta_t) rises linearly."""
    scale = REFERENCE_STEPS / T
    start, end = math.sqrt(scale * SCALED_BETA_START), math.sqrt(scale * SCALED_BETA_END)
    betas = np.linspace(start, end, T) ** 2
    return np.minimum(betas, MAX_BETA)


def cosine_betas(T: int) -> np.ndarray:
    """Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/T + s)/(1 + s) * pi/2);
    beta_t = 1 - alpha_bar(t) / alpha_bar(t - 1), clipped at 0.999 (their sec. 3.2)."""
    ts = np.arange(T + 1, dtype=np.float64) / T
    f = np.cos((ts + COSINE_S) / (1 + COSINE_S) * math.pi / 2) ** 2
    return np.minimum(1.0 - f[1:] / f[:-1], MAX_BETA)


def sigmoid_betas(T: int) -> np.ndarray:
    """diffusers "sigmoid" (GeoDiff, Xu et al. 2022): beta_t follows a logistic curve between 1e-4 and 0.02
    (the sigmoid of linspace(-6, 6, T): 1.5e-4 to 0.01995 at T = 1000)."""
    scale = REFERENCE_STEPS / T
    ramp = 1.0 / (1.0 + np.exp(-np.linspace(-6.0, 6.0, T)))
    betas = ramp * (scale * BETA_END - scale * BETA_START) + scale * BETA_START
    return np.minimum(betas, MAX_BETA)


# The betas of each named schedule; the pages let the student edit a copy (diffusion_lab.hooks).
BETAS = {"linear": linear_betas, "scaled_linear": scaled_linear_betas, "cosine": cosine_betas,
         "sigmoid": sigmoid_betas}


def check_betas(betas, T: int) -> np.ndarray:
    """`betas` as T float64 numbers in (0, 1), or ValueError saying what is wrong (page t = index + 1).

    from_betas checks what is left: the float64 limits of 1 - beta and alpha_bar."""
    masked = np.flatnonzero(np.ma.getmaskarray(betas).ravel()) if isinstance(betas, np.ma.MaskedArray) else ()
    if len(masked):  # np.asarray would take the hidden values under the mask
        raise ValueError(f"betas must be numbers; beta at t = {masked[0] + 1} is masked")
    try:
        raw = np.asarray(betas)
    except (TypeError, ValueError):  # a ragged list
        raise ValueError(f"betas must be numbers; got {type(betas).__name__} {_short(betas)}") from None
    if raw.ndim == 1 and raw.dtype.kind in "OUSV":  # a string, None or another object among them
        items = list(betas) if isinstance(betas, (list, tuple)) else raw.tolist()  # numpy made 0.01 '0.01'
        index = next((k for k, value in enumerate(items) if not isinstance(value, numbers.Real)), None)
        if index is not None:
            value = items[index]
            if isinstance(value, numbers.Complex):
                raise ValueError(f"betas must be real numbers; beta at t = {index + 1} is {value!r}")
            shown = "None" if value is None else f"{type(value).__name__} {_short(value)}"
            raise ValueError(f"betas must be numbers; beta at t = {index + 1} is {shown}")
    if raw.dtype.kind == "c":  # complex: fine only with no imaginary part to lose
        imaginary = np.flatnonzero(raw.imag.ravel())
        if imaginary.size:
            raise ValueError(f"betas must be real numbers; beta at t = {imaginary[0] + 1} is "
                             f"{raw.ravel()[imaginary[0]]:.6g}")
        raw = raw.real
    try:
        array = raw.astype(np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"betas must be numbers; got {type(betas).__name__} {_short(betas)}") from None
    except OverflowError:  # Python's integers have no limit, float64's do
        items = raw.ravel().tolist()
        index = next((k for k, value in enumerate(items) if abs(value) > sys.float_info.max), 0)
        raise ValueError(f"every beta must lie between 0 and 1 (both excluded); beta at t = {index + 1} is "
                         f"{_short(items[index])}, too large even for a float") from None
    if array.shape != (T,):
        raise ValueError(f"betas must be T = {T} numbers, one per step (shape ({T},)); got shape {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"betas must be finite; beta at t = {bad[0] + 1} is {array[bad[0]]}")
    bad = np.flatnonzero((array <= 0) | (array >= 1))
    if bad.size:
        raise ValueError(f"every beta must lie between 0 and 1 (both excluded); beta at t = {bad[0] + 1} "
                         f"is {array[bad[0]]:.6g}")
    return array


def _check_float64_limits(betas: np.ndarray, alphas: np.ndarray, alpha_bars: np.ndarray) -> None:
    """ValueError if a beta is lost in rounding (1 - beta == 1) or alpha_bar underflows: both end in 0/0."""
    lost = np.flatnonzero(alphas == 1.0)
    if lost.size:
        raise ValueError(f"beta at t = {lost[0] + 1} is {betas[lost[0]]:.3g}, too small for float64: 1 - beta "
                         f"rounds to 1 (below about 1.1e-16), so that step would add no noise")
    gone = np.flatnonzero(alpha_bars < ALPHA_BAR_MIN)
    if gone.size:
        raise ValueError(f"alpha_bar, the product of (1 - beta), falls below {ALPHA_BAR_MIN:.3g} at t = "
                         f"{gone[0] + 1}, past what float64 holds: x_0 would vanish; use smaller betas")


def lost_from(schedule: Schedule) -> int | None:
    """The first page t (index + 1) whose alpha_bar is below ALPHA_BAR_LOST, or None."""
    lost = np.flatnonzero(schedule.alpha_bars < ALPHA_BAR_LOST)
    return int(lost[0]) + 1 if lost.size else None


def _short(value, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.lru_cache(maxsize=64)
def get_schedule(name: str, num_steps: int) -> Schedule:
    """The named schedule with T = num_steps (2..1000); cached, since immutable."""
    if name not in SCHEDULE_NAMES:
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULE_NAMES)}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)):
        raise ValueError(f"num_steps must be an integer, got {num_steps!r}")
    if not 2 <= num_steps <= REFERENCE_STEPS:
        raise ValueError(f"num_steps must be between 2 and {REFERENCE_STEPS}, got {num_steps}")
    return from_betas(BETAS[name](int(num_steps)), name=name)
