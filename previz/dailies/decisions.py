"""Dailies decisions: what reviewers decided while watching a version, kept in the store.

Each decision is its own create-only object under `decisions/<project>/<sequence>/`, named by
its time and a random id, so any number of reviewers can decide at once, on a local store or on
S3, and none overwrites another (there is nothing to overwrite: no record is ever replaced).
What a shot stands at is the fold of its decisions in time order (`shot_reviews`):

    pick        take N is the one (not yet approved)
    approve     take N is approved: the next render selects it
    needs_work  the shot needs another take (`previz render --retakes` renders one)
    note        a note, at a frame of the cut (with its timecode) or on the shot as a whole
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from previz.store.keys import ID_PATTERN, check_id

__all__ = ["Action", "Decision", "ShotReview", "record_decision", "read_decisions",
           "shot_reviews", "decisions_prefix", "reviewed_sequences", "MAX_NOTE_CHARS"]

log = logging.getLogger(__name__)

FORMAT = "previz-decision/1"
MAX_NOTE_CHARS = 4000
_ID = Annotated[str, StringConstraints(pattern=f"^{ID_PATTERN.pattern}$")]


class Action(str, Enum):
    PICK = "pick"
    APPROVE = "approve"
    NEEDS_WORK = "needs_work"
    NOTE = "note"

    @property
    def chooses_take(self) -> bool:
        return self in (Action.PICK, Action.APPROVE)


class Decision(BaseModel):
    """One reviewer's decision about one shot of one version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = FORMAT
    id: str = Field(default_factory=lambda: secrets.token_hex(8), pattern=r"^[0-9a-f]{16}$")
    project: _ID
    sequence: _ID
    version: Annotated[str, StringConstraints(pattern=r"^v\d{3,4}$")]
    shot: _ID
    action: Action
    take: int | None = Field(default=None, ge=1)
    take_key: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    note: Annotated[str, StringConstraints(max_length=MAX_NOTE_CHARS)] | None = None
    frame: int | None = Field(default=None, ge=0, description="cut frame (0 = the first)")
    timecode: str | None = Field(default=None, pattern=r"^\d\d:\d\d:\d\d:\d\d$")
    reviewer: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    def model_post_init(self, _context: object) -> None:
        if self.action.chooses_take and (self.take is None or self.take_key is None):
            raise ValueError(f"a {self.action.value} decision names the take and its key")
        if self.action is Action.NOTE and not (self.note or "").strip():
            raise ValueError("a note decision needs the note's text")


def decisions_prefix(project: str, sequence: str) -> str:
    return f"decisions/{check_id('project', project)}/{check_id('sequence', sequence)}/"


def reviewed_sequences(store) -> list[tuple[str, str]]:
    """(project, sequence) of every sequence with decisions in the store."""
    found = set()
    for key in store.list("decisions/"):
        parts = key.split("/")
        if len(parts) == 4:
            found.add((parts[1], parts[2]))
    return sorted(found)


def record_decision(store, decision: Decision) -> str:
    """Write the decision as a new object (create-only: never replaces one); returns its key."""
    stamp = decision.at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{decisions_prefix(decision.project, decision.sequence)}{stamp}-{decision.id}.json"
    store.put_bytes(key, (decision.model_dump_json(indent=2) + "\n").encode(),
                    create_only=True)
    return key


def read_decisions(store, project: str, sequence: str) -> list[Decision]:
    """Every decision about the sequence, oldest first. A record that does not parse (written
    by hand, or by a newer previz) is skipped with a warning naming it, not fatal."""
    decisions = []
    for key in store.list(decisions_prefix(project, sequence)):
        if not key.endswith(".json"):
            continue
        try:
            decisions.append(Decision.model_validate(json.loads(store.get_bytes(key))))
        except ValueError as error:
            log.warning("%s: %s is not a decision previz can read, skipped (%s)", store.uri,
                        key, str(error).splitlines()[0])
    return sorted(decisions, key=lambda d: (d.at, d.id))


@dataclass
class ShotReview:
    """Where a shot stands after its decisions, oldest first."""

    shot: str
    take: int | None = None  # the take picked or approved last
    take_key: str | None = None
    approved: bool = False  # the last take decision was an approval, with no needs-work after
    needs_work: bool = False  # the last status decision was needs work
    notes: list[Decision] = field(default_factory=list)
    history: list[Decision] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "approved" if self.approved else "needs work" if self.needs_work else (
            "picked" if self.take else "")


def shot_reviews(decisions: Iterable[Decision], version: str | None = None
                 ) -> dict[str, ShotReview]:
    """Each shot's standing, from decisions about any version (a take approved in v002 stays
    approved in v003); `version` keeps only that version's notes."""
    reviews: dict[str, ShotReview] = {}
    for decision in sorted(decisions, key=lambda d: (d.at, d.id)):
        review = reviews.setdefault(decision.shot, ShotReview(decision.shot))
        review.history.append(decision)
        if decision.action.chooses_take:
            review.take, review.take_key = decision.take, decision.take_key
            review.approved = decision.action is Action.APPROVE
            review.needs_work = False
        elif decision.action is Action.NEEDS_WORK:
            review.needs_work, review.approved = True, False
        if decision.note and (version is None or decision.version == version):
            review.notes.append(decision)
    return reviews
