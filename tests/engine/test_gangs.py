"""Shots on several GPUs, on real Ray: a gang of workers (one per logical GPU, one placement
group on one node) renders a shot together and rank 0 publishes it; a gang that loses a member
is formed again and the shot retried, charged once (frames of a gang: test_gang_frames.py)."""

from __future__ import annotations

import json
import textwrap

import pytest

from previz.engine import render_plan
from previz.plan import plan_from_storyboard
from previz.store import open_store
from previz.store.ledger import read_ledger
from previz.store.takes import read_take_record
from previz.storyboard import load_storyboard

pytestmark = pytest.mark.slow


def test_a_gang_renders_a_shot_and_one_that_loses_a_member_is_formed_again(
        ray_cluster, tmp_path):
    # Rank 1 of the first gang dies on the first attempt: the gang is lost, not the shot.
    faults = json.dumps([{"shot": "SH0010", "attempt": 1, "rank": 1, "kind": "exit",
                          "step": 1}])
    board = tmp_path / "board.yaml"
    board.write_text(textwrap.dedent(f"""\
        project: TEST
        sequence: SQ010
        fps: 24
        resolution: 192x108
        defaults: {{model: synthetic, seed: 1, steps: 4, gpus: 1,
                    options: {{seconds_per_frame_step: 0.005, faults: '{faults}'}}}}
        shots:
          - {{id: SH0010, duration: 24f, prompt: wide, gpus: 2}}
          - {{id: SH0020, duration: 12f, prompt: narrow}}
        """))
    plan = plan_from_storyboard(load_storyboard(board))
    store_uri = str(tmp_path / "store")
    report = render_plan(plan, store_uri)
    assert [s.status for s in report.shots] == ["rendered", "rendered"]
    wide = plan.shots[0].selected_take
    rows = sorted((a for a in report.attempts if a.take_key == wide.key),
                  key=lambda a: a.attempt)
    assert [(a.attempt, a.outcome) for a in rows] == [(1, "failed"), (2, "ok")]
    assert "worker lost" in rows[0].error
    record = read_take_record(open_store(store_uri), wide.key)
    assert record["attempt"] == 2 and record["gpus"] == 2
    # One take, written once: the ledger's rows for it from what published it.
    ledger = sorted((row for row in read_ledger(open_store(store_uri)).to_pylist()
                     if row["take_key"] == wide.key), key=lambda row: row["attempt"])
    assert [row["outcome"] for row in ledger] == ["failed", "ok"]
    took = (ledger[1]["finished_at"] - ledger[1]["started_at"]).total_seconds()
    assert ledger[1]["gpu_seconds"] >= 2 * took  # two GPUs for as long as it took
