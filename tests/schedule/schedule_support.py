"""Helpers for the schedule tests: job files beside tiny storyboards."""

from __future__ import annotations

import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Three shots of Wan 2.1 1.3B at its native 832x480 and 50 steps: 65, 33 and 33 frames at 16 fps.
WAN_BOARD = """\
project: TEST
sequence: SQ010
fps: 24
resolution: 832x480
defaults: {model: wan2.1-t2v-1.3b, steps: 50, seed: 1}
shots:
  - {id: SH0010, duration: 4s, prompt: harbour}
  - {id: SH0020, duration: 2s, prompt: boat}
  - {id: SH0030, duration: 2s, prompt: gull}
"""
SYNTHETIC_BOARD = """\
project: TEST
sequence: SQ020
fps: 24
resolution: 64x36
defaults: {model: synthetic, seed: 1, options: {seconds_per_frame: 0.001}}
shots:
  - {id: SH0010, duration: 4f, prompt: harbour}
"""


def write_job(folder: Path, body: str, *, board: str = WAN_BOARD, name: str = "job.yaml",
              board_name: str = "board.yaml") -> Path:
    """A job file in `folder/jobs/` naming `../boards/<board_name>`."""
    boards = folder / "boards"
    boards.mkdir(parents=True, exist_ok=True)
    (boards / board_name).write_text(board)
    jobs = folder / "jobs"
    jobs.mkdir(parents=True, exist_ok=True)
    path = jobs / name
    path.write_text(textwrap.dedent(body))
    return path


def job_text(store: Path | str, *, cron: str = "30 19 * * MON-FRI",
             timezone: str = "Europe/London", deadline: str = '"07:00"',
             cluster: str = "http://127.0.0.1:8265", extra: str = "",
             storyboards: str = "[../boards/board.yaml]") -> str:
    return textwrap.dedent(f"""\
        name: test-nightly
        storyboards: {storyboards}
        store: {store}
        cluster: {cluster}
        schedule:
          cron: "{cron}"
          timezone: {timezone}
        deadline: {deadline}
        """) + textwrap.dedent(extra)
