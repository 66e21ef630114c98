"""The README stays true: CI runs its test command verbatim, and its set-up commands exist."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_readme_has_exactly_two_setup_commands():
    commands = setup_commands()
    assert len(commands) == 2, commands
    assert "previz" in commands[0] and "storyboards/demo.yaml" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_exactly():
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup_commands()[1] in ci_lines


@pytest.mark.slow
def test_the_demo_renders_as_the_readme_says(tmp_path):
    """The first set-up command as a user runs it: a process of its own with an embedded Ray.
    Every draft take joins the cut by stream copy, and the same command again mints nothing."""
    command = [sys.executable, "-m", "previz", "render", str(ROOT / "storyboards" / "demo.yaml"),
               "--store", str(tmp_path / "renders")]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    printed = dict(line.split(": ", 1) for line in first.stdout.splitlines()[1:])
    assert printed["version"] == "v001"
    # what it took beside the plan's estimate, part by part (taken/estimated)
    assert re.fullmatch(r"\d+ s, estimated \d+ s \(preparation [\d.]+/[\d.]+ s, cluster start "
                        r"[\d.]+/[\d.]+ s, rendering [\d.]+/[\d.]+ s, assembly [\d.]+/[\d.]+ s\)",
                        printed["time"]), printed["time"]
    assert {"cut", "review", "otio", "edl", "xml", "contact sheet"} <= set(printed)
    version = tmp_path / "renders" / "LIGHTHOUSE" / "SQ010" / "v001"
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["warnings"] == []
    assert manifest["join"]["copied_frames"] > manifest["join"]["encoded_frames"]
    assert first.stdout.splitlines()[0].endswith("7 rendered; 0.00 GPU-hours")

    again = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "7 cached" in again.stdout.splitlines()[0]
    assert "version: v001 (unchanged edit: the existing version)" in again.stdout
