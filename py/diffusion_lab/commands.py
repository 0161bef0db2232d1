"""What the command-line programs share (forward_diffusion.py, reverse_diffusion.py, train, evaluate): Ctrl-C said
in one line, and files written whole. CPython only: build.py leaves it out of the site."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path

INTERRUPTED = 130  # the exit status a shell gives a program stopped by Ctrl-C (128 + SIGINT)
MISSING = 1  # the exit status of a program that cannot run without a package that is not installed
REPOSITORY = Path(__file__).resolve().parents[2]  # where requirements.txt and requirements-dev.txt are
MAX_NAME_BYTES = 255  # the longest file name most file systems take


def not_installed(package: str, requirements: str = "requirements.txt", needed_for: str = "") -> str:
    """One line for a user who skipped an install: which package, and README's command to get it."""
    path = REPOSITORY / requirements
    try:
        path = os.path.relpath(path)  # from the folder the program runs in, as README's commands write it
    except ValueError:  # on another drive (Windows)
        pass
    return f"{package} is not installed{needed_for}; run: pip install -r {path}"


class MissingPackage(Exception):
    """A package the program needs is not installed; ``str()`` is not_installed's line."""

    def __init__(self, package: str, requirements: str = "requirements.txt", needed_for: str = "") -> None:
        super().__init__(not_installed(package, requirements, needed_for))


def interruptible(main):
    """``main`` with Ctrl-C said in one line ("interrupted", on stderr) and exit status 130, not a traceback;
    and a missing package (MissingPackage) in one line too."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except KeyboardInterrupt:  # the finally blocks (a partial file's removal) have run on the way here
            print("interrupted", file=sys.stderr)
            return INTERRUPTED
        except MissingPackage as error:
            print(f"error: {error}", file=sys.stderr)
            return MISSING

    return run


@contextlib.contextmanager
def quiet_interrupt():
    """Ctrl-C during a program's first imports (matplotlib's are most of a short run): "interrupted" and exit
    status 130, as ``interruptible`` says it once the program runs."""
    try:
        yield
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(INTERRUPTED)


def partial_path(path: Path) -> Path:
    """The temporary file beside ``path`` that write_whole fills first; it keeps the suffix (numpy adds .npz).
    Named after ``path`` where that fits in a file name (a name near the limit is legal, its partial one not)."""
    name = f".{path.stem}.{os.getpid()}.part{path.suffix}"
    if len(name.encode()) > MAX_NAME_BYTES:
        name = f".{os.getpid()}.part{path.suffix}"
    return path.with_name(name)


def write_whole(path: Path, write) -> None:
    """write(a temporary path beside ``path``), then move that file into place: a failed or interrupted write
    (a full disk, Ctrl-C) leaves the file that was at ``path`` as it was, and no partial file."""
    partial = partial_path(path)
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        with contextlib.suppress(OSError):  # gone after os.replace; else what was written of it
            partial.unlink(missing_ok=True)
