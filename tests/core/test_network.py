"""The trained denoiser: backprop against finite differences, training lowers the loss, the shipped weights make digits."""

import ast
import contextlib
import re
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from diffusion_lab import network, train
from diffusion_lab.evaluate import Judge, frechet_distance, generate, sqrtm_psd
from diffusion_lab.forward import q_sample
from diffusion_lab.network import TrainedDenoiser
from diffusion_lab.schedules import from_betas, get_schedule

ROOT = Path(__file__).resolve().parents[2]
WEIGHTS = ROOT / "site" / "models" / "digits.npz"


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """One BLAS thread, as train.py uses: reproducible, and no thread thrashing on a busy 2-core machine.

    threadpoolctl comes with scikit-learn; Pyodide (which runs the numpy-only tests here) has neither, nor threads.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=1)
    with limits:
        yield


def tiny_params(seed=0):
    """A small float64 network with every weight non-zero (the shipped init zeroes w2)."""
    rng = np.random.default_rng(seed)
    params = network.init_params(rng, hidden=12, blocks=2, embed=6, dtype=np.float64)
    for key in params:
        params[key] = params[key] + 0.3 * rng.standard_normal(params[key].shape)
    return params


def test_gradients_match_finite_differences():
    params = tiny_params()
    rng = np.random.default_rng(1)
    x, lam, target = rng.standard_normal((4, 64)), np.array([-14.0, -3.0, 0.5, 9.0]), rng.standard_normal((4, 64))

    def loss():
        return np.mean((network.forward(params, x, lam) - target) ** 2)

    value, grads = train.loss_and_grads(params, x, lam, target)
    assert value == pytest.approx(loss(), rel=1e-12)
    h = 1e-6
    for key, p in params.items():
        assert grads[key].shape == p.shape
        for i in rng.choice(p.size, size=min(p.size, 12), replace=False):
            index = np.unravel_index(i, p.shape)
            old = p[index]
            p[index] = old + h
            up = loss()
            p[index] = old - h
            down = loss()
            p[index] = old
            assert grads[key][index] == pytest.approx((up - down) / (2 * h), rel=1e-5, abs=1e-9), key


def test_adam_first_step_is_lr_times_sign():
    params = {"w": np.array([1.0, -2.0, 3.0])}
    train.Adam(params).step(params, {"w": np.array([0.5, -4.0, 0.0])}, lr=0.1)
    np.testing.assert_allclose(params["w"], [0.9, -1.9, 3.0], rtol=1e-6)  # Kingma & Ba: |step| ~ lr


def test_log_snr_samples_cover_the_range():
    lam = train.sample_log_snr(np.random.default_rng(0), 20000)
    assert network.LOG_SNR_MIN <= lam.min() < -10 and 10 < lam.max() <= network.LOG_SNR_MAX
    assert abs(np.median(lam)) < 0.2  # the cosine schedule is symmetric about lambda = 0


def test_quick_training_lowers_the_loss_and_writes_weights(tmp_path, capsys):
    out = tmp_path / "digits.npz"
    assert train.main(["--quick", "--out", str(out)]) == 0
    losses = [float(v) for v in re.findall(r"loss (\d+\.\d+)  held", capsys.readouterr().out)]
    assert len(losses) >= 5
    assert losses[-1] < 0.75 * losses[0]
    denoiser = TrainedDenoiser.load(out, get_schedule("linear", 1000))
    assert denoiser.meta["steps"] == train.QUICK["steps"] and denoiser.image_shape == (8, 8)


def test_a_quick_run_never_replaces_the_sites_network(tmp_path, monkeypatch, capsys):
    shipped = train.DEFAULT_OUT.read_bytes()
    monkeypatch.setattr(train, "QUICK_OUT", tmp_path / "quick" / "digits.npz")
    assert train.main(["--quick", "--steps", "3"]) == 0
    assert train.DEFAULT_OUT.read_bytes() == shipped
    assert f"wrote {tmp_path / 'quick' / 'digits.npz'}" in capsys.readouterr().out


@pytest.mark.parametrize("options, words", [
    (["--steps", "0"], "--steps and --batch must be positive"),  # 0 is not "not given": not the 12000 steps
    (["--quick", "--batch", "0"], "--steps and --batch must be positive"),
    (["--batch", "1439"], "--batch must be at most 1438, the number of training images"),
    (["--lr", "0"], "--lr must be a positive number"),
    (["--lr", "nan"], "--lr must be a positive number"),
    (["--lr", "inf"], "--lr must be a positive number"),
    (["--dropout", "1"], "--dropout must be at least 0 and below 1"),
    (["--dropout", "-0.5"], "--dropout must be at least 0 and below 1"),
    (["--hidden", "0"], "--hidden must be between 1 and 2048"),
    (["--hidden", "100000"], "--hidden must be between 1 and 2048"),  # before, 75 GB asked of numpy: a traceback
    (["--blocks", "0"], "--blocks must be between 1 and 32"),
    (["--blocks", "33"], "--blocks must be between 1 and 32"),
    (["--shift", "nan"], "--shift must be between -30 and 30"),
    (["--shift", "31"], "--shift must be between -30 and 30"),
    (["--seed", "-1"], "--seed must be 0 or more"),
    (["--out", "weights.bin"], "the file name must end in .npz"),  # numpy would write weights.bin.npz
    (["--out", "folder.npz"], "is a folder"),
    (["--out", "notes.txt/d.npz"], "'notes.txt' is a file, not a folder"),
    (["--out", "/proc/nope/d.npz"], "cannot write in '/proc/nope'"),
])
def test_train_refuses_impossible_options_in_one_line_before_training(tmp_path, monkeypatch, capsys, options, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "notes.txt").write_text("")
    monkeypatch.setattr(train, "train", lambda **config: pytest.fail(f"trained with {config}"))
    with pytest.raises(SystemExit) as stop:
        train.main(["--out", str(tmp_path / "d.npz"), *options])  # a later --out wins
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse's usage, then one line
    assert last.startswith("python3 -m diffusion_lab.train: error: ") and words in last
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder.npz", "notes.txt"]  # nothing written


def test_training_that_diverges_writes_nothing_and_says_so(tmp_path, capsys):
    out = tmp_path / "digits.npz"
    out.write_bytes(b"the previous weights")
    train.training_set_path(out).write_bytes(b"the previous digits")
    with np.errstate(all="ignore"):  # the overflow is the point
        assert train.main(["--quick", "--steps", "3", "--lr", "1e30", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training diverged (final loss nan, held-out nan): nothing written to ")
    assert err.count("\n") == 1
    assert out.read_bytes() == b"the previous weights"
    assert train.training_set_path(out).read_bytes() == b"the previous digits"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["digits-train.npz", "digits.npz"]


def not_interrupted(main, argv):
    """main(argv); a KeyboardInterrupt that escapes it fails the test (it would stop the whole run)."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main: the user gets a traceback")


def test_ctrl_c_in_train_and_evaluate_says_interrupted_in_one_line(tmp_path, monkeypatch, capsys):
    from diffusion_lab import evaluate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "digits.npz"
    out.write_bytes(b"the previous weights")
    monkeypatch.setattr(train, "train", interrupted)
    assert not_interrupted(train.main, ["--quick", "--out", str(out)]) == 130
    assert capsys.readouterr().err == "interrupted\n" and out.read_bytes() == b"the previous weights"
    monkeypatch.setattr(evaluate, "Judge", interrupted)
    assert not_interrupted(evaluate.main, ["--samples", "10", "--no-ddpm"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_evaluate_lowers_its_ddim_steps_to_a_smaller_t_when_not_given(monkeypatch, capsys):
    """As the page does; before, the default 50 the user never typed refused --T 20."""
    from diffusion_lab import evaluate

    class Started(Exception):
        pass

    def first_row(denoiser, n, schedule, rng, **options):
        raise Started(options)

    monkeypatch.setattr(evaluate, "Judge", lambda: types.SimpleNamespace(score=lambda samples: {}))
    monkeypatch.setattr(evaluate, "generate", first_row)
    with pytest.raises(Started) as started:
        evaluate.main(["--T", "20", "--no-ddpm"])
    assert started.value.args[0] == {"sampler": "ddim", "steps": 20}


@pytest.mark.parametrize("program, option", [("diffusion_lab.train", "--quick"), ("diffusion_lab.evaluate", "--no-ddpm")])
def test_without_scikit_learn_train_and_evaluate_say_in_one_line_what_to_install(program, option):
    """A student who installed requirements.txt only (the classroom programs' and the pages' packages)."""
    hidden = (f"import runpy, sys; sys.modules['sklearn'] = None; sys.argv = [{program!r}, {option!r}]; "
              f"runpy.run_module({program!r}, run_name='__main__', alter_sys=True)")  # as if it were not installed
    result = subprocess.run([sys.executable, "-c", hidden], cwd=ROOT / "py", capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr == ("error: scikit-learn is not installed (training and evaluating the network need it); "
                             "run: pip install -r ../requirements-dev.txt\n")


def test_a_network_too_big_for_the_memory_is_said_in_one_line(tmp_path, monkeypatch, capsys):
    def out_of_memory(**config):
        raise MemoryError

    monkeypatch.setattr(train, "train", out_of_memory)
    assert train.main(["--quick", "--hidden", "2048", "--blocks", "32", "--out", str(tmp_path / "d.npz")]) == 1
    assert capsys.readouterr().err == ("error: not enough memory to train --hidden 2048 --blocks 32: nothing "
                                       "written; try a smaller network\n")


def test_when_the_training_digits_cannot_be_written_the_message_says_the_weights_were(tmp_path, capsys):
    out = tmp_path / "digits.npz"
    train.training_set_path(out).mkdir()  # a folder where the digits go
    assert train.main(["--quick", "--steps", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: could not write {train.training_set_path(out)}: ")
    assert err.endswith(f" ({out} was written: its training digits are missing)\n") and out.exists()


def test_train_help_gives_every_hyper_parameters_default(capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines where it likes
    for option, default in (("--lr", "0.002"), ("--hidden", "256"), ("--blocks", "3"), ("--dropout", "0.1"),
                            ("--shift", "0.0"), ("--steps", "12000"), ("--batch", "256")):
        assert re.search(f"{option} [A-Z]+ [^()]*\\(default {default}[,)]", text), option


@pytest.mark.parametrize("options, words", [
    (["--samples", "1"], "--samples must be at least 2"),
    (["--samples", "-3"], "--samples must be at least 2"),
    (["--T", "1"], "--T must be between 2 and 1000"),
    (["--T", "1001"], "--T must be between 2 and 1000"),
    (["--ddim-steps", "0"], "--ddim-steps 0 must be between 1 and --T (1000)"),
    (["--T", "20", "--ddim-steps", "21"], "--ddim-steps 21 must be between 1 and --T (20)"),
    (["--seed", "-1"], "--seed must be 0 or more"),
    (["--weights", "missing.npz"], "--weights 'missing.npz': no such file"),
    (["--weights", "folder.npz"], "--weights 'folder.npz' is a folder"),
    (["--weights", "notes.txt"], "--weights 'notes.txt' is not a Diffusion Lab weights file"),  # not "pickled data"
    (["--weights", "other.npz"], "--weights 'other.npz' is not a Diffusion Lab weights file"),
    (["--weights", "empty.npz"], "--weights 'empty.npz' is not a Diffusion Lab weights file"),
    (["--weights", "no-output.npz"], "--weights 'no-output.npz': the layer out.w is missing"),
    (["--weights", "cut.npz"], "--weights 'cut.npz': the layer block1.w1 has shape (10, 256), where the network "
                               "needs (256, 256) for 8x8 images"),
    (["--weights", "diverged.npz"], "--weights 'diverged.npz': some weights are not finite numbers"),
])
def test_evaluate_refuses_bad_options_in_one_line_before_any_work(tmp_path, monkeypatch, capsys, options, words):
    from diffusion_lab import evaluate

    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "notes.txt").write_text("# not weights\n")
    np.savez(tmp_path / "other.npz", w=np.zeros(3))
    (tmp_path / "empty.npz").write_bytes(b"")
    params, meta = network.load_weights(WEIGHTS)  # damaged copies, which still unzip
    network.save(tmp_path / "no-output.npz", {key: value for key, value in params.items() if key != "out.w"}, meta)
    network.save(tmp_path / "cut.npz", dict(params, **{"block1.w1": params["block1.w1"][:10]}), meta)
    network.save(tmp_path / "diverged.npz", dict(params, **{"in.w": params["in.w"] * np.nan}), meta)
    monkeypatch.setattr(evaluate, "Judge", lambda: pytest.fail("started the evaluation"))
    with pytest.raises(SystemExit) as stop:
        evaluate.main(["--no-ddpm", *options])
    assert stop.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse's usage, then one line
    assert last.startswith("python3 -m diffusion_lab.evaluate: error: ") and words in last


def test_training_is_reproducible():
    config = dict(train.DEFAULTS, steps=15, batch=32, hidden=32, embed=16)
    a, meta_a, _ = train.train(seed=3, log=lambda s: None, **config)
    b, meta_b, _ = train.train(seed=3, log=lambda s: None, **config)
    c, _, _ = train.train(seed=4, log=lambda s: None, **config)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert meta_a["final_loss"] == meta_b["final_loss"]
    assert not np.array_equal(a["in.w"], c["in.w"])


def test_data_split_is_fixed_and_disjoint():
    train_x, train_y, held_x, held_y = train.load_digits_split()
    assert train_x.shape == (1438, 8, 8) and held_x.shape == (359, 8, 8)
    assert train_x.min() == -1.0 and train_x.max() == 1.0
    assert set(np.unique(held_y)) == set(range(10))
    again = train.load_digits_split()
    np.testing.assert_array_equal(again[2], held_x)


def test_the_shipped_training_digits_are_the_split_and_say_how_far_unseen_digits_lie(tmp_path):
    # The reverse page calls a sample a copy below the 5th percentile, not much like a digit beyond the 95th.
    from diffusion_lab import images

    shipped_x, numbers = images.load_image_set(ROOT / "site/models/digits-train.npz")
    train.save_training_set(tmp_path / "again.npz")
    again_x, again = images.load_image_set(tmp_path / "again.npz")
    np.testing.assert_array_equal(shipped_x, again_x)
    assert numbers == pytest.approx(again)
    assert set(numbers) == {"held_out_nn_p5", "held_out_nn_median", "held_out_nn_p95"}
    assert 0 < numbers["held_out_nn_p5"] < numbers["held_out_nn_median"] < numbers["held_out_nn_p95"] < 1


@pytest.fixture(scope="module")
def shipped():
    return TrainedDenoiser.load(WEIGHTS, get_schedule("linear", 1000))


def test_shipped_weights_load_from_bytes(shipped):
    data = WEIGHTS.read_bytes()
    assert len(data) < 4_000_000
    from_bytes = TrainedDenoiser.load(data, get_schedule("linear", 1000))
    x = np.random.default_rng(0).standard_normal((8, 8))
    np.testing.assert_array_equal(from_bytes.predict_noise(x, 500), shipped.predict_noise(x, 500))
    assert shipped.meta["conditioning"] == "log_snr" and shipped.meta["prediction"] == "v"
    assert all(p.dtype == np.float64 for p in shipped.params.values())


def test_batch_matches_single(shipped):
    rng = np.random.default_rng(1)
    batch = rng.standard_normal((5, 8, 8))
    for t in (0, 300, 999):
        eps = shipped.predict_noise(batch, t)
        x0 = shipped.predict_x0(batch, t)
        assert eps.shape == x0.shape == (5, 8, 8)
        for i in range(5):
            np.testing.assert_allclose(eps[i], shipped.predict_noise(batch[i], t), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(x0[i], shipped.predict_x0(batch[i], t), rtol=1e-12, atol=1e-12)


def test_x0_and_eps_agree_with_eq_4(shipped):
    s = shipped.schedule
    x = np.random.default_rng(2).standard_normal((3, 8, 8))
    for t in (0, 500, 999):
        eps, x0 = shipped.predict_noise(x, t), shipped.predict_x0(x, t)
        np.testing.assert_allclose(s.sqrt_alpha_bars[t] * x0 + s.sqrt_one_minus_alpha_bars[t] * eps, x, atol=1e-10)


def test_any_schedule_maps_t_by_log_snr(shipped):
    """Two schedules reaching the same alpha_bar at different t give the same prediction."""
    linear = get_schedule("linear", 1000)
    betas = np.concatenate([[1.0 - linear.alpha_bars[400]], linear.betas[401:]])
    short = from_betas(betas)  # short.alpha_bars[k] == linear.alpha_bars[400 + k]
    other = TrainedDenoiser(shipped.params, shipped.meta, short)
    x = np.random.default_rng(3).standard_normal((8, 8))
    np.testing.assert_allclose(other.predict_noise(x, 0), shipped.predict_noise(x, 400), rtol=1e-9, atol=1e-9)


def test_denoises_held_out_digits(shipped):
    """At moderate noise the network's x0 is much closer to a held-out digit than x_t is."""
    _, _, held_x, _ = train.load_digits_split()
    s = shipped.schedule
    rng = np.random.default_rng(4)
    x0 = held_x[:50]
    for t in (100, 300):
        x_t = q_sample(x0, t, rng.standard_normal(x0.shape), s)
        naive = np.mean((x_t / s.sqrt_alpha_bars[t] - x0) ** 2)
        assert np.mean((shipped.predict_x0(x_t, t) - x0) ** 2) < 0.3 * naive


def test_bad_inputs(shipped, tmp_path):
    with pytest.raises(ValueError, match="shape"):
        shipped.predict_noise(np.zeros((16, 16)), 10)
    with pytest.raises(ValueError, match="shape"):
        shipped.predict_noise(np.zeros((2, 2, 8, 8)), 10)
    np.savez(tmp_path / "other.npz", w=np.zeros(3))
    with pytest.raises(ValueError, match="meta"):
        TrainedDenoiser.load(tmp_path / "other.npz", shipped.schedule)
    with pytest.raises(ValueError, match="path or the bytes"):
        TrainedDenoiser.load(42, shipped.schedule)
    params, meta = network.load_weights(WEIGHTS)
    stray = dict(params, **{"block99999999.w1": params["block0.w1"]})  # not a list of 10^8 blocks' layers
    with pytest.raises(network.WeightsError, match="the layer block3.w1 is missing"):
        network.check_weights(stray, meta)


def test_network_module_needs_only_numpy():
    """network.py is loaded by the browser: only numpy, the standard library and the core."""
    tree = ast.parse((ROOT / "py" / "diffusion_lab" / "network.py").read_text())
    modules = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert modules <= {"__future__", "io", "json", "math", "os", "re", "sys", "numpy"}


def test_a_chain_too_short_to_settle_is_a_blur_and_a_full_one_is_crisp(shipped):
    """What the reverse view's "Not a digit yet, a blur" verdict rests on (images.crisp_shares): fewer pixels
    near black or white than in 99% of the training digits. Two steps leave the network's grey average; 50 DDIM
    steps of T = 1000 make strokes."""
    from diffusion_lab.images import crisp_shares, load_image_set

    training, _ = load_image_set(ROOT / "site" / "models" / "digits-train.npz")
    floor = np.percentile(crisp_shares(training), 1)
    short = TrainedDenoiser(shipped.params, shipped.meta, get_schedule("linear", 2))
    blurs = generate(short, 12, short.schedule, np.random.default_rng(0))
    digits = generate(shipped, 12, shipped.schedule, np.random.default_rng(0), sampler="ddim", steps=50)
    assert (crisp_shares(blurs) < floor).sum() >= 9
    assert (crisp_shares(digits) >= floor).all()


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((4, 4))
    s = a @ a.T + np.eye(4)
    np.testing.assert_allclose(sqrtm_psd(s) @ sqrtm_psd(s), s, atol=1e-10)
    f = rng.standard_normal((4000, 3))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-8)
    # N(0, I) against N(m, 4 I) in 3-d: |m|^2 + 3 (1 + 4 - 2 * 2) = |m|^2 + 3
    g = 2.0 * rng.standard_normal((40000, 3)) + np.array([1.0, 0.0, 0.0])
    big = rng.standard_normal((40000, 3))
    assert frechet_distance(big, g) == pytest.approx(4.0, rel=0.05)


@pytest.fixture(scope="module")
def judge():
    return Judge()


@pytest.mark.parametrize("schedule, T, sampler, steps, n", [("linear", 1000, "ddim", 50, 300), ("cosine", 100, "ddpm", None, 200)])
def test_shipped_weights_make_new_digits(shipped, judge, schedule, T, sampler, steps, n):
    """Quality floor: confidently classified like real digits, every class, not copies of the training set."""
    s = get_schedule(schedule, T)
    denoiser = TrainedDenoiser(shipped.params, shipped.meta, s)
    images = generate(denoiser, n, s, np.random.default_rng(7), sampler=sampler, steps=steps)
    r = judge.score(images)
    held = judge.score(judge.held_x, held_out=True)
    assert r["confident"] > 0.7 and r["confident"] > held["confident"] - 0.15, r
    assert r["classes"] == 10 and r["class_min"] > 0.03, r
    assert r["copies"] < 0.15 and r["nn_median"] > 0.8 * held["nn_median"], r
    assert r["fd"] < 8.0, r
