"""Train the digits denoiser of ``network.py``: data, hand-written backprop, Adam. CPython only.

    cd py && python3 -m diffusion_lab.train            # 12000 steps, 5-14 minutes on one core
    cd py && python3 -m diffusion_lab.train --quick    # 150 steps, seconds; writes to the temp folder

Data: scikit-learn's bundled 8x8 handwritten digits (``load_digits``, UCI
optdigits test set, 1797 images, no download), scaled from 0..16 to [-1, 1],
split 80/20 into 1438 training and 359 held-out images by a fixed
permutation (SPLIT_SEED, whatever --seed is). Objective: v-prediction,
mean ||v_hat - v||^2 with v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0
(Salimans & Ho 2022, sec. 4), at noise levels lambda = log SNR of the
continuous cosine schedule, lambda = -2 log tan(pi u / 2) (Nichol & Dhariwal
2021, eq. 17 with s = 0), u uniform on the interval that gives lambda in
[LOG_SNR_MIN, LOG_SNR_MAX]. Dropout 0.1 in the residual blocks (as Ho et al.
2020, appendix B) keeps the 1438 images from being memorised. Optimiser:
Adam (Kingma & Ba 2015, Algorithm 1) with warm-up and cosine decay; the
shipped weights are an exponential moving average of the iterates (Ho et al.
2020, appendix B). One BLAS thread and one seed make a run bit-for-bit
reproducible on a given machine (another CPU's BLAS may round differently).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads: reproducible, and fair on a shared machine
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from .commands import MissingPackage, interruptible, quiet_interrupt, write_whole  # noqa: E402

with quiet_interrupt():  # a Ctrl-C during numpy's import says "interrupted", as one later does
    import numpy as np

    from . import images, network
    from .network import LOG_SNR_MAX, LOG_SNR_MIN, silu, time_embedding

SPLIT_SEED = 0  # fixed: evaluate.py and the tests rebuild the same split
HELD_OUT = 0.2  # share of the 1797 digits kept out of training
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "site" / "models" / "digits.npz"
DEFAULTS = dict(steps=12000, batch=256, lr=2e-3, hidden=256, blocks=3, embed=128, dropout=0.1, shift=0.0, ema=0.999, warmup=200)
QUICK = dict(steps=150, batch=128)  # --quick: a smoke run for tests
QUICK_OUT = Path(tempfile.gettempdir()) / "diffusion-lab-quick" / "digits.npz"  # never over the site's network
# --shift's limit: past the width of the trained log-SNR range the noise levels drawn no longer change, and past
# about 65 sample_log_snr's floats fail.
MAX_SHIFT = LOG_SNR_MAX - LOG_SNR_MIN
# Sizes a laptop can hold (the weights, Adam's two moments and their average: four copies); a machine without the
# memory for a size within them is told so in one line.
MAX_HIDDEN = 2048
MAX_BLOCKS = 32


# ---- data -------------------------------------------------------------------------------------

def training_set_path(weights_path: Path) -> Path:
    """Where the training images go beside the weights: the page's ideal denoiser and nearest neighbours."""
    return weights_path.with_name(weights_path.stem + "-train.npz")


def save_training_set(path: Path) -> None:
    """The training digits for the page (ideal denoiser, nearest neighbours), with how far unseen digits lie.

    held_out_nn_median / held_out_nn_p5 / held_out_nn_p95: RMS distance from
    held-out digits to their nearest training digit, median, 5th and 95th
    percentile. A sample nearer than the 5th percentile is closer than 95% of
    real unseen digits: a copy. One beyond the 95th is farther than 95% of
    them: not much like a digit.
    """
    train_x, _, held_x, _ = load_digits_split()
    diff = held_x.reshape(len(held_x), 1, -1) - train_x.reshape(1, len(train_x), -1)
    nearest = np.sqrt((diff * diff).mean(axis=2)).min(axis=1)
    images.save_image_set(path, train_x, held_out_nn_median=np.median(nearest),
                          held_out_nn_p5=np.percentile(nearest, 5.0), held_out_nn_p95=np.percentile(nearest, 95.0))


def scikit_learn(module: str):
    """``sklearn.<module>``: training and evaluating the network need scikit-learn (requirements-dev.txt), the
    pages and the classroom programs do not; without it, MissingPackage says so in one line."""
    try:
        return importlib.import_module(f"sklearn.{module}")
    except ModuleNotFoundError as error:
        if not error.name or error.name.split(".")[0] not in ("sklearn", "scipy", "joblib", "threadpoolctl"):
            raise
        package = "scikit-learn" if error.name.startswith("sklearn") else error.name.split(".")[0]
        raise MissingPackage(package, "requirements-dev.txt", " (training and evaluating the network need it)") \
            from None


def load_digits_split(seed: int = SPLIT_SEED, held_out: float = HELD_OUT):
    """(train_images, train_labels, held_out_images, held_out_labels); images (N, 8, 8) float64 in [-1, 1]."""
    digits = scikit_learn("datasets").load_digits()  # bundled data: no download
    images = digits.images.astype(np.float64) / 8.0 - 1.0  # 0..16 -> [-1, 1]
    labels = digits.target.astype(np.intp)
    order = np.random.default_rng(seed).permutation(len(images))
    n_held = int(round(held_out * len(images)))
    held, train = order[:n_held], order[n_held:]
    return images[train], labels[train], images[held], labels[held]


def sample_log_snr(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    """lambda = -2 log tan(pi u / 2) + shift (shifted cosine schedule), truncated to [LOG_SNR_MIN, LOG_SNR_MAX]."""
    u_lo, u_hi = (2 / math.pi * math.atan(math.exp(-(lam - shift) / 2)) for lam in (LOG_SNR_MAX, LOG_SNR_MIN))
    u = rng.uniform(u_lo, u_hi, n)
    return -2.0 * np.log(np.tan(math.pi * u / 2)) + shift


def noisy_batch(x0: np.ndarray, rng: np.random.Generator, shift: float = 0.0):
    """x_t, lambda and the target v for clean images x0 (N, D): alpha_bar = sigmoid(lambda)."""
    lam = sample_log_snr(rng, x0.shape[0], shift)
    eps = rng.standard_normal(x0.shape)
    alpha_bar = 1.0 / (1.0 + np.exp(-lam))
    a, s = np.sqrt(alpha_bar)[:, None], np.sqrt(1.0 - alpha_bar)[:, None]
    return a * x0 + s * eps, lam, a * eps - s * x0


# ---- gradients --------------------------------------------------------------------------------

def silu_grad(z: np.ndarray) -> np.ndarray:
    """d/dz z sigmoid(z) = sigmoid(z) (1 + z (1 - sigmoid(z)))."""
    sig = 0.5 * (1.0 + np.tanh(0.5 * z))
    return sig * (1.0 + z * (1.0 - sig))


def loss_and_grads(params: dict, x: np.ndarray, log_snr: np.ndarray, target: np.ndarray, *,
                   dropout: float = 0.0, rng: np.random.Generator | None = None):
    """Mean squared error of network.forward(params, x, log_snr) against target, and its gradient per parameter.

    The forward pass repeats network.forward keeping the intermediates; the
    backward pass is the chain rule through it, layer by layer in reverse.
    With ``dropout`` > 0, each residual block's hidden units are zeroed with
    that probability and the rest scaled by 1 / (1 - dropout) (inverted
    dropout, Srivastava et al. 2014; DDPM uses 0.1), masks drawn from ``rng``.
    """
    dtype = params["in.w"].dtype
    x = np.asarray(x, dtype=dtype)
    blocks = network.num_blocks(params)
    emb = time_embedding(log_snr, dtype)
    ze = emb @ params["embed.w"] + params["embed.b"]
    e = silu(ze)
    h = x @ params["in.w"] + params["in.b"]
    hs, zs, acts, masks = [], [], [], []
    for k in range(blocks):
        p = f"block{k}."
        z = h @ params[p + "w1"] + e @ params[p + "we"] + params[p + "b1"]
        a = silu(z)
        if dropout > 0:
            mask = (rng.random(a.shape) >= dropout).astype(dtype) / dtype.type(1.0 - dropout)
            a = a * mask
            masks.append(mask)
        hs.append(h), zs.append(z), acts.append(a)
        h = h + a @ params[p + "w2"] + params[p + "b2"]
    top = silu(h)
    out = top @ params["out.w"] + params["out.b"]
    diff = out - target.astype(dtype)
    loss = float(np.mean(diff.astype(np.float64) ** 2))

    grads = {}
    g = (2.0 / diff.size) * diff
    grads["out.w"], grads["out.b"] = top.T @ g, g.sum(axis=0)
    g_h = (g @ params["out.w"].T) * silu_grad(h)
    g_e = np.zeros_like(e)
    for k in reversed(range(blocks)):
        p = f"block{k}."
        grads[p + "w2"], grads[p + "b2"] = acts[k].T @ g_h, g_h.sum(axis=0)
        g_a = g_h @ params[p + "w2"].T
        g_z = (g_a * masks[k] if dropout > 0 else g_a) * silu_grad(zs[k])
        grads[p + "w1"], grads[p + "we"], grads[p + "b1"] = hs[k].T @ g_z, e.T @ g_z, g_z.sum(axis=0)
        g_e += g_z @ params[p + "we"].T
        g_h = g_h + g_z @ params[p + "w1"].T
    grads["in.w"], grads["in.b"] = x.T @ g_h, g_h.sum(axis=0)
    g_ze = g_e * silu_grad(ze)
    grads["embed.w"], grads["embed.b"] = emb.T @ g_ze, g_ze.sum(axis=0)
    return loss, grads


class Adam:
    """Kingma & Ba 2015, Algorithm 1, updating the arrays of ``params`` in place."""

    def __init__(self, params: dict, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self.beta1, self.beta2, self.eps, self.step_count = beta1, beta2, eps, 0

    def step(self, params: dict, grads: dict, lr: float) -> None:
        self.step_count += 1
        b1, b2 = self.beta1, self.beta2
        step = lr * math.sqrt(1 - b2**self.step_count) / (1 - b1**self.step_count)  # bias corrections
        for k, g in grads.items():
            m, v = self.m[k], self.v[k]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            params[k] -= step * m / (np.sqrt(v) + self.eps)


def learning_rate(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to lr / 20."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def held_out_loss(params: dict, images: np.ndarray, repeats: int = 4, seed: int = 12345) -> float:
    """The v-loss on held-out images at fixed noise (same draws every call)."""
    rng = np.random.default_rng(seed)
    x0 = np.tile(images.reshape(len(images), -1), (repeats, 1))
    x_t, lam, v = noisy_batch(x0, rng)
    return float(np.mean((network.forward(params, x_t, lam) - v) ** 2))


# ---- the run ----------------------------------------------------------------------------------

def train(*, seed: int = 0, steps: int, batch: int, lr: float, hidden: int, blocks: int, embed: int,
          dropout: float, shift: float, ema: float, warmup: int, log_every: int = 500, log=print):
    """Train from ``seed``; return (EMA weights, meta, history of (step, mean training loss))."""
    train_x, _, held_x, _ = load_digits_split()
    data = train_x.reshape(len(train_x), -1)
    rng = np.random.default_rng(seed)
    params = network.init_params(rng, pixels=data.shape[1], hidden=hidden, blocks=blocks, embed=embed)
    averaged = {k: v.copy() for k, v in params.items()}
    adam = Adam(params)
    history, running, start = [], [], time.perf_counter()
    order, cursor = rng.permutation(len(data)), 0
    for step in range(steps):
        if cursor + batch > len(order):  # epochs of shuffled images
            order, cursor = rng.permutation(len(data)), 0
        x0 = data[order[cursor:cursor + batch]]
        cursor += batch
        x_t, lam, v = noisy_batch(x0, rng, shift)
        loss, grads = loss_and_grads(params, x_t, lam, v, dropout=dropout, rng=rng)
        adam.step(params, grads, learning_rate(step, steps, lr, warmup))
        decay = min(ema, (1 + step) / (10 + step))  # short memory early on
        for k, value in params.items():
            averaged[k] *= decay
            averaged[k] += (1 - decay) * value
        running.append(loss)
        if (step + 1) % log_every == 0 or step + 1 == steps:
            history.append((step + 1, float(np.mean(running))))
            log(f"step {step + 1:6d}/{steps}  loss {history[-1][1]:.4f}  "
                f"held-out (EMA) {held_out_loss(averaged, held_x):.4f}  {time.perf_counter() - start:6.1f} s")
            running = []
    seconds = time.perf_counter() - start
    meta = dict(
        image_shape=list(train_x.shape[1:]), data="sklearn load_digits 8x8, 0..16 scaled to [-1, 1]",
        split_seed=SPLIT_SEED, held_out=HELD_OUT, train_images=len(train_x), seed=seed, steps=steps,
        batch=batch, lr=lr, hidden=hidden, blocks=blocks, embed=embed, dropout=dropout, shift=shift, ema=ema, warmup=warmup,
        prediction="v", conditioning="log_snr", log_snr_range=[LOG_SNR_MIN, LOG_SNR_MAX],
        noise_levels="continuous cosine schedule (any schedule works at inference)",
        final_loss=history[-1][1], held_out_loss=held_out_loss(averaged, held_x), train_seconds=round(seconds, 1),
    )
    return averaged, meta, history


@interruptible
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m diffusion_lab.train",
                                     description=__doc__.split("\n")[0].replace("``", ""))
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, batches and noise (default 0)")
    parser.add_argument("--steps", type=int, help=f"optimiser steps (default {DEFAULTS['steps']}, --quick {QUICK['steps']})")
    parser.add_argument("--batch", type=int, help=f"images per step, at most the 1438 training images "
                                                  f"(default {DEFAULTS['batch']}, --quick {QUICK['batch']})")
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"],
                        help="peak Adam learning rate, above 0 (default %(default)s)")
    parser.add_argument("--hidden", type=int, default=DEFAULTS["hidden"],
                        help=f"width of the residual MLP, 1..{MAX_HIDDEN} (default %(default)s)")
    parser.add_argument("--blocks", type=int, default=DEFAULTS["blocks"],
                        help=f"residual blocks, 1..{MAX_BLOCKS} (default %(default)s)")
    parser.add_argument("--dropout", type=float, default=DEFAULTS["dropout"],
                        help="share of hidden units dropped in the residual blocks, 0 <= p < 1 (default %(default)s)")
    parser.add_argument("--shift", type=float, default=DEFAULTS["shift"],
                        help=f"shift of the training log-SNR, {-MAX_SHIFT:g}..{MAX_SHIFT:g}: above 0 it trains more "
                             "on low noise (default %(default)s)")
    parser.add_argument("--out", type=Path, help=f"weights file, and its training digits beside it as "
                                                 f"NAME-train.npz (default {DEFAULT_OUT}, the site's; "
                                                 f"with --quick {QUICK_OUT})")
    parser.add_argument("--quick", action="store_true", help="a few steps, for tests (seconds); its weights "
                                                             "never replace the site's unless --out says so")
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else DEFAULTS
    steps = preset["steps"] if args.steps is None else args.steps  # 0 is a value, not "not given"
    batch = preset["batch"] if args.batch is None else args.batch
    check_options(parser, args, steps, batch)
    out = args.out or (QUICK_OUT if args.quick else DEFAULT_OUT)
    check_out(parser, out)
    config = dict(DEFAULTS, steps=steps, batch=batch, lr=args.lr, hidden=args.hidden, blocks=args.blocks,
                  dropout=args.dropout, shift=args.shift)
    print(f"training {config} seed {args.seed}", flush=True)
    log_every = max(1, min(500, steps // 10))
    try:
        params, meta, _ = train(seed=args.seed, log_every=log_every, log=lambda s: print(s, flush=True), **config)
    except MemoryError:
        print(f"error: not enough memory to train --hidden {args.hidden} --blocks {args.blocks}: nothing written; "
              "try a smaller network", file=sys.stderr)
        return 1
    losses = f"final loss {meta['final_loss']:.4f}, held-out {meta['held_out_loss']:.4f}"
    if not (math.isfinite(meta["final_loss"]) and math.isfinite(meta["held_out_loss"])
            and all(np.isfinite(value).all() for value in params.values())):
        print(f"error: training diverged ({losses}): nothing written to {out}; try a smaller --lr", file=sys.stderr)
        return 1
    digits = training_set_path(out)
    saves = ((out, lambda partial: network.save(partial, params, meta)), (digits, save_training_set))
    for path, save in saves:
        try:
            write_whole(path, save)
        except OSError as error:
            written = f" ({out} was written: its training digits are missing)" if path == digits else ""
            print(f"error: could not write {path}: {error.strerror or error}{written}", file=sys.stderr)
            return 1
    print(f"{losses}, {meta['train_seconds']} s; wrote {out} ({out.stat().st_size / 1e6:.2f} MB) and its training "
          f"digits, {digits}")
    return 0


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace, steps: int, batch: int) -> None:
    """Refuse impossible hyper-parameters before any work, as argparse does: a one-line message and exit status 2."""
    if steps < 1 or batch < 1:
        parser.error("--steps and --batch must be positive")
    if not 0 < args.lr < math.inf:  # also refuses nan
        parser.error("--lr must be a positive number")
    if not 0 <= args.dropout < 1:
        parser.error("--dropout must be at least 0 and below 1 (the share of hidden units zeroed)")
    if not 1 <= args.hidden <= MAX_HIDDEN:
        parser.error(f"--hidden must be between 1 and {MAX_HIDDEN}")
    if not 1 <= args.blocks <= MAX_BLOCKS:
        parser.error(f"--blocks must be between 1 and {MAX_BLOCKS}")
    if not -MAX_SHIFT <= args.shift <= MAX_SHIFT:
        parser.error(f"--shift must be between {-MAX_SHIFT:g} and {MAX_SHIFT:g} (the trained log-SNR range's width)")
    if args.seed < 0:
        parser.error("--seed must be 0 or more")
    available = len(load_digits_split()[0])
    if batch > available:  # a step never takes an image twice: a bigger batch would silently be all of them
        parser.error(f"--batch must be at most {available}, the number of training images")


def check_out(parser: argparse.ArgumentParser, out: Path) -> None:
    """Refuse an --out that cannot take the weights now, not after minutes of training; make its folder."""
    if out.suffix != ".npz":  # numpy would add .npz to the name, and the page and evaluate look for this one
        parser.error(f"--out {str(out)!r}: the weights are an .npz archive, so the file name must end in .npz")
    if out.is_dir():
        parser.error(f"--out {str(out)!r} is a folder; give a file name ending in .npz")
    if out.parent.exists() and not out.parent.is_dir():
        parser.error(f"--out {str(out)!r}: {str(out.parent)!r} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out.parent):  # the folder takes new files (write_whole makes one)
            pass
    except OSError as error:
        parser.error(f"--out {str(out)!r}: cannot write in {str(out.parent)!r} ({error.strerror or error})")


if __name__ == "__main__":
    sys.exit(main())
