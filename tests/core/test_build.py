"""build.py's --out: a build replaces only a folder that is new, empty or an earlier build, and only once the
new one is whole; --serve says at once when its port is taken."""

import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import build  # noqa: E402


def earlier_build(folder: Path, *pages: str, manifest: bool = True) -> Path:
    """A folder as an earlier build leaves it: its signature files at the top, index.html and `pages`, and the
    list of them (builds before it had none)."""
    folder.mkdir(parents=True)
    for name in build.BUILD_SIGNATURE:
        (folder / name).write_text("")
    (folder / "index.html").write_text("the earlier build")
    for page in pages:
        (folder / page).write_text("a page of the earlier build")
    if manifest:
        (folder / build.BUILD_MANIFEST).write_text("\n".join(build.files_in(folder)) + "\n")
    return folder


def a_whole_site(out, mirror):
    """write_site in short: the signature files, a page and the example course page."""
    for name in build.BUILD_SIGNATURE:
        (out / name).write_text("")
    (out / "index.html").write_text("the new build")
    (out / "examples").mkdir()
    (out / "examples" / "course.html").write_text("the example course page")
    return ["numpy"], "0123456789abcdef"


def test_a_build_never_replaces_a_folder_of_other_files(tmp_path, capsys):
    course = tmp_path / "course site"
    (course / "slides").mkdir(parents=True)
    (course / "notes.txt").write_text("week 1")
    (course / "slides" / "week1.pdf").write_text("pdf")
    for out in (course, ROOT / "README.md"):
        assert build.main(["--out", str(out)]) == 1
        error = capsys.readouterr().err
        assert error.startswith(f"build.py: error: --out {out} ") and "Traceback" not in error
    assert (course / "notes.txt").read_text() == "week 1"
    assert (course / "slides" / "week1.pdf").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course site"]  # nothing left beside it
    # The repository, a folder holding it and its source folders (asked of the check alone: a build that
    # took them would delete the repository running this test).
    for out in (ROOT, ROOT.parent, ROOT / "site", ROOT / "py" / "dist"):
        with pytest.raises(build.BuildError, match="this repository"):
            build.check_out(out)


def test_a_failed_build_leaves_the_earlier_one_whole(tmp_path, monkeypatch, capsys):
    dist = earlier_build(tmp_path / "dist")
    written, render_pages = [], build.render_pages

    def pages_then_a_missing_wheel(out):
        render_pages(out)  # the real first step: the new pages are written,
        written.extend(out.glob("*.html"))
        raise build.BuildError("numpy-2.0.2-cp312-cp312-pyodide_2024_0_wasm32.whl is missing from the mirror")

    monkeypatch.setattr(build, "render_pages", pages_then_a_missing_wheel)
    assert build.main(["--out", str(dist)]) == 1
    assert "is missing from the mirror" in capsys.readouterr().err
    assert written  # the build got as far as writing pages,
    assert (dist / "index.html").read_text() == "the earlier build"  # yet the earlier build is as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist"]  # and the unfinished one is gone


def test_a_new_build_replaces_an_earlier_one_once_it_is_whole(tmp_path, monkeypatch):
    dist = earlier_build(tmp_path / "dist", "old-page.html")  # a page the new build no longer has
    (dist / ".DS_Store").write_text("")  # left by a file browser that showed the folder

    def checked_site(out, mirror):
        assert dist.exists()  # the earlier build stays in place while the new one is written
        return a_whole_site(out, mirror)

    monkeypatch.setattr(build, "write_site", checked_site)
    build.build(dist, None)
    assert (dist / "index.html").read_text() == "the new build"
    assert not (dist / "old-page.html").exists()
    assert (dist / build.BUILD_MANIFEST).read_text().split() == sorted([*build.BUILD_SIGNATURE, "index.html",
                                                                        "examples/course.html"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dist"]
    empty = tmp_path / "empty"
    empty.mkdir()
    build.build(empty, None)  # an empty folder is fine too
    assert (empty / "index.html").read_text() == "the new build"


@pytest.mark.parametrize("manifest", [True, False])
def test_a_build_never_replaces_a_course_folder_that_holds_an_earlier_build(tmp_path, monkeypatch, capsys,
                                                                            manifest):
    """The README's advice: build into a folder of its own, then copy. A teacher who copied a build into the
    course folder, added the course's pages and built into it again lost those pages without a word (QA21)."""
    course = earlier_build(tmp_path / "course", manifest=manifest)
    (course / "week5.html").write_text("the course's own page")
    (course / "slides").mkdir()
    (course / "slides" / "deck.md").write_text("# Week 5")
    (course / "examples").mkdir()  # beside the example course page, which a build makes too
    (course / "examples" / "week1.html").write_text("the course's first week")
    (course / "handouts").mkdir()  # empty, for now
    (course / ".DS_Store").write_text("a file browser's")  # not the course's: it does not stop a build
    monkeypatch.setattr(build, "write_site", a_whole_site)
    assert build.main(["--out", str(course)]) == 1
    error = capsys.readouterr().err
    assert (f"--out {course} holds files besides its earlier build (examples/week1.html, handouts, slides/deck.md, "
            "week5.html)") in error
    assert (course / "week5.html").read_text() == "the course's own page"
    assert (course / "slides" / "deck.md").exists() and (course / "index.html").read_text() == "the earlier build"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["course"]  # no unfinished build left beside it


def test_serving_on_a_port_in_use_is_refused_before_building(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert build.main(["--serve", "--port", str(port), "--out", str(tmp_path / "dist")]) == 1
    error = capsys.readouterr().err
    assert f"cannot serve on port {port}" in error and "--port 0" in error and "Traceback" not in error
    assert not (tmp_path / "dist").exists()  # said before any work


def test_a_mirror_that_is_not_a_folder_is_said_before_building(tmp_path, capsys):
    assert build.main(["--pyodide-mirror", str(tmp_path / "pyodide-0.27.7"), "--out", str(tmp_path / "dist")]) == 1
    assert f"the Pyodide mirror {tmp_path / 'pyodide-0.27.7'} is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "dist").exists()


def test_the_id_of_a_builds_python_changes_with_its_code_or_its_data():
    """Pages and python.zip carry it: a page whose Python the HTTP cache kept from the last build fetches its
    files anew. A deployment of a retrained network alone must change it too (QA23: the page then kept the last
    build's digests and refused the new network at every reload)."""
    code = {"./app/page.py": b"print('page')", "./diffusion_lab/schedules.py": b"T = 1000"}
    data = {"models/digits.npz": "ab" * 32}
    ids = {build.python_id(code, data), build.python_id({**code, "./app/page.py": b"print('new page')"}, data),
           build.python_id(code, {"models/digits.npz": "cd" * 32})}
    assert len(ids) == 3
    assert build.python_id(dict(reversed(code.items())), data) == build.python_id(code, data)  # same files, same id
