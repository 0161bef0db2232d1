"""Plots: every figure renders to RGBA of the requested size, and updates change pixels."""

import gc
import weakref

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
import pytest
from PIL import Image

from diffusion_lab import plots
from diffusion_lab.forward import q_sample
from diffusion_lab.images import make_image
from diffusion_lab.schedules import from_betas, get_schedule


def rendered(fig, width, height):
    rgba = plots.to_rgba(fig)
    assert rgba.dtype == np.uint8 and rgba.shape == (height, width, 4) and rgba.flags.c_contiguous
    return rgba


def test_strip_figure_updates():
    strip = plots.StripFigure(4, width_px=480, height_px=150)
    x = make_image("disc", 32)
    strip.update([x, -x], ["a", "b"])
    first = rendered(strip, 480, 150)
    strip.update([x, -x, x], ["a", "b", "c"])
    second = rendered(strip, 480, 150)
    assert np.any(first != second)
    with pytest.raises(ValueError):
        strip.update([x] * 5, ["l"] * 5)


def test_schedule_figure_updates():
    fig = plots.ScheduleFigure(get_schedule("linear", 1000), width_px=600, height_px=200)
    fig.set_t(0)
    a = rendered(fig, 600, 200)
    fig.set_t(700)
    b = rendered(fig, 600, 200)
    fig.set_schedule(get_schedule("cosine", 50))
    c = rendered(fig, 600, 200)
    assert np.any(a != b) and np.any(b != c)
    fig.set_t(0)
    fig.set_schedule(get_schedule("linear", 1000))
    np.testing.assert_array_equal(rendered(fig, 600, 200), a)  # blitting leaves no trail
    fig.set_t(700)
    np.testing.assert_array_equal(rendered(fig.figure, 600, 200), b)  # the Figure handle blits too
    fig.figure.canvas.draw()  # a full redraw (as save_png does) also shows the marker
    np.testing.assert_array_equal(np.asarray(fig.figure.canvas.buffer_rgba()), b)


def test_schedule_figure_counts_steps_as_the_pages_do():
    s = get_schedule("linear", 1000)
    fig = plots.ScheduleFigure(s, width_px=600, height_px=200)
    for ax, line in zip(fig.axes, fig.lines):
        assert ax.get_xlim() == (0, 1000) and line.get_xdata()[0] == 1 and line.get_xdata()[-1] == 1000
    fig.set_t(699)  # the core's index of step 700
    assert [m.get_xdata()[0] for m in fig.markers] == [700] * 3
    assert fig.dots[1].get_ydata()[0] == s.alpha_bars[699]
    fig.set_t(-1)  # t = 0, the clean image: a marker at 0, no point on the curves
    assert [m.get_xdata()[0] for m in fig.markers] == [0] * 3
    assert all(len(dot.get_xdata()) == 0 for dot in fig.dots)
    rendered(fig, 600, 200)


def test_a_constant_beta_gets_a_labelled_power_of_ten_not_minor_labels():
    fig = plots.ScheduleFigure(from_betas(np.full(1000, 0.01)), width_px=600, height_px=200)
    rendered(fig, 600, 200)
    ax = fig.axes[0]
    low, high = ax.get_ylim()
    assert low < 0.01 < high and high / low >= plots.LOG_SPAN
    shown = [label.get_text() for label in ax.get_yticklabels() if label.get_text()
             and low <= label.get_position()[1] <= high]
    assert shown == ["10⁻²"]
    assert not [label for label in ax.get_yticklabels(minor=True) if label.get_text()]  # no 10⁻³ beside it


@pytest.mark.parametrize("stacked", [False, True])
def test_the_schedule_figure_writes_its_maths_in_unicode_not_mathtext(monkeypatch, stacked):
    """matplotlib's mathtext parser costs a page 0.3 s on its first use, and only these labels used it."""
    import matplotlib.mathtext

    parsed = []
    original = matplotlib.mathtext.MathTextParser.parse
    monkeypatch.setattr(matplotlib.mathtext.MathTextParser, "parse",
                        lambda self, text, *args, **kwargs: parsed.append(text) or original(self, text, *args, **kwargs))
    for schedule in (get_schedule("linear", 1000), get_schedule("cosine", 50), from_betas(np.full(10, 0.3))):
        fig = plots.ScheduleFigure(schedule, width_px=300 if stacked else 600, height_px=390 if stacked else 200,
                                   stacked=stacked)
        rendered(fig, 300 if stacked else 600, 390 if stacked else 200)
        assert [ax.get_title() for ax in fig.axes] == ["βₜ (log scale)", "ᾱₜ", "ln SNRₜ"]
        labels = [label.get_text() for label in fig.axes[0].get_yticklabels() if label.get_text()]
        assert labels and all(label.startswith("10") for label in labels), labels
    assert parsed == []
    assert [plots._power_of_ten(v) for v in (1e-4, 0.01, 1.0, 100.0, 0.5)] == ["10⁻⁴", "10⁻²", "10⁰", "10²", "0.5"]


def test_setting_the_same_schedule_again_keeps_its_drawn_curves():
    """The forward view sets the schedule on every change of a setting; only a new schedule redraws them."""
    schedule = get_schedule("linear", 1000)
    fig = plots.ScheduleFigure(schedule, width_px=600, height_px=200)
    fig.set_t(300)
    first = rendered(fig, 600, 200)
    background = fig._background
    fig.set_schedule(get_schedule("linear", 1000))  # the cached, same Schedule
    np.testing.assert_array_equal(rendered(fig, 600, 200), first)
    assert fig._background is background
    fig.set_schedule(from_betas(schedule.betas))  # equal numbers, another Schedule: drawn anew
    np.testing.assert_array_equal(rendered(fig, 600, 200), first)
    assert fig._background is not background


def test_histogram_at_t_0_is_the_clean_image():
    s = get_schedule("linear", 1000)
    x0 = make_image("checkerboard", 32)  # two grey levels: two spikes
    fig = plots.HistogramFigure(width_px=400, height_px=300)
    fig.update(x0, x0, -1, s)
    assert fig.title.get_text() == "t = 0: 1.000 x0 + 0.000 ε"
    predicted = plots.predicted_histogram(x0, -1, s, fig.edges)
    observed, _ = np.histogram(x0, bins=fig.edges, density=True)
    np.testing.assert_allclose(predicted, observed)
    assert np.count_nonzero(predicted) == 2
    fig.update(q_sample(x0, 699, np.zeros_like(x0), s), x0, 699, s)
    assert fig.title.get_text().startswith("t = 700:")


@pytest.mark.parametrize("name, t, title", [
    ("linear", 0, "t = 1: 0.9999 x0 + 0.010 ε"),  # sqrt(0.9999) = 0.99995: never a bare 1.000 after t = 0
    ("cosine", 0, "t = 1: 0.99998 x0 + 0.006 ε"),
    ("linear", 999, "t = 1000: 0.006 x0 + 0.99998 ε"),
    ("cosine", 999, "t = 1000: 0.00005 x0 + 1.000 ε"),  # 1 - 1.2e-9: as good as 1
    ("tiny", 0, "t = 1: 1.000 x0 + 0.0003 ε"),  # a student's β_1 = 1e-7: some noise, not 0.000
])
def test_the_histograms_title_shows_the_scale_and_the_noise_where_three_decimals_would_hide_them(name, t, title):
    s = from_betas(np.full(1000, 1e-7)) if name == "tiny" else get_schedule(name, 1000)
    x0 = make_image("checkerboard", 32)
    fig = plots.HistogramFigure(width_px=400, height_px=300)
    fig.update(q_sample(x0, t, np.zeros_like(x0), s), x0, t, s)
    assert fig.title.get_text() == title
    rendered(fig, 400, 300)


def test_the_histogram_in_words_gives_the_pixels_and_the_predictions_moments_and_how_much_they_overlap():
    s = get_schedule("linear", 1000)
    x0 = make_image("checkerboard", 32)  # -1 and 1: mean 0, sd 1
    fig = plots.HistogramFigure(width_px=400, height_px=300)
    fig.update(x0, x0, -1, s)
    assert fig.describe() == ("Histogram of the pixel values of the clean image x_0: mean 0.00, standard "
                              "deviation 1.00")
    noise = np.random.default_rng(0).standard_normal(x0.shape)
    x_t = q_sample(x0, 299, noise, s)
    fig.update(x_t, x0, 299, s)
    # The mixture of N(sqrt(abar) x0_i, 1 - abar) over the pixels: mean sqrt(abar) mean(x0), variance
    # abar Var(x0) + 1 - abar = 1 for this x0.
    assert fig.describe().startswith(
        f"Histogram of the pixel values of x_t at t = 300: mean {np.mean(x_t):.2f}, standard deviation "
        f"{np.std(x_t):.2f}; q(x_t | x0) predicts mean 0.00, standard deviation 1.00; the bars and the predicted "
        "density overlap by ")
    overlap = int(fig.describe().rsplit(" ", 1)[1].rstrip("%"))
    assert 85 <= overlap < 100  # 1024 pixels sampled from the prediction: close, never exact
    fig.update(np.full_like(x0, 3.0), x0, 299, s)  # not what q predicts: little area in common
    assert int(fig.describe().rsplit(" ", 1)[1].rstrip("%")) < 20


def test_histogram_figure_updates():
    s = get_schedule("linear", 1000)
    x0 = make_image("face", 64)
    noise = np.random.default_rng(0).standard_normal(x0.shape)
    fig = plots.HistogramFigure(width_px=400, height_px=300)
    fig.update(q_sample(x0, 10, noise, s), x0, 10, s)
    a = rendered(fig, 400, 300)
    fig.update(q_sample(x0, 900, noise, s), x0, 900, s)
    b = rendered(fig, 400, 300)
    assert np.any(a != b)


@pytest.mark.parametrize("compact, width, height, scale", [(False, 480, 300, 1), (True, 328, 246, 2)])
def test_the_histogram_redraws_only_what_moves_and_shows_what_a_full_draw_does(compact, width, height, scale):
    """Scrubbing t: each picture equals a full draw, the density axis stays put between round tops, bars stay clear of
    the legend (a checkerboard's spikes at t = 0 reached under it)."""
    s = get_schedule("linear", 1000)
    fig = plots.HistogramFigure(width_px=width, height_px=height, scale=scale, compact=compact)
    canvas = fig.figure.canvas
    for image in ("checkerboard", "face"):
        x0 = make_image(image, 64)
        noise = np.random.default_rng(0).standard_normal(x0.shape)
        tops = []
        for t in [-1, 0, 1, 2, 3, 5, 10, 40, 41, 42, 300, 301, 999]:
            fig.update(x0 if t < 0 else q_sample(x0, t, noise, s), x0, t, s)
            blitted = rendered(fig, width * scale, height * scale)
            canvas.draw()  # everything, as save_png does
            np.testing.assert_array_equal(blitted, np.asarray(canvas.buffer_rgba()))
            legend = fig.ax.get_legend().get_window_extent(canvas.get_renderer())
            highest = max(fig.observed.get_data().values.max(), fig.predicted.get_data().values.max())
            assert fig.ax.transData.transform((0, highest))[1] < legend.y0
            tops.append(fig.ax.get_ylim()[1])
        assert len(set(tops)) < len(tops) / 2  # the axis moves in steps, not with every t
        assert all(plots.round_top(top) == top for top in tops)


@pytest.mark.parametrize("image, size", [("face", 64), ("gradient", 32), ("gradient", 16), ("checkerboard", 16),
                                         ("disc", 32)])
def test_the_histograms_top_at_a_t_is_the_same_whichever_t_came_before_and_does_not_flicker(image, size):
    """A link opens at its t without the sender's scrub before it: the density axis ended at 1.0 after scrubbing to
    t = 105 of the cosine schedule and at 0.8 on opening its link (QA25 F4). Nor may the top flip back and forth
    between two round numbers as t moves (QA13 F1; 6 times in 20 steps at 32 x 32 with less room, QA27 F3)."""
    s = get_schedule("cosine", 1000)
    x0 = make_image(image, size)
    noise = np.random.default_rng(1).standard_normal(x0.shape)

    def top(fig, t):
        fig.update(x0 if t < 0 else q_sample(x0, t, noise, s), x0, t, s)
        return fig.ax.get_ylim()[1]

    scrubbed = plots.HistogramFigure(width_px=480, height_px=300)
    along = [top(scrubbed, t) for t in range(-1, 1000)]
    for t in range(-1, 1000, 37):
        assert top(plots.HistogramFigure(width_px=480, height_px=300), t) == along[t + 1], t
    moves = [np.sign(b - a) for a, b in zip(along, along[1:]) if b != a]
    assert sum(a != b for a, b in zip(moves, moves[1:])) <= 2  # turns of direction over the whole scrub


def test_the_histograms_top_comes_down_steadily_as_the_noise_spreads():
    """Scrubbing t from 0 to T: the density axis only steps down (the highest bar's sampling noise flipped it 15
    times between 0.6 and 0.8 around t = 500), and a clean image's -1 and 1 sit mid-bin, as wide as each other."""
    s = get_schedule("linear", 1000)
    fig = plots.HistogramFigure(width_px=480, height_px=300)
    x0 = make_image("face", 64)
    noise = np.random.default_rng(0).standard_normal(x0.shape)
    tops = []
    for t in range(-1, 1000):
        fig.update(x0 if t < 0 else q_sample(x0, t, noise, s), x0, t, s)
        tops.append(fig.ax.get_ylim()[1])
    assert tops == sorted(tops, reverse=True) and len(set(tops)) <= 12
    checkerboard = make_image("checkerboard", 32)
    fig.update(checkerboard, checkerboard, -1, s)
    bars = fig.observed.get_data()
    spikes = np.flatnonzero(bars.values)
    centres = (bars.edges[spikes] + bars.edges[spikes + 1]) / 2
    np.testing.assert_allclose(centres, [-1.0, 1.0], atol=1e-12)


def test_round_top():
    assert [plots.round_top(v) for v in (0.4, 0.41, 1.0, 1.01, 2.6, 7, 9, 11, 0.0123)] == pytest.approx(
        [0.4, 0.5, 1.0, 1.2, 3.0, 8, 10, 12, 0.015])


@pytest.mark.parametrize("t", [0, 300, 999])
def test_predicted_histogram_is_a_density_matching_samples(t):
    s = get_schedule("linear", 1000)
    x0 = make_image("landscape", 64)
    edges = np.linspace(-4, 4, 81)
    predicted = plots.predicted_histogram(x0, t, s, edges)
    assert (predicted * np.diff(edges)).sum() == pytest.approx(1.0, abs=1e-4)
    rng = np.random.default_rng(1)
    samples = np.concatenate([q_sample(x0, t, rng.standard_normal(x0.shape), s).ravel() for _ in range(20)])
    observed, _ = np.histogram(samples, bins=edges, density=True)
    assert np.abs(observed - predicted).sum() * 0.1 < 0.05  # total variation, 82k samples


def test_normal_cdf_accuracy():
    import math

    z = np.linspace(-6, 6, 101)
    exact = np.array([0.5 * (1 + math.erf(v / math.sqrt(2))) for v in z])
    np.testing.assert_allclose(plots._normal_cdf(z), exact, atol=2e-7)


def test_strip_figure_function_and_save_png(tmp_path):
    x = make_image("gradient", 32)
    fig = plots.strip_figure([x, x, x], ["a", "b", "c"], title="three")
    path = tmp_path / "strip.png"
    plots.save_png(fig, path)
    with Image.open(path) as image:
        assert image.size == (390, 192)  # 130 px a frame; 160 px of frames and 32 of title


def test_a_long_strip_title_is_wrapped_within_the_figure():
    x = make_image("gradient", 32)
    title = "Forward diffusion: scaled_linear schedule, T=100, seed 0"  # 56 characters over 300 px
    fig = plots.strip_figure([x, x], ["a", "b"], title=title)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    text = fig._suptitle
    assert text.get_text().count("\n") == 1
    box = text.get_window_extent(canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height


def test_a_narrow_screens_figures_keep_their_text_size():
    """A phone's figures: drawn at 2 pixels per CSS pixel, the schedule's panels stacked, the legend clear."""
    schedule = get_schedule("cosine", 1000)
    wide = plots.ScheduleFigure(schedule, width_px=328, height_px=205)
    stacked = plots.ScheduleFigure(schedule, width_px=328, height_px=426, scale=2, stacked=True)
    rendered(stacked, 656, 852)
    tops = [ax.get_position().y0 for ax in stacked.axes]
    assert tops == sorted(tops, reverse=True) and len({ax.get_position().x0 for ax in stacked.axes}) == 1
    assert len({ax.get_position().y0 for ax in wide.axes}) == 1  # side by side
    # Text keeps its size in figure units: about twice the pixels for twice the scale (hinting rounds each).
    label = lambda fig: fig.axes[0].title.get_window_extent(fig.figure.canvas.get_renderer()).width  # noqa: E731
    assert label(stacked) == pytest.approx(2 * label(wide), rel=0.1)
    x0 = make_image("face", 64)
    compact = plots.HistogramFigure(width_px=328, height_px=246, scale=2, compact=True)
    compact.update(q_sample(x0, 300, np.random.default_rng(0).standard_normal(x0.shape), schedule), x0, 300, schedule)
    rendered(compact, 656, 492)
    renderer = compact.figure.canvas.get_renderer()
    legend = compact.ax.get_legend().get_window_extent(renderer)
    bars = compact.ax.transData.transform((0, max(compact.observed.get_data().values)))[1]
    assert legend.y0 > bars  # the legend sits above the tallest bar
    sideways = plots.HistogramFigure(width_px=244, height_px=183, scale=2, compact=True)  # a phone held sideways
    sideways.update(q_sample(x0, 999, np.zeros_like(x0), schedule), x0, 999, schedule)
    rendered(sideways, 488, 366)
    renderer = sideways.figure.canvas.get_renderer()
    # The title and "density" were cut at the edges, and "pixel value" under 250 px (made narrower for a large
    # font, QA29 F2), as was the stacked schedule's "step t".
    for text in (sideways.title, sideways.ax.yaxis.label, sideways.ax.xaxis.label):
        box = text.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= 488 and 0 <= box.y0 and box.y1 <= 366, text.get_text()
    narrow = plots.ScheduleFigure(schedule, width_px=244, height_px=317, scale=2, stacked=True)
    rendered(narrow, 488, 634)
    box = narrow.axes[-1].xaxis.label.get_window_extent(narrow.figure.canvas.get_renderer())
    assert 0 <= box.y0 and box.y1 <= 634
    with pytest.raises(ValueError):
        plots.StripFigure(5, width_px=328, height_px=98, scale=0.5)


@pytest.mark.parametrize("make", [
    lambda: plots.ScheduleFigure(get_schedule("linear", 100), width_px=480, height_px=300),
    lambda: plots.ScheduleFigure(get_schedule("linear", 100), width_px=300, height_px=390, stacked=True),
    lambda: plots.HistogramFigure(width_px=400, height_px=300),
    lambda: plots.StripFigure(4, width_px=480, height_px=150),
])
def test_a_figure_no_longer_used_is_freed(make):
    """The page makes new figures at each resize; the schedule figure's axes, kept in a numpy object array, tied
    it into a cycle the collector never saw: a tab kept every one (3-8 MB each; QA26 F1)."""
    figures = []
    for _ in range(3):
        made = make()
        plots.to_rgba(made.figure)
        figures.append(weakref.ref(made.figure))
        del made
    gc.collect()
    assert [ref() for ref in figures] == [None, None, None]
