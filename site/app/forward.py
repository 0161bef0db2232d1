"""Forward view: an image turns into Gaussian noise, step by step.

Scrubbing the Timestep slider shows x_t from the closed form with one fixed
noise draw (smooth and repeatable); Play and Step run the iterative chain.
"""

from app import learn, page
from app.page import element

PLAY_INTERVAL_S = 0.03
PLAY_FRAMES = 250  # frames of Play from t = 0 to T, long chain or short: about eight seconds
MAX_STEP_S = 0.5  # but a step of a short chain at most this long (T = 3 took 5 s, 2.5 s a step: it seemed stuck)
FIGURE_DELAY_S = 0.04
PLOT_WIDEST = 480  # the schedule and histogram plots on a wide screen: 480 x 300


class ForwardView:
    def __init__(self, core) -> None:
        self.core = core
        self.settings = page.Settings("forward", self.changed)
        self.uploaded = None  # pixels of a picture the student chose; never leaves the tab
        self.uploads = 0  # files chosen so far: only the last one chosen is shown, however long each takes
        self.uploads_read = 0  # of which decoded or refused
        self.pictures_chosen = 0  # changes of the Image setting: one made while a file decodes outdates the file
        self.figures = None
        self.chain = None  # (t, x_t, rng) of the iterative chain while it runs
        self.play_share = 0.0  # steps of Play owed to the frames since it started, less those taken
        self.player = page.Player("play", self.advance, frames_per_s=1 / PLAY_INTERVAL_S,
                                  on_stop=self.settings.flush_url)
        self.learn = learn.ForwardPanel(self)  # equations, code, the student's schedule, downloads
        self.rebuild()
        self.draw()
        page.on(element("play"), "click", lambda event: self.toggle_play())
        page.on(element("step-button"), "click", lambda event: self.step())
        page.on(element("reset"), "click", lambda event: self.reset())
        page.on(element("upload"), "change", self.upload)

    # -- state -------------------------------------------------------------
    def rebuild(self) -> None:
        """Recompute what depends on the settings but not on t."""
        images, s = self.core.images, self.settings
        if s["image"] == "upload":
            self.x0 = images.from_pixels(self.uploaded, s["size"])
        else:
            self.x0 = images.make_image(s["image"], s["size"])
        self.schedule = self.learn.schedule()  # the Schedule setting's, or the student's betas(T)
        self._noise = None  # drawn when first needed: t = 0 shows x0 (numpy.random's import costs 50-80 ms)
        self.chain = None

    @property
    def noise(self):
        """The fixed noise draw behind every x_t of the closed form (the Seed setting's)."""
        if self._noise is None:
            self._noise = self.core.np.random.default_rng(self.settings["seed"]).standard_normal(self.x0.shape)
        return self._noise

    def closed_form(self, t: int):
        """x_t for the page's t (0 = clean), from q(x_t | x_0) with the fixed noise draw."""
        if t == 0:
            return self.x0
        return self.core.forward.q_sample(self.x0, t - 1, self.noise, self.schedule)

    def changed(self, names: set) -> None:
        if "image" in names:
            self.pictures_chosen += 1
        if names - {"t"}:
            self.player.stop()
            self.rebuild()
            if self.figures is not None:
                self.figures.settings_changed()  # redrawn after the picture has painted (draw() below)
        self.chain = None
        self.draw()

    # -- drawing -----------------------------------------------------------
    def draw(self, x_t=None, source: str = "closed form q(x_t | x_0)") -> None:
        t = self.settings["t"]
        chained = x_t is not None  # the chain drew it, not the closed form
        self.learn.show(t, chained)
        page.link_caveat("chain", "The link shows this t from the closed form q(x_t | x_0), not the chain's "
                                  "picture." if chained else "")
        x_t = self.closed_form(t) if x_t is None else x_t
        self.x_t, self.x_t_source = x_t, source
        page.blit(element("frame"), self.core.images.to_rgba(x_t))
        element("readout").innerHTML = self.readout(t)
        element("source").textContent = f"from the {source}"
        description = self.describe(t)
        element("t").setAttribute("aria-valuetext", f"t = {t} of {self.schedule.num_steps}")
        element("frame").setAttribute("aria-label", description)
        page.announce(description)
        if self.figures is not None:
            self.figures.later()

    def describe(self, t: int) -> str:
        """The canvas in words, for screen readers."""
        if t == 0:
            return "Noisy picture x_t at t = 0: the clean image"
        s = self.schedule
        return (f"Noisy picture x_t at t = {t} of {s.num_steps}: {s.sqrt_alpha_bars[t - 1]:.2f} times the image "
                f"plus {s.sqrt_one_minus_alpha_bars[t - 1]:.2f} times noise")

    def readout(self, t: int) -> str:
        """t, alpha_bar_t and SNR in readable form."""
        if t == 0:
            return "t = 0 (the clean image): ᾱ<sub>t</sub> = 1, SNR = ∞"
        i, s = t - 1, self.schedule  # each number as the equations write it: 9999, not 1e+04; β < 1 not as 1
        snr = float(s.snr[i])
        decibels = f"{10 * self.core.np.log10(snr):.1f}".replace("-", "−")
        return (f"t = {t} of {s.num_steps}: β<sub>t</sub> = {learn.number_html(float(s.betas[i]))}, "
                f"ᾱ<sub>t</sub> = {learn.abar_value(s, t, learn.number_html)}, SNR = {learn.number_html(snr)} "
                f"({decibels} dB)")

    def abar_text(self, t: int) -> str:
        """ᾱ_t in the schedule figure's words (t > 0): never a bare 1 after t = 0, written exactly near it."""
        abar = self.schedule.alpha_bars[t - 1]
        return f"{abar:.4g}" if abar < 0.9995 else f"1 − {self.schedule.one_minus_alpha_bars[t - 1]:.3g}"

    # -- the iterative chain -------------------------------------------------
    def step(self, count: int = 1) -> bool:
        """`count` steps of x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps (at most to T), drawn once; False
        at the end."""
        t = self.settings["t"]
        if t >= self.schedule.num_steps:
            return False
        if self.chain is None or self.chain[0] != t:
            rng = self.core.np.random.default_rng([self.settings["seed"], 1])
            self.chain = (t, self.closed_form(t), rng)
        _, x, rng = self.chain
        for index in range(t, min(t + count, self.schedule.num_steps)):  # the core's index of step t + 1 is t
            x = self.core.forward.q_step(x, index, rng.standard_normal(x.shape), self.schedule)
        self.chain = (index + 1, x, rng)
        self.settings.set("t", index + 1)
        self.draw(x, "iterated chain q(x_t | x_t−1)")
        return True

    def advance(self, scale: int) -> bool:
        """One frame of Play: 1/PLAY_FRAMES of the chain (`scale` times as much), so any T plays in about eight
        seconds; a short chain takes a step every few frames, at most MAX_STEP_S apart."""
        self.play_share += scale * max(self.schedule.num_steps / PLAY_FRAMES, PLAY_INTERVAL_S / MAX_STEP_S)
        steps, self.play_share = int(self.play_share), self.play_share % 1
        return self.settings["t"] < self.schedule.num_steps and (steps == 0 or self.step(steps))

    def toggle_play(self) -> None:
        if not self.player.playing:
            self.play_share = 1.0  # the first step at once
            if self.settings["t"] >= self.schedule.num_steps:  # again from x_0, shown first
                self.play_share = 0.0
                self.chain = None
                self.settings.set("t", 0)
                self.draw()
        self.player.toggle()

    def reset(self) -> None:
        self.player.stop()
        self.chain = None
        self.settings.set("t", 0)
        self.draw()

    async def upload(self, event) -> None:
        files = event.target.files
        if not files.length:
            return
        self.uploads += 1
        ticket, chosen, status = self.uploads, self.pictures_chosen, element("upload-status")
        status.textContent = f"Reading “{files.item(0).name}”…"  # a big photo takes seconds to decode
        pixels, refusal = None, ""
        try:
            pixels = await page.read_picture(files.item(0), self.core)
        except page.UnreadablePicture as error:
            refusal = str(error)
        finally:
            if ticket == self.uploads:
                status.textContent = ""
            self.uploads_read += 1
            page.js.document.body.dataset.uploadsRead = self.uploads_read  # lets tests wait for every file
        if ticket != self.uploads:
            return  # another file was chosen meanwhile: it alone counts
        if chosen != self.pictures_chosen:  # so was another picture, which stays: the file is let go
            event.target.value = ""
            return
        if refusal:  # said at the top (spoken there) and by the control, which lets the file go: it was not taken
            page.show_notice(refusal, "upload")
            status.setAttribute("role", "none")  # shown here too, spoken once
            status.textContent = refusal
            event.target.value = ""
            return
        page.clear_notices("upload")  # an earlier file's refusal no longer applies
        height, width = pixels.shape[:2]
        size, notes = self.settings["size"], []
        if height != width:  # images.from_pixels keeps the centre square: say so, or a side goes missing unseen
            notes.append("is not square: the view shows its centre square")
        if min(height, width) < size:  # and scales it to the Size setting: a tiny one comes out as blocks
            notes.append(f"has {width}×{height} pixels: the view enlarges it to {size}×{size}")
        status.setAttribute("role", "status")
        status.textContent = f"“{files.item(0).name}” is the picture now." + (f" It {', and '.join(notes)}."
                                                                             if notes else "")
        self.uploaded = pixels
        self.settings.use_local_choice("image", "upload", "Your picture")
        self.changed({"image"})  # a new picture: the strip and every x_t follow, as for any other image


class ForwardFigures:
    """The matplotlib figures, reused frame after frame and redrawn shortly after the last input."""

    def __init__(self, view: ForwardView, plots) -> None:
        self.plots, self.view = plots, view
        self.stale = False  # the settings changed since the strip and the schedule's curves were drawn
        self.pending = page.Later(FIGURE_DELAY_S, self.redraw, patient=True)
        self.catch_up = page.Later(0, self.redraw_if_stale)  # its own timer: Play's frames do not put it off
        self.fit()
        page.refit_on_resize(self.fits, self.refit)

    @classmethod
    async def start(cls, view: ForwardView) -> "ForwardFigures":
        """Import matplotlib's figures and draw the first ones in turns (about 1 s in all), the page answering
        between them; the view takes them once they are drawn, so a setting changed meanwhile is drawn too."""
        figures = cls(view, await page.import_plots())
        await page.next_turn()
        figures.schedule.render()  # its curves and text, the slowest part, in a turn of their own (kept for reuse)
        await page.next_turn()
        figures.new_settings()
        return figures

    @staticmethod
    def fits() -> tuple:
        return (page.figure_fit("schedule-plot", PLOT_WIDEST), page.figure_fit("histogram", PLOT_WIDEST),
                page.figure_fit("strip", page.STRIP_WIDEST))

    def fit(self) -> None:
        """Make the figures at the width their canvases show at (see page.figure_fit)."""
        (width, scale), (hist_width, hist_scale), _ = self.fits()
        narrow = width < page.NARROW_FIGURE_PX
        self.schedule = self.plots.ScheduleFigure(self.view.schedule, width_px=width, scale=scale, stacked=narrow,
                                                  height_px=round(width * (1.3 if narrow else 0.625)))
        narrow = hist_width < page.NARROW_FIGURE_PX
        self.histogram = self.plots.HistogramFigure(width_px=hist_width, scale=hist_scale, compact=narrow,
                                                    height_px=round(hist_width * (0.75 if narrow else 0.625)))
        self.strip = page.strip_figure(self.plots)

    def refit(self) -> None:
        """New figures at the new width, drawn in a task of their own (in one they froze a slow phone for 1-1.6 s
        when it turned)."""
        self.fit()
        self.settings_changed()

    def new_settings(self) -> None:
        """Redraw what depends on the settings but not on t: the strip and the schedule curves."""
        view = self.view
        steps = view.schedule.num_steps
        frames = self.strip.n_frames
        ts = sorted({round(k * steps / (frames - 1)) for k in range(frames)})
        self.strip.update([view.closed_form(t) for t in ts], [f"t = {t}" for t in ts])
        page.blit(element("strip"), self.plots.to_rgba(self.strip.figure))
        element("strip").setAttribute("aria-label", page.strip_words("forward process", ts))
        self.schedule.set_schedule(view.schedule)
        self.draw_t()

    def draw_t(self) -> None:
        view = self.view
        t = view.settings["t"]
        self.schedule.set_t(t - 1)  # the core's index; t = 0 (clean) is -1
        page.blit(element("schedule-plot"), self.plots.to_rgba(self.schedule.figure))
        element("schedule-plot").setAttribute("aria-label", self.describe_schedule(t))
        self.histogram.update(view.x_t, view.x0, t - 1, view.schedule)
        page.blit(element("histogram"), self.plots.to_rgba(self.histogram.figure))
        element("histogram").setAttribute("aria-label", self.histogram.describe())
        page.js.document.body.dataset.figuresT = t  # lets tests wait for the debounced figures

    def describe_schedule(self, t: int) -> str:
        """The schedule figure in words: its curves, and their values where it marks t."""
        s = self.view.schedule
        curves = f"Curves of beta, alpha bar and ln SNR against t, T = {s.num_steps}, marked at t = {t}"
        if t == 0:
            return f"{curves}: the clean image, before the first step"
        i = t - 1
        return (f"{curves}: beta {s.betas[i]:.4g}, alpha bar {self.view.abar_text(t)}, "
                f"ln SNR {float(s.log_snr[i]):.2f}")

    def settings_changed(self) -> None:
        """A new schedule, T, picture or seed: every figure is redrawn in the next task, once the picture has
        painted (in the input's task they held it back, 0.3 s on a slow phone for a new schedule)."""
        self.stale = True
        self.catch_up.schedule()

    def redraw_if_stale(self) -> None:
        """Draw the figures of new settings now, if they wait to be (a download of the strip does not wait)."""
        if self.stale:
            self.stale = False
            self.new_settings()

    def redraw(self) -> None:
        """The figures after the last input: all of them for new settings, else t's marker and histogram."""
        if self.stale:
            self.redraw_if_stale()
        else:
            self.draw_t()

    def later(self) -> None:
        """Debounce: the canvas follows every input, the figures the last one."""
        self.pending.schedule()


async def main() -> None:
    page.set_phase("numpy", "Loading numpy…")
    await page.load_package("numpy")
    page.set_phase("first frame", "Drawing…")
    core = page.import_core()
    view = ForwardView(core)
    page.js.performance.mark("first-frame")  # for tests/benchmarks/pages.py
    view.settings.enable()
    page.set_phase("matplotlib", "Loading matplotlib…")
    await page.load_package("matplotlib")
    page.set_phase("figures", "Drawing the figures…")
    view.figures = await ForwardFigures.start(view)
    view.learn.ready()  # a download of the strip asked for meanwhile can be had now: its "try again" goes
    page.set_phase("ready", "Ready")
    page.js.performance.mark("ready")
    page.js.document.body.dataset.ready = "true"
