"""The next render follows the reviewers' decisions (previz.dailies.decisions).

- an approved take becomes its shot's select; where the storyboard's `select:` says otherwise
  the render says so, and the decision wins (`--ignore-decisions` follows the storyboard);
- an approved keyframe still (from a `--stills` version) starts its shot's motion pass, as
  `still: approved` in the storyboard would;
- a shot marked needs work gets a new take, with the next seed, for each needs-work decision
  since its last pick or approval (`--retakes`); the old takes stay, and the new one is shown.
  Counting decisions, not renders, makes a second render with --retakes render nothing new;
- notes at frames become markers at the same frame of their shot in the new cut (OTIO markers,
  EDL comments), wherever the shot now sits.

A decision about a take the storyboard no longer makes (its prompt or seed was edited since) is
told and set aside: the take key in the decision is what it approved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from previz.assemble.types import ReviewNote
from previz.dailies.decisions import Action, ShotReview, read_decisions, shot_reviews
from previz.plan.types import RenderPlan
from previz.storyboard.model import LAYOUT_ANIMATIC

__all__ = ["Followed", "follow_decisions"]


@dataclass
class Followed:
    board: Any  # the storyboard with the decisions applied
    notes: dict[str, tuple[ReviewNote, ...]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    changed: bool = False


def follow_decisions(board, plan: RenderPlan, store, *, retakes: bool = False) -> Followed:
    """The storyboard as the decisions in `store` want it rendered, and what the render should
    say about it. `plan` is the storyboard's own plan (for the take keys decided on)."""
    decisions = read_decisions(store, plan.project, plan.sequence)
    followed = Followed(board)
    if not decisions:
        return followed
    reviews = shot_reviews(decisions)
    planned = {shot.id: shot for shot in plan.shots}
    shots = []
    for shot in board.shots:
        review = reviews.get(shot.id)
        updates = _shot_updates(shot, planned.get(shot.id), review, retakes, followed.messages)
        if updates:
            followed.changed = True
            shot = shot.model_copy(update=updates)
        shots.append(shot)
        if review and review.notes:
            followed.notes[shot.id] = _notes(store, plan, review)
    if followed.changed:
        followed.board = board.model_copy(update={"shots": shots})
    return followed


def _shot_updates(shot, planned, review: ShotReview | None, retakes: bool,
                  messages: list[str]) -> dict[str, Any]:
    if review is None or planned is None:
        return {}
    if review.needs_work:
        asked = _needs_work_since_choice(review)
        if not retakes:
            messages.append(f"{shot.id}: needs work ({asked} decision(s)) — render with --retakes "
                            "for a new take")
            return {}
        takes = shot.takes + asked
        messages.append(f"{shot.id}: needs work — take {takes} rendered with a new seed and "
                        "shown (the earlier takes are kept)")
        return {"takes": takes, "select": takes}
    if not review.approved or review.take is None:
        return {}
    if planned.still is not None and review.take_key == planned.still.key:
        return _still_approved(shot, review, messages)
    takes = {t.take: t.key for t in planned.takes}
    if takes.get(review.take) != review.take_key:
        messages.append(f"{shot.id}: take {review.take} approved by "
                        f"{review.history[-1].reviewer} is of an earlier edit of the shot (its "
                        "recipe changed since): the storyboard's select stands")
        return {}
    if review.take == shot.select:
        return {}
    messages.append(f"{shot.id}: take {review.take} approved by {review.history[-1].reviewer} "
                    f"({review.history[-1].version}) instead of the storyboard's select: "
                    f"{shot.select} — the decision wins (--ignore-decisions follows the "
                    "storyboard)")
    return {"select": review.take}


def _still_approved(shot, review: ShotReview, messages: list[str]) -> dict[str, Any]:
    if shot.still == "approved":
        return {}
    decided = review.history[-1]
    starts = ("continue:" if shot.continues else "layout: animatic"
              if shot.layout is not None and shot.layout.source == LAYOUT_ANIMATIC else None)
    if starts:
        messages.append(f"{shot.id}: its still, approved by {decided.reviewer} "
                        f"({decided.version}), cannot start the shot: {starts} does")
        return {}
    messages.append(f"{shot.id}: its still, approved by {decided.reviewer} ({decided.version}), "
                    "starts its motion pass")
    return {"still": "approved"}


def _needs_work_since_choice(review: ShotReview) -> int:
    count = 0
    for decision in review.history:
        if decision.action.chooses_take:
            count = 0
        elif decision.action is Action.NEEDS_WORK:
            count += 1
    return count


def _notes(store, plan: RenderPlan, review: ShotReview) -> tuple[ReviewNote, ...]:
    """The shot's notes at frames of the versions they were made on, as offsets into the shot
    (a note on the shot as a whole sits on its first frame)."""
    from previz.store import NotFound, read_manifest

    record_in: dict[str, int] = {}
    notes = []
    for note in review.notes:
        offset = 0
        if note.frame is not None:
            if note.version not in record_in:
                try:
                    manifest = read_manifest(store, plan.project, plan.sequence, note.version)
                except (NotFound, ValueError):  # a version no longer there: the shot's head
                    manifest = {"shots": []}
                record_in[note.version] = next((s["record_in"] for s in manifest["shots"]
                                                if s["id"] == review.shot), note.frame)
            offset = note.frame - record_in[note.version]
        notes.append(ReviewNote(offset=max(0, offset), text=note.note or "",
                                reviewer=note.reviewer, version=note.version,
                                timecode=note.timecode))
    return tuple(notes)
