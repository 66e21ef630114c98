"""`previz render` on the embedded Ray (no --address), as a new user runs it: each render is a
process of its own, as in a terminal, with stdout and stderr not a terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from engine_support import ROOT, synthetic_board

pytestmark = pytest.mark.slow

THREE_SHOTS = """\
- {id: SH0010, duration: 12f, prompt: harbour}
- {id: SH0020, duration: 12f, prompt: boat, transition: {type: dissolve, duration: 4f}}
- {id: SH0030, duration: 12f, prompt: gull}
"""


def previz(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name in ("RAY_ADDRESS", "RAY_AUTH_MODE"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "previz", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_gpu_shots_on_a_machine_without_gpus_fail_at_once_and_draft_makes_an_animatic(tmp_path):
    board = synthetic_board(tmp_path, THREE_SHOTS, options="{gpus: 1, seconds_per_frame: 0.01}")
    store = tmp_path / "store"
    started = time.monotonic()
    done = previz("render", str(board), "--store", str(store))
    took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    [line] = done.stderr.strip().splitlines()  # one line, no progress: no Ray was started
    assert line.startswith("previz: SH0010, SH0020, SH0030 (synthetic): need 1 GPU(s) on one "
                           "node, but this machine's Ray has 0 GPU(s)")
    assert "`previz render --draft`" in line and "{device: cpu}" in line
    assert took < 15, took  # the process and its imports; it used to wait 120 s for a node
    assert not (store / "TEST").exists()

    # --draft: the same storyboard as an animatic, at the same timing, marked draft.
    done = previz("render", str(board), "--store", str(store), "--draft", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert [s["status"] for s in summary["shots"]] == ["draft"] * 3
    # what it took beside what the plan's forecast said, part by part
    took = summary["time"]
    assert set(took["parts"]) == {"preparation", "cluster start", "rendering", "assembly"}
    assert took["seconds"] == pytest.approx(sum(p["seconds"] for p in took["parts"].values()),
                                            abs=0.05)
    assert all(p["seconds"] > 0 and p["estimate_seconds"] > 0 for p in took["parts"].values())
    assert took["estimate_seconds"] > took["parts"]["cluster start"]["estimate_seconds"]
    version = store / "TEST" / "SQ010" / summary["version"]
    manifest = json.loads((version / "manifest.json").read_text())
    assert [s["status"] for s in manifest["shots"]] == ["draft"] * 3
    assert (version / "review.html").read_text().count('<span class="status draft">') == 3
    # Progress on stderr (not a terminal): plain lines in the plan's units, and a last one.
    lines = [x for x in done.stderr.splitlines() if x.startswith("previz:")]
    assert lines[0].startswith("previz: 0/3 generator calls, 0/36 frames of takes, 0 failed")
    assert lines[-1].startswith("previz: finished: 3/3 generator calls, 36/36 frames of takes, "
                                "0 failed, in ")
    assert "Token authentication" not in done.stderr  # said by Ray on every embedded start


def test_json_stays_alone_on_stdout_when_a_worker_dies(tmp_path):
    # The worker of SH0010's first attempt exits: Ray tells the driver "A worker died …".
    board = synthetic_board(tmp_path, THREE_SHOTS, options=(
        "{gpus: 0, faults: [{shot: SH0010, attempt: 1, kind: exit}]}"))
    done = previz("render", str(board), "--store", str(tmp_path / "store"), "--json")
    # stdout too: its JSON names the shot that failed and why (seen once under a full suite)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert [s["status"] for s in summary["shots"]] == ["rendered"] * 3
    assert "A worker died or was killed" in done.stderr  # Ray said it: on stderr, not stdout


def test_renders_started_together_on_one_small_machine_all_finish_or_say_why(tmp_path):
    boards = []
    for n in range(4):
        folder = tmp_path / f"b{n}"
        folder.mkdir()
        boards.append(synthetic_board(folder, THREE_SHOTS.replace("harbour", f"harbour {n}"),
                                      options="{gpus: 0}"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    renders = [subprocess.Popen([sys.executable, "-m", "previz", "render", str(board),
                                 "--store", str(board.parent / "store"), "--json"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for board in boards]
    outcomes = [(render.wait(timeout=600), *render.communicate()) for render in renders]
    for code, out, err in outcomes:
        assert "Traceback" not in err, err
        if code == 0:
            assert json.loads(out)["version"] == "v001"
        else:  # allowed: one clear line saying what to do
            assert code == 1 and err.strip().splitlines()[-1].startswith(
                "previz: could not start Ray on this machine"), err
    assert sum(code == 0 for code, _, _ in outcomes) >= 1


# Ray's own words when its node cannot start on an overloaded machine (ray/_private/node.py).
TIMED_OUT = ("The current node timed out during startup. This could happen because some of the "
             "raylet failed to startup or the GCS has become overloaded.")


@pytest.mark.parametrize("failures", [1, 3], ids=["then-starts", "never-starts"])
def test_a_ray_that_cannot_start_is_tried_again_then_said_in_one_line(tmp_path, failures):
    """Ray's start fails as it does on an overloaded machine (injected into `ray.init`, which
    fails that way the first `failures` times): previz tries again, and after its last try
    says what to do in one line."""
    board = synthetic_board(tmp_path, THREE_SHOTS, options="{gpus: 0}")
    child = f"""
import sys, ray
import previz.engine.render as render
from previz.cli import main
real, calls = ray.init, []
def init(**options):
    calls.append(options)
    if len(calls) <= {failures}:
        raise Exception({TIMED_OUT!r})
    return real(**options)
ray.init = init
render.EMBEDDED_RETRY_PAUSE = (0.1, 0.2)
sys.exit(main(["render", {str(board)!r}, "--store", {str(tmp_path / "store")!r}]))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True,
                          text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    assert "could not start Ray on this machine (try 1 of 3): Exception: The current node " \
           "timed out during startup" in done.stderr
    if failures < 3:
        assert done.returncode == 0 and "version: v001" in done.stdout
    else:
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1].startswith(
            "previz: could not start Ray on this machine in 3 tries (the last: Exception: The "
            "current node timed out during startup")
        assert "start one local cluster" in done.stderr


def test_nothing_to_render_needs_no_cluster(tmp_path):
    board = synthetic_board(tmp_path, THREE_SHOTS, options="{gpus: 0}")
    store = str(tmp_path / "store")
    assert previz("render", str(board), "--store", store).returncode == 0
    started = time.monotonic()
    again = previz("render", str(board), "--store", store)
    assert again.returncode == 0 and "3 cached" in again.stdout
    assert "v001 (unchanged edit" in again.stdout
    # No Ray started: no progress while rendering, one line saying why.
    assert again.stderr.strip() == "previz: nothing to render: every take is in the store"
    assert time.monotonic() - started < 15
