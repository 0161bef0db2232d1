"""What the command-line programs share (forward_diffusion.py, reverse_diffusion.py, train, evaluate): Ctrl-C said
in one line, and files written whole. CPython only: build.py leaves it out of the site."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path

INTERRUPTED = 130  # the exit status a shell gives a program stopped by Ctrl-C (128 + SIGINT)


def interruptible(main):
    """``main`` with Ctrl-C said in one line ("interrupted", on stderr) and exit status 130, not a traceback."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            return main(argv)
        except KeyboardInterrupt:  # the finally blocks (a partial file's removal) have run on the way here
            print("interrupted", file=sys.stderr)
            return INTERRUPTED

    return run


def partial_path(path: Path) -> Path:
    """The temporary file beside ``path`` that write_whole fills first; it keeps the suffix (numpy adds .npz)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.part{path.suffix}")


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
