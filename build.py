#!/usr/bin/env python3
"""Build Diffusion Lab into dist/, a self-contained static site.

    python build.py                         # write dist/
    python build.py --serve                 # build, then serve dist/ on 127.0.0.1
    python build.py --pyodide-mirror DIR    # take the wheels from DIR, not the CDN

dist/ holds the pages, the Python package, PyScript, the Pyodide runtime and
exactly the wheels the pages load (numpy, matplotlib and their dependencies),
with a pyodide-lock.json trimmed to those. Nothing is fetched from another
server at run time. It also holds the offline edition,
dist/diffusion-lab-offline.html: every view, the Python files and that same
runtime in one file that runs when opened from disk (see build_offline).
For speed, Python arrives compiled: the stdlib and the wheels as bytecode,
made by the pages' own Pyodide running under Node (see "Bytecode" below); each
page preloads what its first frame needs, the Python files travel as one zip,
and sw.js keeps the site in the browser for the next visit (see "Fast loading").

JavaScript dependencies (PyScript, the Pyodide runtime) come from
node_modules (`npm ci`). Wheels come from the official Pyodide CDN, or from a
local folder holding the same files (`--pyodide-mirror` or $PYODIDE_MIRROR),
and are cached in .cache/; each is checked against the sha256 that the
official pyodide-lock.json gives for it; the lock the site ships gives the
sha256 of the compiled wheel, which Pyodide checks.
"""
from __future__ import annotations

import argparse
import base64
import functools
import gzip
import hashlib
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "py"))

from diffusion_lab import controls  # noqa: E402  (stdlib only, no numpy)

PYODIDE_VERSION = "0.27.7"
PYODIDE_PYTHON = "3.12"  # the Python of that Pyodide
PYODIDE_CDN = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/"
PYODIDE_NPM = ROOT / "node_modules" / "pyodide"
PYSCRIPT_NPM = ROOT / "node_modules" / "@pyscript" / "core" / "dist"
RUNTIME_FILES = ("pyodide.mjs", "pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip")
PAGE_PACKAGES = ("numpy", "matplotlib")  # what the pages load; dependencies follow from the lock
CACHE = ROOT / ".cache" / f"pyodide-{PYODIDE_VERSION}"
MIME_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
              ".whl": "application/zip", ".zip": "application/zip", ".json": "application/json",
              ".py": "text/plain; charset=utf-8", ".svg": "image/svg+xml"}


# GitHub Pages sets no headers, so the policy is a <meta> tag in every page.
# 'unsafe-eval': PyScript 0.6 composes its plugin hooks with Function() and does
# not start without it (Pyodide itself needs only 'wasm-unsafe-eval'; the offline
# edition, which boots Pyodide directly, goes without). It allows no inline
# script and no other origin.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "connect-src 'self' data: blob:",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'none'",
))


class BuildError(Exception):
    """A problem the person running the build must fix; the message says what."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package_closure(lock: dict, roots: tuple[str, ...]) -> list[str]:
    """The packages in `roots` and everything they depend on, per the lock file."""
    packages, todo, seen = lock["packages"], list(roots), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in packages:
            raise BuildError(f"pyodide-lock.json has no package named {name!r}")
        seen.add(name)
        todo.extend(packages[name]["depends"])
    return sorted(seen)


def fetch_wheel(file_name: str, expected_sha: str, mirror: Path | None) -> Path:
    """Return a verified local copy of one wheel, from the cache, the mirror or the CDN."""
    cached = CACHE / file_name
    if cached.exists() and sha256(cached) == expected_sha:
        return cached
    CACHE.mkdir(parents=True, exist_ok=True)
    if mirror is not None:
        source = mirror / file_name
        if not source.exists():
            raise BuildError(f"{file_name} is missing from the Pyodide mirror {mirror}")
        shutil.copyfile(source, cached)
    else:
        url = PYODIDE_CDN + file_name
        print(f"  downloading {url}")
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                cached.write_bytes(response.read())
        except OSError as error:
            raise BuildError(f"could not download {file_name} from {url}: {error}. "
                             "Without network, pass --pyodide-mirror DIR (or set PYODIDE_MIRROR).") from error
    actual = sha256(cached)
    if actual != expected_sha:
        cached.unlink()
        raise BuildError(f"{file_name}: sha256 {actual} does not match {expected_sha} "
                         "from the official pyodide-lock.json")
    return cached


def copy_pyodide(out: Path, mirror: Path | None) -> list[str]:
    """Runtime files from npm, wheels verified against the official lock, a trimmed lock."""
    if not PYODIDE_NPM.exists() or not PYSCRIPT_NPM.exists():
        raise BuildError("node_modules is missing: run `npm ci` first")
    npm_version = json.loads((PYODIDE_NPM / "package.json").read_text())["version"]
    if npm_version != PYODIDE_VERSION:
        raise BuildError(f"node_modules has pyodide {npm_version}, this build pins {PYODIDE_VERSION}: run `npm ci`")
    target = out / "pyodide"
    target.mkdir(parents=True)
    for name in RUNTIME_FILES:
        shutil.copyfile(PYODIDE_NPM / name, target / name)
    drop_source_map_comments(target / name for name in RUNTIME_FILES if name.endswith((".js", ".mjs")))
    lock = json.loads((PYODIDE_NPM / "pyodide-lock.json").read_text())
    names = package_closure(lock, PAGE_PACKAGES)
    wheels = {name: target / lock["packages"][name]["file_name"] for name in names}
    for name, wheel in wheels.items():
        shutil.copyfile(fetch_wheel(wheel.name, lock["packages"][name]["sha256"], mirror), wheel)
    site_packages = f"/lib/python{PYODIDE_PYTHON}/site-packages/"
    compile_bytecode({target / "python_stdlib.zip": f"/lib/python{PYODIDE_PYTHON.replace('.', '')}.zip/",
                      **{wheel: site_packages for wheel in wheels.values()}})
    trimmed = {"info": lock["info"], "packages": {}}
    for name, wheel in wheels.items():  # the lock gives each wheel's sha256, which Pyodide checks: the compiled one's
        trimmed["packages"][name] = {**lock["packages"][name], "sha256": sha256(wheel)}
    (target / "pyodide-lock.json").write_text(json.dumps(trimmed, indent=1, sort_keys=True))
    return names


# -- Bytecode: Python's compiled form, made once at build time ------------------
#
# Pyodide's stdlib zip and wheels hold Python source, and Pyodide's file system
# lives in memory, so every visit compiled every module it imported, the
# runtime's own start included: in a cold visit that was 40% of the time to
# the first frame (tests/benchmarks/pages.py: the floor page takes about 3.8 s
# on this build's files and 7.3 s on the release's, in the same run). build.py
# compiles them with the very interpreter the pages run (node_modules/pyodide,
# under Node) and ships the bytecode in place of the source, as Pyodide's
# `pyodide py-compile` does, without column tables (the ^^^ under a traceback's
# line, which has no source line to mark anyway): the stdlib grows from 2.4 to
# 3.2 MB, numpy from 3.1 to 3.3 MB. The site's own Python (python.zip) keeps
# its source, which the pages show, with its bytecode beside it in __pycache__;
# python.zip also brings the bytecode of PyScript's Python package, whose
# source PyScript itself writes as each page starts (see pyscript_python).

BYTECODE_JOB = r"""
import base64, csv, hashlib, importlib.util, io, marshal, sys, zipfile

# For building against a package (type stubs, C headers and sources, static libraries), which no page does.
BUILD_ONLY = (".pyi", ".h", ".a", ".pxd", ".pyx", ".c")

def record_hash(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

def compile_archive(source, target, prefix, keep_source, written_at_start):
    renamed, kept, dropped = {}, 0, set()
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        record = None
        for info in old.infolist():
            if info.filename.endswith(".dist-info/RECORD"):
                record = info
                continue
            if not keep_source and info.filename.endswith(BUILD_ONLY):
                dropped.add(info.filename)
                continue
            data, code = old.read(info), None
            if info.filename.endswith(".py"):
                try:
                    code = compile(data, prefix + info.filename, "exec", dont_inherit=True)
                except SyntaxError:  # a template or an example, never imported: kept as it is
                    kept += 1
            if code is not None and keep_source:  # the bytecode where imports look first
                folder, _, name = info.filename.rpartition("/")
                cached = f"{folder}/__pycache__/{name[:-3]}.{sys.implementation.cache_tag}.pyc".lstrip("/")
                # Hash-based: used unchecked, or for a file written at start, checked against it (flags 3).
                checked = info.filename in written_at_start
                header = (importlib.util.MAGIC_NUMBER + (3 if checked else 1).to_bytes(4, "little")
                          + importlib.util.source_hash(data))
                new.writestr(zipfile.ZipInfo(cached, date_time=info.date_time), header + marshal.dumps(code),
                             zipfile.ZIP_DEFLATED)
                renamed[info.filename] = None
                if checked:
                    continue  # its source comes from whoever writes it
            elif code is not None:  # the bytecode in place of the source ("sourceless": no stamp to check)
                data = importlib.util.MAGIC_NUMBER + bytes(12) + marshal.dumps(code)
                renamed[info.filename] = (info.filename + "c", record_hash(data), len(data))
                info = zipfile.ZipInfo(info.filename + "c", date_time=info.date_time)
            new.writestr(info, data, zipfile.ZIP_DEFLATED)
        if record is not None:
            rows = list(csv.reader(io.StringIO(old.read(record).decode())))
            text = io.StringIO()
            csv.writer(text, lineterminator="\n").writerows(renamed.get(row[0], row) if row else row
                                                            for row in rows if not row or row[0] not in dropped)
            new.writestr(record, text.getvalue(), zipfile.ZIP_DEFLATED)
    return [len(renamed), kept, len(dropped)]

results = [compile_archive(*job) for job in jobs]
"""
BYTECODE_NODE = """
import { loadPyodide } from "PYODIDE/pyodide.mjs";
try {
  const py = await loadPyodide({ indexURL: "PYODIDE/", env: JSON.parse(process.env.BYTECODE_ENV) });
  py.mountNodeFS("/build", process.env.BYTECODE_DIR);
  py.globals.set("jobs", py.toPy(JSON.parse(process.env.BYTECODE_JOBS)));
  py.runPython(process.env.BYTECODE_JOB);
  console.log(JSON.stringify(py.globals.get("results").toJs()));
} catch (error) {
  console.error(String(error));  // not the stack: it quotes a line of minified runtime
  process.exit(1);
}
"""


def run_node(script: str, *args: str, doing: str, env: dict | None = None) -> str:
    """Run the ES module `script` under Node (which `npm ci` needs anyway) and return what it printed."""
    try:
        done = subprocess.run(["node", "--input-type=module", "-e", script, *args], env=env, capture_output=True,
                              text=True, timeout=600)
    except FileNotFoundError:
        raise BuildError(f"Node.js is missing: build.py needs it for {doing}") from None
    if done.returncode != 0:
        raise BuildError(f"{doing} under Node failed:\n{done.stderr[-3000:]}")
    return done.stdout


def compile_bytecode(archives: dict[Path, str], *, keep_source: bool = False,
                     written_at_start: tuple[str, ...] = ()) -> None:
    """Compile the .py files in each archive (path -> where Pyodide puts its files), in place.

    The runtime's archives get bytecode in place of source, without column
    tables (the ^^^ under a line of a traceback, which has no source line
    anyway): a third smaller. Their type stubs, C headers and sources and
    static libraries, for building against a package, are left out (numpy's
    make 8% of its wheel). With `keep_source`, the source stays and the
    bytecode comes beside it, with column tables; the files of
    `written_at_start`, which someone else writes as the page starts, leave
    only bytecode that Python checks against what was written (and compiles
    that instead if it differs). Compiled archives are cached by the sha256
    of their source, so only the first build pays (10-20 s).
    """
    cache = CACHE / "bytecode"
    cache.mkdir(parents=True, exist_ok=True)
    python_env = {} if keep_source else {"PYTHONNODEBUGRANGES": "1"}
    todo = {}
    for path, prefix in archives.items():
        job = json.dumps([BYTECODE_JOB, BYTECODE_NODE, python_env, written_at_start]).encode()
        key = hashlib.sha256(path.read_bytes() + job).hexdigest()[:24]  # this source, this compiler
        cached = cache / f"{key}-{path.name}"
        if cached.exists():
            shutil.copyfile(cached, path)
        else:
            todo[path] = (prefix, cached)
    if not todo:
        return
    jobs = [[f"/build/{path.name}", f"/build/compiled-{path.name}", prefix, keep_source, list(written_at_start)]
            for path, (prefix, _) in todo.items()]
    with tempfile.TemporaryDirectory(dir=cache) as work:  # its own folder: builds may run side by side
        for path in todo:
            shutil.copyfile(path, Path(work, path.name))
        env = {**os.environ, "BYTECODE_DIR": work, "BYTECODE_JOBS": json.dumps(jobs), "BYTECODE_JOB": BYTECODE_JOB,
               "BYTECODE_ENV": json.dumps(python_env)}
        printed = run_node(BYTECODE_NODE.replace("PYODIDE", PYODIDE_NPM.resolve().as_posix()), env=env,
                           doing="compiling Python's bytecode with Pyodide")
        counts = json.loads(printed.strip().splitlines()[-1])
        for (path, (_, cached)), (compiled, kept, dropped) in zip(todo.items(), counts):
            shutil.copyfile(Path(work, f"compiled-{path.name}"), path)
            os.replace(Path(work, f"compiled-{path.name}"), cached)
            if not keep_source:
                left_out = f", {dropped} files for building against it left out" if dropped else ""
                print(f"compiled {path.name}: {compiled} modules to bytecode, {kept} kept as source{left_out}")


SOURCE_MAP_COMMENT = re.compile(r"\n//# sourceMappingURL=[^\n]*\s*\Z")


def drop_source_map_comments(files) -> None:
    """The site ships no source maps: without the comments that name them, DevTools asks for none (404s)."""
    for path in files:
        text = path.read_text()
        if SOURCE_MAP_COMMENT.search(text):
            path.write_text(SOURCE_MAP_COMMENT.sub("\n", text))


def copy_pyscript(out: Path) -> None:
    """PyScript's distributable modules, without source maps."""
    shutil.copytree(PYSCRIPT_NPM, out / "pyscript", ignore=shutil.ignore_patterns("*.map"))
    drop_source_map_comments((out / "pyscript").glob("*.js"))


CPYTHON_ONLY = ("train.py", "evaluate.py", "commands.py")  # scikit-learn's digits, which the site does not ship,
# and the command line


def python_files(out: Path) -> dict[str, str]:
    """Copy the core package and the page code; return PyScript's `files` map (URL -> path in Pyodide)."""
    files = {}
    for source_root, url_root in ((ROOT / "py" / "diffusion_lab", "py/diffusion_lab"), (ROOT / "site" / "app", "app")):
        for path in sorted(source_root.rglob("*.py")):
            if path.name in CPYTHON_ONLY:
                continue
            relative = path.relative_to(source_root).as_posix()
            destination = out / url_root / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            package_dir = "diffusion_lab" if url_root.startswith("py/") else "app"
            files[f"./{url_root}/{relative}"] = f"./{package_dir}/{relative}"
    return files


def site_data_files() -> dict[str, str]:
    """Data the pages load on demand (site/models/: the trained network, its training set).

    The hosted pages fetch these only when a view needs them, so they stay off
    the critical path; the offline edition, which cannot fetch, writes them
    into Pyodide's file system at the same relative paths.
    """
    return {f"./models/{path.name}": f"./models/{path.name}" for path in sorted((ROOT / "site" / "models").glob("*.npz"))}


PARTIAL = re.compile(r"<!-- partial:([a-z-]+) -->\n")  # the parts the views share, from site/partials/NAME.html
CONTROLS_MARK = re.compile(r"<!-- controls:(?P<view>[a-z]+):(?P<groups>[a-z,]+) -->")  # fieldsets of controls.py


VIEW_LINK = re.compile(r'<a href="[^"]*" data-view="(?P<view>[a-z]+)"')  # the header's link to a view
PAGE_VIEW = re.compile(r'<body data-view="(?P<view>[a-z]+)"')


def carry_between_views(text: str) -> str:
    """Name on a view's links to the other views the settings they carry (controls.carried_names): boot.js
    copies them from the address until Python takes over, so a link clicked while Python starts keeps them."""
    here = PAGE_VIEW.search(text)
    if not here or here["view"] not in controls.VIEWS:
        return text

    def carry(link: re.Match) -> str:
        if link["view"] == here["view"] or link["view"] not in controls.VIEWS:
            return link[0]
        return f'{link[0]} data-carries="{" ".join(controls.carried_names(here["view"], link["view"]))}"'

    return VIEW_LINK.sub(carry, text)


def render_pages(out: Path) -> None:
    """Copy site/, filling each page's controls from the one table in diffusion_lab.controls and its partials."""
    partials = ROOT / "site" / "partials"
    for path in sorted((ROOT / "site").rglob("*")):
        relative = path.relative_to(ROOT / "site")
        if path.is_dir() or relative.parts[0] in ("app", "partials"):
            continue
        destination = out / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".html":
            text = PARTIAL.sub(lambda mark: (partials / f"{mark[1]}.html").read_text(), path.read_text())
            text = text.replace("<!-- csp -->", f'<meta http-equiv="Content-Security-Policy" '
                                                f'content="{CONTENT_SECURITY_POLICY}">')
            text = CONTROLS_MARK.sub(lambda mark: controls.form_html(
                mark["view"], escape=html.escape, groups=tuple(mark["groups"].split(","))), text)
            text = carry_between_views(text)
            destination.write_text(text)
        else:
            shutil.copyfile(path, destination)


# -- Fast loading: preloads, one archive of Python files, a service worker ------
#
# The first frame needs PyScript, the Pyodide runtime, numpy and the Python
# files; each page's <head> has a <!-- preload --> mark where build.py lists
# them, so the browser fetches them all at once while PyScript starts, instead
# of one after another as each loader discovers the next. matplotlib is not
# among them: the figures come after the first frame, nor the runtime's .wasm:
# compiled from a preload, its compiled code is never cached and every visit
# compiles it again (Pyodide asks for it first thing anyway). The Python files
# travel as one zip that PyScript unpacks. sw.js keeps the rest for the next visit.
# Chrome's console warns that numpy, the zip and the page script were preloaded
# but not used within seconds of the load event: they are, once the runtime is
# up (which takes longer); the warning is harmless.

PY_SCRIPT = re.compile(r'<script\b[^>]*\btype="py"[^>]*\bsrc="([^"]+)"')  # a page's script
PYTHON_ARCHIVE = "python.zip"  # every file of PyScript's `files`, in one request
THIS_BUILD = "this_build.json"  # in the archive: what the page checks against its own build (app/page.py)
PYTHON_META = '<meta name="diffusion-lab-python" content="{}">'  # in each page: the id of its build's Python
FIRST_FRAME_PACKAGES = ("numpy",)  # the wheels the first frame needs (matplotlib only after it)
# PyScript hands these to loadPyodide ("passthrough": no micropip, no cache of its own), which installs
# them while the runtime and PyScript finish starting, instead of after the page script asks: the first
# frame came 0.3-0.6 s sooner in tests/benchmarks/pages.py (the floor page gains nothing from the same).
STARTUP_PACKAGES = {"packages": list(FIRST_FRAME_PACKAGES), "packages_cache": "passthrough"}
PRELOAD_MARK = "<!-- preload -->"  # in each page's <head>
BUILD_META = '<meta name="diffusion-lab-build" content="{}">'  # lets sw.js tell builds apart
SERVICE_WORKER = "sw.js"  # site/sw.js, with BUILD and FILES filled in
SERVICE_WORKER_SKIP = ("py/", "js/offline.js", "pyodide/pyodide.js")  # the pages load none of them


def python_archive(out: Path, files: dict[str, str]) -> dict[str, str]:
    """Zip the files of PyScript's `files` map; return the map that unpacks it where they went.

    Not the page script (app/start.py): PyScript fetches a page's own as its <script src>.
    The zip also carries the bytecode of PyScript's own Python (see pyscript_python),
    and THIS_BUILD: an id of its Python, which each page carries too (PYTHON_META),
    and the digests of the data files the pages fetch later. Where no service worker
    keeps a page's build, the HTTP cache may hold an earlier build's files for minutes
    after a deployment (GitHub Pages lets them stay fresh for 10): a page whose
    Python is another build's, or that fetches another build's data file later (a tab
    open across a deployment), then finds out (app/page.py) instead of mixing them.
    """
    page_scripts = {f"./{script}" for page in out.glob("*.html") for script in PY_SCRIPT.findall(page.read_text())}
    pyscript_files = pyscript_python()
    sources = {path: (out / url).read_bytes() for url, path in files.items() if url not in page_scripts}
    sources.update(pyscript_files)
    data_files = {url.removeprefix("./"): sha256(out / url) for url in site_data_files()}
    facts = {"python": python_id(sources, data_files), "data_files": data_files}
    sources[f"./{THIS_BUILD}"] = json.dumps(facts, indent=1).encode()
    with zipfile.ZipFile(out / PYTHON_ARCHIVE, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, data in sorted(sources.items()):
            info = zipfile.ZipInfo(path.removeprefix("./"), date_time=(1980, 1, 1, 0, 0, 0))  # same build, same bytes
            archive.writestr(info, data, zipfile.ZIP_DEFLATED)
    compile_bytecode({out / PYTHON_ARCHIVE: "/home/pyodide/"}, keep_source=True,  # where PyScript unpacks it
                     written_at_start=tuple(path.removeprefix("./") for path in pyscript_files))
    return {f"./{PYTHON_ARCHIVE}": "./*"}


def python_id(sources: dict[str, bytes], data_files: dict[str, str]) -> str:
    """The id of a build's Python ({path: source}) and of the data it fetches ({path: sha256}): a retrained
    network alone makes a new one, for the page checks its data against the digests that python.zip holds."""
    digest = hashlib.sha256()
    for path, data in sorted(sources.items()):
        digest.update(hashlib.sha256(path.encode() + b"\0" + data).digest())
    digest.update(json.dumps(data_files, sort_keys=True).encode())
    return digest.hexdigest()[:16]


PYSCRIPT_PYTHON = PYSCRIPT_NPM.parent / "src" / "stdlib" / "pyscript.js"  # PyScript's Python, as its bundle has it
PYSCRIPT_PYTHON_DUMP = "const m = await import(process.argv[1]); process.stdout.write(JSON.stringify(m.default));"


def pyscript_python() -> dict[str, bytes]:
    """PyScript's own Python package, as {"./pyscript/NAME.py": source}.

    PyScript writes these files into ./pyscript/ as each page starts and
    imports them (0.1-0.15 s of compiling in a cold visit). The npm package
    keeps the very strings its bundle writes in src/stdlib/pyscript.js, a
    module exporting {folder: {file: text}}; python.zip ships their bytecode,
    checked against what PyScript writes, so a PyScript whose Python differs
    only costs the compile again.
    """
    tree = json.loads(run_node(PYSCRIPT_PYTHON_DUMP, PYSCRIPT_PYTHON.as_uri(),
                               doing=f"reading PyScript's Python from {PYSCRIPT_PYTHON}"))
    found = {}

    def walk(folder: str, tree: dict) -> None:
        for name, value in tree.items():
            if isinstance(value, str):
                found[f"{folder}/{name}"] = value.encode()
            else:
                walk(f"{folder}/{name}", value)

    walk(".", tree)
    if "./pyscript/__init__.py" not in found:
        raise BuildError(f"{PYSCRIPT_PYTHON} no longer holds PyScript's Python package: update pyscript_python")
    return found


def pyscript_modules(out: Path) -> list[str]:
    """The PyScript modules every page loads: core.js, what it imports, and the plugins it always starts."""
    plugins = []
    todo, seen = ["core.js"], []
    while todo:
        name = todo.pop(0)
        if name in seen:
            continue
        seen.append(name)
        text = (out / "pyscript" / name).read_text()
        todo += re.findall(r'\b(?:from|import)\s*"\./([\w.-]+\.js)"', text)
        table = re.findall(r'(?:"[\w-]+"|\w+):\(\)=>import\("\./([\w.-]+\.js)"\)', text)  # {name: () => import(...)}
        plugins += table
        todo += table
    if not plugins:
        raise BuildError("PyScript's plugin table was not found in pyscript/core-*.js; "
                         "this PyScript version loads its plugins differently: update pyscript_modules")
    return seen


def preload_tags(out: Path, page_script: str) -> str:
    """<link> tags for what the first frame needs, typed as each loader asks for it, so the browser reuses them."""
    lock = json.loads((out / "pyodide" / "pyodide-lock.json").read_text())
    modules = [f"pyscript/{name}" for name in pyscript_modules(out) if name != "core.js"]  # core.js: the page's <script>
    modules += ["pyodide/pyodide.mjs", "pyodide/pyodide.asm.js"]
    fetched = ["pyscript.json", "pyodide/pyodide-lock.json", "pyodide/python_stdlib.zip"]  # not the .wasm (see above)
    fetched += [f"pyodide/{lock['packages'][name]['file_name']}" for name in package_closure(lock, FIRST_FRAME_PACKAGES)]
    fetched += [PYTHON_ARCHIVE, page_script]
    tags = [f'<link rel="modulepreload" href="{url}">' for url in modules]  # import()ed
    tags += [f'<link rel="preload" href="{url}" as="fetch" crossorigin="anonymous">' for url in fetched]  # fetch()ed
    return "\n".join([BUILD_META.format(""), *tags])


def add_preloads(out: Path) -> None:
    """Fill each page's preload mark (pages without a Python script get only the build mark)."""
    with zipfile.ZipFile(out / PYTHON_ARCHIVE) as archive:
        python = json.loads(archive.read(THIS_BUILD))["python"]  # what python.zip says of itself
    for path in sorted(out.glob("*.html")):
        text = path.read_text()
        if PRELOAD_MARK not in text:
            continue
        script = PY_SCRIPT.search(text)
        tags = preload_tags(out, script.group(1)) if script else BUILD_META.format("")
        if script:
            tags = PYTHON_META.format(python) + "\n" + tags
        path.write_text(text.replace(PRELOAD_MARK, tags))


def service_worker_files(out: Path) -> list[str]:
    """What sw.js keeps: everything the pages may load; not the offline edition, nor what only other sites use."""
    startup = {f"pyscript/{name}" for name in pyscript_modules(out)}
    files = []
    for path in sorted(out.rglob("*")):
        name = path.relative_to(out).as_posix()
        if (not path.is_file() or path.name.startswith(".") or name in (OFFLINE_NAME, SERVICE_WORKER)
                or name.startswith(SERVICE_WORKER_SKIP)
                or name.startswith("pyscript/") and name not in startup):  # PyScript's editor, terminal, ...
            continue
        files.append(name)
    return files


FONT_LIST = "pyodide/matplotlib-fontlist.json"  # read by app/page.py before matplotlib's first import
FONT_LIST_SCRIPT = """
import { loadPyodide } from %s;
const pyodide = await loadPyodide({ indexURL: %s });
await pyodide.loadPackage("matplotlib", { messageCallback() {} });
process.stdout.write(pyodide.runPython(`
import logging
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
import json
from matplotlib import font_manager
font_manager.json_dump(font_manager.fontManager, "/tmp/fontlist.json")
fonts = json.load(open("/tmp/fontlist.json"))
for key in ("ttflist", "afmlist"):  # in the order of a set of paths, which differs from run to run: sort them
    fonts[key].sort(key=lambda entry: (entry["fname"], entry["name"], entry["style"], entry["weight"]))
json.dumps(fonts, indent=1)
`));
"""


def matplotlib_font_list(out: Path) -> None:
    """matplotlib's font list, made once by the site's own Pyodide under Node and cached in .cache/.

    On its first import in a page, matplotlib reads every font it ships to build
    this list (0.4 to 0.9 s measured here), and Pyodide forgets it on reload. The pages
    install this copy first (app/page.py). Its font paths are relative to
    matplotlib's data folder, so it fits any page, and its fonts are sorted, so
    every machine writes the same bytes (and the same build id, see
    write_service_worker). Without Node, or if Node fails, the build writes an
    empty list and the pages build their own.
    """
    lock = json.loads((out / "pyodide" / "pyodide-lock.json").read_text())
    if "matplotlib" not in lock["packages"]:
        return
    made_by = hashlib.sha256(FONT_LIST_SCRIPT.encode()).hexdigest()[:8]  # a new script makes a new list
    cached = CACHE / f"matplotlib-fontlist-{lock['packages']['matplotlib']['sha256'][:16]}-{made_by}.json"
    if not cached.exists():
        script = FONT_LIST_SCRIPT % (json.dumps((PYODIDE_NPM / "pyodide.mjs").as_uri()),
                                     json.dumps(str(out / "pyodide") + "/"))
        try:
            printed = run_node(script, doing="building matplotlib's font list")
            json.loads(printed)["_version"]  # noqa: B018  (a font list, not an error message)
            cached.write_text(printed)
        except (BuildError, OSError, subprocess.SubprocessError, ValueError, KeyError) as error:
            print(f"  note: no prebuilt matplotlib font list ({type(error).__name__}); each page builds its own")
            (out / FONT_LIST).write_text("{}")
            return
    shutil.copyfile(cached, out / FONT_LIST)


def write_service_worker(out: Path) -> str:
    """Write out/sw.js for the files in `out` and stamp the pages with the build; return the build hash.

    The hash covers every listed file (the pages without their stamp), so it
    changes exactly when something a page loads changes. Running it again on
    the same files gives the same hash.
    """
    files = service_worker_files(out)
    cached = [name for name in files if not name.endswith(".wasm")]  # see site/sw.js: online, the HTTP cache serves those
    digest = hashlib.sha256()
    stamp = re.compile(BUILD_META.format('[^"]*'))
    for name in files:
        data = (out / name).read_bytes()
        if name.endswith(".html"):
            data = stamp.sub(BUILD_META.format(""), data.decode()).encode()
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    build_id = digest.hexdigest()[:16]
    for name in files:
        if name.endswith(".html"):
            path = out / name
            path.write_text(stamp.sub(BUILD_META.format(build_id), path.read_text()))
    template = (ROOT / "site" / SERVICE_WORKER).read_text()
    placeholders = ('"__BUILD__"', "[/* __FILES__ */]", "[/* __RUNTIME__ */]")
    if any(mark not in template for mark in placeholders):
        raise BuildError(f"site/{SERVICE_WORKER} lost one of its placeholders {', '.join(placeholders)}")
    runtime = [name for name in files if name.endswith(".wasm")]  # cached too, but given only to pages offline
    worker = (template.replace('"__BUILD__"', json.dumps(build_id)).replace("[/* __FILES__ */]", json.dumps(cached))
              .replace("[/* __RUNTIME__ */]", json.dumps(runtime)))
    (out / SERVICE_WORKER).write_text(worker)
    return build_id


# -- The offline edition: every view in one HTML file that runs from disk ------
#
# From a file:// URL browsers refuse module scripts, import() and fetch() of
# files, so PyScript cannot start there. The offline edition holds the rendered
# pages as <template>s, the Python files, and the Pyodide runtime and wheels as
# base64 data blocks (gzip where that helps), and boots Pyodide with the small
# loader site/js/offline.js, which says how. No network is needed, and its
# Content-Security-Policy allows none.

OFFLINE_NAME = "diffusion-lab-offline.html"
OFFLINE_LOADER = ROOT / "site" / "js" / "offline.js"
OFFLINE_RUNTIME = ("pyodide.js", "pyodide.asm.js", "python_stdlib.zip", "pyodide.asm.wasm", "pyodide-lock.json")
OFFLINE_RUNTIME_SCRIPTS = ("pyodide.js", "pyodide.asm.js")  # run by the loader, in this order
OFFLINE_SIZE_MARK = "<!-- offline-size -->"  # in index.html, next to the download link
OFFLINE_NOSCRIPT = ("This page runs Python in your browser and needs JavaScript, which is off here. If you opened "
                    "it from an e-mail or a learning platform, save the file to your computer first and open it "
                    "in Chrome, Edge or Firefox.")


def offline_page(path: Path) -> dict:
    """A rendered page taken apart: its view, title, <body> attributes and content, page script, head files."""
    text = path.read_text()
    head, body = re.search(r"<head>(.*?)</head>", text, re.S), re.search(r"<body([^>]*)>(.*)</body>", text, re.S)
    title = head and re.search(r"<title>(.*?)</title>", head.group(1), re.S)
    if not (head and body and title):
        raise BuildError(f"{path.name}: the offline edition needs a <head> with a <title>, and a <body>")
    tags = re.findall(r"<(?:script|link)\b[^>]*>", head.group(1))
    attributes = [dict(re.findall(r'([\w-]+)="([^"]*)"', tag)) for tag in tags]
    modules = [a["src"] for a in attributes if a.get("type") == "module" and not a["src"].startswith("pyscript/")]
    if modules:
        raise BuildError(f"{path.name} loads {', '.join(modules)} as a module, which no browser runs from disk: "
                         "make it a classic script for the offline edition")
    content = body.group(2)
    py_tags = re.findall(r'<script\b[^>]*\btype="py"[^>]*>', content)
    py_scripts = [dict(re.findall(r'([\w-]+)="([^"]*)"', tag)).get("src") for tag in py_tags]
    content = re.sub(r'<script\b[^>]*\btype="py"[^>]*></script>\s*', "", content)
    content = re.sub(r"<(\w+)[^>]*\bdata-hosted-only\b.*?</\1>\s*", "", content, flags=re.S)  # the download link
    return {"file": path.name, "title": html.unescape(title.group(1).strip()),
            "body": {name: html.unescape(value) for name, value in re.findall(r'([\w-]+)="([^"]*)"', body.group(1))},
            "content": content, "py_scripts": py_scripts,
            "scripts": [a["src"] for a in attributes if "src" in a and a.get("type") in (None, "text/javascript")],
            "stylesheets": [a["href"] for a in attributes if a.get("rel") == "stylesheet"],
            "icons": [a["href"] for a in attributes if a.get("rel") == "icon"]}


def offline_asset(path: Path) -> tuple[dict, str]:
    """A file as a base64 data block (gzip-compressed when that saves 5% or more) and its manifest entry."""
    data = path.read_bytes()
    packed = gzip.compress(data, compresslevel=6, mtime=0)
    encoding = "gzip" if len(packed) < 0.95 * len(data) else "identity"
    text = base64.b64encode(packed if encoding == "gzip" else data).decode("ascii")
    entry = {"type": MIME_TYPES.get(path.suffix, "application/octet-stream"), "encoding": encoding,
             "size": len(data), "length": len(text)}
    return entry, f'<script type="application/octet-stream" data-asset="{html.escape(path.name)}">{text}</script>\n'


def inline(text: str, tag: str, name: str) -> str:
    """`text` as the content of an inline <script> or <style>, which must not end it early."""
    if f"</{tag}" in text.lower() or "<!--" in text:
        raise BuildError(f"{name} cannot be inlined into the offline edition: it contains </{tag} or <!--")
    return text


def csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def offline_file(path: Path) -> str | dict[str, str]:
    """A file for the offline manifest: Python source as text, data (.npz) as base64."""
    if path.suffix == ".py":
        return path.read_text()
    return {"base64": base64.b64encode(path.read_bytes()).decode()}


def build_offline(out: Path, files: dict[str, str]) -> Path:
    """Write out/diffusion-lab-offline.html from the built site in `out`, and its size into out/index.html."""
    pages = [offline_page(path) for path in sorted(out.glob("*.html")) if path.name != OFFLINE_NAME]
    views = {page["file"]: page["body"].get("data-view") or Path(page["file"]).stem for page in pages}
    if len(set(views.values())) < len(views):
        raise BuildError(f"two pages share a data-view, so the offline edition cannot tell them apart: {views}")
    scripts = list(dict.fromkeys(src for page in pages for src in page["scripts"]))
    styles = list(dict.fromkeys(href for page in pages for href in page["stylesheets"]))
    icon = next((href for page in pages for href in page["icons"]), None)

    templates = []
    for page in pages:
        content = page["content"]
        for file, view in views.items():
            content = content.replace(f'href="{file}"', f'href="#{view}"')
        local = re.findall(r'\b(?:src|href)="(?!#|https?:|mailto:|data:)([^"]*)"', content)
        if local:
            raise BuildError(f"{page['file']} refers to {', '.join(local)}: the offline edition cannot load files")
        if len(page["py_scripts"]) > 1:
            raise BuildError(f"{page['file']}: the offline edition runs one page script, not {page['py_scripts']}")
        script = files[f"./{page['py_scripts'][0]}"].removeprefix("./") if page["py_scripts"] else ""
        templates.append(f'<template id="view-{views[page["file"]]}" data-title="{html.escape(page["title"])}" '
                         f'data-body="{html.escape(json.dumps(page["body"]))}" data-script="{script}">'
                         f'{content}</template>\n')

    lock = json.loads((out / "pyodide" / "pyodide-lock.json").read_text())
    wheels = [entry["file_name"] for entry in lock["packages"].values()]
    assets, blocks = {}, []
    for name in (*OFFLINE_RUNTIME, *sorted(wheels)):
        assets[name], block = offline_asset(out / "pyodide" / name)
        blocks.append(block)
    manifest = {"views": list(views.values()), "runtimeScripts": OFFLINE_RUNTIME_SCRIPTS, "assets": assets,
                "embeddedLength": sum(asset["length"] for asset in assets.values()),
                "files": {path.removeprefix("./"): offline_file(out / url) for url, path in files.items()}}

    inline_scripts = [inline((out / src).read_text(), "script", src) for src in scripts]
    loader = inline(OFFLINE_LOADER.read_text(), "script", OFFLINE_LOADER.name)
    runtime = [(out / "pyodide" / name).read_text() for name in OFFLINE_RUNTIME_SCRIPTS]
    css = "\n".join(inline((out / href).read_text(), "style", href) for href in styles)
    policy = "; ".join([
        "default-src 'none'",
        "script-src " + " ".join(map(csp_hash, (*inline_scripts, loader, *runtime))) + " 'wasm-unsafe-eval'",
        "style-src 'unsafe-inline'", "img-src data: blob:", "base-uri 'none'", "form-action 'none'"])
    icon_url = f"data:image/svg+xml;base64,{base64.b64encode((out / icon).read_bytes()).decode()}" if icon else ""
    manifest_json = json.dumps(manifest, separators=(",", ":")).replace("<", "\\u003c")

    document = "".join([
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">\n',
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
        "<title>Diffusion Lab (offline edition)</title>\n",
        f'<link rel="icon" href="{icon_url}" type="image/svg+xml">\n' if icon else "",
        f"<style>{css}</style>\n</head>\n<body>\n",
        f'<noscript><p class="error">{html.escape(OFFLINE_NOSCRIPT)}</p></noscript>\n',
        *(f"<script>{text}</script>\n" for text in inline_scripts),
        *templates,
        f'<script id="offline-manifest" type="application/json">{manifest_json}</script>\n',
        f"<script>{loader}</script>\n",
        f"<!-- Pyodide {PYODIDE_VERSION} and its wheels for {OFFLINE_LOADER.name}: base64, gzip where smaller -->\n",
        *blocks,
        "</body>\n</html>\n"])
    target = out / OFFLINE_NAME
    target.write_text(document)
    size = f"{target.stat().st_size / 1e6:.0f} MB"
    index = out / "index.html"
    index.write_text(index.read_text().replace(OFFLINE_SIZE_MARK, size))
    print(f"wrote the offline edition {target.name} ({size}: views {', '.join(views.values())})")
    return target


BUILD_SIGNATURE = (".nojekyll", "pyscript.json", SERVICE_WORKER)  # files at the top of every build
BUILD_MANIFEST = ".diffusion-lab-files"  # every file a build wrote, one path a line: what the next may replace
OS_FILES = (".DS_Store", "Thumbs.db", "desktop.ini")  # what a file browser leaves in a folder it showed
VENDORED = ("pyodide/", "pyscript/")  # folders of files named after their versions, which a new build renames


def files_in(folder: Path) -> list[str]:
    """Every file, link and empty folder in `folder`, as paths relative to it."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*")
                  if path.is_symlink() or not path.is_dir() or not any(path.iterdir()))


def not_built(out: Path, built: set[str], folders: tuple[str, ...] = ()) -> None:
    """Refuse to replace `out` if it holds files that are not in `built` nor in `folders` (a course's own pages
    beside a build)."""
    foreign = [name for name in files_in(out) if name not in built and not name.startswith(folders)
               and name != BUILD_MANIFEST and Path(name).name not in OS_FILES]
    if foreign:
        named = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise BuildError(f"--out {out} holds files besides its earlier build ({named}), and a build replaces its "
                         "folder whole: build into a folder of its own, then copy the built files where you need "
                         "them")


SOURCES = ("site", "py", "tests", ".ci", ".github", ".git", "node_modules")  # the repository's folders


def check_out(out: Path) -> None:
    """Refuse an --out the build would wrongly replace: a build replaces its folder whole, so that folder must
    be new, empty or an earlier build, never a folder of other files (a course's own pages, the repository)."""
    if out in ROOT.parents:
        raise BuildError(f"--out {out} holds this repository: choose a folder of its own, such as dist/")
    if out == ROOT or ROOT in out.parents and out.relative_to(ROOT).parts[0] in SOURCES:
        raise BuildError(f"--out {out} is this repository or part of its source: choose a folder of its own, "
                         "such as dist/")
    if out.is_file():
        raise BuildError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not all((out / name).is_file() for name in BUILD_SIGNATURE):
        raise BuildError(f"--out {out} holds files that are not a Diffusion Lab build, and a build replaces its "
                         "folder whole: choose a new or empty folder (then copy the built files where you need them)")
    if (out / BUILD_MANIFEST).is_file():  # an earlier build, maybe with a course's pages added since
        not_built(out, set((out / BUILD_MANIFEST).read_text().splitlines()))


def build(out: Path, mirror: Path | None) -> None:
    """Build the site into `out`, made in a folder beside it first: a build that fails leaves the last one whole."""
    out = out.resolve()
    check_out(out)
    if mirror is not None and not mirror.is_dir():
        raise BuildError(f"the Pyodide mirror {mirror} is not a folder (--pyodide-mirror or $PYODIDE_MIRROR)")
    staging = out.with_name(f".{out.name}.building")
    if staging.exists():
        shutil.rmtree(staging)  # left by a build that was stopped
    staging.mkdir(parents=True)
    try:
        names, build_id = write_site(staging, mirror)
        made = files_in(staging)
        if out.is_dir() and not (out / BUILD_MANIFEST).is_file():  # a build older than the list: it made what
            not_built(out, set(made), VENDORED)  # this one makes, but for versioned names
        (staging / BUILD_MANIFEST).write_text("\n".join(made) + "\n")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)  # an earlier build, or an empty folder (check_out)
    staging.rename(out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"built {out} ({size / 1e6:.1f} MB; Pyodide {PYODIDE_VERSION} with {', '.join(names)}; build {build_id})")


def write_site(out: Path, mirror: Path | None) -> tuple[list[str], str]:
    """Write the site into the empty folder `out`; return the Pyodide packages it holds and the build's hash."""
    render_pages(out)
    files = python_files(out)
    config = {"interpreter": "./pyodide/pyodide.mjs", "files": python_archive(out, files), **STARTUP_PACKAGES}
    (out / "pyscript.json").write_text(json.dumps(config, indent=1))
    copy_pyscript(out)
    names = copy_pyodide(out, mirror)
    matplotlib_font_list(out)
    add_preloads(out)
    build_offline(out, {**files, **site_data_files()})
    build_id = write_service_worker(out)
    (out / ".nojekyll").write_text("")
    return names, build_id


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with the MIME types Pyodide needs (.wasm must be application/wasm)."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def log_message(self, format, *args):  # noqa: A002  (quiet; errors still show)
        if args and str(args[1]).startswith(("4", "5")):
            super().log_message(format, *args)


class Server(http.server.ThreadingHTTPServer):
    """The development server: a browser that drops a connection (a closed tab, a cancelled preload) is not an error."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def open_server(directory: Path, port: int) -> Server:
    """The server for --serve, on its port before the build starts: a port in use is said at once."""
    handler = functools.partial(Handler, directory=str(directory.resolve()))
    try:
        return Server(("127.0.0.1", port), handler)
    except OSError as error:
        raise BuildError(f"cannot serve on port {port} ({error.strerror}): pass --port N, "
                         "or --port 0 for a free one") from None


def serve(server: Server) -> None:
    with server:
        print(f"serving {server.RequestHandlerClass.keywords['directory']} at "
              f"http://127.0.0.1:{server.server_address[1]}/  (Ctrl+C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/); a build "
                        "replaces it whole, so it must be new, empty or an earlier build")
    parser.add_argument("--pyodide-mirror", type=Path, default=os.environ.get("PYODIDE_MIRROR") or None,
                        metavar="DIR", help="folder with the Pyodide wheels (default: $PYODIDE_MIRROR, else the CDN)")
    parser.add_argument("--serve", action="store_true", help="serve dist/ on 127.0.0.1 after building")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0 picks a free one)")
    args = parser.parse_args(argv)
    server = None
    try:
        server = open_server(args.out, args.port) if args.serve else None
        build(args.out, args.pyodide_mirror)
    except BuildError as error:
        if server is not None:
            server.server_close()
        print(f"build.py: error: {error}", file=sys.stderr)
        return 1
    if server is not None:
        serve(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
