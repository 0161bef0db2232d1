"""Who predicts the noise: every denoiser answers predict_noise(x_t, t) -> eps.

The samplers only call ``predict_noise``; ``predict_x0`` is the same answer
in image space (Ho et al. 2020, eq. 4). A trained network (a later
``TrainedDenoiser``) subclasses ``Denoiser``, sets ``schedule`` and
implements ``predict_noise``; nothing else has to change.
"""

from __future__ import annotations

import numpy as np

from .schedules import Schedule


class Denoiser:
    """Base class: subclasses set ``self.schedule`` and implement ``predict_noise``."""

    schedule: Schedule

    def predict_noise(self, x_t: np.ndarray, t: int) -> np.ndarray:
        raise NotImplementedError

    def predict_x0(self, x_t: np.ndarray, t: int) -> np.ndarray:
        """x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (Ho et al. 2020, eq. 15)."""
        eps = self.predict_noise(x_t, t)
        s = self.schedule
        return (x_t - s.sqrt_one_minus_alpha_bars[t] * eps) / s.sqrt_alpha_bars[t]


def oracle_noise(x_t, t, x0, schedule):
    """The noise in x_t, exact because x0 is known: eq. 4 of Ho et al. 2020 solved for eps.

    t is the schedule's index, one less than the paper's t: t = 0 is its step 1, from x_0 to x_1.
    """
    return (x_t - schedule.sqrt_alpha_bars[t] * x0) / schedule.sqrt_one_minus_alpha_bars[t]


class Oracle(Denoiser):
    """The classroom shortcut: knows x0, so returns the exact noise.

    eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t) (Ho et al. 2020,
    eq. 4). Reverse sampling with it recovers x0 from any x_T; it shows the
    mechanics of the sampler, not what a model learns.
    """

    def __init__(self, x0: np.ndarray, schedule: Schedule):
        self.x0 = np.asarray(x0, dtype=np.float64)
        self.schedule = schedule

    def predict_noise(self, x_t: np.ndarray, t: int) -> np.ndarray:
        return oracle_noise(x_t, t, self.x0, self.schedule)

    def predict_x0(self, x_t: np.ndarray, t: int) -> np.ndarray:
        return self.x0.copy()


class IdealDenoiser(Denoiser):
    """The optimal denoiser for a finite training set: x0_hat = E[x0 | x_t].

    Under the empirical distribution of ``images`` (N, H, W) the posterior over
    training images is w_i = softmax_i(-||x_t - sqrt(alpha_bar_t) x_i||^2 / (2 (1 - alpha_bar_t)))
    (Bayes' rule with q(x_t | x_i) of Ho et al. 2020, eq. 4), computed with
    log-sum-exp; x0_hat = sum_i w_i x_i and eps follows from eq. 4. Sampling
    with it reproduces training images (memorisation; Kadkhodaie et al. 2024).
    The ||x_t||^2 term is the same for every i and is dropped, so a step costs
    two (N, D) matrix-vector products.
    """

    def __init__(self, images: np.ndarray, schedule: Schedule):
        images = np.asarray(images, dtype=np.float64)
        if images.ndim < 2 or images.shape[0] < 1:
            raise ValueError(f"images must be a non-empty stack (N, ...), got shape {images.shape}")
        self.image_shape = images.shape[1:]
        self.flat = np.ascontiguousarray(images.reshape(images.shape[0], -1))
        self.half_sq_norms = 0.5 * np.einsum("nd,nd->n", self.flat, self.flat)
        self.schedule = schedule

    def log_weights(self, x_t: np.ndarray, t: int) -> np.ndarray:
        """log w_i, the log posterior over training images given x_t."""
        if x_t.shape != self.image_shape:
            raise ValueError(f"x_t has shape {x_t.shape}, training images have {self.image_shape}")
        s = self.schedule
        a, var = s.sqrt_alpha_bars[t], s.one_minus_alpha_bars[t]
        logits = (a * (self.flat @ x_t.ravel()) - a * a * self.half_sq_norms) / var
        logits -= logits.max()
        return logits - np.log(np.exp(logits).sum())

    def weights(self, x_t: np.ndarray, t: int) -> np.ndarray:
        """w_i = p(x0 = images[i] | x_t), shape (N,), sums to 1.

        Weights below e^-600 are set to 0: negligible, and it keeps subnormal
        numbers (very slow on x86) out of the weighted sum.
        """
        log_w = self.log_weights(x_t, t)
        return np.where(log_w > -600.0, np.exp(log_w), 0.0)

    def predict_x0(self, x_t: np.ndarray, t: int) -> np.ndarray:
        return (self.weights(x_t, t) @ self.flat).reshape(self.image_shape)

    def predict_noise(self, x_t: np.ndarray, t: int) -> np.ndarray:
        s = self.schedule
        return (x_t - s.sqrt_alpha_bars[t] * self.predict_x0(x_t, t)) / s.sqrt_one_minus_alpha_bars[t]
