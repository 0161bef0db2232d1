"""How good are the trained denoiser's digits? A table of sample-quality numbers. CPython only (scikit-learn).

    cd py && python3 -m diffusion_lab.evaluate [--weights ../site/models/digits.npz] [--samples 500]

Rows: samples of the trained network (DDIM and DDPM); a per-pixel Gaussian
fitted to the training images (the floor: right pixel statistics, no
digits); the ideal denoiser of the training set (``denoisers.IdealDenoiser``,
which only reproduces training images: the copy ceiling); and the held-out
real images (the target). Columns, from a multinomial logistic regression
trained on the real training images:

- conf>0.9: share of images the classifier labels with probability > 0.9;
- classes: how many of the 10 digits occur among the predicted labels
  (min/max: the rarest and commonest class's share);
- FD: Frechet distance (Heusel et al. 2017, eq. 6) between Gaussians fitted to
  the classifier's 10 logits of these images and of the held-out images (for
  the held-out row: one half against the other, a sampling-noise floor);
- NN med: median RMS distance (pixels in [-1, 1]) to the nearest training image;
- copies: share closer to a training image than 95% of held-out images are
  (held-out images: 5% by construction).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from pathlib import Path  # noqa: E402

from .commands import interruptible, quiet_interrupt  # noqa: E402
from .controls import defaults  # noqa: E402

with quiet_interrupt():  # a Ctrl-C during numpy's import says "interrupted", as one later does
    import numpy as np

    from .denoisers import IdealDenoiser
    from .network import TrainedDenoiser, WeightsError
    from .samplers import sample
    from .schedules import REFERENCE_STEPS, SCHEDULE_NAMES, get_schedule
    from .train import DEFAULT_OUT, load_digits_split, scikit_learn

CONFIDENCE = 0.9
DDIM_STEPS = defaults("reverse")["ddim_steps"]  # the page's
COPY_PERCENTILE = 5.0  # near-copy: nearer to the training set than this percentile of held-out images


def generate(denoiser, n: int, schedule, rng: np.random.Generator, **sampler_options) -> np.ndarray:
    """n images from pure noise, as one batch (N, H, W), clipped to [-1, 1] (display range)."""
    x = rng.standard_normal((n, *denoiser.image_shape))
    for _, x, _ in sample(x, denoiser, schedule, rng, **sampler_options):
        pass
    return np.clip(x, -1.0, 1.0)


def generate_one_by_one(denoiser, n: int, schedule, rng: np.random.Generator, **sampler_options) -> np.ndarray:
    """As ``generate`` for denoisers that take one image at a time (the ideal denoiser)."""
    return np.stack([generate_single(denoiser, schedule, rng, **sampler_options) for _ in range(n)])


def generate_single(denoiser, schedule, rng, **sampler_options) -> np.ndarray:
    x = rng.standard_normal(denoiser.image_shape)
    for _, x, _ in sample(x, denoiser, schedule, rng, **sampler_options):
        pass
    return np.clip(x, -1.0, 1.0)


def gaussian_samples(images: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Independent per-pixel Gaussians with the training images' mean and standard deviation, clipped."""
    mean, std = images.mean(axis=0), images.std(axis=0)
    return np.clip(mean + std * rng.standard_normal((n, *images.shape[1:])), -1.0, 1.0)


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix via eigh (negative round-off clipped)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2) between Gaussians fitted to features (N, K)."""
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    r1 = sqrtm_psd(s1)
    cross = np.trace(sqrtm_psd(r1 @ s2 @ r1))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2.0 * cross)


def nearest_distances(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """RMS distance of each image to its nearest neighbour in ``reference`` (both (N, H, W))."""
    a, b = images.reshape(len(images), -1), reference.reshape(len(reference), -1)
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(d2.min(axis=1), 0.0, None) / a.shape[1])


class Judge:
    """The classifier and references every sample set is measured against."""

    def __init__(self):
        self.train_x, self.train_y, self.held_x, self.held_y = load_digits_split()
        classifier = scikit_learn("linear_model").LogisticRegression(max_iter=5000)
        self.classifier = classifier.fit(self.flat(self.train_x), self.train_y)
        self.held_features = self.classifier.decision_function(self.flat(self.held_x))
        self.copy_threshold = float(np.percentile(nearest_distances(self.held_x, self.train_x), COPY_PERCENTILE))

    @staticmethod
    def flat(images):
        return images.reshape(len(images), -1)

    def score(self, images: np.ndarray, *, held_out: bool = False) -> dict:
        proba = self.classifier.predict_proba(self.flat(images))
        counts = np.bincount(proba.argmax(axis=1), minlength=10)
        if held_out:  # split-half: the FD two independent real sets of half the size have
            half = len(images) // 2
            fd = frechet_distance(self.held_features[:half], self.held_features[half:])
        else:
            fd = frechet_distance(self.classifier.decision_function(self.flat(images)), self.held_features)
        nn = nearest_distances(images, self.train_x)
        return dict(
            n=len(images),
            confident=float(np.mean(proba.max(axis=1) > CONFIDENCE)),
            classes=int(np.count_nonzero(counts)),
            class_min=float(counts.min() / len(images)),
            class_max=float(counts.max() / len(images)),
            counts=counts.tolist(),
            fd=fd,
            nn_median=float(np.median(nn)),
            copies=float(np.mean(nn < self.copy_threshold)),
        )


def format_table(rows: list[tuple[str, dict]]) -> str:
    head = f"{'':34s} {'n':>4s} {'conf>0.9':>8s} {'classes':>7s} {'min/max':>13s} {'FD':>7s} {'NN med':>7s} {'copies':>6s}"
    lines = [head, "-" * len(head)]
    for name, r in rows:
        shares = f"{r['class_min']:.1%}/{r['class_max']:.1%}"  # up to 100.0%/100.0%
        lines.append(
            f"{name:34s} {r['n']:4d} {r['confident']:8.1%} {r['classes']:5d}/10 "
            f"{shares:>13s} {r['fd']:7.2f} {r['nn_median']:7.3f} {r['copies']:6.1%}"
        )
    return "\n".join(lines)


def time_ddim(denoiser, schedule, steps: int = 50, repeats: int = 5) -> float:
    """Best wall time of one single-image DDIM run of ``steps`` steps, in seconds."""
    best = float("inf")
    for k in range(repeats):
        start = time.perf_counter()
        generate_single(denoiser, schedule, np.random.default_rng(k), sampler="ddim", steps=steps)
        best = min(best, time.perf_counter() - start)
    return best


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad numbers before any work, as argparse does: a one-line message and exit status 2."""
    if args.samples < 2:  # FD fits a covariance to them
        parser.error("--samples must be at least 2")
    if not 2 <= args.T <= REFERENCE_STEPS:
        parser.error(f"--T must be between 2 and {REFERENCE_STEPS}")
    if args.ddim_steps is None:  # as the page, which lowers its DDIM steps to a smaller T
        args.ddim_steps = min(DDIM_STEPS, args.T)
    elif not 1 <= args.ddim_steps <= args.T:
        parser.error(f"--ddim-steps {args.ddim_steps} must be between 1 and --T ({args.T})")
    if args.seed < 0:
        parser.error("--seed must be 0 or more")


@interruptible
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m diffusion_lab.evaluate",
                                     description=__doc__.split("\n")[0].replace("``", ""))
    parser.add_argument("--weights", type=Path, default=DEFAULT_OUT, help=f"weights file (default {DEFAULT_OUT})")
    parser.add_argument("--samples", type=int, default=500, help="images per row, 2 or more (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples, 0 or more (default 0)")
    parser.add_argument("--schedule", choices=SCHEDULE_NAMES, default="linear", help="sampling schedule (default linear)")
    parser.add_argument("--T", type=int, default=1000,
                        help=f"schedule steps T, 2..{REFERENCE_STEPS}: the classroom programs' --steps (default 1000)")
    parser.add_argument("--ddim-steps", type=int,
                        help=f"DDIM steps, 1..T (default {DDIM_STEPS}, or T if smaller)")
    parser.add_argument("--no-ddpm", action="store_true", help="skip the (slower) DDPM row")
    args = parser.parse_args(argv)
    check_options(parser, args)
    schedule = get_schedule(args.schedule, args.T)
    if args.weights.is_dir():
        parser.error(f"--weights {str(args.weights)!r} is a folder; give the weights file")
    if not args.weights.exists():
        parser.error(f"--weights {str(args.weights)!r}: no such file")
    try:
        net = TrainedDenoiser.load(args.weights, schedule)
    except OSError as error:
        parser.error(f"--weights {str(args.weights)!r}: cannot read it ({error.strerror or error})")
    except WeightsError as error:  # it reads, but is not a network: say what is wrong with it
        parser.error(f"--weights {str(args.weights)!r}: {error}")
    except (EOFError, KeyError, ValueError, zipfile.BadZipFile):  # numpy's words (pickle, zip) would mislead
        parser.error(f"--weights {str(args.weights)!r} is not a Diffusion Lab weights file (an .npz that "
                     f"python3 -m diffusion_lab.train writes)")
    judge = Judge()
    n, k = args.samples, args.ddim_steps
    rows = []
    start = time.perf_counter()
    rows.append((f"network, DDIM {k}", judge.score(generate(net, n, schedule, np.random.default_rng(args.seed), sampler="ddim", steps=k))))
    if not args.no_ddpm:
        rows.append((f"network, DDPM {args.T}", judge.score(generate(net, n, schedule, np.random.default_rng(args.seed), sampler="ddpm"))))
    rows.append(("per-pixel Gaussian (floor)", judge.score(gaussian_samples(judge.train_x, n, np.random.default_rng(args.seed)))))
    ideal = IdealDenoiser(judge.train_x, schedule)
    rows.append((f"ideal denoiser, DDIM {k} (copies)", judge.score(
        generate_one_by_one(ideal, n, schedule, np.random.default_rng(args.seed), sampler="ddim", steps=k))))
    rows.append(("held-out real digits", judge.score(judge.held_x, held_out=True)))
    print(f"weights {args.weights} ({args.weights.stat().st_size / 1e6:.2f} MB); trained {net.meta.get('steps')} steps, "
          f"seed {net.meta.get('seed')}, final loss {net.meta.get('final_loss', float('nan')):.4f}")
    print(f"schedule {args.schedule}, T = {args.T}; {len(judge.train_x)} training, {len(judge.held_x)} held-out images; "
          f"copy threshold {judge.copy_threshold:.3f}\n")
    print(format_table(rows))
    print(f"\nclass counts, network DDIM: {rows[0][1]['counts']}")
    print(f"one 8x8 image, DDIM {k} steps: {time_ddim(net, schedule, k) * 1000:.1f} ms in CPython "
          f"(evaluation took {time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
