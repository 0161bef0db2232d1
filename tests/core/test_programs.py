"""The classroom programs run as scripts, write a PNG, and reverse diffusion ends on the image."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import forward_diffusion
import reverse_diffusion
from diffusion_lab import plots, samplers
from diffusion_lab.denoisers import Oracle
from diffusion_lab.forward import q_step
from diffusion_lab.images import make_image
from diffusion_lab.schedules import get_schedule

ROOT = Path(__file__).resolve().parents[2]
PY = ROOT / "py"


@pytest.mark.parametrize(
    "script, extra",
    [
        ("forward_diffusion.py", ["--schedule", "cosine", "--shown", "5"]),
        ("reverse_diffusion.py", ["--sampler", "ddim", "--ddim-steps", "20", "--eta", "0.5", "--shown", "5"]),
    ],
)
def test_program_writes_png(tmp_path, script, extra):
    out = tmp_path / "figure.png"
    result = subprocess.run(
        [sys.executable, str(PY / script), "--steps", "100", "--size", "32", "--out", str(out), *extra],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    with Image.open(out) as image:
        width, height = image.size
    assert width >= 6 * 100 and 100 <= height <= 400  # original/x_T + 5 frames


@pytest.mark.parametrize("script, options, words", [
    ("forward_diffusion.py", ["--steps", "1"], "--steps must be between 2 and 1000"),
    ("forward_diffusion.py", ["--seed", "-1"], "--seed must be between 0 and"),
    ("forward_diffusion.py", ["--shown", "100000"], "--shown must be between 1 and 40"),
    ("forward_diffusion.py", ["--out", "missing/x.png"], "does not exist"),
    ("forward_diffusion.py", ["--out", "figure.jpg"], "must end in .png"),
    ("forward_diffusion.py", ["--out", ""], "must end in .png"),
    ("forward_diffusion.py", ["--out", ".png"], "give the file a name before .png"),  # its suffix is ""
    ("forward_diffusion.py", ["--out", "folder.png"], "is a folder"),
    ("forward_diffusion.py", ["--out", "notes.txt/x.png"], "'notes.txt' is a file, not a folder"),
    ("reverse_diffusion.py", ["--out", "/proc/x.png"], "cannot write there"),  # looks writable, is not
    ("reverse_diffusion.py", ["--sampler", "ddim", "--eta", "nan"], "--eta must be between 0"),
    ("reverse_diffusion.py", ["--sampler", "ddim", "--eta", "inf"], "--eta must be between 0"),
    ("reverse_diffusion.py", ["--sampler", "ddim", "--eta", "1.5"], "--eta must be between 0"),
    ("reverse_diffusion.py", ["--sampler", "ddim", "--ddim-steps", "20", "--steps", "10"],
     "--ddim-steps 20 must be between 1 and --steps (10)"),
])
def test_program_rejects_bad_options_in_one_line_before_any_work(tmp_path, script, options, words):
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "notes.txt").write_text("")
    result = subprocess.run([sys.executable, str(PY / script), *options], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]  # argparse's usage, then one line
    assert last.startswith(f"{script}: error: ") and words in last and "Traceback" not in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder.png", "notes.txt"]  # nothing written


@pytest.mark.parametrize("program", [forward_diffusion, reverse_diffusion])
@pytest.mark.parametrize("before", [b"the previous figure", None])
def test_a_failed_save_leaves_the_previous_file_and_no_partial_one(monkeypatch, tmp_path, capsys, program, before):
    out = tmp_path / "lesson.png"
    if before is not None:
        out.write_bytes(before)

    def disk_full_halfway(figure, path):
        Path(path).write_bytes(b"\x89PNG, the first half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(program.plots, "save_png", disk_full_halfway)
    assert program.main(["--steps", "10", "--size", "16", "--out", str(out)]) == 1
    assert capsys.readouterr().err == f"error: could not write {out}: No space left on device\n"
    if before is None:
        assert list(tmp_path.iterdir()) == []
    else:
        assert list(tmp_path.iterdir()) == [out] and out.read_bytes() == before


def test_a_read_only_folder_is_refused_in_one_line(monkeypatch, tmp_path, capsys):
    """On a read-only disk Linux refuses even the removal of a file that is not there: the check removes only
    what it made. Before, that second refusal ended the one line in a traceback."""
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(forward_diffusion, "open", read_only, raising=False)  # the module's open, not builtins'
    monkeypatch.setattr(Path, "unlink", read_only)
    with pytest.raises(SystemExit) as stop:
        forward_diffusion.main(["--out", str(tmp_path / "lesson.png")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].endswith(  # argparse's prog is pytest's here
        f"error: --out '{tmp_path / 'lesson.png'}': cannot write there (Read-only file system)")
    assert "Traceback" not in err


def test_a_link_to_a_new_file_is_written_through_and_stays_a_link(tmp_path):
    (tmp_path / "link.png").symlink_to("target.png")
    assert forward_diffusion.main(["--steps", "10", "--size", "16", "--out", str(tmp_path / "link.png")]) == 0
    assert (tmp_path / "link.png").is_symlink()  # before, the check removed the link and left target.png empty
    assert (tmp_path / "target.png").read_bytes().startswith(b"\x89PNG")


def test_a_file_name_near_the_longest_a_disk_takes_is_written(tmp_path):
    out = tmp_path / ("a" * 246 + ".png")  # legal; its temporary file's name with the process id was not
    assert forward_diffusion.main(["--steps", "10", "--size", "16", "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG") and list(tmp_path.iterdir()) == [out]


def test_ddim_steps_not_given_are_lowered_to_a_smaller_t_and_the_title_says_the_run(monkeypatch, tmp_path):
    """As the page lowers its DDIM steps to fit T; a number the user typed is never changed (refused above)."""
    titles = []
    monkeypatch.setattr(reverse_diffusion.plots, "strip_figure",
                        lambda frames, labels, title: titles.append(title) or plots.Figure())
    monkeypatch.setattr(reverse_diffusion.plots, "save_png", lambda figure, out: Path(out).write_bytes(b""))
    assert reverse_diffusion.main(["--sampler", "ddim", "--steps", "20", "--seed", "3", "--out",
                                   str(tmp_path / "r.png")]) == 0
    assert reverse_diffusion.main(["--steps", "20", "--out", str(tmp_path / "r.png")]) == 0
    assert titles[0].startswith("Reverse diffusion (ddim, 20 steps, leading spacing, eta 0, oracle noise): linear, "
                                "T=20, seed 3\n")
    assert titles[1].startswith("Reverse diffusion (ddpm, oracle noise): linear, T=20, seed 0\n")


@pytest.mark.parametrize("script", ["forward_diffusion.py", "reverse_diffusion.py"])
def test_ctrl_c_while_the_programs_import_matplotlib_says_interrupted_in_one_line(script):
    """A short run is mostly imports: a Ctrl-C lands there more often than not."""
    ctrl_c = ("import runpy, sys\n"
              "class CtrlC:\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name == 'matplotlib': raise KeyboardInterrupt\n"
              "sys.meta_path.insert(0, CtrlC())\n"
              f"sys.argv = [{script!r}]\n"
              f"runpy.run_path({str(PY / script)!r}, run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", ctrl_c], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stderr) == (130, "interrupted\n")


def not_interrupted(main, argv):
    """main(argv); a KeyboardInterrupt that escapes it fails the test (it would stop the whole run)."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main: the user gets a traceback")


def test_ctrl_c_says_interrupted_in_one_line_and_leaves_the_previous_file(monkeypatch, tmp_path, capsys):
    out = tmp_path / "lesson.png"
    out.write_bytes(b"the previous figure")

    def interrupted_halfway(figure, path):
        Path(path).write_bytes(b"\x89PNG, the first half")
        raise KeyboardInterrupt

    monkeypatch.setattr(forward_diffusion.plots, "save_png", interrupted_halfway)
    assert not_interrupted(forward_diffusion.main, ["--steps", "10", "--size", "16", "--out", str(out)]) == 130
    assert capsys.readouterr().err == "interrupted\n"
    assert list(tmp_path.iterdir()) == [out] and out.read_bytes() == b"the previous figure"

    def interrupted_sampler(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reverse_diffusion.samplers, "sample", interrupted_sampler)
    assert not_interrupted(reverse_diffusion.main, ["--steps", "10", "--size", "16", "--out", str(out)]) == 130
    assert capsys.readouterr().err == "interrupted\n"
    assert out.read_bytes() == b"the previous figure"


OPENERS = {
    "fails": "#!/bin/sh\necho 'www-browser: not found' >&2\necho 'no method available'\nexit 3\n",
    "opens": "#!/bin/sh\nprintf '%s' \"$1\" > \"${0%/*}/opened\"\n",  # PATH has no dirname
    "missing": None,
}


@pytest.mark.parametrize("opener", OPENERS)
def test_show_opens_the_written_png_or_says_in_one_line_where_it_is(tmp_path, opener):
    bin_dir, temp = tmp_path / "bin", tmp_path / "temp"
    bin_dir.mkdir()
    temp.mkdir()
    if OPENERS[opener] is not None:
        for name in ("xdg-open", "open"):  # Linux's opener, macOS's
            (bin_dir / name).write_text(OPENERS[opener])
            (bin_dir / name).chmod(0o755)
    out = tmp_path / "shown.png"
    command = [sys.executable, str(PY / "forward_diffusion.py"), "--steps", "10", "--size", "16", "--show"]
    result = subprocess.run(
        [*command, "--out", str(out)], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PATH=str(bin_dir), TMPDIR=str(temp)),  # only the fake opener, or none
    )
    assert result.returncode == 0 and result.stdout == f"wrote {out}\n"
    if opener == "opens":
        assert result.stderr == "" and (bin_dir / "opened").read_text() == str(out)  # the file itself, not a copy
    else:
        assert result.stderr == f"note: no image viewer could be opened; the PNG is at {out}\n"
    assert list(temp.iterdir()) == []  # no copy left behind


@pytest.mark.parametrize("script", ["forward_diffusion.py", "reverse_diffusion.py"])
@pytest.mark.parametrize("package, where, requirements", [
    ("numpy", ROOT, "requirements.txt"), ("matplotlib", ROOT, "requirements.txt"), ("numpy", PY, "../requirements.txt"),
])
def test_without_numpy_the_programs_say_in_one_line_what_to_install(script, package, where, requirements):
    hidden = (f"import runpy, sys; sys.modules[{package!r}] = None; sys.argv = [{script!r}, '--help']; "
              f"runpy.run_path({str(PY / script)!r}, run_name='__main__')")  # as if it were not installed
    result = subprocess.run([sys.executable, "-c", hidden], cwd=where, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"error: {package} is not installed; run: pip install -r {requirements}\n"


def help_entries(main, capsys) -> dict:
    """{option: what --help says of it, on one line} from argparse's help."""
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    entries, name = {}, None
    for line in capsys.readouterr().out.split("\noptions:\n")[1].split("\n\n")[0].splitlines():
        if line.startswith("  -"):
            name = line.split()[0].rstrip(",")
            entries[name] = line.strip()
        else:
            entries[name] += " " + line.strip()
    return entries


SHARED_DEFAULTS = {"--schedule": "linear", "--steps": "1000", "--seed": "0", "--image": "gradient", "--size": "64",
                   "--shown": "10", "--show": "False"}


@pytest.mark.parametrize("program, defaults", [
    (forward_diffusion, dict(SHARED_DEFAULTS, **{"--out": "forward_diffusion.png"})),
    (reverse_diffusion, dict(SHARED_DEFAULTS, **{"--sampler": "ddpm", "--ddim-steps": "50, or T if smaller", "--eta": "0.0",
                                                 "--spacing": "leading", "--out": "reverse_diffusion.png"})),
])
def test_help_explains_every_option_with_its_default(capsys, program, defaults):
    entries = help_entries(program.main, capsys)
    assert sorted(entries) == sorted(["-h", *defaults])
    for option, default in defaults.items():
        words = entries[option].split(" (default: ")[0].split()
        assert len(words) >= 4 and entries[option].endswith(f"(default: {default})"), entries[option]
    assert "built-in pictures" in entries["--image"]
    assert "any from 16 to 256; the pages take it in steps of 16" in entries["--size"]  # the programs allow more
    if program is reverse_diffusion:
        for meaning in ("leading, every (T // n)-th from t = 1", "trailing, every (T / n)-th back from t = T",
                        "linspace, n evenly spaced from t = 1 to T"):
            assert meaning in entries["--spacing"]


def test_programs_count_t_as_the_paper_and_the_pages(monkeypatch, tmp_path):
    """t = 0 is the clean image and t = T pure noise; the last frame shown is the last step."""
    drawn = []
    monkeypatch.setattr(forward_diffusion.plots, "strip_figure",
                        lambda frames, labels, title: drawn.append(labels) or forward_diffusion.plots.Figure())
    monkeypatch.setattr(forward_diffusion.plots, "save_png", lambda figure, out: Path(out).write_bytes(b""))
    assert forward_diffusion.main(["--steps", "2", "--out", str(tmp_path / "f.png")]) == 0
    assert forward_diffusion.main(["--steps", "100", "--shown", "1", "--out", str(tmp_path / "f.png")]) == 0
    assert reverse_diffusion.main(["--steps", "2", "--out", str(tmp_path / "r.png")]) == 0
    assert reverse_diffusion.main(["--steps", "100", "--sampler", "ddim", "--ddim-steps", "5", "--spacing",
                                   "trailing", "--shown", "5", "--out", str(tmp_path / "r.png")]) == 0
    assert reverse_diffusion.main(["--steps", "1000", "--sampler", "ddim", "--ddim-steps", "50", "--shown", "1",
                                   "--out", str(tmp_path / "r.png")]) == 0  # leading: its first step is at 981
    assert reverse_diffusion.main(["--steps", "10", "--eta", "3", "--shown", "1",  # DDPM has no eta: ignored
                                   "--out", str(tmp_path / "r.png")]) == 0
    assert reverse_diffusion.main(["--steps", "1000", "--size", "16", "--out", str(tmp_path / "r.png")]) == 0
    assert drawn == [["x_0 (t = 0)", "t = 1", "t = 2"], ["x_0 (t = 0)", "t = 100"], ["x_T (t = 2)", "t = 1", "t = 0"],
                     ["x_T (t = 100)", "t = 80", "t = 60", "t = 40", "t = 20", "t = 0"], ["x_T (as t = 981)", "t = 0"],
                     ["x_T (t = 10)", "t = 0"],
                     ["x_T (t = 1000)", *(f"t = {t}" for t in range(900, -1, -100))]]  # not t = 999, as x_T


def test_the_forward_programs_frames_are_the_pictures_the_pages_play_reaches(monkeypatch, tmp_path):
    drawn = []
    monkeypatch.setattr(forward_diffusion.plots, "strip_figure",
                        lambda frames, labels, title: drawn.append((frames, labels)) or plots.Figure())
    monkeypatch.setattr(forward_diffusion.plots, "save_png", lambda figure, out: Path(out).write_bytes(b""))
    assert forward_diffusion.main(["--schedule", "cosine", "--seed", "7", "--steps", "50", "--image", "disc",
                                   "--size", "32", "--shown", "6", "--out", str(tmp_path / "f.png")]) == 0
    # site/app/forward.py, ForwardView.step from t = 0: x0, then eq. 2 with noise from default_rng([seed, 1])
    s, x = get_schedule("cosine", 50), make_image("disc", 32)
    rng, page = np.random.default_rng([7, 1]), [x]
    for index in range(50):
        page.append(q_step(page[-1], index, rng.standard_normal(x.shape), s))
    frames, labels = drawn[0]
    assert labels == ["x_0 (t = 0)", "t = 8", "t = 17", "t = 25", "t = 33", "t = 42", "t = 50"]  # not t = 1
    for frame, label in zip(frames, labels):
        np.testing.assert_array_equal(frame, page[int(label.split("t = ")[1].rstrip(")"))])


def test_the_reverse_program_starts_from_the_pages_noise_with_the_image_in_it():
    """The reverse page's x_T is eps = default_rng(seed).standard_normal (site/app/reverse.py); the program's is
    sqrt(alpha_bar_T) x0 + sqrt(1 - alpha_bar_T) eps, and the later draws of the chain are the page's."""
    s, x0 = get_schedule("linear", 100), make_image("gradient", 32)
    x_T, states = reverse_diffusion.reverse_diffusion(x0, s, np.random.default_rng(7))
    rng = np.random.default_rng(7)
    eps = rng.standard_normal(x0.shape)
    np.testing.assert_allclose(x_T, s.sqrt_alpha_bars[-1] * x0 + s.sqrt_one_minus_alpha_bars[-1] * eps, rtol=1e-12)
    page_steps = list(samplers.sample(x_T, Oracle(x0, s), s, rng))  # the page's chain, from the program's x_T
    assert len(page_steps) == len(states)
    for (_, page_x, _), (_, x) in zip(page_steps, states):
        np.testing.assert_array_equal(page_x, x)


@pytest.mark.parametrize(
    "kwargs", [dict(), dict(sampler="ddim", ddim_steps=50), dict(sampler="ddim", ddim_steps=10, eta=1.0, spacing="trailing")]
)
def test_reverse_diffusion_ends_on_the_gradient(kwargs):
    image = make_image("gradient", 64)
    schedule = get_schedule("linear", 1000)
    x_T, states = reverse_diffusion.reverse_diffusion(image, schedule, np.random.default_rng(0), **kwargs)
    assert np.abs(x_T - image).max() > 1  # started from noise
    np.testing.assert_allclose(states[-1][1], image, rtol=0, atol=1e-9)


def test_classroom_wrappers():
    s = get_schedule("linear", 100)
    np.testing.assert_array_equal(forward_diffusion.variance_schedule_beta(100), s.betas)
    x = make_image("disc", 16)
    a = forward_diffusion.add_gaussian_noise(x, 50, s, rng=np.random.default_rng(0))
    b = forward_diffusion.add_gaussian_noise(x, 50, s.betas, rng=np.random.default_rng(0))
    np.testing.assert_allclose(a, b, rtol=1e-12)
    step = forward_diffusion.add_gaussian_noise_for_forward_sim(x, 0, s, rng=np.random.default_rng(0))
    np.testing.assert_allclose(step, forward_diffusion.add_gaussian_noise(x, 0, s, rng=np.random.default_rng(0)))
    eps = np.random.default_rng(1).standard_normal(x.shape)
    x_t = np.sqrt(s.alpha_bars[30]) * x + np.sqrt(1 - s.alpha_bars[30]) * eps
    np.testing.assert_allclose(reverse_diffusion.simulate_noise_predictor(x_t, 30, x, s), eps, atol=1e-12)


def test_every_classroom_function_takes_betas_or_a_schedule():
    """As variance_schedule_beta returns betas, the functions that take a schedule take betas too (and lists)."""
    s = get_schedule("linear", 100)
    x = make_image("disc", 16)
    x_t = forward_diffusion.add_gaussian_noise(x.tolist(), 30, s.betas.tolist(), rng=np.random.default_rng(1))
    np.testing.assert_allclose(x_t, forward_diffusion.add_gaussian_noise(x, 30, s, rng=np.random.default_rng(1)))
    np.testing.assert_allclose(reverse_diffusion.simulate_noise_predictor(x_t.tolist(), 30, x, s.betas),
                               reverse_diffusion.simulate_noise_predictor(x_t, 30, x, s), rtol=1e-12, atol=1e-12)
    for kwargs in (dict(), dict(sampler="ddim", ddim_steps=10)):
        x_T, states = reverse_diffusion.reverse_diffusion(x, s.betas, np.random.default_rng(2), **kwargs)
        again_T, again = reverse_diffusion.reverse_diffusion(x, s, np.random.default_rng(2), **kwargs)
        np.testing.assert_allclose(x_T, again_T, rtol=1e-12)
        assert [t for t, _ in states] == [t for t, _ in again]
        np.testing.assert_allclose(states[-1][1], x, atol=1e-9)


def test_classroom_functions_name_the_argument_that_is_wrong():
    s = get_schedule("linear", 100)
    x = make_image("disc", 16)
    with pytest.raises(ValueError, match=r"^betas must be a 1-D sequence of T numbers in \(0, 1\) or a Schedule"):
        forward_diffusion.add_gaussian_noise(x, 3, s.betas.reshape(10, 10), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"^x_t and x0 must have the same shape, got \(16, 16\) and \(8, 8\)"):
        reverse_diffusion.simulate_noise_predictor(x, 3, np.zeros((8, 8)), s)


def test_wrappers_take_t_as_the_cores_index():
    """t = 0 is the paper's first step (x_1, not the clean image), t = T-1 the last; numpy integers are fine."""
    s = get_schedule("linear", 100)
    x = make_image("disc", 16)
    eps = np.random.default_rng(0).standard_normal(x.shape)
    first = forward_diffusion.add_gaussian_noise(x, 0, s, rng=np.random.default_rng(0))
    np.testing.assert_allclose(first, np.sqrt(1 - s.betas[0]) * x + np.sqrt(s.betas[0]) * eps, rtol=1e-12)
    last = forward_diffusion.add_gaussian_noise(x, np.int64(99), s, rng=np.random.default_rng(0))
    np.testing.assert_allclose(last, s.sqrt_alpha_bars[-1] * x + s.sqrt_one_minus_alpha_bars[-1] * eps, rtol=1e-12)


@pytest.mark.parametrize("t", [-1, 100, 2.5, 3.0, True, "1", None])
def test_wrappers_refuse_a_t_outside_0_to_T_minus_1_naming_the_range(t):
    s = get_schedule("linear", 100)
    x = make_image("disc", 16)
    calls = [
        lambda: forward_diffusion.add_gaussian_noise(x, t, s, rng=np.random.default_rng(0)),
        lambda: forward_diffusion.add_gaussian_noise_for_forward_sim(x, t, s.betas, rng=np.random.default_rng(0)),
        lambda: reverse_diffusion.simulate_noise_predictor(x, t, x, s),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=r"^t must be an integer from 0 to 99 \(the core's index"):
            call()
