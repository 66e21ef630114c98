"""A local store that runs out of room or turns read-only mid-publish fails with one line, keeps
finished takes intact and shows no half-published take or version.

Each scenario runs in a child process: a file-size limit (portable), and where this user may
create mount namespaces (root in CI containers), a real 1 MiB tmpfs that fills up and a tmpfs
remounted read-only (chmod cannot stop root, a read-only mount can)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
REPO = HERE.parents[1]


def run_child(mode: str, root: Path, media, tmp_path: Path, mount: bool) -> dict:
    small, big = media("small.mp4", 50_000), media("big.mp4", 2_000_000)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    command = [
        sys.executable,
        str(HERE / "store_local_child.py"),
        mode,
        str(root),
        str(small),
        str(big),
    ]
    if mount:
        root.mkdir()
        mounted = f"mount -t tmpfs -o size=1m previz-test {root} && exec " + " ".join(command)
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mounted]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "SCRATCH": str(scratch),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    if mount and done.returncode != 0 and "mount" in done.stderr.lower() and not done.stdout:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def check_clean_failure(report: dict, reason: str) -> None:
    take_error, cut_error = report["errors"]
    for error in (take_error, cut_error):
        assert error is not None and reason in error and "\n" not in error
        assert error.startswith("file:///") and "choose another store" in error
    assert report["good_intact"] and not report["bad_visible"]
    assert report["versions"] == [1] and report["latest"] == 1
    assert report["leftovers"] == []


def test_file_size_limit(media, tmp_path: Path) -> None:
    report = run_child("fsize", tmp_path / "renders", media, tmp_path, mount=False)
    check_clean_failure(report, "file too large")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_full_file_system(media, tmp_path: Path) -> None:
    report = run_child("full", tmp_path / "renders", media, tmp_path, mount=True)
    check_clean_failure(report, "no space left on the device")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs util-linux unshare")
def test_read_only_file_system(media, tmp_path: Path) -> None:
    report = run_child("readonly", tmp_path / "renders", media, tmp_path, mount=True)
    take_error, cut_error = report["errors"]
    assert "read-only" in take_error and "read-only" in cut_error
    assert report["good_intact"] and not report["bad_visible"]
    assert report["versions"] == [1] and report["latest"] == 1
    assert report["leftovers"] == []
