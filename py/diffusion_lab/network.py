"""Who predicts the noise, learned: a small residual MLP trained on 8x8 digits (forward pass only).

The network reads a noisy image x_t and its noise level, the log signal-to-noise
ratio lambda = log(alpha_bar / (1 - alpha_bar)) (Kingma et al. 2021, "Variational Diffusion Models", sec. 2), and
predicts the velocity v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0
(Salimans & Ho 2022, sec. 4); eps and x0 follow exactly (``samplers.eps_from_v``).
Because it is conditioned on lambda rather than on an index t, it was trained
on a continuous range of noise levels (the continuous cosine schedule,
lambda in [LOG_SNR_MIN, LOG_SNR_MAX]) and works with every schedule and T:
``predict_noise(x_t, t)`` looks up lambda_t in the schedule it is given.
Levels outside the range are clamped; beyond it the answer no longer changes
(x_t is pure noise, or already clean). v rather than eps keeps both ends well
conditioned: at alpha_bar -> 0, x0 = sqrt(alpha_bar) x_t - sqrt(1 - alpha_bar) v
does not divide by sqrt(alpha_bar).

Architecture (``forward``): sinusoidal embedding of lambda (Vaswani et al.
2017, sec. 3.5, as in Ho et al. 2020, appendix B) -> SiLU layer e; the image
(flattened, 64 numbers) -> linear layer h; residual blocks
h += W2 silu(W1 h + We e + b1) + b2; output W_out silu(h) + b_out.
With the shipped sizes (width 256, 3 blocks) that is 530k weights, a 2 MB
``.npz`` of float32 with a JSON ``meta`` string; they are used as float64.
Training (gradients, Adam, data) lives in ``train.py``, which the browser
never loads. Plain numpy and no index arrays, so it runs unchanged in Pyodide;
one 50-step DDIM sample of an 8x8 image takes ~15 ms in CPython and ~0.1-0.2 s
in Pyodide (see ``dense``).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import sys

import numpy as np

from .denoisers import Denoiser
from .schedules import Schedule

FORMAT = "diffusion_lab.network/1"  # meta["format"] of the weights file
LOG_SNR_MIN, LOG_SNR_MAX = -15.0, 15.0  # trained range of lambda; inputs are clamped to it
EMBED_FREQUENCIES = 16  # sin and cos of 16 frequencies: a 32-number embedding of lambda
MAX_FREQUENCY = 64.0  # highest angular frequency over the unit interval of scaled lambda
_FREQUENCIES = np.geomspace(math.pi, MAX_FREQUENCY, EMBED_FREQUENCIES)

if sys.platform == "emscripten":
    def dense(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """x @ w. Pyodide's numpy has no BLAS: its matmul is a plain triple loop, 3x (one image)
        to 15x (64 images) slower than einsum's sum-of-products kernels."""
        return np.einsum("nk,kj->nj", x, w)
else:
    dense = np.matmul  # BLAS: 1.5x (one image) to 10x (500 images) faster than einsum


def time_embedding(log_snr: np.ndarray, dtype=np.float64) -> np.ndarray:
    """(N,) lambda -> (N, 2 F) [sin(w_k c), cos(w_k c)], c = clamped lambda scaled to [0, 1], w_k = pi .. MAX_FREQUENCY."""
    lam = np.clip(np.asarray(log_snr, dtype=np.float64).reshape(-1), LOG_SNR_MIN, LOG_SNR_MAX)
    c = (lam - LOG_SNR_MIN) / (LOG_SNR_MAX - LOG_SNR_MIN)
    args = c[:, None] * _FREQUENCIES[None, :]
    return np.concatenate([np.sin(args), np.cos(args)], axis=1).astype(dtype)


def silu(z: np.ndarray) -> np.ndarray:
    """z sigmoid(z) (Elfwing et al. 2018; "swish"), written to avoid exp overflow."""
    return z * (0.5 * (1.0 + np.tanh(0.5 * z)))


def num_blocks(params: dict) -> int:
    return sum(1 for key in params if key.endswith(".w1"))


def forward(params: dict, x: np.ndarray, log_snr: np.ndarray) -> np.ndarray:
    """The network: (N, D) images and (N,) or scalar lambda -> (N, D) predicted v, in the params' dtype."""
    dtype = params["in.w"].dtype
    x = np.asarray(x, dtype=dtype)
    emb = time_embedding(np.broadcast_to(np.asarray(log_snr, dtype=np.float64), (x.shape[0],)), dtype)
    e = silu(dense(emb, params["embed.w"]) + params["embed.b"])
    h = dense(x, params["in.w"]) + params["in.b"]
    for k in range(num_blocks(params)):
        p = f"block{k}."
        a = silu(dense(h, params[p + "w1"]) + dense(e, params[p + "we"]) + params[p + "b1"])
        h = h + dense(a, params[p + "w2"]) + params[p + "b2"]
    return dense(silu(h), params["out.w"]) + params["out.b"]


def init_params(rng: np.random.Generator, *, pixels: int = 64, hidden: int = 256, blocks: int = 3,
                embed: int = 128, dtype=np.float32) -> dict:
    """Random weights: N(0, 1/fan_in) (LeCun), the residual branches' last layer zero (Goyal et al. 2017), biases 0."""
    def gaussian(fan_in, fan_out):
        return (rng.standard_normal((fan_in, fan_out)) / math.sqrt(fan_in)).astype(dtype)

    params = {"embed.w": gaussian(2 * EMBED_FREQUENCIES, embed), "embed.b": np.zeros(embed, dtype),
              "in.w": gaussian(pixels, hidden), "in.b": np.zeros(hidden, dtype)}
    for k in range(blocks):
        p = f"block{k}."
        params[p + "w1"] = gaussian(hidden, hidden)
        params[p + "we"] = gaussian(embed, hidden)
        params[p + "b1"] = np.zeros(hidden, dtype)
        params[p + "w2"] = np.zeros((hidden, hidden), dtype)
        params[p + "b2"] = np.zeros(hidden, dtype)
    params["out.w"] = gaussian(hidden, pixels)
    params["out.b"] = np.zeros(pixels, dtype)
    return params


def save(path, params: dict, meta: dict) -> None:
    """Write the weights (float32) and ``meta`` (as a JSON string, so np.load needs no pickle) to an .npz."""
    arrays = {key: np.asarray(value, dtype=np.float32) for key, value in params.items()}
    np.savez_compressed(path, meta=np.array(json.dumps({"format": FORMAT, **meta}, sort_keys=True)), **arrays)


def load_weights(source) -> tuple[dict, dict]:
    """Read an .npz from a path or from bytes (what the page fetches); weights come back as float64."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(source))
    elif not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"expected a path or the bytes of an .npz file, got {type(source).__name__}")
    with np.load(source, allow_pickle=False) as data:
        if "meta" not in data.files:
            raise ValueError("not a Diffusion Lab weights file: no 'meta' entry")
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"weights file format {meta.get('format')!r}, expected {FORMAT!r}")
        params = {key: data[key].astype(np.float64) for key in data.files if key != "meta"}
    check_weights(params, meta)
    return params, meta


class WeightsError(ValueError):
    """A weights file that reads but does not make the network: its message says what is wrong."""


def check_weights(params: dict, meta: dict) -> None:
    """Refuse weights that ``forward`` could not use: a layer missing, shapes that do not chain from the image's
    pixels through the blocks and back, or numbers that are not finite (a diverged run)."""
    shape = meta.get("image_shape")
    if not (isinstance(shape, list) and shape and all(isinstance(n, int) and n > 0 for n in shape)):
        raise WeightsError(f"its meta has no image shape (image_shape: {shape!r})")
    numbers = {int(key[5:].split(".")[0]) for key in params if re.fullmatch(r"block\d+\.\w+", key)}
    blocks = next(k for k in range(len(numbers) + 1) if k not in numbers)  # blockK.* for K = 0 .. blocks - 1
    if numbers - set(range(blocks)):  # a gap: the first block missing (not a list up to a stray block99999999)
        raise WeightsError(f"the layer block{blocks}.w1 is missing")
    layers = ["embed.w", "embed.b", "in.w", "in.b", "out.w", "out.b",
              *(f"block{k}.{name}" for k in range(blocks) for name in ("w1", "we", "b1", "w2", "b2"))]
    for key in layers:
        if key not in params:
            raise WeightsError(f"the layer {key} is missing")
    unexpected = sorted(set(params) - set(layers))
    if unexpected:
        raise WeightsError(f"unexpected arrays: {', '.join(unexpected)}")
    pixels = math.prod(shape)
    embed, hidden = (np.shape(params[key])[-1:] for key in ("embed.w", "in.w"))  # (width,), () if 0-d
    block = {"w1": hidden * 2, "we": embed + hidden, "b1": hidden, "w2": hidden * 2, "b2": hidden}
    wanted = {"embed.w": (2 * EMBED_FREQUENCIES, *embed), "embed.b": embed, "in.w": (pixels, *hidden),
              "in.b": hidden, "out.w": (*hidden, pixels), "out.b": (pixels,),
              **{key: block[key.split(".")[1]] for key in layers if key.startswith("block")}}
    for key in layers:
        if np.shape(params[key]) != wanted[key]:
            raise WeightsError(f"the layer {key} has shape {np.shape(params[key])}, where the network needs "
                               f"{wanted[key]} for {'x'.join(map(str, shape))} images")
    if not all(np.isfinite(value).all() for value in params.values()):
        raise WeightsError("some weights are not finite numbers (a training run that diverged?)")


class TrainedDenoiser(Denoiser):
    """A trained network as a Denoiser: predict_noise(x_t, t) for one image (H, W) or a batch (N, H, W).

    Any ``schedule`` works: the network sees lambda_t = schedule.log_snr[t]
    (clamped to [LOG_SNR_MIN, LOG_SNR_MAX]), not t. ``meta`` describes the
    training run (data, image shape, seed, steps, loss).
    """

    def __init__(self, params: dict, meta: dict, schedule: Schedule):
        self.params = params
        self.meta = meta
        self.image_shape = tuple(meta["image_shape"])
        self.schedule = schedule

    @classmethod
    def load(cls, source, schedule: Schedule) -> "TrainedDenoiser":
        """From a path or the bytes of a weights file written by ``save``."""
        params, meta = load_weights(source)
        return cls(params, meta, schedule)

    def _flat(self, x_t: np.ndarray) -> np.ndarray:
        x_t = np.asarray(x_t, dtype=np.float64)
        n = len(self.image_shape)
        if x_t.shape[x_t.ndim - n:] != self.image_shape or x_t.ndim not in (n, n + 1):
            raise ValueError(f"x_t must have shape {self.image_shape} or (N, *{self.image_shape}), got {x_t.shape}")
        return x_t.reshape(-1, math.prod(self.image_shape))

    def predict_v(self, x_t: np.ndarray, t: int) -> np.ndarray:
        """The network's v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0, shaped like x_t."""
        v = forward(self.params, self._flat(x_t), float(self.schedule.log_snr[t]))
        return v.reshape(np.shape(x_t))

    def predict_noise(self, x_t: np.ndarray, t: int) -> np.ndarray:
        """eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v (Salimans & Ho 2022, sec. 4)."""
        s = self.schedule
        return s.sqrt_one_minus_alpha_bars[t] * np.asarray(x_t, dtype=np.float64) + s.sqrt_alpha_bars[t] * self.predict_v(x_t, t)

    def predict_x0(self, x_t: np.ndarray, t: int) -> np.ndarray:
        """x0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v, without dividing by sqrt(alpha_bar_t)."""
        s = self.schedule
        return s.sqrt_alpha_bars[t] * np.asarray(x_t, dtype=np.float64) - s.sqrt_one_minus_alpha_bars[t] * self.predict_v(x_t, t)
