"""Time full reverse runs of the core against a bare numpy baseline (not a test).

    python tests/benchmarks/core.py

Baseline: a loop of T evaluations of ``a * x + b * y`` on an array of the
same size, the least work any sampler step can do. The ratio says how many
such operations a sampler step costs. A second baseline times the T draws of
``rng.standard_normal`` that DDPM needs: the floor of any DDPM run.
BLAS runs on one thread (as in Pyodide, and steadier on a shared machine).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy is imported
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "py"))

import numpy as np  # noqa: E402

from diffusion_lab.denoisers import IdealDenoiser, Oracle  # noqa: E402
from diffusion_lab.images import make_image, training_set  # noqa: E402
from diffusion_lab.network import TrainedDenoiser  # noqa: E402
from diffusion_lab.samplers import sample  # noqa: E402
from diffusion_lab.schedules import get_schedule  # noqa: E402

T = 1000
REPEATS = 3
WEIGHTS = Path(__file__).resolve().parents[2] / "site" / "models" / "digits.npz"


def best_of(run) -> float:
    """Best wall time of REPEATS runs, in seconds."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def baseline(size: int) -> float:
    x, y = np.ones((size, size)), np.ones((size, size))

    def run():
        out = x
        for _ in range(T):
            out = 0.5 * x + 0.25 * y
        return out

    return best_of(run)


def noise_baseline(size: int) -> float:
    def run():
        rng = np.random.default_rng(0)
        for _ in range(T):
            rng.standard_normal((size, size))

    return best_of(run)


def reverse_run(size: int, denoiser_name: str, sampler: str, steps: int | None) -> float:
    schedule = get_schedule("linear", T)
    image = make_image("face", size)
    if denoiser_name == "oracle":
        denoiser = Oracle(image, schedule)
    else:
        denoiser = IdealDenoiser(training_set(size, 32), schedule)
    x_T = np.random.default_rng(0).standard_normal((size, size))

    def run():
        for _ in sample(x_T, denoiser, schedule, np.random.default_rng(1), sampler=sampler, steps=steps):
            pass

    return best_of(run)


def main() -> None:
    print(f"numpy {np.__version__}, Python {sys.version.split()[0]}, T = {T}, best of {REPEATS}")
    print(f"{'run':44s} {'total':>9s} {'per step':>10s} {'x baseline':>11s}")
    for size in (64, 256):
        base = baseline(size)
        print(f"{f'baseline {T} x (a*x + b*y), {size}x{size}':44s} {base * 1e3:7.1f}ms {base / T * 1e6:8.1f}us {1.0:10.1f}x")
        noise = noise_baseline(size)
        label = f"baseline {T} x standard_normal, {size}x{size}"
        print(f"{label:44s} {noise * 1e3:7.1f}ms {noise / T * 1e6:8.1f}us {noise / base:10.1f}x")
        for denoiser_name, sampler, steps in (
            ("oracle", "ddpm", None),
            ("oracle", "ddim", 50),
            ("ideal (32 images)", "ddpm", None),
            ("ideal (32 images)", "ddim", 50),
        ):
            elapsed = reverse_run(size, denoiser_name, sampler, steps)
            n = steps or T
            label = f"{sampler.upper()} {n} steps, {denoiser_name}, {size}x{size}"
            ratio = elapsed / (base * n / T)  # against the baseline for the same number of steps
            print(f"{label:44s} {elapsed * 1e3:7.1f}ms {elapsed / n * 1e6:8.1f}us {ratio:10.1f}x")
    # The trained network's pictures are 8x8: its row is against that size's baseline.
    base = baseline(8)
    elapsed = trained_run()
    label = "DDIM 50 steps, trained network, 8x8"
    print(f"{label:44s} {elapsed * 1e3:7.1f}ms {elapsed / 50 * 1e6:8.1f}us {elapsed / (base * 50 / T):10.1f}x")


def trained_run() -> float:
    """50 DDIM steps of one digit with the shipped network (the reverse view's ?denoiser=trained)."""
    schedule = get_schedule("linear", T)
    denoiser = TrainedDenoiser.load(str(WEIGHTS), schedule)
    x_T = np.random.default_rng(0).standard_normal((8, 8))

    def run():
        for _ in sample(x_T, denoiser, schedule, np.random.default_rng(1), sampler="ddim", steps=50):
            pass

    return best_of(run)


if __name__ == "__main__":
    import argparse

    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help, and no other option
    main()
