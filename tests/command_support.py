"""`previz` run as a user runs it, in a process of its own, with an environment that holds none
of this machine's Ray, signing or reviewer settings: a test adds the ones it means to test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_HOST_SETTINGS = ("RAY_", "PREVIZ_C2PA", "PREVIZ_REVIEW")


def clean_env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_HOST_SETTINGS)} | extra


def run_previz(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "previz", *args], env=env or clean_env(),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def render_json(board: Path, store: Path, *args: str, env: dict[str, str] | None = None,
                timeout: float = 300) -> dict:
    """`previz render BOARD --store STORE --json ARGS`, which must succeed: its summary, and
    what it said on stderr under "stderr"."""
    done = run_previz("render", str(board), "--store", str(store), "--json", *args, env=env,
                      timeout=timeout)
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout), "stderr": done.stderr}
