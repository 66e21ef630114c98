"""The deadline policy: what to put off so the cut is published by a set time, and what stands in
for it. Pure (no ray, no clock of its own): the dispatcher asks it on every tick.

Work is projected at the pace this cluster has shown (`Pace`): when the final-quality work left
cannot finish on the GPU lanes before the engine must stop, the least critical takes not yet
started are put off (and what continues them), and each shot's stand-in is added in their place:
its draft animatic, or with `fallback="fewer-steps"` the same model at a quarter of the steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from previz.engine.graph import TaskState, TaskStatus, WorkGraph
from previz.generate.registry import generator_declaration
from previz.plan.types import RenderPlan, TakePlan

__all__ = ["DeadlinePolicy", "Pace", "PutOff", "DEADLINE_MARGIN_SECONDS",
           "PUBLISH_WAIT_SECONDS"]

DEADLINE_MARGIN_SECONDS = 2.0  # kept for drafting what is put off and for stopping cleanly
PUBLISH_WAIT_SECONDS = 5.0  # at the deadline, how long encodes in flight may take to publish


def final_quality(state: TaskState) -> bool:
    return generator_declaration(state.task.generator).final_quality


class Pace:
    """Measured seconds per estimated second: from finished tasks, and at least what the running
    ones already show (a slow start counts before anything finishes)."""

    def __init__(self) -> None:
        self._measured = 0.0
        self._estimated = 0.0

    def record(self, measured: float, estimated: float) -> None:
        self._measured += measured
        self._estimated += estimated

    def factor(self, now: float, running: Iterable[tuple[float, float]] = ()) -> float:
        """`running`: (estimated seconds, when its generation began) of each task under way."""
        pace = self._measured / self._estimated if self._estimated > 0 else 1.0
        for estimate, began in running:
            if estimate > 0:
                pace = max(pace, (now - began) / estimate)
        return pace


@dataclass(frozen=True)
class PutOff:
    """A selected take put off for the deadline, and what the cut shows instead (None: nothing
    can stand in, the shot gets a placeholder)."""

    put_off: TakePlan
    stand_in: TakePlan | None


@dataclass
class DeadlinePolicy:
    deadline: float  # epoch seconds by which the cut must be published
    reserve: float = 0.0  # seconds the cut's assembly and publication need before it
    fallback: Literal["draft", "fewer-steps"] = "draft"
    # Stand-in takes already in the store: added as done, never rendered again.
    published: frozenset[str] = frozenset()
    stand_ins: set[str] = field(default_factory=set)  # take keys added in place of others

    @property
    def stop_at(self) -> float:
        """The engine stops early enough for the last encodes to publish and for the cut to be
        assembled and published by the deadline itself."""
        return self.deadline - self.reserve - PUBLISH_WAIT_SECONDS

    def must_stop(self, now: float) -> bool:
        return now >= self.stop_at

    def put_off(self, plan: RenderPlan, graph: WorkGraph, now: float, lanes: int,
                pace: float) -> list[PutOff]:
        """Put off what cannot finish in time (changing `graph`); returns what was put off and
        the stand-ins added for it. `lanes`: the GPUs working."""
        gpu_work = [s for s in graph.remaining() if final_quality(s)]
        work = sum(s.task.estimate_seconds * (0.5 if s.status is TaskStatus.RUNNING else 1.0)
                   for s in gpu_work) * pace
        finish_by = self.stop_at - DEADLINE_MARGIN_SECONDS
        # Final-quality takes before fewer-steps stand-ins (those become drafts only once no
        # final is left to shorten), and least critical first: what best-first would start last.
        candidates = sorted(
            {s.take.key: s for s in gpu_work if s.status is TaskStatus.PENDING}.values(),
            key=lambda s: (s.take.key in self.stand_ins, s.chain_seconds,
                           s.task.estimate_seconds))
        decisions: list[PutOff] = []
        for state in candidates:
            # on the widest gang it may have (the dispatcher widens what would miss otherwise)
            fastest = max(state.task.speedups, default=1.0)
            too_long = now + state.chain_seconds / fastest * pace > finish_by
            if state.status is not TaskStatus.PENDING or (
                    not too_long and now + work / max(1, lanes) <= finish_by):
                continue
            for take in graph.defer(state.take):
                work -= sum(t.estimate_seconds for t in take.tasks) * pace
                stand_in = self._stand_in(plan, graph, take)
                if (stand_in is not None
                        and generator_declaration(stand_in.final_task.generator).final_quality
                        and graph.take_status(stand_in) is not TaskStatus.DONE):
                    work += sum(t.estimate_seconds for t in stand_in.tasks) * pace
                if take.selected:
                    decisions.append(PutOff(take, stand_in))
        return decisions

    def _stand_in(self, plan: RenderPlan, graph: WorkGraph, take: TakePlan) -> TakePlan | None:
        """Add what the cut shows instead of a selected take put off: its fewer-steps take when
        the render asks for one (and that can still be made), else its draft."""
        if not take.selected:
            return None
        shot = plan.shot(take.shot_id)
        stand_in = shot.fallback
        reduced = shot.reduced
        if (self.fallback == "fewer-steps" and reduced is not None and take.key != reduced.key
                and graph.can_add(reduced)):
            stand_in = reduced
        if stand_in is None:
            return None
        self.stand_ins.add(stand_in.key)
        graph.add_take(stand_in, done=stand_in.key in self.published)
        return stand_in
