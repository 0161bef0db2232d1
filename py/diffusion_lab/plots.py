"""Figures for the CLI programs and the pages, drawn with matplotlib's Agg (no pyplot).

A page redraws a figure every frame, and updating a reused figure costs about
a third of creating one, so each figure is a class built once and updated in
place; ``to_rgba`` renders it for a canvas. Sizes are in pixels at DPI 100; a
``scale`` draws the same figure with that many pixels per pixel, for a screen
whose CSS pixel holds several (text keeps its size relative to the figure).
"""

from __future__ import annotations

import math
import textwrap

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, NullFormatter

from .schedules import Schedule

DPI = 100
HIST_RANGE = (-4.0, 4.0)  # fixed x-range of the pixel histogram: pure noise fits, t stays comparable
HIST_BINS = 81  # bins of 0.1 centred on -4, -3.9, ..., 4: a clean image's -1 and 1 sit in the middle of theirs
LOG_SPAN = 20.0  # the beta axis spans at least this factor (1.3 decades): matplotlib then labels powers of ten
# The histogram's top leaves the predicted density's peak room for this many standard deviations of the sampling
# noise of the bar under it, so that noise does not flip the top between two round numbers while t moves (QA13 F1);
# it depends on t alone, not on the t visited before, so a link shows the axis the sender saw (QA25 F4).
NOISE_SIGMAS = 4.0
LEGEND_GAP = 0.03  # between the highest bar and the histogram's legend, as a share of the axes' height
ROUND_TOPS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)  # times a power of ten: the histogram's top


MIN_FIGURE_PX = 50  # a figure's least width and height
XLABEL_PX = 42  # under the axes: tick labels (8 pt) and the x label (9 pt), with their pads, at DPI 100


def _figure(width_px: int, height_px: int, scale: float = 1.0) -> Figure:
    if width_px < MIN_FIGURE_PX or height_px < MIN_FIGURE_PX:
        raise ValueError(f"figure must be at least {MIN_FIGURE_PX}x{MIN_FIGURE_PX} px, got {width_px}x{height_px}")
    if not 1.0 <= scale <= 4.0:
        raise ValueError(f"scale must be between 1 and 4, got {scale}")
    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI * scale)
    FigureCanvasAgg(fig)
    return fig


def _as_figure(fig) -> Figure:
    return fig if isinstance(fig, Figure) else fig.figure


def to_rgba(fig) -> np.ndarray:
    """Render a figure class here or its ``.figure`` with Agg; a fresh C-contiguous uint8 (H, W, 4).

    A class with a faster ``render`` (ScheduleFigure blits) is used through either handle.
    """
    render = getattr(fig, "render", None) or getattr(fig, "_diffusion_lab_render", None)
    if render is not None:
        return render()
    fig = _as_figure(fig)
    fig.canvas.draw()
    return np.array(fig.canvas.buffer_rgba(), dtype=np.uint8, copy=True)


def save_png(fig, path) -> None:
    """Write a Figure (or a figure class here) as PNG at its own size."""
    _as_figure(fig).savefig(path, dpi=DPI, format="png")


def _blitted(figure: Figure, background, moving: list) -> tuple[object, np.ndarray]:
    """Draw the `moving` artists over `background`, the figure without them (None: draw it now); return the
    background and the RGBA, as ``to_rgba``. Texts are emptied, not hidden: matplotlib misplaces a hidden title."""
    canvas = figure.canvas
    if background is None:
        texts = {artist: artist.get_text() for artist in moving if isinstance(artist, Text)}
        others = [artist for artist in moving if artist not in texts]
        for artist in texts:
            artist.set_text("")
        for artist in others:
            artist.set_visible(False)
        canvas.draw()
        background = canvas.copy_from_bbox(figure.bbox)
        for artist, text in texts.items():
            artist.set_text(text)
        for artist in others:
            artist.set_visible(True)
    else:
        canvas.restore_region(background)
    for artist in moving:
        artist.axes.draw_artist(artist)
    return background, np.array(canvas.buffer_rgba(), dtype=np.uint8, copy=True)


class StripFigure:
    """A row of n_frames grey images in [-1, 1] with a label above each.

    All frames go into one mosaic image in a single axes (one imshow instead of
    n), which keeps a redraw cheap.
    """

    GAP = 0.08  # gap between frames, as a fraction of the frame width

    def __init__(self, n_frames: int, *, width_px: int, height_px: int, scale: float = 1.0):
        if n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        self.n_frames = n_frames
        self.figure = _figure(width_px, height_px, scale)
        self.ax = self.figure.add_axes((0.005, 0.01, 0.99, 0.8))
        self.ax.set_axis_off()
        cmap = matplotlib.colormaps["gray"].with_extremes(bad="white")
        self.image = self.ax.imshow(np.zeros((2, 2)), cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
        self.labels = [
            self.ax.text(0, 0, "", ha="center", va="bottom", fontsize=9, clip_on=False) for _ in range(n_frames)
        ]
        self.frame_shape = None

    def update(self, frames: list[np.ndarray], labels: list[str]) -> None:
        """Show frames[i] (all one shape) with labels[i]; slots beyond len(frames) stay blank."""
        if not 1 <= len(frames) <= self.n_frames or len(labels) != len(frames):
            raise ValueError(f"need 1 to {self.n_frames} frames and one label per frame")
        h, w = np.shape(frames[0])
        step = w + max(1, round(self.GAP * w))
        mosaic = np.full((h, step * self.n_frames - (step - w)), np.nan)
        for i, frame in enumerate(frames):
            mosaic[:, i * step : i * step + w] = frame
        self.image.set_data(mosaic)
        if self.frame_shape != (h, w):
            self.frame_shape = (h, w)
            self.image.set_extent((-0.5, mosaic.shape[1] - 0.5, h - 0.5, -0.5))
            self.ax.set_xlim(-0.5, mosaic.shape[1] - 0.5)
            self.ax.set_ylim(h - 0.5, -0.5)
        for i, text in enumerate(self.labels):
            text.set_position((i * step + (w - 1) / 2, -0.5 - 0.04 * h))
            text.set_text(labels[i] if i < len(labels) else "")


STRIP_TITLE_CHAR_PX = 9  # the width of a character of an 11 pt title, at most, in pixels
STRIP_TITLE_LINE_PX = 18


def strip_figure(frames: list[np.ndarray], labels: list[str], title: str | None = None) -> Figure:
    """A one-off strip for the CLI programs: 1.3 inch per frame, the title wrapped to the strip's width."""
    width = max(130 * len(frames), 300)
    lines = [wrapped for line in (title or "").splitlines()
             for wrapped in textwrap.wrap(line, width=width // STRIP_TITLE_CHAR_PX)]
    title_px = STRIP_TITLE_LINE_PX * len(lines) + 14 if lines else 0
    strip = StripFigure(len(frames), width_px=width, height_px=160 + title_px)
    strip.update(frames, labels)
    if lines:
        strip.figure.suptitle("\n".join(lines), fontsize=11, y=1 - 6 / (160 + title_px), va="top")
        strip.ax.set_position((0.005, 0.01, 0.99, 128 / (160 + title_px)))
    return strip.figure


class ScheduleFigure:
    """Three panels against t: beta_t (log scale), alpha_bar_t and ln SNR (the readout gives dB), with a marker at t.

    The axis counts steps as the papers (and the pages) do, 1..T, so the core's
    index i is drawn at i + 1, and ``set_t(-1)`` marks t = 0, the clean image.
    Moving t only redraws the markers over a cached background (blitting).
    ``stacked`` puts the panels one above the other, for a narrow screen.
    """

    def __init__(self, schedule: Schedule, *, width_px: int, height_px: int, scale: float = 1.0,
                 stacked: bool = False):
        self.figure = _figure(width_px, height_px, scale)
        # A list, not the ndarray subplots() returns: numpy's object arrays are invisible to Python's cycle
        # collector, so figure -> _diffusion_lab_render -> self -> array -> axes -> figure was never freed, and
        # each refit of the page (a resize, a phone turned) kept its figure: 3-8 MB each (QA26 F1).
        self.axes = list(self.figure.subplots(3, 1, sharex=True) if stacked else self.figure.subplots(1, 3))
        titles = ("βₜ (log scale)", "ᾱₜ", "ln SNRₜ")  # Unicode, not mathtext: its parser costs a page 0.3 s
        self.lines, self.markers, self.dots = [], [], []
        for ax, title in zip(self.axes, titles):
            ax.set_title(title, fontsize=10)
            if ax is self.axes[-1] or not stacked:
                ax.set_xlabel("step t", fontsize=9)
            ax.tick_params(which="both", labelsize=8)
            ax.grid(True, alpha=0.3)
            (line,) = ax.plot([], [], color="tab:blue", linewidth=1.5)
            self.lines.append(line)
            self.markers.append(ax.axvline(0, color="black", linestyle="--", linewidth=1))
            (dot,) = ax.plot([], [], marker="o", color="black", markersize=4, linestyle="none")
            self.dots.append(dot)
        self.axes[0].set_yscale("log")
        self.axes[0].yaxis.set_major_formatter(FuncFormatter(_power_of_ten))
        self.axes[0].yaxis.set_minor_formatter(NullFormatter())  # powers of ten only
        if stacked:
            self.figure.subplots_adjust(left=0.2, right=0.94, bottom=max(0.1, XLABEL_PX / height_px), top=0.94,
                                        hspace=0.45)
        else:
            self.figure.subplots_adjust(left=0.08, right=0.965, bottom=0.2, top=0.86, wspace=0.4)  # room for "1000"
        self.t = 0
        self.schedule, self._background = None, None
        self.figure._diffusion_lab_render = self.render  # so to_rgba(self.figure) blits too
        self.set_schedule(schedule)

    def _curves(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = self.schedule
        return s.betas, s.alpha_bars, s.log_snr

    def set_schedule(self, schedule: Schedule) -> None:
        if schedule is self.schedule:
            return  # a Schedule never changes: the curves drawn are its own (a redraw costs a page 0.3 s)
        self.schedule = schedule
        self._background = None
        steps = np.arange(1, schedule.num_steps + 1)
        for ax, line, values in zip(self.axes, self.lines, self._curves()):
            line.set_data(steps, values)
            ax.set_xlim(0, schedule.num_steps)
            low, high = float(values.min()), float(values.max())
            if ax.get_yscale() == "log":
                low, high = low / 1.5, high * 1.5
                if high / low < LOG_SPAN:  # a constant beta: widen, so a power of ten is labelled, not minor ticks
                    middle = math.sqrt(low * high)
                    low, high = middle / math.sqrt(LOG_SPAN), middle * math.sqrt(LOG_SPAN)
                ax.set_ylim(low, high)
            else:
                pad = 0.05 * (high - low or 1.0)
                ax.set_ylim(low - pad, high + pad)
        self.set_t(min(self.t, schedule.num_steps - 1))

    def set_t(self, t: int) -> None:
        """Mark the core's index t (step t + 1); -1 marks t = 0, where the curves have no point."""
        t = int(min(max(t, -1), self.schedule.num_steps - 1))
        self.t = t
        for marker, dot, values in zip(self.markers, self.dots, self._curves()):
            marker.set_xdata([t + 1, t + 1])
            dot.set_data(([t + 1], [values[t]]) if t >= 0 else ([], []))

    def render(self) -> np.ndarray:
        """RGBA like ``to_rgba``: the curves are drawn once per schedule, then only the markers."""
        self._background, rgba = _blitted(self.figure, self._background, self.markers + self.dots)
        return rgba


SUPERSCRIPTS = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _power_of_ten(value: float, _position=None) -> str:
    """A log axis's tick label, 10⁻³ in Unicode (matplotlib's own is mathtext, whose parser costs a page 0.3 s)."""
    exponent = round(math.log10(value)) if value > 0 else None
    if exponent is None or not math.isclose(value, 10.0**exponent, rel_tol=1e-9):
        return f"{value:g}"
    return "10" + str(exponent).translate(SUPERSCRIPTS)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    """Phi(z) via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7); numpy has no erf."""
    x = np.abs(z) / math.sqrt(2.0)
    k = 1.0 / (1.0 + 0.3275911 * x)
    poly = k * (0.254829592 + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027 + k * 1.061405429))))
    erf = 1.0 - poly * np.exp(-x * x)
    return 0.5 * (1.0 + np.sign(z) * erf)


def _decimals(value: float) -> str:
    """Three decimals, more (up to five) where three would show 0 or 1 for a number that is not: √ᾱ_1 is 0.9999
    (linear) or 0.99998 (cosine), the image scaled already; the noise of a student's β_1 = 1e-7 is 0.0003, some.
    Closer still, three: 1.000 and 0.000 are as good as 1 and 0 to the eye."""
    for decimals in range(3, 6):
        text = f"{value:.{decimals}f}"
        if not 0 < value < 1 or float(text) not in (0.0, 1.0):
            return text
    return f"{value:.3f}"


def _density(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of all pixels of x per unit of value in each bin (pixels outside the edges still count)."""
    counts, _ = np.histogram(np.ravel(x), bins=edges)
    return counts / (max(np.size(x), 1) * np.diff(edges))


def predicted_histogram(x0: np.ndarray, t: int, schedule: Schedule, edges: np.ndarray) -> np.ndarray:
    """Density per bin of q(x_t | x0) pooled over pixels: mixture of N(sqrt(alpha_bar) x0_i, 1 - alpha_bar).

    t is the core's index; -1 is x_0 itself (no noise), whose density is its own
    histogram. Integrated exactly over each bin (via the normal CDF), so it
    matches a density histogram even when the noise is narrower than a bin.
    """
    if t < 0:
        return _density(x0, edges)
    values, counts = np.unique(np.ravel(x0), return_counts=True)
    if values.size > 512:  # pool nearby grey levels; error far below a bin width
        counts, level_edges = np.histogram(values, bins=512, weights=counts)
        values = 0.5 * (level_edges[1:] + level_edges[:-1])
    mean = schedule.sqrt_alpha_bars[t] * values
    std = schedule.sqrt_one_minus_alpha_bars[t]
    cdf = _normal_cdf((edges[:, None] - mean[None, :]) / std) @ (counts / counts.sum())
    return np.diff(cdf) / np.diff(edges)


class HistogramFigure:
    """Pixel histogram of x_t (grey bars) against the density predicted by q(x_t | x0) (dashed line).

    The density axis ends at a round number (see ``round_top``), so it stays
    put while t moves a little and ``render`` only redraws the bars, the line
    and the title over a cached background: a fifth of the time of a full draw.
    The bars and the line stay below the legend. ``compact`` is the layout of a
    narrow screen, where the text takes more of the figure.
    """

    def __init__(self, *, width_px: int, height_px: int, scale: float = 1.0, compact: bool = False):
        self.figure = _figure(width_px, height_px, scale)
        self.ax = self.figure.subplots()
        half = (HIST_RANGE[1] - HIST_RANGE[0]) / (HIST_BINS - 1) / 2
        self.edges = np.linspace(HIST_RANGE[0] - half, HIST_RANGE[1] + half, HIST_BINS + 1)
        zeros = np.zeros(HIST_BINS)
        self.observed = self.ax.stairs(zeros, self.edges, fill=True, color="0.65", label="pixels of x_t")
        self.predicted = self.ax.stairs(
            zeros, self.edges, color="black", linestyle="--", linewidth=1.5, label="predicted q(x_t | x0)"
        )
        self.ax.set_xlim(*HIST_RANGE)
        self.ax.set_xlabel("pixel value", fontsize=9)
        self.ax.set_ylabel("density", fontsize=9)
        self.ax.tick_params(labelsize=8)
        self.legend = self.ax.legend(fontsize=8, loc="upper right")
        self.title = self.ax.set_title("", fontsize=9 if compact else 10)
        left = max(0.16, 48 / width_px) if compact else 0.14  # the density label and its ticks: 48 px at least
        bottom = max(0.2 if compact else 0.16, XLABEL_PX / height_px)
        self.figure.subplots_adjust(left=left, right=0.97, bottom=bottom, top=0.88)
        legend_bottom = self.legend.get_window_extent(self.figure.canvas.get_renderer()).y0
        legend_bottom = self.ax.transAxes.inverted().transform((0.0, legend_bottom))[1]  # about 0.75-0.8
        self.headroom = 1.0 / (legend_bottom - LEGEND_GAP)  # the y-range over the highest bar, at least
        self._background = None
        self.figure._diffusion_lab_render = self.render  # so to_rgba(self.figure) blits too

    def update(self, x_t: np.ndarray, x0: np.ndarray, t: int, schedule: Schedule) -> None:
        """Show x_t at the core's index t (the title gives the paper's step t + 1; -1 is x_0 itself)."""
        observed = _density(x_t, self.edges)
        predicted = predicted_histogram(x0, t, schedule, self.edges)
        self.observed.set_data(observed)
        self.predicted.set_data(predicted)
        peak = float(predicted.max())
        pixels = peak * (self.edges[1] - self.edges[0]) * x_t.size  # expected in the peak's bar: Poisson-like noise
        slack = 1.0 + NOISE_SIGMAS / math.sqrt(max(pixels, 1.0))  # x_0's too, so t = 0 and 1 share an axis
        needed = self.headroom * max(float(observed.max()), peak * slack, 1e-3)
        top, new_top = self.ax.get_ylim()[1], round_top(needed)
        if new_top != top:
            self.ax.set_ylim(0.0, new_top)
            self._background = None  # new ticks
        mean, std = (1.0, 0.0) if t < 0 else (schedule.sqrt_alpha_bars[t], schedule.sqrt_one_minus_alpha_bars[t])
        self.title.set_text(f"t = {t + 1}: {_decimals(mean)} x0 + {_decimals(std)} ε")  # t + 1: the paper's step
        # For describe(): the pixels' mean and spread, the mixture's (its variance: mean² Var x0 + std²), and
        # the area the bars and the line share (1 when they match).
        self.numbers = (t + 1, float(np.mean(x_t)), float(np.std(x_t)), mean * float(np.mean(x0)),
                        math.sqrt(mean**2 * float(np.var(x0)) + std**2),
                        float(np.minimum(observed, predicted) @ np.diff(self.edges)))

    def describe(self) -> str:
        """The figure in words, for a screen reader: what the bars and the dashed line show at this t."""
        t, pixel_mean, pixel_sd, mean, sd, shared = self.numbers
        if t == 0:
            return (f"Histogram of the pixel values of the clean image x_0: mean {_signed(pixel_mean)}, standard "
                    f"deviation {pixel_sd:.2f}")
        return (f"Histogram of the pixel values of x_t at t = {t}: mean {_signed(pixel_mean)}, standard deviation "
                f"{pixel_sd:.2f}; q(x_t | x0) predicts mean {_signed(mean)}, standard deviation {sd:.2f}; the bars "
                f"and the predicted density overlap by {shared:.0%}")

    def render(self) -> np.ndarray:
        """RGBA like ``to_rgba``: axes, ticks and legend are drawn once per density range, then what moves."""
        moving = [self.observed, self.predicted, self.title, *self.ax.spines.values()]  # bars cover the bottom spine
        self._background, rgba = _blitted(self.figure, self._background, moving)
        return rgba


def _signed(value: float) -> str:
    """A number to two decimals, without the minus of a value that rounds to zero."""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def round_top(value: float) -> float:
    """The least of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of ten that is at least value (> 0)."""
    power = 10.0 ** math.floor(math.log10(value))
    return next(m * power for m in ROUND_TOPS if m * power >= value * (1 - 1e-12))
