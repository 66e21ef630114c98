"""An approved keyframe still (from a `--stills` version) starts its shot's motion pass in the
next render, as `still: approved` in the storyboard would."""

from __future__ import annotations

import textwrap

from previz.dailies.decisions import Action, Decision, record_decision
from previz.dailies.follow import follow_decisions
from previz.plan import plan_from_storyboard
from previz.store import open_store
from previz.storyboard import storyboard_from_text

BOARD = """\
project: LIGHTHOUSE
sequence: SQ060
fps: 24
defaults: {model: wan, seed: 3}
shots:
  - {id: SH0010, duration: 2s, prompt: the harbour at dusk}
  - {id: SH0020, duration: 2s, prompt: the quay, continue: SH0010}
"""


def approve(store, plan, shot: int, key: str) -> None:
    record_decision(store, Decision(project=plan.project, sequence=plan.sequence,
                                    version="v001", shot=plan.shots[shot].id, reviewer="ana",
                                    action=Action.APPROVE, take=1, take_key=key))


def test_an_approved_still_starts_its_shots_motion_pass(tmp_path):
    board = storyboard_from_text(textwrap.dedent(BOARD), "b.yaml", str(tmp_path))
    plan = plan_from_storyboard(board)
    store = open_store(str(tmp_path / "store"))
    approve(store, plan, 0, plan.shots[0].still.key)
    approve(store, plan, 1, plan.shots[1].still.key)  # it continues SH0010: that starts it
    followed = follow_decisions(board, plan, store)
    assert followed.changed
    assert [s.still for s in followed.board.shots] == ["approved", None]
    assert followed.messages == [
        "SH0010: its still, approved by ana (v001), starts its motion pass",
        "SH0020: its still, approved by ana (v001), cannot start the shot: continue: does"]
    after = plan_from_storyboard(followed.board)
    assert after.shots[0].selected_take.tasks[0].depends_on == plan.shots[0].still.key
    # Followed once, nothing more to change.
    assert not follow_decisions(followed.board, after, store).changed
