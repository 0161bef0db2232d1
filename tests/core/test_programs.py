"""The classroom programs run as scripts, write a PNG, and reverse diffusion ends on the image."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import forward_diffusion
import reverse_diffusion
from diffusion_lab.images import make_image
from diffusion_lab.schedules import get_schedule

PY = Path(__file__).resolve().parents[2] / "py"


@pytest.mark.parametrize(
    "script, extra",
    [
        ("forward_diffusion.py", ["--schedule", "cosine", "--shown", "5"]),
        ("reverse_diffusion.py", ["--sampler", "ddim", "--ddim-steps", "20", "--eta", "0.5", "--shown", "5"]),
    ],
)
def test_program_writes_png(tmp_path, script, extra):
    out = tmp_path / "figure.png"
    result = subprocess.run(
        [sys.executable, str(PY / script), "--steps", "100", "--size", "32", "--out", str(out), *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    with Image.open(out) as image:
        width, height = image.size
    assert width >= 6 * 100 and 100 <= height <= 400  # original/x_T + 5 frames


def test_program_rejects_bad_options(tmp_path):
    result = subprocess.run(
        [sys.executable, str(PY / "forward_diffusion.py"), "--steps", "1", "--out", str(tmp_path / "x.png")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2 and "--steps" in result.stderr


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(sampler="ddim", ddim_steps=50), dict(sampler="ddim", ddim_steps=10, eta=1.0, spacing="trailing")]
)
def test_reverse_diffusion_ends_on_the_gradient(kwargs):
    image = make_image("gradient", 64)
    schedule = get_schedule("linear", 1000)
    x_T, states = reverse_diffusion.reverse_diffusion(image, schedule, np.random.default_rng(0), **kwargs)
    assert np.abs(x_T - image).max() > 1  # started from noise
    np.testing.assert_allclose(states[-1][1], image, rtol=0, atol=1e-9)


def test_classroom_wrappers():
    s = get_schedule("linear", 100)
    np.testing.assert_array_equal(forward_diffusion.variance_schedule_beta(100), s.betas)
    x = make_image("disc", 16)
    a = forward_diffusion.add_gaussian_noise(x, 50, s, rng=np.random.default_rng(0))
    b = forward_diffusion.add_gaussian_noise(x, 50, s.betas, rng=np.random.default_rng(0))
    np.testing.assert_allclose(a, b, rtol=1e-12)
    step = forward_diffusion.add_gaussian_noise_for_forward_sim(x, 0, s, rng=np.random.default_rng(0))
    np.testing.assert_allclose(step, forward_diffusion.add_gaussian_noise(x, 0, s, rng=np.random.default_rng(0)))
    eps = np.random.default_rng(1).standard_normal(x.shape)
    x_t = np.sqrt(s.alpha_bars[30]) * x + np.sqrt(1 - s.alpha_bars[30]) * eps
    np.testing.assert_allclose(reverse_diffusion.simulate_noise_predictor(x_t, 30, x, s), eps, atol=1e-12)
