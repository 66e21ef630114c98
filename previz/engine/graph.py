"""The work graph of a render: which tasks remain, which are ready, which go first.

Pure (no ray): the engine asks it what to run next and tells it what finished or failed. Ready
work is ordered so the whole plan finishes early: longest remaining chain first, then the largest
estimated cost, which keeps the makespan near max(total work / GPUs, longest chain).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum

from previz.plan.types import RenderPlan, ShotTask, TakePlan

__all__ = ["TaskStatus", "TaskState", "WorkGraph"]


class TaskStatus(str, Enum):
    """Where one task (one generator call) stands in this render."""

    PENDING = "pending"  # to do: ready once what it needs is done
    RUNNING = "running"  # handed to a worker
    DONE = "done"  # published (in this render, or already in the store)
    FAILED = "failed"  # out of attempts
    BLOCKED = "blocked"  # needs a task that failed
    DEFERRED = "deferred"  # put off for a deadline: a stand-in shows instead
    SKIPPED = "skipped"  # not wanted by this render (--only) and not needed by what is

    @property
    def is_terminal(self) -> bool:
        return self not in (TaskStatus.PENDING, TaskStatus.RUNNING)


@dataclass
class TaskState:
    task: ShotTask
    take: TakePlan
    needs: set[str] = field(default_factory=set)  # task keys that must finish first
    dependents: set[str] = field(default_factory=set)
    chain_seconds: float = 0.0  # estimated seconds from this task's start to its chain's end
    status: TaskStatus = TaskStatus.PENDING
    attempts: int = 0
    error: str | None = None

    @property
    def key(self) -> str:
        return self.task.key


class WorkGraph:
    def __init__(self, plan: RenderPlan, done_keys: Iterable[str] = (), wanted_takes=None):
        """`done_keys`: take and task keys already in the store. `wanted_takes`: the take keys to
        render (default: all); what they depend on is added."""
        self.states: dict[str, TaskState] = {}
        self._final_task_of_take: dict[str, str] = {}
        takes = {take.key: take for take in plan.needed_takes()}
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
                    self.states[task.key].status = TaskStatus.DONE
        for key in done & self.states.keys():
            self.states[key].status = TaskStatus.DONE
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
            if key not in keep and self.states[key].status != TaskStatus.DONE:
                self.states[key].status = TaskStatus.SKIPPED

    def _compute_chains(self) -> None:
        memo: dict[str, float] = {}

        def chain(key: str) -> float:
            if key not in memo:
                state = self.states[key]
                own = (0.0 if state.status in (TaskStatus.DONE, TaskStatus.SKIPPED)
                       else state.task.estimate_seconds)
                memo[key] = own + max((chain(d) for d in state.dependents), default=0.0)
            return memo[key]

        for key, state in self.states.items():
            state.chain_seconds = chain(key)

    # queries
    def ready(self) -> list[TaskState]:
        """Pending tasks whose needs are done, best first."""
        ready = [s for s in self.states.values() if s.status == TaskStatus.PENDING
                 and all(self.states[n].status == TaskStatus.DONE for n in s.needs)]
        ready.sort(key=lambda s: (-s.chain_seconds, -s.task.estimate_seconds, s.key))
        return ready

    def remaining(self) -> list[TaskState]:
        return [s for s in self.states.values() if not s.status.is_terminal]

    def finished(self) -> bool:
        return not self.remaining()

    def longest_chain_seconds(self) -> float:
        return max((s.chain_seconds for s in self.states.values()), default=0.0)

    # transitions
    def start(self, key: str) -> None:
        state = self.states[key]
        state.status = TaskStatus.RUNNING
        state.attempts += 1

    def requeue(self, key: str, error: str, charged: bool = True) -> None:
        """Back to pending; an attempt that was not the shot's fault (`charged=False`: it never
        started, or its node went away) does not count against its limit."""
        state = self.states[key]
        state.status, state.error = TaskStatus.PENDING, error
        if not charged:
            state.attempts -= 1

    def finish(self, key: str) -> None:
        self.states[key].status = TaskStatus.DONE

    def fail(self, key: str, error: str) -> list[str]:
        """Mark a task failed; everything that needs it is blocked. Returns the blocked keys."""
        state = self.states[key]
        state.status, state.error = TaskStatus.FAILED, error
        blocked: list[str] = []
        stack = list(state.dependents)
        while stack:
            dependent = self.states[stack.pop()]
            if not dependent.status.is_terminal:
                dependent.status = TaskStatus.BLOCKED
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
            if any(s.status not in (TaskStatus.PENDING, TaskStatus.BLOCKED)
                   for s in states) or any(d is current for d in deferred):
                continue
            for state in states:
                state.status = TaskStatus.DEFERRED
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
                if needed is None or needed.status not in (TaskStatus.PENDING, TaskStatus.RUNNING,
                                                           TaskStatus.DONE):
                    return False
        return True

    def add_take(self, take: TakePlan, done: bool = False) -> None:
        """Add a take outside the plan's own (a deadline's draft or fewer-steps take)."""
        self._final_task_of_take[take.key] = take.tasks[-1].key
        added = []
        for task in take.tasks:
            if task.key not in self.states:
                self.states[task.key] = TaskState(
                    task=task, take=take, status=TaskStatus.DONE if done else TaskStatus.PENDING)
                added.append(self.states[task.key])
        for state in added:
            self._link(state)
        self._compute_chains()

    def take_status(self, take: TakePlan) -> TaskStatus | None:
        """The status of a take's least advanced task; None for a take not in this render."""
        if any(t.key not in self.states for t in take.tasks):
            return None
        statuses = {self.states[t.key].status for t in take.tasks}
        for status in (TaskStatus.FAILED, TaskStatus.BLOCKED, TaskStatus.RUNNING,
                       TaskStatus.PENDING, TaskStatus.DEFERRED, TaskStatus.SKIPPED):
            if status in statuses:
                return status
        return TaskStatus.DONE
