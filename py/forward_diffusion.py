"""Forward diffusion, the classroom program: noise an image step by step and plot it.

    python py/forward_diffusion.py --schedule cosine --steps 1000 --out forward.png

The maths lives in diffusion_lab (schedules, forward); this file keeps the
classroom names as thin wrappers and draws one strip of frames.
"""

from __future__ import annotations

import argparse
import contextlib
import numbers
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from diffusion_lab import commands  # the standard library only

REQUIRED = {"numpy": "numpy", "matplotlib": "matplotlib", "PIL": "Pillow"}  # module: package (requirements.txt)

with commands.quiet_interrupt():  # matplotlib's import is most of a short run: where a Ctrl-C lands
    try:
        import numpy as np

        from diffusion_lab import controls, forward, images, plots, schedules
    except ModuleNotFoundError as error:  # a student who skipped the install: which package, and how to get it
        if error.name not in REQUIRED:
            raise
        sys.exit(f"error: {commands.not_installed(REQUIRED[error.name])}")


def as_schedule(betas_or_schedule) -> schedules.Schedule:
    """A Schedule as it is, or the one of these betas (what variance_schedule_beta returns): every function here
    takes either."""
    if isinstance(betas_or_schedule, schedules.Schedule):
        return betas_or_schedule
    if np.ndim(betas_or_schedule) != 1:  # from_betas would flatten a table of numbers into one schedule
        raise ValueError(f"betas must be a 1-D sequence of T numbers in (0, 1) or a Schedule, got "
                         f"{type(betas_or_schedule).__name__} of shape {np.shape(betas_or_schedule)}")
    return schedules.from_betas(betas_or_schedule)


def variance_schedule_beta(num_steps: int, schedule: str = "linear") -> np.ndarray:
    """beta_t for t = 0 .. num_steps-1 of the named schedule (read-only float64)."""
    return schedules.get_schedule(schedule, num_steps).betas


def step_index(t, schedule: schedules.Schedule) -> int:
    """``t`` as the core's index, refused unless an integer from 0 to T-1 (numpy would take -1 for the last step)."""
    last = schedule.num_steps - 1
    if isinstance(t, bool) or not isinstance(t, numbers.Integral) or not 0 <= t <= last:
        raise ValueError(f"t must be an integer from 0 to {last} (the core's index: the paper's step t + 1), got {t!r}")
    return int(t)


def add_gaussian_noise(image: np.ndarray, t: int, betas_or_schedule, *, rng: np.random.Generator) -> np.ndarray:
    """Jump straight to the paper's x_{t+1} ~ q(x_{t+1} | x0) (Ho et al. 2020, eq. 4).

    ``t`` is the core's index, 0 .. T-1, not the paper's t: t = 0 is one noising step (x_1, not the clean image)
    and t = T-1 the last (x_T), so ``for t in range(T)`` visits every step. The figure labels this t + 1.
    """
    schedule = as_schedule(betas_or_schedule)
    t = step_index(t, schedule)
    image = np.asarray(image, dtype=np.float64)  # a nested list works too
    noise = rng.standard_normal(image.shape)
    return forward.q_sample(image, t, noise, schedule)


def add_gaussian_noise_for_forward_sim(
    x_prev: np.ndarray, t: int, betas_or_schedule, *, rng: np.random.Generator
) -> np.ndarray:
    """One step of the Markov chain (Ho et al. 2020, eq. 2): the paper's x_t from ``x_prev`` = x_{t-1}.

    ``t`` is the core's index, 0 .. T-1, the paper's step t + 1: t = 0 takes x0 to x_1, t = T-1 gives x_T.
    """
    schedule = as_schedule(betas_or_schedule)
    t = step_index(t, schedule)
    x_prev = np.asarray(x_prev, dtype=np.float64)
    noise = rng.standard_normal(x_prev.shape)
    return forward.q_step(x_prev, t, noise, schedule)


MAX_SHOWN = 40  # frames in one figure (130 px each)


def shown_steps(count: int, shown: int) -> list[int]:
    """The indices of ``shown`` of ``count`` steps, evenly spaced and ending with the last: the 10 of 1000 are
    the 100th, 200th, .., 1000th (fewer if count is small). The first is not the first step, whose picture is the
    one shown before it, all but unchanged."""
    n = max(1, min(shown, count))
    return sorted({round(k * count / n) - 1 for k in range(1, n + 1)})


def common_parser(description: str, shown: str = "noisy frames in the figure, evenly spaced up to x_T"
                  ) -> argparse.ArgumentParser:
    """The options both classroom programs share; ``shown`` says what --shown counts."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="The figure labels t as the DDPM paper and the pages count it: t = 0 is the clean image, t = T the "
               "noisiest step.")
    parser.add_argument("--schedule", choices=schedules.SCHEDULE_NAMES, default="linear",
                        help="noise schedule beta_t: linear (DDPM), scaled_linear (Stable Diffusion), cosine "
                             "(improved DDPM) or sigmoid")
    parser.add_argument("--steps", type=int, default=1000,
                        help=f"number of diffusion steps T (2..{schedules.REFERENCE_STEPS})")
    parser.add_argument("--seed", type=int, default=0, help=f"random seed (0..{controls.MAX_SEED})")
    parser.add_argument("--image", choices=images.IMAGE_NAMES, default="gradient",
                        help="which of the built-in pictures to noise (a file cannot be given)")
    parser.add_argument("--size", type=int, default=64,
                        help=f"image side in pixels, any from {images.MIN_SIZE} to {images.MAX_SIZE}; the pages take "
                             f"it in steps of 16 (16, 32, ..., 256), so use one of those to compare with them")
    parser.add_argument("--shown", type=int, default=10,
                        help=f"number of {shown} (1..{MAX_SHOWN})")
    parser.add_argument("--show", action="store_true",
                        help="also open the PNG with the system's viewer (xdg-open, macOS's open or Windows')")
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad options before any work, as argparse does: a one-line message and exit status 2."""
    if not 2 <= args.steps <= schedules.REFERENCE_STEPS:
        parser.error(f"--steps must be between 2 and {schedules.REFERENCE_STEPS}")
    if not images.MIN_SIZE <= args.size <= images.MAX_SIZE:
        parser.error(f"--size must be between {images.MIN_SIZE} and {images.MAX_SIZE}")
    if not 0 <= args.seed <= controls.MAX_SEED:
        parser.error(f"--seed must be between 0 and {controls.MAX_SEED}")
    if not 1 <= args.shown <= MAX_SHOWN:
        parser.error(f"--shown must be between 1 and {MAX_SHOWN}")
    out = Path(args.out)
    if out.name.lower() == ".png":  # Path(".png").suffix is ""
        parser.error(f"--out {args.out!r}: give the file a name before .png")
    if out.suffix.lower() != ".png":
        parser.error(f"--out {args.out!r}: the figure is a PNG, so the file name must end in .png")
    if out.is_dir():
        parser.error(f"--out {args.out!r} is a folder; give a file name ending in .png")
    folder = out.parent
    if folder.exists() and not folder.is_dir():
        parser.error(f"--out {args.out!r}: {str(folder)!r} is a file, not a folder")
    if not folder.is_dir():
        parser.error(f"--out {args.out!r}: the folder {str(folder)!r} does not exist")
    target = Path(os.path.realpath(out))  # through a symbolic link, where write() puts the PNG
    created = False
    try:  # the one sure test: open the file without changing what it holds, and make the one `write` fills first
        existed = target.exists()
        with open(target, "ab"):
            created = not existed
        partial = commands.partial_path(target)
        with open(partial, "wb"):
            pass
        partial.unlink()
    except OSError as error:
        parser.error(f"--out {args.out!r}: cannot write there ({error.strerror or error})")
    finally:
        if created:  # only what this test made (on a read-only disk even removing a missing file fails)
            with contextlib.suppress(OSError):
                target.unlink()


def write(fig, out: str, show: bool) -> int:
    """Save the figure as PNG; the exit status (1 with a one-line message if the file cannot be written).

    The PNG goes to a temporary file beside ``out``, moved into place only once complete: a failed or interrupted
    save (a full disk, Ctrl-C) leaves the file that was at ``out`` as it was, and no partial file.
    """
    try:  # through a symbolic link, where the PNG goes
        commands.write_whole(Path(os.path.realpath(out)), lambda partial: plots.save_png(fig, partial))
    except OSError as error:
        print(f"error: could not write {out}: {error.strerror or error}", file=sys.stderr)
        return 1
    written = Path(out).resolve()
    print(f"wrote {written}")
    if show and not open_in_viewer(written):
        print(f"note: no image viewer could be opened; the PNG is at {written}", file=sys.stderr)
    return 0


OPENER_WAIT_S = 5.0  # an opener still running by then has started a viewer (some run it until it is closed)


def open_in_viewer(path: Path) -> bool:
    """Open ``path`` itself (no copy) with the platform's opener, whose own messages are silenced; False if there
    is none or it failed."""
    try:
        if sys.platform == "win32":
            os.startfile(path)
            return True
        opener = shutil.which("open" if sys.platform == "darwin" else "xdg-open")
        if opener is None:
            return False
        process = subprocess.Popen([opener, str(path)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            return process.wait(OPENER_WAIT_S) == 0
        except subprocess.TimeoutExpired:
            return True
    except OSError:
        return False


@commands.interruptible
def main(argv: list[str] | None = None) -> int:
    parser = common_parser("Noise an image with the DDPM forward process and plot the steps.")
    parser.add_argument("--out", default="forward_diffusion.png", help="PNG file to write (its folder must exist)")
    args = parser.parse_args(argv)
    check_args(parser, args)

    schedule = schedules.get_schedule(args.schedule, args.steps)
    image = images.make_image(args.image, args.size)
    rng = np.random.default_rng([args.seed, 1])  # the forward page's Play and Step: its pictures at these t
    wanted = set(shown_steps(args.steps, args.shown))
    frames, labels = [image], ["x_0 (t = 0)"]
    x = image
    for t in range(args.steps):  # the core's index: the step to the paper's t + 1
        x = add_gaussian_noise_for_forward_sim(x, t, schedule, rng=rng)
        if t in wanted:
            frames.append(x)
            labels.append(f"t = {t + 1}")
    title = f"Forward diffusion: {args.schedule} schedule, T={args.steps}, seed {args.seed}"
    return write(plots.strip_figure(frames, labels, title=title), args.out, args.show)


if __name__ == "__main__":
    sys.exit(main())
