"""The same core inside Pyodide in Chromium: its unit tests pass there, and a seed gives CPython's arrays.

Pyodide is loaded from the built site (/pyodide/), the core and its tests are
written into Pyodide's file system, and pytest and hypothesis are unpacked
from pure-Python wheels that `pip download` fetches here.
"""
from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
LAB = "/home/pyodide/lab"  # the repository's layout inside Pyodide: py/, tests/conftest.py, tests/core/

# Pure wheels for Pyodide's Python 3.12 (pytest and hypothesis as requirements-dev.txt pins them, plus
# their dependencies; `packaging` comes from Pyodide's own lock).
PURE_WHEELS = ("pytest==9.0.3", "pluggy==1.6.0", "iniconfig==2.3.0", "pygments==2.20.0",
               "hypothesis==6.155.2", "sortedcontainers==2.4.0")
PYODIDE_PYTHON = "3.12"

# The same function runs in Pyodide and in CPython. Every key starts with how closely the two must agree:
#   exact/  elementwise +, -, *, /, sqrt, floor, sequential cumsum/cumprod and the Generator streams:
#           IEEE 754 rounds these exactly, so they must be bit-identical;
#   libm/   through cos, sin, hypot, exp or log, which neither glibc (or numpy's x86 SIMD loops) nor
#           Emscripten's musl rounds correctly: a last-bit difference may appear (and does, in cos);
#   sum/    matmul, reductions and chains built on libm values, whose rounding order may differ.
# The last two must agree to rtol = atol = 1e-12.
PARITY_SOURCE = '''
import base64, json

import numpy as np
from diffusion_lab import denoisers, forward, images, samplers, schedules

EXACT_SCHEDULES = ("linear", "scaled_linear")  # sigmoid uses exp, cosine uses cos
EXACT_IMAGES = ("gradient", "checkerboard", "stripes")  # the others use hypot, sin, cos or exp

def compute():
    out = {}
    for name in schedules.SCHEDULE_NAMES:
        for T in (1000, 37):
            s = schedules.get_schedule(name, T)
            for field in ("betas", "alphas", "alpha_bars", "alpha_bars_prev", "snr", "log_snr",
                          "sqrt_alpha_bars", "sqrt_one_minus_alpha_bars", "beta_tildes",
                          "posterior_coef_x0", "posterior_coef_xt"):
                kind = "exact" if name in EXACT_SCHEDULES and field != "log_snr" else "libm"
                out[f"{kind}/schedule/{name}/{T}/{field}"] = getattr(s, field)
    for spacing in samplers.SPACINGS:
        out[f"exact/timesteps/{spacing}"] = samplers.timesteps(1000, 37, spacing)
    gradient = images.make_image("gradient", 64)
    for name in ("linear", "cosine"):
        kind = "exact" if name in EXACT_SCHEDULES else "libm"
        s = schedules.get_schedule(name, 50)
        out[f"{kind}/trajectory/{name}"] = np.stack(list(forward.trajectory(gradient, s, np.random.default_rng(7))))
        s = schedules.get_schedule(name, 1000)
        noise = np.random.default_rng(7).standard_normal(gradient.shape)
        for t in (0, 1, 10, 100, 499, 998, 999):
            out[f"{kind}/q_sample/{name}/{t}"] = forward.q_sample(gradient, t, noise, s)
    for name in images.IMAGE_NAMES:
        for size in (16, 64, 77):
            kind = "exact" if name in EXACT_IMAGES else "libm"
            out[f"{kind}/image/{name}/{size}"] = images.make_image(name, size)
    pixels = np.random.default_rng(11).integers(0, 256, (97, 131, 4), dtype=np.uint8)
    out["exact/pixels"] = pixels
    for size in (16, 48, 200):
        out[f"exact/from_pixels/rgba/{size}"] = images.from_pixels(pixels, size)
        out[f"exact/from_pixels/rgb/{size}"] = images.from_pixels(pixels[..., :3], size)
        out[f"exact/from_pixels/gray/{size}"] = images.from_pixels(pixels[..., 0], size)
    out["exact/to_rgba"] = images.to_rgba(images.make_image("gradient", 32))
    out["libm/training_set"] = images.training_set(16, 12, seed=3)

    x0 = images.make_image("disc", 16)
    s = schedules.get_schedule("cosine", 40)
    for variance in samplers.VARIANCES:
        rng = np.random.default_rng(7)
        steps = list(samplers.sample(rng.standard_normal(x0.shape), denoisers.Oracle(x0, s), s, rng,
                                     sampler="ddpm", variance=variance))
        out[f"sum/ddpm_oracle/{variance}/x"] = np.stack([x for _, x, _ in steps])
        out[f"sum/ddpm_oracle/{variance}/x0"] = np.stack([p for _, _, p in steps])
    train = images.training_set(32, 8, seed=0)
    s = schedules.get_schedule("linear", 1000)
    ideal = denoisers.IdealDenoiser(train, s)
    for eta in (0.0, 0.5):
        rng = np.random.default_rng(7)
        steps = list(samplers.sample(rng.standard_normal(train.shape[1:]), ideal, s, rng,
                                     sampler="ddim", steps=8, eta=eta))
        out[f"exact/ddim_ideal/{eta}/t"] = np.array([t for t, _, _ in steps], dtype=np.int64)
        out[f"sum/ddim_ideal/{eta}/x"] = np.stack([x for _, x, _ in steps])
        out[f"sum/ddim_ideal/{eta}/x0"] = np.stack([p for _, _, p in steps])
    x_t = forward.q_sample(train[2], 300, np.random.default_rng(1).standard_normal(train.shape[1:]), s)
    out["sum/ideal/weights"] = ideal.weights(x_t, 300)
    return out

def encode(arrays):
    return json.dumps({key: [str(a.dtype), list(a.shape), base64.b64encode(np.ascontiguousarray(a).tobytes()).decode()]
                       for key, a in arrays.items()})
'''

LOAD_PYODIDE = """async ({indexURL, packages, wheels, files}) => {
    const py = await loadPyodide({indexURL});
    await py.loadPackage(packages);
    const sitePackages = py.runPython("import site; site.getsitepackages()[0]");
    for (const b64 of wheels) {
        py.unpackArchive(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), "wheel", {extractDir: sitePackages});
    }
    for (const [path, b64] of Object.entries(files)) {
        py.FS.mkdirTree(path.slice(0, path.lastIndexOf("/")));
        py.FS.writeFile(path, Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    }
    window.pyodide = py;
    return py.runPython("import sys; sys.version");
}"""

RUN_PYTHON = "(code) => window.pyodide.runPythonAsync(code)"
PYTEST_BUDGET_S = 240  # the core's tests take 15 to 45 s in Pyodide here; fail rather than hang

# What the core's tests cannot do in the site's Pyodide, and why:
PYODIDE_EXCLUDE = [
    # starts the CLI programs with subprocess; WebAssembly has no processes
    "--ignore=tests/core/test_programs.py",
    # build.py writes the site on the machine that builds it, not in a browser
    "--ignore=tests/core/test_build.py",
    # train.py and evaluate.py are CPython only: they need scikit-learn's digits, which the site's
    # Pyodide does not ship (the page only runs network.py, whose tests do run here)
    *(f"--deselect=tests/core/test_network.py::{name}" for name in (
        "test_quick_training_lowers_the_loss_and_writes_weights", "test_a_quick_run_never_replaces_the_sites_network",
        "test_training_is_reproducible",
        "test_data_split_is_fixed_and_disjoint", "test_denoises_held_out_digits",
        "test_the_shipped_training_digits_are_the_split_and_say_how_far_unseen_digits_lie",
        "test_shipped_weights_make_new_digits", "test_train_refuses_impossible_options_in_one_line_before_training",
        "test_training_that_diverges_writes_nothing_and_says_so",
        "test_ctrl_c_in_train_and_evaluate_says_interrupted_in_one_line",
        "test_a_network_too_big_for_the_memory_is_said_in_one_line",
        "test_when_the_training_digits_cannot_be_written_the_message_says_the_weights_were")),
    # and starts them with subprocess
    "--deselect=tests/core/test_network.py::test_without_scikit_learn_train_and_evaluate_say_in_one_line_what_to_install",
]


def core_files(*, with_tests: bool) -> dict[str, str]:
    """Path in Pyodide's file system -> bytes as base64, mirroring the repository under LAB.

    The core package (with any data files), and for the tests tests/conftest.py, tests/core/ and
    the model weights under site/models/ that they read.
    """
    paths = [p for p in sorted((ROOT / "py" / "diffusion_lab").iterdir()) if p.is_file() and p.suffix != ".pyc"]
    if with_tests:
        paths += [ROOT / "tests" / "conftest.py", *sorted((ROOT / "tests" / "core").glob("*.py")),
                  *sorted((ROOT / "site" / "models").glob("*.npz"))]
    return {f"{LAB}/{path.relative_to(ROOT).as_posix()}": base64.b64encode(path.read_bytes()).decode()
            for path in paths}


def pure_wheels(directory: Path) -> list[str]:
    """Download PURE_WHEELS for Pyodide's Python; their bytes, base64."""
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                    "--only-binary=:all:", "--no-deps", "--python-version", PYODIDE_PYTHON,
                    "--implementation", "py", "--platform", "any", "-d", str(directory), *PURE_WHEELS],
                   check=True, timeout=300)
    wheels = sorted(directory.glob("*.whl"))
    assert len(wheels) == len(PURE_WHEELS) and all(w.name.endswith("-none-any.whl") for w in wheels), wheels
    return [base64.b64encode(w.read_bytes()).decode() for w in wheels]


def start_pyodide(watched, base_url, *, packages, wheels=(), files):
    page = watched.open(f"{base_url}/index.html")
    page.add_script_tag(url=f"{base_url}/pyodide/pyodide.js")
    version = page.evaluate(LOAD_PYODIDE, {"indexURL": f"{base_url}/pyodide/", "packages": list(packages),
                                           "wheels": list(wheels), "files": files})
    assert version.startswith(PYODIDE_PYTHON + "."), version
    return page


def test_pinned_wheels_match_requirements_dev():
    """Pyodide runs the tests with the pytest and hypothesis that CPython uses."""
    pins = set(re.findall(r"^(pytest|hypothesis)==(\S+)", (ROOT / "requirements-dev.txt").read_text(), re.M))
    assert pins and pins <= {tuple(pin.split("==")) for pin in PURE_WHEELS}


def test_core_unit_tests_pass_in_pyodide(watched, base_url, tmp_path):
    page = start_pyodide(watched, base_url, packages=["numpy", "matplotlib", "pillow", "packaging"],
                         wheels=pure_wheels(tmp_path), files=core_files(with_tests=True))
    started = time.monotonic()
    args = ["-q", "-p", "no:cacheprovider", "--capture=sys", "-o", "console_output_style=classic",
            *PYODIDE_EXCLUDE, "tests/core"]
    page.evaluate("""(code) => { window.pytestResult = null;
        window.pyodide.runPythonAsync(code).then((r) => { window.pytestResult = r; },
                                                 (e) => { window.pytestResult = JSON.stringify([-1, String(e)]); }); }""",
                  f"""
import contextlib, io, json, os, pytest
os.chdir({LAB!r})
buffer = io.StringIO()
with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
    code = pytest.main({args!r})
json.dumps([int(code), buffer.getvalue()])
""")
    page.wait_for_function("window.pytestResult !== null", timeout=PYTEST_BUDGET_S * 1000)
    code, output = json.loads(page.evaluate("window.pytestResult"))
    summary = output.strip().splitlines()[-1]
    print(f"\nPyodide pytest ({time.monotonic() - started:.0f} s wall): {summary}")
    assert code == 0, output[-5000:]
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)", summary)}
    assert counts.get("passed", 0) > 150 and set(counts) == {"passed"}, output[-5000:]


def decode(payload: str) -> dict[str, np.ndarray]:
    return {key: np.frombuffer(base64.b64decode(data), dtype=dtype).reshape(shape)
            for key, (dtype, shape, data) in json.loads(payload).items()}


def test_same_seed_same_arrays_in_pyodide_and_cpython(watched, base_url):
    page = start_pyodide(watched, base_url, packages=["numpy"], files=core_files(with_tests=False))
    browser = decode(page.evaluate(RUN_PYTHON, f"import sys; sys.path.insert(0, {LAB + '/py'!r})\n"
                                   f"{PARITY_SOURCE}\nencode(compute())"))
    namespace: dict = {}
    exec(PARITY_SOURCE, namespace)  # noqa: S102  (our own source, run in CPython as in Pyodide)
    here = decode(namespace["encode"](namespace["compute"]()))

    assert browser.keys() == here.keys()
    differ, worst = [], {"libm": (0.0, ""), "sum": (0.0, "")}
    for key, expected in here.items():
        got, kind = browser[key], key.split("/")[0]
        assert (got.dtype, got.shape) == (expected.dtype, expected.shape), key
        if kind == "exact":
            if not np.array_equal(got, expected):
                differ.append(key)
            continue
        assert np.allclose(got, expected, rtol=1e-12, atol=1e-12), key
        worst[kind] = max(worst[kind], (float(np.max(np.abs(got - expected), initial=0.0)), key))
    kinds = [key.split("/")[0] for key in here]
    identical = sum(np.array_equal(browser[key], here[key]) for key in here if not key.startswith("exact/"))
    print(f"\n{len(here)} arrays: {kinds.count('exact')} elementwise, bit-identical: {not differ}; "
          f"{kinds.count('libm') + kinds.count('sum')} through libm or sums ({identical} bit-identical anyway), "
          + "; ".join(f"{kind} max abs diff {diff:.1e} ({key})" for kind, (diff, key) in worst.items()))
    assert differ == [], f"not bit-identical: {differ}"


BYTECODE_CHECK = """
import asyncio, importlib.util, io, json, sys, zipfile
import numpy, numpy.random
from pyodide.http import pyfetch

archive = zipfile.ZipFile(io.BytesIO(await (await pyfetch("python.zip")).bytes()))
sources = [name for name in archive.namelist() if name.endswith(".py")]
stale = []
for name in sources:
    folder, _, stem = name.rpartition("/")
    pyc = archive.read(f"{folder}/__pycache__/{stem[:-3]}.{sys.implementation.cache_tag}.pyc")
    header = importlib.util.MAGIC_NUMBER + (1).to_bytes(4, "little") + importlib.util.source_hash(archive.read(name))
    if pyc[:16] != header:
        stale.append(name)
json.dumps({"modules": [numpy.__file__, numpy.random.__file__, asyncio.__file__, json.__file__],
            "sources": len(sources), "stale": stale})
"""


def test_the_site_ships_bytecode_that_its_pyodide_imports(watched, base_url):
    """build.py compiles the stdlib and the wheels with this very Pyodide, so pages import no source.

    Pyodide accepts the compiled wheels (it checks each against the lock's sha256) and imports their
    bytecode; the site's own python.zip keeps its source, with bytecode of exactly that source beside it.
    """
    page = start_pyodide(watched, base_url, packages=["numpy"], files={})
    found = json.loads(page.evaluate(RUN_PYTHON, BYTECODE_CHECK))
    assert all(path.endswith(".pyc") for path in found["modules"]), found["modules"]
    assert found["sources"] > 10 and found["stale"] == [], found


def test_the_wheels_leave_out_what_only_builds_against_them_need(site):
    """Type stubs, C headers and sources and static libraries (8% of numpy's wheel) serve only builds
    against a package, which no page makes: build.py leaves them out and keeps each RECORD exact."""
    for wheel in sorted((site / "pyodide").glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            record = next(name for name in names if name.endswith(".dist-info/RECORD"))
            listed = {row.split(",")[0] for row in archive.read(record).decode().splitlines() if row}
        assert [name for name in names if name.endswith((".pyi", ".h", ".a", ".pxd", ".pyx", ".c"))] == [], wheel
        assert listed == names, wheel


# Run in a page once it is ready, as a second <script type="py">: PyScript runs it in the page's interpreter.
PYSCRIPT_BYTECODE_CHECK = """
import importlib.util, io, json, sys, zipfile
from pathlib import Path
import js
from pyodide.http import pyfetch

archive = zipfile.ZipFile(io.BytesIO(await (await pyfetch("python.zip")).bytes()))
found = {}
for name, module in sorted(sys.modules.items()):
    spec = getattr(module, "__spec__", None)
    if name.partition(".")[0] == "pyscript" and spec is not None and spec.cached is not None:
        cached = Path(spec.cached)
        shipped = archive.read(cached.relative_to(Path.cwd()).as_posix())
        found[name] = {"shipped": cached.read_bytes() == shipped, "flags": int.from_bytes(shipped[4:8], "little"),
                       "matches": shipped[8:16] == importlib.util.source_hash(Path(module.__file__).read_bytes())}
js.document.body.dataset.check = json.dumps(found)
"""
RUN_PY_SCRIPT = """(code) => {
    const script = document.createElement("script");
    script.type = "py";
    script.textContent = code;
    document.body.append(script);
}"""


def test_pyscripts_own_python_runs_from_the_sites_bytecode(watched, base_url):
    """PyScript writes its Python package into ./pyscript/ as a page starts; python.zip brings its bytecode.

    The bytecode is checked against what PyScript wrote (hash-based, flags 3), so a PyScript whose Python
    differs would only compile it again: here every pyscript module the page imported ran from the
    shipped bytecode, which Python left as it came (it rewrites a pyc whose hash does not match).
    """
    page = watched.open(f"{base_url}/forward.html")
    page.evaluate(RUN_PY_SCRIPT, PYSCRIPT_BYTECODE_CHECK)
    page.wait_for_selector("body[data-check]", state="attached", timeout=30_000)
    found = json.loads(page.evaluate("document.body.dataset.check"))
    assert {"pyscript", "pyscript.magic_js", "pyscript.display", "pyscript.events"} <= set(found), found
    assert all(entry == {"shipped": True, "flags": 3, "matches": True} for entry in found.values()), found
