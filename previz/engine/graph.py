"""The work graph of a render: which tasks remain, which are ready, which go first.

Pure (no ray): the engine asks it what to run next and tells it what finished or failed. Ready
work is ordered so the whole plan finishes early: longest remaining chain first, then the largest
estimated cost, which keeps the makespan near max(total work / GPUs, longest chain).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from previz.plan.types import RenderPlan, ShotTask, TakePlan

__all__ = ["TaskState", "WorkGraph"]


@dataclass
class TaskState:
    task: ShotTask
    take: TakePlan
    needs: set[str] = field(default_factory=set)  # task keys that must finish first
    dependents: set[str] = field(default_factory=set)
    chain_seconds: float = 0.0  # estimated seconds from this task's start to its chain's end
    status: str = "pending"  # pending | running | done | failed | blocked | deferred | skipped
    attempts: int = 0
    error: str | None = None

    @property
    def key(self) -> str:
        return self.task.key

    @property
    def is_final(self) -> bool:
        """The last segment: finishing it publishes the take."""
        return self.task.segment == self.task.segments - 1


class WorkGraph:
    def __init__(self, plan: RenderPlan, done_keys: Iterable[str] = (), wanted_takes=None):
        """`done_keys`: take and task keys already in the store. `wanted_takes`: the take keys to
        render (default: all); what they depend on is added."""
        self.states: dict[str, TaskState] = {}
        self._final_task_of_take: dict[str, str] = {}
        takes = {take.key: take for take in plan.takes()}
        for take in takes.values():
            for task in take.tasks:
                self.states[task.key] = TaskState(task=task, take=take)
            self._final_task_of_take[take.key] = take.tasks[-1].key
        done = set(done_keys)
        for state in self.states.values():
            self._link(state)
        # A published take makes all of its segments done; a published segment is done.
        for take_key, take in takes.items():
            if take_key in done:
                for task in take.tasks:
                    self.states[task.key].status = "done"
        for key in done & self.states.keys():
            self.states[key].status = "done"
        if wanted_takes is not None:
            self._restrict(wanted_takes, takes)
        self._compute_chains()

    def _link(self, state: TaskState) -> None:
        dep = state.task.depends_on
        if dep:
            needed = self._final_task_of_take.get(dep, dep)
            state.needs.add(needed)
            self.states[needed].dependents.add(state.key)

    def _restrict(self, wanted_takes: Iterable[str], takes: dict[str, TakePlan]) -> None:
        keep: set[str] = set()
        stack = [task.key for key in wanted_takes for task in takes[key].tasks]
        while stack:
            key = stack.pop()
            if key in keep:
                continue
            keep.add(key)
            stack.extend(self.states[key].needs)
        for key in list(self.states):
            if key not in keep and self.states[key].status != "done":
                self.states[key].status = "skipped"

    def _compute_chains(self) -> None:
        memo: dict[str, float] = {}

        def chain(key: str) -> float:
            if key not in memo:
                state = self.states[key]
                own = 0.0 if state.status in ("done", "skipped") else state.task.estimate_seconds
                memo[key] = own + max((chain(d) for d in state.dependents), default=0.0)
            return memo[key]

        for key, state in self.states.items():
            state.chain_seconds = chain(key)

    # queries
    def ready(self) -> list[TaskState]:
        """Pending tasks whose needs are done, best first."""
        ready = [s for s in self.states.values() if s.status == "pending"
                 and all(self.states[n].status == "done" for n in s.needs)]
        ready.sort(key=lambda s: (-s.chain_seconds, -s.task.estimate_seconds, s.key))
        return ready

    def remaining(self) -> list[TaskState]:
        return [s for s in self.states.values() if s.status in ("pending", "running")]

    def finished(self) -> bool:
        return not self.remaining()

    def longest_chain_seconds(self) -> float:
        return max((s.chain_seconds for s in self.states.values()), default=0.0)

    def remaining_models(self) -> set[str]:
        return {s.task.model for s in self.remaining()}

    # transitions
    def start(self, key: str) -> None:
        state = self.states[key]
        state.status = "running"
        state.attempts += 1

    def requeue(self, key: str, error: str) -> None:
        state = self.states[key]
        state.status, state.error = "pending", error

    def finish(self, key: str) -> None:
        self.states[key].status = "done"

    def fail(self, key: str, error: str) -> list[str]:
        """Mark a task failed; everything that needs it is blocked. Returns the blocked keys."""
        state = self.states[key]
        state.status, state.error = "failed", error
        blocked: list[str] = []
        stack = list(state.dependents)
        while stack:
            dependent = self.states[stack.pop()]
            if dependent.status in ("pending", "running"):
                dependent.status = "blocked"
                dependent.error = f"needs {state.task.shot_id}, which failed"
                blocked.append(dependent.key)
                stack.extend(dependent.dependents)
        return blocked

    def defer(self, take: TakePlan) -> list[TakePlan]:
        """Put off a take not yet started (a deadline nears), and every take that needs it.

        Returns the deferred takes, so the caller can render stand-ins (drafts) instead.
        """
        deferred: list[TakePlan] = []
        stack = [take]
        while stack:
            current = stack.pop()
            states = [self.states[t.key] for t in current.tasks]
            if any(s.status not in ("pending", "blocked") for s in states) or any(
                    d is current for d in deferred):
                continue
            for state in states:
                state.status = "deferred"
                stack.extend(self.states[d].take for d in state.dependents)
            deferred.append(current)
        return deferred

    def can_add(self, take: TakePlan) -> bool:
        """Whether a take outside the plan's own could still be rendered: what it continues
        is done or still to come (not put off, failed or left out)."""
        inside = {task.key for task in take.tasks}
        for task in take.tasks:
            dep = task.depends_on
            if dep and dep not in inside:
                needed = self.states.get(self._final_task_of_take.get(dep, dep))
                if needed is None or needed.status not in ("pending", "running", "done"):
                    return False
        return True

    def add_take(self, take: TakePlan, done: bool = False) -> None:
        """Add a take outside the plan's own (a deadline's draft or fewer-steps take)."""
        self._final_task_of_take[take.key] = take.tasks[-1].key
        added = []
        for task in take.tasks:
            if task.key not in self.states:
                self.states[task.key] = TaskState(task=task, take=take,
                                                  status="done" if done else "pending")
                added.append(self.states[task.key])
        for state in added:
            self._link(state)
        self._compute_chains()

    def take_status(self, take: TakePlan) -> str:
        if any(t.key not in self.states for t in take.tasks):
            return "absent"
        statuses = {self.states[t.key].status for t in take.tasks}
        for status in ("failed", "blocked", "running", "pending", "deferred", "skipped"):
            if status in statuses:
                return status
        return "done"
