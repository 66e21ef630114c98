"""What the engine takes and gives: its settings, and the report of a render (each shot's
outcome, every attempt as a ledger row). Plain data: no ray."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Literal

from previz.errors import PrevizError

if TYPE_CHECKING:
    from previz.engine.graph import TaskStatus
    from previz.store.ledger import Attempt

__all__ = ["EngineSettings", "ShotStatus", "ShotOutcome", "RenderReport", "RenderInterrupted"]


class RenderInterrupted(PrevizError):
    exit_code = 130


@dataclass
class EngineSettings:
    max_attempts: int = 3
    # A worker that fails this many different shots is retired for the run.
    retire_after_failures: int = 3
    # Tasks queued on a warm worker at once: the next call is already waiting when one ends.
    queue_depth: int = 2
    # Seconds without progress before a running task counts as hung (None: 20x its estimate,
    # at least 10 minutes).
    task_timeout: float | None = None
    worker_options: dict[str, Any] = field(default_factory=dict)
    ledger_flush_seconds: float = 5.0
    # CPU-only generators (draft, synthetic) get one worker per this many CPUs, leaving room for
    # the encode tasks beside them.
    cpus_per_cpu_worker: int = 2
    # At most this many GPU workers (None: as many as the cluster's GPUs allow).
    max_gpu_workers: int | None = None
    # Epoch seconds by which a cut must exist: shots that cannot finish at final quality in time
    # are rendered as drafts instead, and at the deadline the render stops with what exists.
    deadline: float | None = None
    # What stands in for a shot put off by the deadline: the draft animatic, or the same model
    # at fewer steps (the plan's `reduced` take; a draft when even that cannot finish).
    deadline_fallback: Literal["draft", "fewer-steps"] = "draft"
    # Seconds before the deadline that the cut needs to be assembled and published.
    deadline_reserve: float = 0.0
    # How long work no node can host waits for an autoscaler before the render fails (None:
    # 120 s on a cluster, none on the embedded one, which has no autoscaler).
    capacity_wait_seconds: float | None = None


class ShotStatus(str, Enum):
    """How a shot came out of a render."""

    RENDERED = "rendered"
    CACHED = "cached"  # its take was already in the store
    DRAFT = "draft"  # a stand-in shows (the deadline's, or --draft): the next render upgrades it
    FAILED = "failed"  # out of attempts, or needs a shot that is: a placeholder shows
    MISSING = "missing"  # left out by --only and not in the store either

    @property
    def in_cut(self) -> bool:
        """Whether the cut shows a take of the shot (not a placeholder)."""
        return self in (ShotStatus.RENDERED, ShotStatus.CACHED, ShotStatus.DRAFT)


@dataclass
class ShotOutcome:
    id: str
    status: ShotStatus
    take: str  # the key of the take the cut shows (the stand-in's, for a draft)
    cached: bool
    error: str | None = None  # why it failed, or what the stand-in is

    def __post_init__(self) -> None:
        self.status = ShotStatus(self.status)

    @property
    def draft(self) -> bool:
        return self.status is ShotStatus.DRAFT


@dataclass
class RenderReport:
    run_id: str
    shots: list[ShotOutcome]
    attempts: list[Attempt]
    started: float
    finished: float
    gaps: list[float]  # seconds a worker sat idle between two tasks while work was queued
    loads: int
    take_status: dict[str, TaskStatus]  # every take of the plan this render knew of
    # What the render set out to do, for its estimate (previz.plan.forecast), and what the
    # cluster cost: starting or connecting to it and leaving it, in seconds.
    tasks_to_render: tuple[str, ...] = ()
    lanes: int = 0  # the most workers at once
    embedded: bool = True
    cluster_seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return all(s.status.in_cut for s in self.shots)

    @property
    def gpu_seconds(self) -> float:
        return sum(a.gpu_seconds for a in self.attempts)

    def rendered_keys(self) -> list[str]:
        return [a.take_key for a in self.attempts if a.outcome == "ok"]
