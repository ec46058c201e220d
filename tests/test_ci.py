"""CI never goes green with the book unchecked: without Chromium, the browser tests fail there.

``.ci/run`` sets ERASE_REQUIRE_CHROMIUM when CI is set (with why Chromium is missing, when its
install failed); ``tests/test_book.py`` then fails its browser tests instead of skipping them.
Both halves run here for real: the script with stand-ins for apt-get and make, and pytest on a
browser test with no Chromium on PATH.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def stand_ins(folder: Path, apt_fails: bool) -> Path:
    """A PATH of the few tools .ci/run calls: the real bash, dirname and tail; an apt-get that
    fails (or succeeds without installing anything) and a make that prints what it was given."""
    folder.mkdir()
    for tool in ("bash", "dirname", "tail", "printf"):
        found = shutil.which(tool)
        if found:
            (folder / tool).symlink_to(found)
    (folder / "apt-get").write_text("#!/bin/sh\necho 'E: Unable to locate package chromium' >&2\n"
                                    f"exit {1 if apt_fails else 0}\n")
    (folder / "make").write_text('#!/bin/sh\necho "make $* ERASE_REQUIRE_CHROMIUM=[$ERASE_REQUIRE_'
                                 'CHROMIUM]"\n')
    for name in ("apt-get", "make"):
        (folder / name).chmod(0o755)
    return folder


def ci_run(tmp_path: Path, ci: bool, apt_fails: bool = True) -> subprocess.CompletedProcess:
    path = stand_ins(tmp_path / "bin", apt_fails)
    env = {"PATH": str(path), "HOME": str(tmp_path), **({"CI": "true"} if ci else {})}
    return subprocess.run(["/bin/bash", str(ROOT / ".ci" / "run")], env=env, capture_output=True,
                          text=True, timeout=60)


def test_ci_run_requires_chromium_under_ci_and_says_why_it_is_missing(tmp_path):
    done = ci_run(tmp_path, ci=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("make test ERASE_REQUIRE_CHROMIUM=[CI is set (.ci/run); "
                                   "apt-get install chromium failed: E: Unable to locate "
                                   "package chromium]")
    assert "could not" not in done.stdout and "the browser tests will fail" in done.stderr


def test_ci_run_outside_ci_leaves_the_browser_tests_free_to_skip(tmp_path):
    done = ci_run(tmp_path, ci=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "make test ERASE_REQUIRE_CHROMIUM=[]"


def test_browser_tests_fail_with_the_reason_when_chromium_is_required_and_missing(tmp_path):
    bin_dir = Path(sys.executable).parent  # the venv's tools, and no Chromium
    env = {**os.environ, "PATH": str(bin_dir), "ERASE_REQUIRE_CHROMIUM": "CI is set (.ci/run)"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
         str(ROOT / "tests" / "test_book.py"), "-k", "small_book_figures_and_math and http"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    assert "skipped" not in out.splitlines()[-1], out[-3000:]
    assert "Chromium is required (ERASE_REQUIRE_CHROMIUM: CI is set (.ci/run))" in out, out[-3000:]
    assert "apt-get install chromium" in out


@pytest.mark.skipif(shutil.which("chromium") is None and shutil.which("chromium-browser") is None
                    and shutil.which("google-chrome") is None, reason="no Chromium here")
def test_ci_run_does_not_install_what_is_there(tmp_path):
    """With Chromium on PATH, apt-get is not called (its stand-in would say so)."""
    path = stand_ins(tmp_path / "bin", apt_fails=True)
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            (path / name).symlink_to(shutil.which(name))
    done = subprocess.run(["/bin/bash", str(ROOT / ".ci" / "run")],
                          env={"PATH": str(path), "CI": "true"}, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "make test ERASE_REQUIRE_CHROMIUM=[CI is set (.ci/run)]"
    assert done.stderr == ""
