"""Denoisers: the oracle is exact; the ideal denoiser is E[x0 | x_t] over a finite image set."""

import numpy as np
import pytest

from diffusion_lab.denoisers import Denoiser, IdealDenoiser, Oracle
from diffusion_lab.forward import q_sample
from diffusion_lab.images import nearest, training_set
from diffusion_lab.samplers import sample
from diffusion_lab.schedules import get_schedule


def test_oracle_is_exact():
    s = get_schedule("linear", 1000)
    rng = np.random.default_rng(0)
    x0, eps = rng.uniform(-1, 1, (8, 8)), rng.standard_normal((8, 8))
    for t in (0, 500, 999):
        x_t = q_sample(x0, t, eps, s)
        oracle = Oracle(x0, s)
        np.testing.assert_allclose(oracle.predict_noise(x_t, t), eps, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(Denoiser.predict_x0(oracle, x_t, t), x0, rtol=1e-9, atol=1e-9)


def brute_force_posterior_mean(images, x_t, t, s):
    """E[x0 | x_t] written directly: Gaussian likelihoods, normalised (fine for moderate noise)."""
    d2 = ((x_t - np.sqrt(s.alpha_bars[t]) * images) ** 2).sum(axis=(1, 2))
    like = np.exp(-(d2 - d2.min()) / (2 * (1 - s.alpha_bars[t])))
    return (like / like.sum()) @ images.reshape(len(images), -1)


def test_ideal_matches_brute_force():
    s = get_schedule("cosine", 100)
    images = training_set(16, 8, seed=1)
    ideal = IdealDenoiser(images, s)
    rng = np.random.default_rng(2)
    for t in (30, 60, 90):
        x_t = q_sample(images[3], t, rng.standard_normal((16, 16)), s)
        expected = brute_force_posterior_mean(images, x_t, t, s).reshape(16, 16)
        np.testing.assert_allclose(ideal.predict_x0(x_t, t), expected, rtol=1e-9, atol=1e-9)
        assert ideal.weights(x_t, t).sum() == pytest.approx(1.0)
        eps = ideal.predict_noise(x_t, t)
        np.testing.assert_allclose(Denoiser.predict_x0(ideal, x_t, t), expected, rtol=1e-9, atol=1e-9)
        assert eps.shape == (16, 16)


def test_ideal_small_noise_returns_nearest_image():
    s = get_schedule("linear", 1000)
    images = training_set(16, 16, seed=0)
    ideal = IdealDenoiser(images, s)
    rng = np.random.default_rng(3)
    for k in (0, 5, 11):
        x_t = q_sample(images[k] + 0.05 * rng.standard_normal((16, 16)), 10, rng.standard_normal((16, 16)), s)
        np.testing.assert_allclose(ideal.predict_x0(x_t, 10), images[k], atol=1e-8)
        assert np.argmax(ideal.weights(x_t, 10)) == k


def test_ideal_huge_noise_returns_mean():
    s = get_schedule("cosine", 1000)  # alpha_bar_999 ~ 2.4e-9
    images = training_set(16, 16, seed=0)
    ideal = IdealDenoiser(images, s)
    x_t = np.random.default_rng(4).standard_normal((16, 16))
    np.testing.assert_allclose(ideal.predict_x0(x_t, 999), images.mean(axis=0), atol=1e-3)
    np.testing.assert_allclose(ideal.weights(x_t, 999), 1 / 16, rtol=1e-2)


def test_ideal_is_stable_at_t0_with_far_apart_images():
    s = get_schedule("linear", 1000)  # 1 - alpha_bar_0 = 1e-4: logits of order 1e6
    images = np.stack([np.full((16, 16), -1.0), np.full((16, 16), 1.0), np.zeros((16, 16))])
    ideal = IdealDenoiser(images, s)
    for x_t in (np.full((16, 16), 50.0), np.full((16, 16), -50.0), np.full((16, 16), 0.01)):
        w = ideal.weights(x_t, 0)
        assert np.all(np.isfinite(w)) and w.sum() == pytest.approx(1.0)
        assert np.all(np.isfinite(ideal.predict_noise(x_t, 0)))
    np.testing.assert_array_equal(ideal.predict_x0(np.full((16, 16), 50.0), 0), images[1])


def test_ideal_rejects_wrong_shape():
    ideal = IdealDenoiser(training_set(16, 4), get_schedule("linear", 10))
    with pytest.raises(ValueError):
        ideal.predict_noise(np.zeros((8, 8)), 3)
    with pytest.raises(ValueError):
        IdealDenoiser(np.zeros((0, 4, 4)), get_schedule("linear", 10))


@pytest.mark.parametrize("sampler, steps", [("ddim", 50), ("ddpm", None)])
def test_sampling_with_ideal_denoiser_memorises(sampler, steps):
    """From pure noise, the exact denoiser of a finite set lands on one of its images."""
    s = get_schedule("linear", 1000)
    images = training_set(16, 16, seed=0)
    ideal = IdealDenoiser(images, s)
    hits, landed = 0, set()
    for seed in range(10):
        rng = np.random.default_rng(seed)
        *_, (_, final, _) = sample(rng.standard_normal((16, 16)), ideal, s, rng, sampler=sampler, steps=steps)
        index, distance = nearest(final, images)
        hits += distance < 0.02
        landed.add(index)
    assert hits >= 9
    assert len(landed) >= 2  # not a single attractor
