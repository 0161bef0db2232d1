"""Reverse view: pure noise x_T is denoised step by step back into an image.

The chain is computed in slices between browser frames, so the page never
freezes; changing a setting cancels the running chain and starts a new one,
never two at once. Play and Step move through the computed steps; the
Timestep slider scrubs them.
"""
import asyncio
import time

from app import learn, page
from app.page import element

SLICE_S = 0.02  # compute for this long, then let the browser paint
PROGRESS_S = 0.25  # how often the readout counts the steps done (each count costs the page a layout)
PLAY_FRAMES_PER_S = 30
PLAY_FRAMES = 120  # frames of Play for a whole chain, long or short: about four seconds
MAX_STEP_S = 0.5  # but a step of a short chain at most this long (3 steps took 1.35 s each)
TRAINING_IMAGES = 32
SAME_RMS = 2 / 255  # one grey level: a result closer than this to a training image is that image
PICTURES_BUDGET_BYTES = 32 * 2**20  # per list of the chain's pictures: float32 up to 80x80 with T = 1000
WEIGHTS = "models/digits.npz"  # the trained network (python3 -m diffusion_lab.train)
DIGITS = "models/digits-train.npz"  # its training digits, for the ideal denoiser and nearest neighbours
DIGITS_SHAPE = (8, 8)  # scikit-learn's digits, the only pictures the network knows


class ReverseView:
    def __init__(self, core) -> None:
        self.core = core
        self.settings = page.Settings("reverse", self.changed)
        self.plots = None
        self.strip = None
        self.generation = 0  # bumped by every new chain; a running computation of an older one stops
        self.player = page.Player("play", self.advance, frames_per_s=PLAY_FRAMES_PER_S,
                                  on_stop=self.settings.flush_url)
        self.play_share = 0.0  # steps of Play owed to the frames since it started, less those taken
        self.frames, self.final, self.times = [], None, [0]
        self.shown_step = None  # the chain's step the pictures show
        self.strip_drawn = False  # whether the strip shows a chain (until a new one is done, the last one's)
        self.assets = {}  # site files loaded on demand: the network's weights, the digits
        self.loading = set()  # those on their way: one request each, however many settings change meanwhile
        self.strip_later = page.Later(0, self.draw_strip)  # a figure: drawn once the result is on screen
        self.learn = learn.ReversePanel(self)  # equations, code, the student's schedule and step, downloads
        self.rebuild()
        self.show_relevant_controls()
        page.on(element("play"), "click", lambda event: self.toggle_play())
        page.on(element("step-button"), "click", lambda event: self.step())
        page.on(element("reset"), "click", lambda event: self.reset())

    # -- the chain -----------------------------------------------------------
    def rebuild(self) -> None:
        """Start a new chain from the settings (cancelling any running one)."""
        core, s = self.core, self.settings
        self.player.stop()
        self.generation += 1
        self.clear_result()
        missing = [path for path in self.assets_needed() if path not in self.assets]
        if missing:
            self.frames, self.final, self.times = [], None, [0]  # nothing to show or play until the chain starts
            self.show_waiting("Loading the trained network and its digits…")
            asked = [path for path in missing if path not in self.loading]
            if asked:
                self.loading.update(asked)
                task = asyncio.ensure_future(self.load_assets(asked))
                task.add_done_callback(page._report_task_error)
            return
        self.schedule = self.learn.schedule()  # the Schedule setting's, or the student's betas(T)
        self.target = core.images.make_image(s["image"], s["size"])
        predict = self.learn.prediction()  # the student's noise prediction for the oracle, or None
        if s["denoiser"] == "oracle":
            self.training = None
            if predict is None:
                denoiser = core.denoisers.Oracle(self.target, self.schedule)
            else:
                denoiser = self.learn.hooks.Oracle(predict, self.target, self.schedule)
        else:
            if self.uses_digits():
                self.training, self.novelty = self.assets[DIGITS]
            else:
                self.training, self.novelty = core.images.training_set(s["size"], TRAINING_IMAGES), None
            self.target = self.training[0]  # only its shape matters: nothing knows the answer
            if s["denoiser"] == "trained":
                params, meta = self.assets[WEIGHTS]
                denoiser = self.core.network.TrainedDenoiser(params, meta, self.schedule)
            else:
                denoiser = core.denoisers.IdealDenoiser(self.training, self.schedule)
        self.learn.new_chain(denoiser)
        if self.strip_drawn:  # the last chain's until this one is done: dimmed, and said so
            element("strip").classList.add("outdated")
            element("strip").setAttribute("aria-label", "Pictures of the last chain, until this one is done")
        self.target_shown = core.images.as_shown(self.target)  # what x̂_0 is told against, once per chain
        if self.training is None:
            self.show_target(self.target, "Target (the image the oracle knows)")
        else:
            self.show_target()  # the nearest training image, once the chain is done
        if s["sampler"] == "ddim":
            ts = core.samplers.timesteps(s["steps"], s["ddim_steps"], s["spacing"])
        else:
            ts = core.np.arange(s["steps"] - 1, -1, -1)
        # Page time t of the state before each step and after the last one (0 = clean).
        self.times = [int(t) + 1 for t in ts] + [0]
        rng = core.np.random.default_rng(s["seed"])
        x_T = rng.standard_normal(self.target.shape)
        pictures = core.images.Pictures
        self.frames = pictures(len(self.times), x_T.shape, PICTURES_BUDGET_BYTES)
        self.frames.append(x_T)
        self.x_T = x_T  # exact, for the .npz download: the frames are kept as the pictures shown
        self.predictions = pictures(len(self.times), x_T.shape, PICTURES_BUDGET_BYTES)  # [k]: the x0 seen in frames[k]
        self.final = None
        update = self.learn.update()  # the student's step of the sampler, or None for samplers.py's
        if s["sampler"] == "ddim":
            options = {"sampler": "ddim", "steps": s["ddim_steps"], "eta": s["eta"], "spacing": s["spacing"]}
        else:
            options = {"sampler": "ddpm", "variance": s["variance"]}
        chain = core.samplers.sample(x_T, denoiser, self.schedule, rng, update=update, **options)
        blame = self.learn.blame(predict, update)  # whose code a runaway chain is blamed on, if any
        if blame:
            chain = self.learn.hooks.guarded(chain, blame)
        worker = asyncio.ensure_future(self.compute(chain, self.generation))
        worker.add_done_callback(page._report_task_error)
        self.draw()

    def picture_shape(self) -> tuple[int, int]:
        """The shape of the chain's pictures: the digits' when the denoiser knows them, else the Size setting's."""
        if self.uses_digits():
            return DIGITS_SHAPE
        return (self.settings["size"], self.settings["size"])

    def uses_digits(self) -> bool:
        """Whether the denoiser knows the digits: the network, trained on them only, or the ideal one of them.

        The Training set setting is the ideal denoiser's; the network leaves it as it was.
        """
        s = self.settings
        return s["denoiser"] == "trained" or (s["denoiser"] == "ideal" and s["dataset"] == "digits")

    def assets_needed(self) -> list[str]:
        return ([WEIGHTS] if self.settings["denoiser"] == "trained" else []) + \
               ([DIGITS] if self.uses_digits() else [])

    async def load_assets(self, paths: list[str]) -> None:
        """Fetch the network or the digits the first time a setting needs them, in turn; once the settings of
        the moment have all they need, start their chain. A failure is said while they need that file (the
        rest is not asked for), and the next setting that needs it asks again."""
        failed = None
        try:
            for path in paths:
                try:
                    data = await page.site_file(path)
                except Exception as error:  # noqa: BLE001  (offline, or the site is incomplete: say so, keep working)
                    failed = path
                    element("result").style.minHeight = ""  # no result comes to take the last one's room
                    if path in self.assets_needed():
                        what = "The trained network" if path == WEIGHTS else "The handwritten digits"
                        setting = "denoiser" if self.settings["denoiser"] == "trained" else "training set"
                        self.show_waiting(f"{what} could not be loaded: {error}." if isinstance(error, page.Outdated)
                                          else f"{what} could not be loaded ({error}). "
                                               f"Choose another {setting}, then this one again to retry.")
                    break
                if path == WEIGHTS:
                    from diffusion_lab import network

                    self.core.network = network
                    self.assets[path] = network.load_weights(data)
                else:
                    self.assets[path] = self.core.images.load_image_set(data)
        finally:
            self.loading.difference_update(paths)
        needed = self.assets_needed()
        if failed in needed:
            return  # said; the next setting that needs it asks again
        if all(path in self.assets for path in needed) and set(paths) & set(needed) or \
                failed is not None and any(path not in self.assets for path in needed):
            self.rebuild()  # their chain, or a request for what they need, which waited behind the file that failed

    async def compute(self, chain, generation: int) -> None:
        x = None
        progress_at = time.perf_counter() + PROGRESS_S
        while generation == self.generation:
            deadline = time.perf_counter() + SLICE_S
            try:
                with self.learn.running_chain():
                    for _, x, x0_pred in chain:
                        self.predictions.append(x0_pred)
                        self.frames.append(x)
                        if time.perf_counter() > deadline:
                            break
                    else:
                        break
            except self.learn.hooks.HookError as error:  # the student's code: start again with the original
                self.learn.chain_failed(error)
                self.rebuild()
                return
            if min(self.settings["step"], len(self.frames) - 1) != self.shown_step:
                self.draw()  # the slider's step, or the last computed short of it
            elif time.perf_counter() > progress_at:
                self.show_readout()  # how far the chain has come
                progress_at = time.perf_counter() + PROGRESS_S
            await asyncio.sleep(0)
        if generation != self.generation:
            return
        self.final = x
        self.predictions.append(x)  # at the clean end the image is its own prediction
        self.draw()
        self.show_result()
        self.learn.ready()
        if self.plots is not None:
            self.strip_later.schedule()

    def relevant(self) -> dict[str, bool]:
        """Which of the settings that depend on others matter now: the sampler's own, the target's for the
        oracle, the data's."""
        s = self.settings
        ddim, oracle = s["sampler"] == "ddim", s["denoiser"] == "oracle"
        return {"ddim_steps": ddim, "eta": ddim, "spacing": ddim, "variance": not ddim, "image": oracle,
                "dataset": s["denoiser"] == "ideal", "size": not self.uses_digits()}

    def show_relevant_controls(self) -> None:
        """Only the settings that matter are shown."""
        for name, visible in self.relevant().items():
            element(name).closest(".field").hidden = not visible
        # The Image box goes too when none of its fields is left (the trained network's digits have one size).
        box = element("image").closest("fieldset")
        box.classList.toggle("empty", all(field.hidden for field in box.querySelectorAll(".field")))

    def changed(self, names: set) -> None:
        if names - {"step"}:
            self.show_relevant_controls()
            # A new chain starts at x_T, unless the link fixes the step or Back/Forward brings its own (an
            # address shows its step, as a fresh load of it does).
            if not self.settings.locked("step") and not self.settings.restoring:
                self.settings.set("step", 0)
            self.rebuild()
        else:
            self.draw()

    # -- drawing -----------------------------------------------------------
    def draw(self) -> None:
        if not self.frames:
            return  # still loading what the chain needs
        images = self.core.images
        k = self.shown_step = self.show_readout()
        t, total = self.times[k], len(self.times) - 1
        page.blit(element("frame"), images.to_rgba(self.frames[k]))
        if k < len(self.predictions):
            page.blit(element("x0-frame"), images.to_rgba(self.predictions[k]))
            element("x0-frame").setAttribute("aria-label", self.describe_prediction(k, t))
        description = f"Noisy picture x_t at t = {t}, reverse step {k} of {total}"
        element("frame").setAttribute("aria-label", description)
        page.announce(description)
        element("step-value").textContent = f"t = {t}"
        element("step").setAttribute("aria-valuetext", f"t = {t}, step {k} of {total}")
        self.learn.show()

    def describe_prediction(self, k: int, t: int) -> str:
        """The predicted clean picture of step k in words: how far it is from what the chain may end on."""
        images, shown = self.core.images, self.core.images.as_shown(self.predictions[k])
        words = f"Predicted clean picture x̂_0 at t = {t}"
        if self.training is None:  # against the target as it is shown: the same pixels are identical
            psnr = images.psnr(shown, self.target_shown)
            return f"{words}: " + ("identical to the target" if psnr > 100 else
                                   f"PSNR {psnr:.1f} dB against the target")
        index, distance = images.nearest(shown, self.training)
        return f"{words}: RMS distance {distance:.3f} to the nearest training image, #{index + 1}"

    def show_readout(self) -> int:
        """t and the step shown, and while the chain is computed how far it has come; returns the step."""
        k = min(self.settings["step"], len(self.frames) - 1)
        total = len(self.times) - 1
        done = "" if len(self.frames) > total else f" (computing: {len(self.frames) - 1} of {total} steps done)"
        element("readout").textContent = f"t = {self.times[k]}, step {k} of {total}{done}"
        return k

    def clear_result(self) -> None:
        """The last chain's result goes, its room stays until this chain's comes: on a phone the result sits
        between the chain's buttons and the settings, which would jump up as it went (up to 10 lines) and down
        as the new one came, a tenth of a second later for a short chain."""
        result = element("result")
        if result.textContent:
            result.style.minHeight = f"{result.offsetHeight}px"
            result.textContent = ""

    def show_result(self) -> None:
        """What the whole chain ends on, shown once it is computed, before Play reaches it: the line says so."""
        element("result").style.minHeight = ""  # the last result's room (clear_result), which this one takes
        images = self.core.images
        result = f"Result at the end of the chain (step {len(self.times) - 1}):"
        if self.training is None:
            psnr = images.psnr(self.final, self.target)
            quality = "identical to the target" if psnr > 100 else f"PSNR {psnr:.1f} dB against the target"
            element("result").textContent = f"{result} {quality}." + (self.lost() if psnr < 40 else "")
        else:
            index, distance = images.nearest(self.final, self.training)
            self.show_target(self.training[index], f"Nearest training image (#{index + 1} of {len(self.training)})")
            element("result").textContent = f"{result} RMS distance {distance:.3f} to training image " \
                                            f"#{index + 1}. " + self.verdict(distance)

    def lost(self) -> str:
        """Why a chain may miss: the student's schedule took x_0 past what float64 resolves (else "")."""
        if self.settings["sampler"] != "ddim":
            return ""  # DDPM's small steps do not depend on x_t's trace of x_0 at large t
        t = self.core.schedules.lost_from(self.schedule)
        return "" if t is None else (f" Your betas(T) takes ᾱ below {self.core.schedules.ALPHA_BAR_LOST:g} from "
                                     f"t = {t} on, where x_0's finest detail (about a grey level) is in x_t below "
                                     "float64's rounding of the noise (see the code panel).")

    def show_waiting(self, text: str) -> None:
        """No chain yet: blank pictures (not the last chain's), the reason in the readout and the equations."""
        for id_ in ("frame", "x0-frame", "strip"):
            page.clear(element(id_))
        element("frame").setAttribute("aria-label", "Noisy picture x_t: none yet")
        element("x0-frame").setAttribute("aria-label", "Predicted clean picture: none yet")
        element("strip").setAttribute("aria-label", "Pictures of the reverse chain: none yet")
        element("strip").classList.remove("outdated")
        self.strip_drawn = False
        self.show_target()
        element("readout").textContent = text
        element("step-value").textContent = "t = –"
        page.announce(text)  # loading the network, or why it could not be: the readout is not a live region
        self.learn.waiting(text)

    def show_target(self, picture=None, caption: str = "Nearest training image: once the chain is done") -> None:
        """The picture beside the chain and its caption; a blank canvas while there is none to show."""
        canvas = element("target-frame")
        if picture is None:
            page.clear(canvas)
        else:
            page.blit(canvas, self.core.images.to_rgba(picture))
        element("target-caption").textContent = caption
        canvas.setAttribute("aria-label", caption)

    def verdict(self, distance: float) -> str:
        """New or memorised? Measured against how far real unseen digits lie from the training set."""
        if self.settings["denoiser"] == "ideal":
            if distance < SAME_RMS:
                return "The ideal denoiser can only reproduce its training images."
            return ("Not a training image: the chain ended before the ideal denoiser settled on one (too few "
                    "steps, a changed step, or betas that leave much noise at t = 1)." + self.lost())
        low, high = self.novelty["held_out_nn_p5"], self.novelty["held_out_nn_p95"]
        if distance < low:
            return f"A copy: closer to a training digit than 95% of real unseen digits are ({low:.3f})."
        if distance > high:
            return (f"Not much like a digit: farther from every training digit than 95% of real unseen digits are "
                    f"({high:.3f}).")
        images = self.core.images
        crisp, floor = float(images.crisp_shares(self.final[None])[0]), images.crisp_floor(self.training)
        if crisp < floor:
            return (f"Not a digit yet, a blur: {crisp:.0%} of its pixels are near black or white, fewer than in 99% "
                    f"of the training digits (at least {floor:.0%}). The chain ended before the network settled on a "
                    "digit (too few steps, or a changed step).")
        return (f"New: as far from the training digits as real unseen digits are (90% of them lie {low:.3f} to "
                f"{high:.3f} away): not a copy. Whether it reads as a digit is yours to judge (a classifier is sure "
                "of 3 in 4 of the network's samples, and of 87% of real digits).")

    def fit_strip(self) -> None:
        """Make the strip at the width its canvas shows at, and draw it (at once if the chain is done, else
        when it is)."""
        self.strip = page.strip_figure(self.plots)
        self.draw_strip()

    def draw_strip(self) -> None:
        if self.final is None:
            return  # a new chain started meanwhile: it draws the strip when it is done
        total = len(self.times) - 1
        frames = self.strip.n_frames
        ks = sorted({round(i * total / (frames - 1)) for i in range(frames)})
        frames = [self.core.images.from_uint8(self.frames[k]) for k in ks]
        self.strip.update(frames, [f"t = {self.times[k]}" for k in ks])
        page.blit(element("strip"), self.plots.to_rgba(self.strip.figure))
        element("strip").setAttribute("aria-label", page.strip_words("reverse chain", [self.times[k] for k in ks]))
        element("strip").classList.remove("outdated")
        self.strip_drawn = True

    # -- playing -------------------------------------------------------------
    def step(self) -> bool:
        k = self.settings["step"]
        if k >= len(self.times) - 1:
            return False
        self.settings.set("step", k + 1)
        self.draw()
        return True

    def advance(self, scale: int) -> bool:
        """One frame of Play: 1/PLAY_FRAMES of the chain (`scale` times as much), waiting where it is still
        computed. A short chain takes a step every few frames, at most MAX_STEP_S apart."""
        if self.settings["step"] >= len(self.times) - 1:
            return False  # the end: Play stops at once, not a step's worth of frames later
        self.play_share += scale * max((len(self.times) - 1) / PLAY_FRAMES, 1 / (PLAY_FRAMES_PER_S * MAX_STEP_S))
        steps, self.play_share = int(self.play_share), self.play_share % 1
        # The frame's steps at once, drawn once: drawn one by one (8 a frame for T = 1000, 6 ms each at 256 x 256)
        # a frame ran late, so the next one took the missed frames' steps too, each drawn: 3 frames a second.
        last = len(self.times) - 1 if self.final is not None else len(self.frames) - 1  # what is computed so far
        k = min(self.settings["step"] + steps, last)
        if k > self.settings["step"]:
            self.settings.set("step", k)
            self.draw()
        return k < len(self.times) - 1

    def toggle_play(self) -> None:
        if not self.frames:
            return  # no chain yet: the readout says why
        if not self.player.playing:
            self.play_share = 1.0  # the first step at once
            if self.settings["step"] >= len(self.times) - 1:  # again from x_T, shown first
                self.play_share = 0.0
                self.settings.set("step", 0)
                self.draw()
        self.player.toggle()

    def reset(self) -> None:
        self.player.stop()
        self.settings.set("step", 0)
        self.draw()


async def main() -> None:
    page.set_phase("numpy", "Loading numpy…")
    await page.load_package("numpy")
    page.set_phase("first frame", "Drawing…")
    view = ReverseView(page.import_core())
    page.js.performance.mark("first-frame")  # for tests/benchmarks/pages.py
    view.settings.enable()
    page.set_phase("matplotlib", "Loading matplotlib…")
    await page.load_package("matplotlib")
    page.set_phase("figures", "Drawing the figures…")
    view.plots = await page.import_plots()
    view.fit_strip()
    page.refit_on_resize(lambda: page.figure_fit("strip", page.STRIP_WIDEST), view.fit_strip)
    page.set_phase("ready", "Ready")
    page.js.performance.mark("ready")
    page.js.document.body.dataset.ready = "true"
