"""Reverse diffusion, the classroom program: noise an image to x_T, then denoise it step by step.

    python py/reverse_diffusion.py --sampler ddim --ddim-steps 50 --out reverse.png

The noise predictor is the oracle (it knows the original image), so the
figure shows what the exact DDPM / DDIM update does, not what a model learns.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# First: without numpy or matplotlib it stops with one line that says what to install.
from forward_diffusion import (  # noqa: E402
    as_schedule, check_args, common_parser, shown_steps, step_index, write
)

import numpy as np  # noqa: E402

from diffusion_lab import commands, controls, denoisers, forward, images, plots, samplers, schedules  # noqa: E402


def simulate_noise_predictor(x_t: np.ndarray, t: int, x0: np.ndarray, betas_or_schedule) -> np.ndarray:
    """The oracle's eps = (x_t - sqrt(alpha_bar_t) x0) / sqrt(1 - alpha_bar_t) (Ho et al. 2020, eq. 4).

    ``t`` is the core's index, 0 .. T-1, as in add_gaussian_noise: ``x_t`` is the paper's x_{t+1}.
    """
    schedule = as_schedule(betas_or_schedule)
    x_t, x0 = np.asarray(x_t, dtype=np.float64), np.asarray(x0, dtype=np.float64)
    if x_t.shape != x0.shape:
        raise ValueError(f"x_t and x0 must have the same shape, got {x_t.shape} and {x0.shape}")
    return denoisers.Oracle(x0, schedule).predict_noise(x_t, step_index(t, schedule))


def reverse_diffusion(
    image: np.ndarray,
    betas_or_schedule,
    rng: np.random.Generator,
    *,
    sampler: str = "ddpm",
    ddim_steps: int | None = None,
    eta: float = 0.0,
    spacing: str = "leading",
) -> tuple[np.ndarray, list[tuple[int, np.ndarray]]]:
    """Noise ``image`` to x_T with eq. 4, then run the exact reverse steps with the oracle.

    Returns x_T and the list of (t, x_t) after each step, t counted as in the paper: the last is (0, the clean end).
    """
    schedule = as_schedule(betas_or_schedule)
    image = np.asarray(image, dtype=np.float64)
    x_T = forward.q_sample(image, schedule.num_steps - 1, rng.standard_normal(np.shape(image)), schedule)
    oracle = denoisers.Oracle(image, schedule)
    steps = samplers.sample(
        x_T, oracle, schedule, rng, sampler=sampler, steps=ddim_steps, eta=eta, spacing=spacing
    )
    if sampler == "ddim":
        starts = samplers.timesteps(schedule.num_steps, ddim_steps or schedule.num_steps, spacing).tolist()
    else:
        starts = list(range(schedule.num_steps - 1, -1, -1))
    times = [t + 1 for t in starts[1:]] + [0]  # the paper's t of the state after each step
    return x_T, [(time, x) for time, (_, x, _) in zip(times, steps)]


DDIM_STEPS = controls.defaults("reverse")["ddim_steps"]  # the page's


@commands.interruptible
def main(argv: list[str] | None = None) -> int:
    parser = common_parser("Noise an image to x_T, then undo it with exact DDPM or DDIM steps (oracle noise).",
                           shown="frames after x_T in the figure, evenly spaced down to the clean end (t = 0)")
    parser.add_argument("--sampler", choices=samplers.SAMPLERS, default="ddpm",
                        help="ddpm: all T steps, each adding fresh noise of the posterior's variance but the last "
                             "(Ho et al. 2020); ddim: fewer, larger steps (Song et al. 2021)")
    parser.add_argument("--ddim-steps", type=int, default=argparse.SUPPRESS,  # not given: DDIM_STEPS, or T if fewer
                        help=f"DDIM steps, 1..T, ignored for DDPM (default: {DDIM_STEPS}, or T if smaller)")
    parser.add_argument("--eta", type=float, default=0.0,
                        help="DDIM eta: 0 deterministic, 1 DDPM-like (ignored for DDPM)")
    parser.add_argument("--spacing", choices=samplers.SPACINGS, default="leading",
                        help="which of the T steps DDIM visits (ignored for DDPM). With n = --ddim-steps: leading, "
                             "every (T // n)-th from t = 1, so it starts below T (at 981 of 1000 for 50) unless n = T; "
                             "trailing, "
                             "every (T / n)-th back from t = T, so it starts at T; linspace, n evenly spaced from "
                             "t = 1 to T, rounded")
    parser.add_argument("--out", default="reverse_diffusion.png", help="PNG file to write (its folder must exist)")
    args = parser.parse_args(argv)
    check_args(parser, args)
    if "ddim_steps" not in args:  # as the page, which lowers its DDIM steps to a smaller T
        args.ddim_steps = min(DDIM_STEPS, args.steps)
    elif args.sampler == "ddim" and not 1 <= args.ddim_steps <= args.steps:
        parser.error(f"--ddim-steps {args.ddim_steps} must be between 1 and --steps ({args.steps})")
    if args.sampler == "ddim" and not 0 <= args.eta <= 1:  # also refuses nan
        parser.error("--eta must be between 0 (deterministic DDIM) and 1 (DDPM-like noise)")

    schedule = schedules.get_schedule(args.schedule, args.steps)
    image = images.make_image(args.image, args.size)
    rng = np.random.default_rng(args.seed)
    ddim_steps = args.ddim_steps if args.sampler == "ddim" else None
    x_T, states = reverse_diffusion(
        image, schedule, rng, sampler=args.sampler, ddim_steps=ddim_steps, eta=args.eta, spacing=args.spacing
    )
    picks = shown_steps(len(states), args.shown)
    frames = [x_T] + [states[i][1] for i in picks]
    first = int(samplers.timesteps(args.steps, ddim_steps, args.spacing)[0]) + 1 if ddim_steps else args.steps
    # Leading DDIM spacing starts below T: x_T is a draw of q(x_T | x0), which the first step takes for x_first.
    start = f"x_T (t = {args.steps})" if first == args.steps else f"x_T (as t = {first})"
    labels = [start] + [f"t = {states[i][0]}" for i in picks]
    error = float(np.max(np.abs(states[-1][1] - image)))
    how = f"ddim, {ddim_steps} steps, {args.spacing} spacing, eta {args.eta:g}" if ddim_steps else "ddpm"
    title = (f"Reverse diffusion ({how}, oracle noise): {args.schedule}, T={args.steps}, seed {args.seed}\n"
             f"max |x0 - image| = {error:.1e}")
    return write(plots.strip_figure(frames, labels, title=title), args.out, args.show)


if __name__ == "__main__":
    sys.exit(main())
