#!/usr/bin/env python3
"""Build Diffusion Lab into dist/, a self-contained static site.

    python build.py                         # write dist/
    python build.py --serve                 # build, then serve dist/ on 127.0.0.1
    python build.py --pyodide-mirror DIR    # take the wheels from DIR, not the CDN

dist/ holds the pages, the Python package, PyScript, the Pyodide runtime and
exactly the wheels the pages load (numpy, matplotlib and their dependencies),
with a pyodide-lock.json trimmed to those. Nothing is fetched from another
server at run time.

JavaScript dependencies (PyScript, the Pyodide runtime) come from
node_modules (`npm ci`). Wheels come from the official Pyodide CDN, or from a
local folder holding the same files (`--pyodide-mirror` or $PYODIDE_MIRROR),
and are cached in .cache/; each is checked against the sha256 that the
official pyodide-lock.json gives for it.
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import html
import http.server
import json
import os
import shutil
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "py"))

from diffusion_lab import controls  # noqa: E402  (stdlib only, no numpy)

PYODIDE_VERSION = "0.27.7"
PYODIDE_CDN = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/"
PYODIDE_NPM = ROOT / "node_modules" / "pyodide"
PYSCRIPT_NPM = ROOT / "node_modules" / "@pyscript" / "core" / "dist"
RUNTIME_FILES = ("pyodide.mjs", "pyodide.js", "pyodide.asm.js", "pyodide.asm.wasm", "python_stdlib.zip")
PAGE_PACKAGES = ("numpy", "matplotlib")  # what the pages load; dependencies follow from the lock
CACHE = ROOT / ".cache" / f"pyodide-{PYODIDE_VERSION}"
MIME_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
              ".whl": "application/zip", ".zip": "application/zip", ".json": "application/json",
              ".py": "text/plain; charset=utf-8", ".svg": "image/svg+xml"}


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
    lock = json.loads((PYODIDE_NPM / "pyodide-lock.json").read_text())
    names = package_closure(lock, PAGE_PACKAGES)
    for name in names:
        entry = lock["packages"][name]
        shutil.copyfile(fetch_wheel(entry["file_name"], entry["sha256"], mirror), target / entry["file_name"])
    trimmed = {"info": lock["info"], "packages": {name: lock["packages"][name] for name in names}}
    (target / "pyodide-lock.json").write_text(json.dumps(trimmed, indent=1, sort_keys=True))
    return names


def copy_pyscript(out: Path) -> None:
    """PyScript's distributable modules, without source maps."""
    shutil.copytree(PYSCRIPT_NPM, out / "pyscript", ignore=shutil.ignore_patterns("*.map"))


def python_files(out: Path) -> dict[str, str]:
    """Copy the core package and the page code; return PyScript's `files` map (URL -> path in Pyodide)."""
    files = {}
    for source_root, url_root in ((ROOT / "py" / "diffusion_lab", "py/diffusion_lab"), (ROOT / "site" / "app", "app")):
        for path in sorted(source_root.rglob("*.py")):
            relative = path.relative_to(source_root).as_posix()
            destination = out / url_root / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
            package_dir = "diffusion_lab" if url_root.startswith("py/") else "app"
            files[f"./{url_root}/{relative}"] = f"./{package_dir}/{relative}"
    return files


def render_pages(out: Path) -> None:
    """Copy site/, filling each page's controls from the one table in diffusion_lab.controls."""
    for path in sorted((ROOT / "site").rglob("*")):
        relative = path.relative_to(ROOT / "site")
        if path.is_dir() or relative.parts[0] == "app":
            continue
        destination = out / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".html":
            text = path.read_text()
            for view in controls.VIEWS:
                text = text.replace(f"<!-- controls:{view} -->", controls.form_html(view, escape=html.escape))
            destination.write_text(text)
        else:
            shutil.copyfile(path, destination)


def build(out: Path, mirror: Path | None) -> None:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    render_pages(out)
    files = python_files(out)
    config = {"interpreter": "./pyodide/pyodide.mjs", "files": files}
    (out / "pyscript.json").write_text(json.dumps(config, indent=1))
    copy_pyscript(out)
    names = copy_pyodide(out, mirror)
    (out / ".nojekyll").write_text("")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"built {out} ({size / 1e6:.1f} MB; Pyodide {PYODIDE_VERSION} with {', '.join(names)})")


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files with the MIME types Pyodide needs (.wasm must be application/wasm)."""

    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **MIME_TYPES}

    def log_message(self, format, *args):  # noqa: A002  (quiet; errors still show)
        if args and str(args[1]).startswith(("4", "5")):
            super().log_message(format, *args)


def serve(directory: Path, port: int) -> None:
    handler = functools.partial(Handler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {directory} at http://127.0.0.1:{server.server_address[1]}/  (Ctrl+C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument("--pyodide-mirror", type=Path, default=os.environ.get("PYODIDE_MIRROR") or None,
                        metavar="DIR", help="folder with the Pyodide wheels (default: $PYODIDE_MIRROR, else the CDN)")
    parser.add_argument("--serve", action="store_true", help="serve dist/ on 127.0.0.1 after building")
    parser.add_argument("--port", type=int, default=8000, help="port for --serve (default 8000; 0 picks a free one)")
    args = parser.parse_args(argv)
    try:
        build(args.out, args.pyodide_mirror)
    except BuildError as error:
        print(f"build.py: error: {error}", file=sys.stderr)
        return 1
    if args.serve:
        serve(args.out, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
