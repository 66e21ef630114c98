"""Benchmark: does the plan's wall-time estimate hold? Prints estimate, measured time and ratio.

    python benchmarks/estimates.py [STORYBOARD ...]   (default: the three shipped storyboards)

Each storyboard is rendered with every shot on the draft model (CPU only, as
benchmarks/iteration.py does) into a fresh store with an embedded Ray, as `previz render` runs
without --address. Measured: the whole `previz render` process by the clock, and each part as the
render reports it (`time` in its --json). The estimate is the one the render reports for what it
set out to do (previz.plan.forecast); the goal is a ratio within 0.7-1.3.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from iteration import draft_copy  # noqa: E402

SHIPPED = ("demo.yaml", "lighthouse_sq020.yaml", "market_chase_sq030.yaml")


def measure(storyboard: Path, work: Path) -> tuple[float, dict]:
    board = draft_copy(storyboard, work / "board")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "previz", "render", str(board), "--store",
                           str(work / "store"), "--json"], env=env, capture_output=True,
                          text=True, cwd=ROOT)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{storyboard.name}: render failed:\n{done.stderr[-2000:]}")
    return wall, json.loads(done.stdout)["time"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("storyboards", nargs="*",
                        default=[str(ROOT / "storyboards" / name) for name in SHIPPED])
    args = parser.parse_args()
    print(f"{datetime.now():%Y-%m-%d}, every shot on the draft model, {os.cpu_count()} cores")
    worst = 1.0
    for name in args.storyboards:
        storyboard = Path(name).resolve()
        with tempfile.TemporaryDirectory(prefix="previz-estimates-") as scratch:
            wall, timing = measure(storyboard, Path(scratch))
        ratio = wall / timing["estimate_seconds"]
        worst = max(worst, ratio, 1 / ratio)
        parts = "  ".join(f"{part}={values['seconds']:.1f}/{values['estimate_seconds']:.1f}"
                          for part, values in timing["parts"].items())
        print(f"storyboard={storyboard.name}  measured_s={wall:.1f}  "
              f"estimate_s={timing['estimate_seconds']:.1f}  ratio={ratio:.2f}  "
              f"(measured/estimated by part: {parts})")
    print(f"worst ratio either way: {worst:.2f} (goal: at most 1.30)")


if __name__ == "__main__":
    main()
