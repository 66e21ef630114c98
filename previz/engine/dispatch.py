"""Dispatch as a pure state machine: typed events in, actions out.

Every rule of a render lives here: which ready task goes to which warm worker, what a failure
costs the shot, when a failing worker is retired and a hung one replaced, how many workers the
cluster gets, what a deadline puts off. Nothing here imports ray or reads a clock: each event
carries the time, so every rule is a fast table-driven test (tests/engine/test_dispatch.py). The
Ray side (`render.py`) turns Ray results into events, classified by exception type, and carries
out the actions, as Ray's own job manager runs over its job state machine.

    dispatcher = Dispatcher(plan, graph, settings, run_id=...)
    actions = dispatcher.handle(Tick(now, cluster=ClusterView(...)))   # StartWorker, Assign ...
    actions = dispatcher.handle(TaskRendered(...))                      # Record, Assign ...
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from previz.catalog import model_spec
from previz.engine.deadline import (
    DEADLINE_MARGIN_SECONDS,
    PUBLISH_WAIT_SECONDS,
    DeadlinePolicy,
    Pace,
    final_quality,
)
from previz.engine.graph import TaskState, TaskStatus, WorkGraph
from previz.engine.types import EngineSettings, ShotOutcome, ShotStatus
from previz.errors import InvalidInput
from previz.plan.forecast import WORKER_START_SECONDS
from previz.plan.gangs import Malleable, allot
from previz.plan.types import RenderPlan, ShotPlan, TakePlan
from previz.store.ledger import Attempt, Outcome

__all__ = [
    "FailureKind", "WorkerStatus", "Worker", "QueuedTask", "ClusterView", "ProgressView",
    "WorkerStarted", "WorkerStartFailed", "TaskRendered", "TaskFailed", "WorkerLost",
    "TakePublished", "PublishFailed", "Tick", "Stopped", "Event",
    "StartWorker", "Assign", "StopWorker", "Record", "StandIn", "Stop", "Action",
    "Dispatcher", "Snapshot", "RunningTask", "wanted_takes", "keys_of", "draft_takes",
    "still_takes",
    "work_graph", "shot_outcomes",
    "PREFETCH_SECONDS", "MAX_ENCODES_PER_WORKER", "MAX_FAILED_STARTS", "STOP_WAIT_SECONDS",
]

PREFETCH_SECONDS = 1.0  # how long before a running task's expected end the next one is queued
MAX_ENCODES_PER_WORKER = 2  # takes a worker may have waiting on encode before it gets more work
MAX_FAILED_STARTS = 10  # workers in a row that died before their first task: the render stops
STOP_WAIT_SECONDS = 60.0  # how long a stopping render lets finished takes publish
CLUSTER_CAPACITY_WAIT_SECONDS = 120.0  # how long work no node can host waits for an autoscaler


class FailureKind(str, Enum):
    """Why an attempt failed, which decides what it costs."""

    LOST_WORKER = "lost_worker"  # its process died (crashed, killed, hung): the running task pays
    LOST_NODE = "lost_node"  # its node went away (a spot reclaim, a crash): not the shot's fault
    OUT_OF_MEMORY = "out_of_memory"  # retried with the lighter options the generator suggests
    STORE = "store"  # the store failed: nothing more can publish, the render stops
    GENERATOR = "generator"  # the generator or its encode raised: retried elsewhere

    @property
    def charged(self) -> bool:
        """Whether the attempt counts against the shot's limit."""
        return self is not FailureKind.LOST_NODE


class WorkerStatus(str, Enum):
    STARTING = "starting"  # asked for; gets no work until placed (it may wait for capacity)
    READY = "ready"
    RETIRING = "retiring"  # failed too many shots: no more work, leaves once its queue drains
    GONE = "gone"

    @property
    def is_terminal(self) -> bool:
        return self is WorkerStatus.GONE


@dataclass
class QueuedTask:
    key: str
    attempt: int
    submitted: float


@dataclass
class Worker:
    """A warm worker as the dispatcher sees it. It runs its queue in order, one task at a time:
    the head is running, the rest wait on it. A worker of several GPUs is a gang: one process
    per GPU of one node, running each task together."""

    id: str
    gpus: int
    status: WorkerStatus = WorkerStatus.STARTING
    node: str = ""
    model: str | None = None
    queue: list[QueuedTask] = field(default_factory=list)
    busy_since: float = 0.0
    last_finished: float | None = None
    failed_shots: set[str] = field(default_factory=set)

    def fits(self, state: TaskState) -> bool:
        if not self.gpus:
            return not state.task.gpus
        return self.gpus in state.task.gang_sizes()

    def entry(self, key: str) -> QueuedTask | None:
        return next((entry for entry in self.queue if entry.key == key), None)


@dataclass
class _Encoding:
    """A generated task handed to an encode task, not yet published."""

    key: str
    attempt: int
    worker: Worker
    started: float
    finished: float
    load_seconds: float


@dataclass(frozen=True)
class ClusterView:
    gpus: int  # in the whole cluster
    cpus: int
    largest_node_gpus: int


@dataclass(frozen=True)
class ProgressView:
    """What the workers' progress board said last (task key -> ...)."""

    began: dict[str, float] = field(default_factory=dict)  # generation began (after a load)
    last_step: dict[str, float] = field(default_factory=dict)  # a denoising step last ended
    steps: dict[str, tuple[int, int]] = field(default_factory=dict)  # (step, of total)


# events: what happened, and when
@dataclass(frozen=True)
class WorkerStarted:
    worker: str
    node: str
    now: float


@dataclass(frozen=True)
class WorkerStartFailed:
    worker: str
    error: str
    now: float


@dataclass(frozen=True)
class TaskRendered:
    worker: str
    key: str
    started: float  # when generation began (after any load)
    finished: float
    load_seconds: float
    node: str
    encoding: bool  # its frames went to an encode task; False: the worker published it itself
    now: float


@dataclass(frozen=True)
class TaskFailed:
    worker: str
    key: str
    kind: FailureKind
    error: str
    now: float
    retry_options: dict[str, Any] | None = None  # for OUT_OF_MEMORY: the generator's lighter set


@dataclass(frozen=True)
class WorkerLost:
    """The worker's process (or its node) is gone: every task queued on it failed at once."""

    worker: str
    kind: FailureKind  # LOST_WORKER or LOST_NODE
    error: str
    now: float


@dataclass(frozen=True)
class TakePublished:
    key: str
    now: float


@dataclass(frozen=True)
class PublishFailed:
    key: str
    kind: FailureKind
    error: str
    now: float


@dataclass(frozen=True)
class Tick:
    now: float
    cluster: ClusterView | None = None  # given every few seconds, and when asked for
    progress: ProgressView | None = None


@dataclass(frozen=True)
class Stopped:
    """The render stops (after `Stop`, or interrupted): encodes that could publish have been
    told; `published` are tasks still queued or encoding whose output is in the store anyway."""

    reason: str
    now: float
    published: frozenset[str] = frozenset()


Event = (WorkerStarted | WorkerStartFailed | TaskRendered | TaskFailed | WorkerLost
         | TakePublished | PublishFailed | Tick | Stopped)


# actions: what the Ray side does
@dataclass(frozen=True)
class StartWorker:
    worker: str
    gpus: int


@dataclass(frozen=True)
class Assign:
    worker: str
    key: str
    attempt: int
    extra_options: dict[str, Any]


@dataclass(frozen=True)
class StopWorker:
    worker: str
    reason: str


@dataclass(frozen=True)
class Record:
    """An attempt for the ledger (and the metrics)."""

    attempt: Attempt


@dataclass(frozen=True)
class StandIn:
    """A shot put off for the deadline, and the take that stands in (None: a placeholder)."""

    shot: str
    put_off: str
    stand_in: str | None


@dataclass(frozen=True)
class Stop:
    """Stop the render: let takes being encoded publish for up to `wait_seconds`, stop every
    worker, then send `Stopped`. With `error`, the render fails with it (the exception of
    `cause_key`'s failure, where the Ray side kept one)."""

    reason: str
    wait_seconds: float
    error: str | None = None
    cause_key: str | None = None


Action = StartWorker | Assign | StopWorker | Record | StandIn | Stop


@dataclass(frozen=True)
class RunningTask:
    shot: str
    take: int
    segment: int
    segments: int
    model: str
    step: int
    steps: int


@dataclass(frozen=True)
class Snapshot:
    """Where the render stands, for people (progress lines, the live display)."""

    tasks_done: int
    tasks: int
    failed: int
    put_off: int  # shots standing in for the deadline
    frames_done: int  # frames of the takes (at the cut's rate, as the plan counts a shot's)
    frames: int
    busy: int
    workers: int
    gpus: int
    estimate_done: float
    estimate: float
    running: tuple[RunningTask, ...]


class Dispatcher:
    """The rules of one render over its work graph. Feed it events; carry out what it returns."""

    def __init__(self, plan: RenderPlan, graph: WorkGraph, settings: EngineSettings, *,
                 run_id: str, embedded: bool = False, published_stand_ins: Iterable[str] = ()):
        self.plan, self.graph, self.settings, self.run_id = plan, graph, settings, run_id
        self.deadline = (DeadlinePolicy(settings.deadline, settings.deadline_reserve,
                                        settings.deadline_fallback,
                                        published=frozenset(published_stand_ins))
                         if settings.deadline is not None else None)
        wait = settings.capacity_wait_seconds
        # The embedded cluster has no autoscaler: what it cannot host now it never will.
        self.capacity_wait = (wait if wait is not None
                              else 0.0 if embedded else CLUSTER_CAPACITY_WAIT_SECONDS)
        self.embedded = embedded
        self.workers: dict[str, Worker] = {}
        self.most_workers = 0  # the most at once: the lanes the render had
        self.encoding: dict[str, _Encoding] = {}
        self.extra_options: dict[str, dict[str, Any]] = {}
        self.attempts: list[Attempt] = []
        self.gaps: list[float] = []
        self.loads = 0
        self.pace = Pace()
        self.progress = ProgressView()
        self.stopping: Stop | None = None
        self.stopped = False
        self._cluster: ClusterView | None = None
        self._pool_changed = True
        self._retired_gpus = 0
        # Gang sizes (`gpus: auto`, or shots of different sizes): each pending GPU task's size,
        # and the size of the gang the best ready task waits for, if idle GPUs are gathered.
        self._mixed = len({s.task.gang_sizes() for s in graph.states.values()
                           if s.task.gpus}) > 1 or any(
            len(s.task.gang_sizes()) > 1 for s in graph.states.values())
        self._size: dict[str, int] = {}
        self._gathering: int | None = None
        self._failed_starts = 0
        self._started_workers = 0
        self._short_of_gpus_since: float | None = None
        # What the store held already is not this render's work: progress leaves it out.
        self._done_before = {key for key, state in graph.states.items()
                             if state.status is TaskStatus.DONE}

    # the state machine
    @property
    def finished(self) -> bool:
        return self.stopped or (self.graph.finished() and not self.encoding)

    @property
    def wants_cluster_view(self) -> bool:
        """The pool changed (a worker lost, one that could not start): size it again now."""
        return self._pool_changed

    def handle(self, event: Event) -> list[Action]:
        actions: list[Action] = []
        if self.stopped:
            return actions
        if isinstance(event, Tick):
            self._tick(event, actions)
        elif isinstance(event, WorkerStarted):
            self._worker_started(event)
        elif isinstance(event, WorkerStartFailed):
            self._worker_start_failed(event, actions)
        elif isinstance(event, TaskRendered):
            self._task_rendered(event, actions)
        elif isinstance(event, TaskFailed):
            self._task_failed(event, actions)
        elif isinstance(event, WorkerLost):
            worker = self.workers.get(event.worker)
            if worker is not None:  # else replaced already: its other tasks' failures say nothing
                self._replace(worker, event.kind, f"worker lost: {event.error}", event.now,
                              actions)
        elif isinstance(event, TakePublished):
            self._published(event, actions)
        elif isinstance(event, PublishFailed):
            self._publish_failed(event, actions)
        elif isinstance(event, Stopped):
            self._stopped(event, actions)
            return actions
        if self.stopping is None:
            self._retire_idle(actions)
            self._assign(event.now, actions)
        return actions

    def unsettled(self) -> list[str]:
        """Tasks queued on workers or being encoded: when the render stops, the Ray side looks
        for their output in the store (`Stopped.published`)."""
        queued = [entry.key for worker in self.workers.values() for entry in worker.queue]
        return queued + list(self.encoding)

    def published_key(self, key: str) -> str:
        """The store key a task's success publishes: its take's, or its own for a segment."""
        state = self.graph.states[key]
        return state.take.key if state.task.segment == state.task.segments - 1 else key

    # 1. the pool of workers
    def _tick(self, tick: Tick, actions: list[Action]) -> None:
        if tick.progress is not None:
            self.progress = tick.progress
        if tick.cluster is not None:
            self._cluster = tick.cluster
        if self.stopping is not None:
            return
        if self._cluster is not None and (tick.cluster is not None or self._pool_changed):
            self._pool_changed = False
            self._grow_pool(self._cluster, tick.now, actions)
            if self.stopping is not None:
                return
        if self.deadline is not None:
            self._keep_deadline(tick.now, actions)
            if self.stopping is not None:
                return
        self._check_hung(tick.now, actions)

    def _grow_pool(self, cluster: ClusterView, now: float, actions: list[Action]) -> None:
        remaining = self.graph.remaining()
        gpu_work = [s for s in remaining if s.task.gpus]
        cpu_work = [s for s in remaining if not s.task.gpus]
        if gpu_work:
            if not self._has_capacity(cluster, now, actions):
                return
            self._shape_gangs(cluster, gpu_work, now, actions)
        if cpu_work or self.deadline is not None:
            # Under a deadline a draft lane is warm from the start, ready for what is put off.
            target = max(1, cluster.cpus // self.settings.cpus_per_cpu_worker)
            wanted = min(target, max(1, len(cpu_work)))
            while sum(1 for w in self.workers.values() if not w.gpus) < wanted:
                self._start_worker(0, actions)

    def _shape_gangs(self, cluster: ClusterView, gpu_work: list[TaskState], now: float,
                     actions: list[Action]) -> None:
        """GPU workers of the sizes the work wants: one per task left of each size, within the
        cluster's GPUs. Sizes come in the order their best task is ready; when that task's size
        has no worker and no free GPUs, idle workers of other sizes are stopped to gather them
        (and get no more work meanwhile), so a wide shot is not starved by narrow ones."""
        self._allot(now)
        budget = cluster.gpus - self._retired_gpus
        live = [w for w in self.workers.values() if w.gpus]
        used, count = sum(w.gpus for w in live), len(live)
        have = Counter(w.gpus for w in live if w.status is not WorkerStatus.RETIRING)
        wanted = Counter(self._running_size(s) or self._size_of(s) for s in gpu_work)
        ready = self.graph.ready()
        order = list(dict.fromkeys(self._size_of(s) for s in [*ready, *gpu_work]
                                   if s.status is TaskStatus.PENDING and s.task.gpus))
        head = next((self._size_of(s) for s in ready if s.task.gpus), None)
        cap = self.settings.max_gpu_workers
        for size in order:
            while have[size] < wanted[size]:
                if cap is not None and count >= cap:
                    return
                if budget - used < size:
                    starved = size == head and have[size] == 0
                    used -= self._reclaim(size - (budget - used), size, wanted, have,
                                          any_idle=starved, actions=actions)
                    if budget - used < size:
                        if starved:
                            return  # nothing narrower may take the GPUs being gathered
                        break
                self._start_worker(size, actions)
                used, count = used + size, count + 1
                have[size] += 1

    def _reclaim(self, gpus: int, size: int, wanted: Counter, have: Counter, *, any_idle: bool,
                 actions: list[Action]) -> int:
        """Stop idle workers (of sizes with more workers than work, or any size when `any_idle`)
        until `gpus` are free for a worker of `size`; returns the GPUs freed. Never a worker
        whose encodes are still running: they die with it."""
        encoding = {item.worker.id for item in self.encoding.values()}
        freed = 0
        for worker in list(self.workers.values()):
            if freed >= gpus:
                break
            idle = (worker.gpus and worker.gpus != size and not worker.queue
                    and worker.id not in encoding and worker.status is not WorkerStatus.RETIRING)
            if not idle or not (any_idle or have[worker.gpus] > wanted[worker.gpus]):
                continue
            del self.workers[worker.id]
            worker.status = WorkerStatus.GONE
            have[worker.gpus] -= 1
            freed += worker.gpus
            actions.append(StopWorker(worker.id, f"its {worker.gpus} GPU(s) go to a worker of "
                                                 f"{size}"))
        return freed

    def _allot(self, now: float) -> None:
        """Each pending GPU task's gang size (`gangs.allot`), over the GPUs the render has. A
        size counts what it takes to get a worker of it: none for an idle one; else the wait
        for one of that size to finish its work, or for that many GPUs to come free and a new
        worker to start and load."""
        if not self._mixed:
            return
        pending = [s for s in self.graph.remaining()
                   if s.status is TaskStatus.PENDING and s.task.gpus]
        pace = self._pace(now)
        cluster = self._cluster
        gpus = ((cluster.gpus - self._retired_gpus) if cluster is not None
                else sum(w.gpus for w in self.workers.values()))
        free_in: list[float] = []  # seconds until each GPU is free
        busy_for: dict[int, float] = {}  # size -> seconds until a worker of it is free
        for worker in self.workers.values():
            if not worker.gpus:
                continue
            left = 0.0
            for entry in worker.queue:
                task = self.graph.states[entry.key].task
                left += task.seconds_on(worker.gpus) * pace
            if worker.queue:
                left = max(0.0, left - (now - worker.busy_since))
            free_in += [left] * worker.gpus
            busy_for[worker.gpus] = min(busy_for.get(worker.gpus, left), left)
        free_in = sorted(free_in + [0.0] * max(0, gpus - len(free_in)))
        busy = sum(free_in)

        def wait(size: int, start: float) -> float:
            new = (free_in[size - 1] if size <= len(free_in) else 0.0) + start
            return min(busy_for.get(size, new), new)

        time_left = None
        if self.deadline is not None:
            time_left = self.deadline.stop_at - DEADLINE_MARGIN_SECONDS - now
        waits = {state.key: tuple(wait(n, WORKER_START_SECONDS
                                       + model_spec(state.task.model).load_seconds)
                                  for n in state.task.gang_sizes()) for state in pending}
        # Counted from when the soonest of them could start, as the work over the GPUs is.
        soonest = min((min(w) for w in waits.values()), default=0.0)
        malleable = [Malleable(
            state.key, state.task.gang_sizes(),
            tuple(delay - soonest + state.task.seconds_on(n) * pace
                  for n, delay in zip(state.task.gang_sizes(), waits[state.key], strict=True)),
            tuple(state.task.gpu_seconds_on(n) * pace for n in state.task.gang_sizes()))
            for state in pending]
        self._size = allot(malleable, max(1, gpus), busy,
                           largest_node=cluster.largest_node_gpus if cluster else None,
                           time_left=time_left)

    def _gang_wanted(self) -> int | None:
        """The size of the best ready GPU task, when no worker of that size is there for it:
        idle workers of other sizes are then kept free for `_shape_gangs` to gather."""
        if not self._mixed:
            return None
        head = next((s for s in self.graph.ready() if s.task.gpus), None)
        if head is None:
            return None
        size = self._size_of(head)
        if any(w.gpus == size and w.status is not WorkerStatus.RETIRING
               for w in self.workers.values()):
            return None
        self._pool_changed = True
        return size

    def _size_of(self, state: TaskState) -> int:
        return self._size.get(state.key, state.task.gpus)

    def _running_size(self, state: TaskState) -> int | None:
        if state.status is not TaskStatus.RUNNING:
            return None
        return next((w.gpus for w in self.workers.values() if w.entry(state.key)), None)

    def _has_capacity(self, cluster: ClusterView, now: float, actions: list[Action]) -> bool:
        """Work that no node can host fails clearly instead of waiting forever — on a cluster
        after a grace period in which an autoscaler may add a node big enough."""
        problem = self.capacity_problem(cluster)
        if problem is None:
            self._short_of_gpus_since = None
            return True
        self._short_of_gpus_since = self._short_of_gpus_since or now
        if now - self._short_of_gpus_since < self.capacity_wait:
            return True
        self._stop(Stop("no node has enough GPUs", STOP_WAIT_SECONDS, error=problem), actions)
        return False

    def capacity_problem(self, cluster: ClusterView) -> str | None:
        """Which remaining work no node of `cluster` can host, and the ways out; None if all
        of it fits."""
        gpus = max((s.task.gpus for s in self.graph.remaining()), default=0)
        largest = cluster.largest_node_gpus
        if largest >= gpus:
            return None
        needing = [s.task for s in self.graph.remaining() if s.task.gpus > largest]
        shots = sorted({t.shot_id for t in needing})
        models = ", ".join(sorted({t.model for t in needing}))
        named = f"{', '.join(shots[:5])}{' …' if len(shots) > 5 else ''} ({models})"
        if self.embedded:
            where = f"this machine's Ray has {largest} GPU(s), and nothing adds more"
            fix = ("render on a cluster with GPUs (--address), make an animatic here with "
                   "`previz render --draft`, or place these shots on CPUs with options "
                   "{device: cpu} (very slow: tiny models, smoke tests)")
        else:
            where = (f"the largest node of this cluster has {largest} (waited "
                     f"{self.capacity_wait:.0f} s for an autoscaler)")
            fix = ("add GPU workers, render an animatic with `previz render --draft`, or "
                   "render these shots with `model: draft`")
        return f"{named}: need {gpus} GPU(s) on one node, but {where} — {fix}"

    def _start_worker(self, gpus: int, actions: list[Action]) -> None:
        self._started_workers += 1
        worker = Worker(id=f"w{self._started_workers:03d}", gpus=gpus)
        self.workers[worker.id] = worker
        self.most_workers = max(self.most_workers, len(self.workers))
        actions.append(StartWorker(worker.id, gpus))

    def _worker_started(self, event: WorkerStarted) -> None:
        worker = self.workers.get(event.worker)
        if worker is None or worker.status is not WorkerStatus.STARTING:
            return
        self._failed_starts = 0
        worker.status, worker.node = WorkerStatus.READY, event.node

    def _worker_start_failed(self, event: WorkerStartFailed, actions: list[Action]) -> None:
        worker = self.workers.pop(event.worker, None)
        if worker is None:
            return
        worker.status = WorkerStatus.GONE
        actions.append(StopWorker(worker.id, f"could not start: {event.error}"))
        self._failed_starts += 1
        if self._failed_starts >= MAX_FAILED_STARTS:
            self._stop(Stop("workers cannot start", STOP_WAIT_SECONDS, error=(
                f"{self._failed_starts} render workers in a row died before their first shot, "
                f"the last with {event.error} — see the Ray logs of the nodes for why they "
                "cannot start")), actions)
            return
        self._pool_changed = True  # nothing was lost: start another where there is room

    def _retire_idle(self, actions: list[Action]) -> None:
        encoding = {item.worker.id for item in self.encoding.values()}
        # Not before its encodes publish: they die with the worker that started them.
        for worker in [w for w in self.workers.values() if w.status is WorkerStatus.RETIRING
                       and not w.queue and w.id not in encoding]:
            del self.workers[worker.id]
            worker.status = WorkerStatus.GONE
            actions.append(StopWorker(worker.id, "retired: failed "
                                      f"{len(worker.failed_shots)} different shots"))
            self._retired_gpus += worker.gpus
            if not any(w.gpus == worker.gpus for w in self.workers.values()):
                self._retired_gpus -= worker.gpus
                self._start_worker(worker.gpus, actions)  # never leave a kind of work unserved

    # 2. assigning ready work
    def _assign(self, now: float, actions: list[Action]) -> None:
        # Under a deadline, work stays with the dispatcher until a worker is free, so what
        # cannot finish in time can still be put off instead.
        depth = 1 if self.deadline is not None else self.settings.queue_depth
        self._allot(now)
        self._gathering = self._gang_wanted()
        encoding: dict[str, int] = {}
        for item in self.encoding.values():
            encoding[item.worker.id] = encoding.get(item.worker.id, 0) + 1
        for worker in self.workers.values():
            if worker.status is not WorkerStatus.READY:
                continue
            # Back-pressure: a worker faster than its node's encoder waits rather than piling up
            # encode tasks (each one a process of its own) on that node.
            if encoding.get(worker.id, 0) >= MAX_ENCODES_PER_WORKER:
                continue
            while len(worker.queue) < depth:
                # A second task is queued only in the last moments of the running one: enough
                # to hide the hand-over, too late to promise work to a busy worker that a free
                # one or a more urgent task (a chain just unblocked) should have had.
                if worker.queue and not self._ending_soon(worker, now):
                    break
                state = self._choose(worker)
                if state is None:
                    break
                self._submit(worker, state, now, actions)

    def _ending_soon(self, worker: Worker, now: float) -> bool:
        running = self.graph.states[worker.queue[-1].key]
        expected = running.task.seconds_on(worker.gpus) * self._pace(now)
        return now - worker.busy_since >= expected - PREFETCH_SECONDS

    def _choose(self, worker: Worker) -> TaskState | None:
        ready = [s for s in self.graph.ready() if worker.fits(s)]
        if ready and worker.gpus and self._mixed:
            ready = self._for_gang(worker, ready)
        if not ready:
            return None
        same_model = [s for s in ready if s.task.model == worker.model]
        if same_model:
            return same_model[0]
        if worker.queue:
            return None  # switch models only once the queue drains, never mid-queue
        # Leave work to a worker that already has its model loaded when that worker is free.
        loaded_elsewhere = {w.model for w in self.workers.values()
                            if w is not worker and not w.queue}
        fresh = [s for s in ready if s.task.model not in loaded_elsewhere]
        return (fresh or ready)[0]

    def _for_gang(self, worker: Worker, ready: list[TaskState]) -> list[TaskState]:
        """The ready tasks a worker of its size should take: those allotted its size; when
        there are none, wider-than-allotted work while forming narrower workers would cost
        more than the gang's lower efficiency (`_worth_keeping`); none while its GPUs are being
        gathered for a wider gang."""
        if self._gathering is not None and worker.gpus != self._gathering:
            return []  # (`_gang_wanted` has asked for the pool to be shaped: it gathers them)
        sized = [s for s in ready if self._size_of(s) == worker.gpus]
        if sized or worker.queue:
            return sized
        return [s for s in ready if self._size_of(s) < worker.gpus
                and self._worth_keeping(worker, s)]

    def _worth_keeping(self, worker: Worker, state: TaskState) -> bool:
        """Whether a gang should run narrower work rather than make way for narrower workers:
        the GPU-seconds its share of the work left would lose to parallel overhead, against
        what starting and loading the workers that replace it costs."""
        task = state.task
        left = sum(s.task.estimate_seconds for s in self.graph.remaining()
                   if s.status is TaskStatus.PENDING and s.task.gpus)
        gpus = max(1, sum(w.gpus for w in self.workers.values()))
        overhead = task.gpu_seconds_on(worker.gpus) / task.estimate_seconds - 1.0 \
            if task.estimate_seconds else 0.0
        lost = left * min(1.0, worker.gpus / gpus) * overhead
        replacing = worker.gpus * (WORKER_START_SECONDS + model_spec(task.model).load_seconds)
        return lost < replacing

    def _submit(self, worker: Worker, state: TaskState, now: float,
                actions: list[Action]) -> None:
        self.graph.start(state.key)
        if not worker.queue:
            worker.busy_since = now
        worker.queue.append(QueuedTask(state.key, state.attempts, now))
        worker.model = state.task.model
        actions.append(Assign(worker.id, state.key, state.attempts,
                              dict(self.extra_options.get(state.key, {}))))

    # 3. results
    def _task_rendered(self, event: TaskRendered, actions: list[Action]) -> None:
        worker = self.workers.get(event.worker)
        entry = worker.entry(event.key) if worker is not None else None
        if worker is None or entry is None:
            return  # its worker was replaced earlier: already accounted for
        worker.queue.remove(entry)
        if worker.last_finished is not None and event.load_seconds == 0:
            self.gaps.append(max(0.0, event.started - worker.last_finished))
        worker.last_finished = event.finished
        worker.node = event.node or worker.node
        if event.load_seconds:
            self.loads += 1
        worker.busy_since = event.now
        if self._mixed:
            self._pool_changed = True  # the work left may want other sizes now
        done = _Encoding(event.key, entry.attempt, worker, event.started, event.finished,
                         event.load_seconds)
        if event.encoding:
            self.encoding[event.key] = done
        else:  # the worker encoded and published it itself
            self._finished(done, actions)

    def _published(self, event: TakePublished, actions: list[Action]) -> None:
        done = self.encoding.pop(event.key, None)
        if done is not None:
            self._finished(done, actions)

    def _finished(self, done: _Encoding, actions: list[Action]) -> None:
        state = self.graph.states[done.key]
        self.graph.finish(done.key)
        self._record(state, done.attempt, done.worker, done.started, done.finished,
                     done.load_seconds, Outcome.OK, None, actions)
        if final_quality(state):  # a deadline projects final-quality work only
            self.pace.record(done.finished - done.started,
                             state.task.seconds_on(done.worker.gpus))

    def _task_failed(self, event: TaskFailed, actions: list[Action]) -> None:
        worker = self.workers.get(event.worker)
        entry = worker.entry(event.key) if worker is not None else None
        if worker is None or entry is None:
            return
        if event.kind in (FailureKind.LOST_WORKER, FailureKind.LOST_NODE):
            self._replace(worker, event.kind, f"worker lost: {event.error}", event.now, actions)
            return
        worker.queue.remove(entry)
        state = self.graph.states[event.key]
        started = worker.busy_since or entry.submitted
        if event.kind is FailureKind.STORE:
            self._record(state, entry.attempt, worker, started, event.now, 0.0, Outcome.FAILED,
                         event.error, actions)
            self._stop(Stop("store failed", STOP_WAIT_SECONDS, error=event.error,
                            cause_key=event.key), actions)
            return
        if event.kind is FailureKind.OUT_OF_MEMORY and event.retry_options:
            # Retried with the generator's lighter options, on whichever worker takes it.
            self.extra_options[event.key] = {**self.extra_options.get(event.key, {}),
                                             **event.retry_options}
        worker.failed_shots.add(state.task.shot_id)
        self._retry_or_fail(state, entry.attempt, worker, started, event.now, event.error,
                            actions)
        if worker.gpus > 1:
            # A gang whose member failed may leave the others waiting in a collective for it:
            # it is formed again, and the tasks queued behind never started.
            self._disband(worker, f"a member failed: {event.error}", actions)
            return
        if (len(worker.failed_shots) >= self.settings.retire_after_failures
                and worker.status is WorkerStatus.READY):
            worker.status = WorkerStatus.RETIRING

    def _publish_failed(self, event: PublishFailed, actions: list[Action]) -> None:
        done = self.encoding.pop(event.key, None)
        if done is None:
            return
        state = self.graph.states[event.key]
        if event.kind is FailureKind.STORE:
            self._record(state, done.attempt, done.worker, done.started, event.now,
                         done.load_seconds, Outcome.FAILED, event.error, actions)
            self._stop(Stop("store failed", STOP_WAIT_SECONDS, error=event.error,
                            cause_key=event.key), actions)
        elif not event.kind.charged:
            # The frames were lost with their node (or the worker that owned the encode).
            self._record(state, done.attempt, done.worker, done.started, event.now,
                         done.load_seconds, Outcome.LOST, event.error, actions)
            self.graph.requeue(event.key, event.error, charged=False)
        else:
            self._retry_or_fail(state, done.attempt, done.worker, done.started, event.now,
                                event.error, actions, done.load_seconds)

    def _retry_or_fail(self, state: TaskState, attempt: int, worker: Worker, started: float,
                       now: float, error: str, actions: list[Action],
                       load_seconds: float = 0.0) -> None:
        self._record(state, attempt, worker, started, now, load_seconds, Outcome.FAILED, error,
                     actions)
        if state.attempts >= self.settings.max_attempts:
            self.graph.fail(state.key, error)
        else:
            self.graph.requeue(state.key, error)

    def _replace(self, worker: Worker, kind: FailureKind, error: str, now: float,
                 actions: list[Action]) -> None:
        """A worker died: its running task (the head of its queue) used an attempt — unless its
        node went away, which is not the shot's fault; the tasks queued behind never started.
        Which task's failure the Ray side saw first says nothing: they all fail at once."""
        del self.workers[worker.id]
        worker.status = WorkerStatus.GONE
        actions.append(StopWorker(worker.id, error))
        for index, entry in enumerate(worker.queue):
            state = self.graph.states[entry.key]
            if index > 0:
                self.graph.requeue(entry.key, error, charged=False)
            elif kind.charged:
                self._retry_or_fail(state, entry.attempt, worker, worker.busy_since or
                                    entry.submitted, now, error, actions)
            else:
                self._record(state, entry.attempt, worker, worker.busy_since or entry.submitted,
                             now, 0.0, Outcome.LOST, error, actions)
                self.graph.requeue(entry.key, error, charged=False)
        worker.queue.clear()
        # Its replacement comes from sizing the pool where the cluster still has room: a lost
        # node's GPUs are gone until an autoscaler brings them back.
        self._pool_changed = True

    def _disband(self, worker: Worker, error: str, actions: list[Action]) -> None:
        del self.workers[worker.id]
        worker.status = WorkerStatus.GONE
        actions.append(StopWorker(worker.id, error))
        for entry in worker.queue:
            self.graph.requeue(entry.key, error, charged=False)
        worker.queue.clear()
        self._pool_changed = True

    def _check_hung(self, now: float, actions: list[Action]) -> None:
        for worker in list(self.workers.values()):
            if not worker.queue:
                continue
            state = self.graph.states[worker.queue[0].key]
            limit = self.settings.task_timeout or max(600.0, 20 * state.task.estimate_seconds)
            last_step = self.progress.last_step.get(state.key, 0.0)
            if now - max(worker.busy_since, last_step) > limit:
                self._replace(worker, FailureKind.LOST_WORKER,
                              f"no progress for {limit:.0f} s (hung)", now, actions)

    # 4. the deadline
    def _keep_deadline(self, now: float, actions: list[Action]) -> None:
        assert self.deadline is not None
        if self.deadline.must_stop(now):
            self._stop(Stop("deadline reached", wait_seconds=PUBLISH_WAIT_SECONDS), actions)
            return
        lanes = sum(worker.gpus for worker in self.workers.values())
        for decision in self.deadline.put_off(self.plan, self.graph, now, lanes,
                                              self._pace(now)):
            actions.append(StandIn(decision.put_off.shot_id, decision.put_off.key,
                                   decision.stand_in.key if decision.stand_in else None))

    def _pace(self, now: float) -> float:
        running = []
        for worker in self.workers.values():
            if worker.queue:
                state = self.graph.states[worker.queue[0].key]
                began = self.progress.began.get(state.key)
                if began is not None and final_quality(state):
                    running.append((state.task.seconds_on(worker.gpus), began))
        return self.pace.factor(now, running)

    # 5. stopping
    def _stop(self, stop: Stop, actions: list[Action]) -> None:
        if self.stopping is None:
            self.stopping = stop
            actions.append(stop)

    def _stopped(self, event: Stopped, actions: list[Action]) -> None:
        """Queued tasks are cancelled (or done, if their output reached the store anyway),
        every worker is stopped, and what remains fails with the reason."""
        for worker in self.workers.values():
            for entry in worker.queue:
                self._settle(entry.key, entry.attempt, worker, worker.busy_since or entry.submitted,
                             0.0, event, actions)
            worker.status = WorkerStatus.GONE
            actions.append(StopWorker(worker.id, event.reason))
        for key, done in self.encoding.items():
            self._settle(key, done.attempt, done.worker, done.started, done.load_seconds, event,
                         actions)
        self.encoding.clear()
        self.workers.clear()
        for state in self.graph.remaining():
            self.graph.fail(state.key, f"{event.reason} before it finished")
        self.stopped = True

    def _settle(self, key: str, attempt: int, worker: Worker, started: float,
                load_seconds: float, event: Stopped, actions: list[Action]) -> None:
        """A task in flight when the render stopped: done if its output is in the store,
        cancelled otherwise."""
        state = self.graph.states[key]
        if key in event.published:
            self.graph.finish(key)
            self._record(state, attempt, worker, started, event.now, load_seconds, Outcome.OK,
                         None, actions)
        else:
            self._record(state, attempt, worker, started, event.now, load_seconds,
                         Outcome.CANCELLED, event.reason, actions)

    # 6. the ledger
    def _record(self, state: TaskState, attempt: int, worker: Worker, started: float,
                finished: float, load_seconds: float, outcome: Outcome, error: str | None,
                actions: list[Action]) -> None:
        finished = max(finished, started)
        task = state.task
        row = Attempt(
            run_id=self.run_id, shot=task.shot_id, take_key=state.take.key, model=task.model,
            attempt=attempt, outcome=outcome, frames=task.num_frames,
            started_at=datetime.fromtimestamp(started, timezone.utc),
            finished_at=datetime.fromtimestamp(finished, timezone.utc),
            gpu_seconds=(finished - started + load_seconds) * worker.gpus,
            node=worker.node, worker=worker.id, error=error)
        self.attempts.append(row)
        actions.append(Record(row))

    # for people
    def snapshot(self) -> Snapshot:
        # Work put off for a deadline is no longer to be done: its stand-ins are.
        states = [s for key, s in self.graph.states.items()
                  if s.status not in (TaskStatus.SKIPPED, TaskStatus.DEFERRED)
                  and key not in self._done_before]
        done = [s for s in states if s.status is TaskStatus.DONE]
        running = []
        for worker in self.workers.values():
            for entry in worker.queue[:1]:
                task = self.graph.states[entry.key].task
                step, steps = self.progress.steps.get(entry.key, (0, task.steps))
                running.append(RunningTask(task.shot_id, task.take, task.segment, task.segments,
                                           task.model, step, steps))
        return Snapshot(
            tasks_done=len(done), tasks=len(states),
            failed=sum(1 for s in states if s.status in (TaskStatus.FAILED, TaskStatus.BLOCKED)),
            put_off=len({s.task.shot_id for s in self.graph.states.values()
                         if s.status is TaskStatus.DEFERRED}),
            frames_done=round(sum(_take_frames(s) for s in done)),
            frames=round(sum(_take_frames(s) for s in states)),
            busy=sum(1 for w in self.workers.values() if w.queue),
            workers=len(self.workers), gpus=sum(w.gpus for w in self.workers.values()),
            estimate_done=sum(s.task.estimate_seconds for s in done),
            estimate=sum(s.task.estimate_seconds for s in states),
            running=tuple(running))


def _take_frames(state: TaskState) -> float:
    """The task's share of its take's frames in the cut (segments by the frames they make)."""
    take = state.take
    generated = sum(t.num_frames for t in take.tasks)
    return take.retime.cut_frames * state.task.num_frames / generated


# before and after: which takes a render wants, and how each shot came out
def wanted_takes(plan: RenderPlan, only: Iterable[str] | None) -> set[str]:
    """Take keys this render must produce: every take of the named shots (all shots if none)."""
    if only is None:
        return {t.key for t in plan.takes()}
    names = set(only)
    unknown = names - {s.id for s in plan.shots}
    if unknown:
        raise InvalidInput(f"--only: no shot {', '.join(sorted(unknown))} in {plan.storyboard} — "
                           f"shots are {', '.join(s.id for s in plan.shots)}")
    return {t.key for s in plan.shots if s.id in names for t in s.takes}


def keys_of(plan: RenderPlan, takes: set[str]) -> set[str]:
    """The take keys and their segments' task keys."""
    known = {t.key: t for s in plan.shots for t in (*s.takes, *s.stand_ins())}
    return takes | {task.key for key in takes if key in known for task in known[key].tasks}


def still_takes(plan: RenderPlan, wanted: set[str]) -> set[str]:
    """What `--stills` renders instead of the wanted takes: each shot's keyframe still (its
    draft, for a shot whose panel is its still or whose model makes none)."""
    return {(shot.still or shot.fallback or shot.selected_take).key for shot in plan.shots
            if any(take.key in wanted for take in shot.takes)}


def draft_takes(plan: RenderPlan, wanted: set[str]) -> set[str]:
    """What `--draft` renders instead of the wanted takes: each shot's draft animatic (a shot
    an animatic generator already draws is its own draft)."""
    return {(shot.fallback or shot.selected_take).key for shot in plan.shots
            if any(take.key in wanted for take in shot.takes)}


def work_graph(plan: RenderPlan, done: set[str], wanted: set[str]) -> WorkGraph:
    """The render's work: the wanted takes (the plan's own, or shots' draft animatics) and what
    they need, less what is `done` (task and take keys already in the store)."""
    graph = WorkGraph(plan, done_keys=done,
                      wanted_takes=wanted & {take.key for take in plan.needed_takes()})
    for shot in plan.shots:
        for take in (shot.fallback, shot.still):
            if take is not None and take.key in wanted:
                graph.add_take(take, done=take.key in done)
    return graph


def shot_outcomes(plan: RenderPlan, graph: WorkGraph, done_before: set[str],
                  wanted: set[str]) -> list[ShotOutcome]:
    """How each shot came out: the take the cut shows, and why."""
    outcomes = []
    for shot in plan.shots:
        if shot.still is not None and shot.still.key in wanted and not any(
                take.key in wanted for take in shot.takes):  # --stills
            outcomes.append(_outcome(shot, graph, shot.still, done_before, wanted,
                                     stand_in="its keyframe still: --stills"))
            continue
        if shot.fallback is not None and shot.fallback.key in wanted:  # --draft
            outcomes.append(_outcome(shot, graph, shot.fallback, done_before, wanted,
                                     stand_in="drawn as a draft: --draft"))
            continue
        stand_in = _deadline_stand_in(shot, graph)
        if stand_in is not None:
            take, why = stand_in
            outcomes.append(_outcome(shot, graph, take, done_before, {take.key}, stand_in=why))
            continue
        outcomes.append(_outcome(shot, graph, shot.selected_take, done_before, wanted))
    return outcomes


def _outcome(shot: ShotPlan, graph: WorkGraph, take: TakePlan, done_before: set[str],
             wanted: set[str], stand_in: str | None = None) -> ShotOutcome:
    status = graph.take_status(take)
    cached = take.key in done_before
    if status is TaskStatus.DONE:
        label = (ShotStatus.DRAFT if stand_in else
                 ShotStatus.CACHED if cached else ShotStatus.RENDERED)
    elif status is TaskStatus.SKIPPED or take.key not in wanted:
        label = ShotStatus.MISSING  # left out of this run (--only) and not in the store either
    else:
        label = ShotStatus.FAILED
    errors = [graph.states[t.key].error for t in take.tasks
              if t.key in graph.states and graph.states[t.key].error]
    error = stand_in if label is ShotStatus.DRAFT else (
        errors[-1] if label is ShotStatus.FAILED and errors else None)
    return ShotOutcome(id=shot.id, status=label, take=take.key, cached=cached, error=error)


def _deadline_stand_in(shot: ShotPlan, graph: WorkGraph) -> tuple[TakePlan, str] | None:
    """The stand-in a deadline gave the shot instead of its selected take, if one finished."""
    if graph.take_status(shot.selected_take) is TaskStatus.DONE:
        return None
    if shot.reduced is not None and graph.take_status(shot.reduced) is TaskStatus.DONE:
        steps, final = shot.reduced.final_task.steps, shot.selected_take.final_task.steps
        return shot.reduced, f"rendered at {steps} of {final} steps: deadline"
    if shot.fallback is not None and graph.take_status(shot.fallback) is TaskStatus.DONE:
        return shot.fallback, "rendered as a draft: deadline"
    return None
