"""Stage 4 entry: `render_plan` runs a render plan on a Ray cluster.

Every GPU stays busy with a warm worker, no model is loaded twice without need, a lost worker
costs one shot (retried elsewhere), and a rerun renders only what the store lacks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from previz.engine.graph import TaskState, WorkGraph
from previz.errors import PrevizError
from previz.plan.types import RenderPlan, ShotPlan, TakePlan

__all__ = ["render_plan", "RenderReport", "ShotOutcome", "EngineSettings", "RenderInterrupted"]

log = logging.getLogger(__name__)

# Worker-death errors: the process or its node is gone, so the shot is retried elsewhere.
_LOST = ("ActorDiedError", "RayActorError", "ActorUnavailableError", "WorkerCrashedError",
         "NodeDiedError", "OwnerDiedError", "LocalRayletDiedError", "ObjectLostError")

_GONE_WITH_ITS_NODE = {"OwnerDiedError", "NodeDiedError"}

DEADLINE_MARGIN_SECONDS = 2.0
PUBLISH_WAIT_SECONDS = 5.0  # at the deadline, how long encodes in flight may take to publish
PREFETCH_SECONDS = 1.0  # how long before a running task's expected end the next one is queued
MAX_ENCODES_PER_WORKER = 2  # takes a worker may have waiting on encode before it gets more work
MAX_FAILED_STARTS = 10  # workers in a row that died before their first task: the render stops


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
    # How long work no node can host waits for an autoscaler before the render fails.
    capacity_wait_seconds: float = 120.0


@dataclass
class ShotOutcome:
    id: str
    status: str  # rendered | cached | draft | failed | missing (left out by --only, no take)
    take: str  # the key of the take the cut shows (the draft's, for a draft)
    cached: bool
    error: str | None = None

    @property
    def draft(self) -> bool:
        return self.status == "draft"


@dataclass
class RenderReport:
    run_id: str
    shots: list[ShotOutcome]
    attempts: list[dict[str, Any]]
    started: float
    finished: float
    gaps: list[float]  # seconds a worker sat idle between two tasks while work was queued
    loads: int
    take_status: dict[str, str]  # take key -> done | failed | blocked | skipped

    @property
    def complete(self) -> bool:
        return all(s.status in ("rendered", "cached", "draft") for s in self.shots)

    @property
    def gpu_seconds(self) -> float:
        return sum(a["gpu_seconds"] for a in self.attempts)

    def rendered_keys(self) -> list[str]:
        return [a["take_key"] for a in self.attempts if a["outcome"] == "ok"]


def render_plan(plan: RenderPlan, store_uri: str, *, address: str | None = None,
                only: Iterable[str] | None = None, force: bool = False,
                settings: EngineSettings | None = None, display: Any = None) -> RenderReport:
    """Render every take the cut needs that the store lacks.

    1. connect to the cluster (an embedded local Ray when no address is given);
    2. find the takes already in the store, and choose what to render (--only, --force);
    3. start warm workers sized from the cluster's resources;
    4. dispatch ready tasks best-first until every task is done or out of retries;
    5. append every attempt to the ledger and report each shot's outcome.
    """
    from previz.store import open_store

    settings = settings or EngineSettings()
    store = open_store(store_uri)
    with _ray_connection(address):
        wanted = _wanted_takes(plan, only)
        forced = {t.key for t in plan.takes() if t.key in wanted} if force else set()
        done = _published_keys(store, plan, ignore=forced)
        graph = WorkGraph(plan, done_keys=done, wanted_takes=wanted)
        dispatcher = _Dispatcher(plan, graph, store, store_uri, settings, display)
        try:
            dispatcher.run()
        finally:
            dispatcher.close()
    outcomes = _outcomes(plan, graph, done, wanted)
    return RenderReport(
        run_id=dispatcher.run_id, shots=outcomes, attempts=dispatcher.attempts,
        started=dispatcher.started, finished=time.time(), gaps=dispatcher.gaps,
        loads=dispatcher.loads,
        take_status={t.key: graph.take_status(t) for t in plan.takes()},
    )


@contextlib.contextmanager
def _ray_connection(address: str | None) -> Iterator[None]:
    import ray

    if ray.is_initialized():
        yield
        return
    # Inside a Ray Job (previz submit) the job's cluster is in RAY_ADDRESS.
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        _check_reachable(address)
        _init_keeping_sigterm(address=address, logging_level="WARNING", log_to_driver=False)
        try:
            yield
        finally:
            ray.shutdown()
        return
    # An embedded cluster with its own temp dir, so it never meets another Ray on this host.
    temp = tempfile.mkdtemp(prefix="pvz-ray-", dir="/tmp")
    previous = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp
    try:
        _init_keeping_sigterm(include_dashboard=False, logging_level="WARNING",
                              log_to_driver=False, configure_logging=True)
        yield
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = previous
        shutil.rmtree(temp, ignore_errors=True)


def _check_reachable(address: str) -> None:
    """Fail in seconds on a head that is not there: Ray itself keeps retrying for minutes."""
    import socket

    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return  # ray://, auto or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as error:
        raise PrevizError(
            f"--address {address}: no Ray cluster answers there ({error.strerror or error}) — "
            "check the head node's address and GCS port (6379 unless it was started with "
            "another), or leave --address out to render on this machine") from None


def _init_keeping_sigterm(**options: Any) -> None:
    """ray.init, keeping the SIGTERM handler the program had (Ray's own one ends the process on
    the spot, so a stopped render could not cancel its shots or tell its webhooks)."""
    import signal
    import threading

    import ray

    handler = signal.getsignal(signal.SIGTERM)
    ray.init(**options)
    if threading.current_thread() is threading.main_thread() and callable(handler):
        signal.signal(signal.SIGTERM, handler)


def _wanted_takes(plan: RenderPlan, only: Iterable[str] | None) -> set[str]:
    """Take keys this render must produce: every take of the named shots (all shots if none)."""
    if only is None:
        return {t.key for t in plan.takes()}
    names = set(only)
    unknown = names - {s.id for s in plan.shots}
    if unknown:
        from previz.errors import InvalidInput

        raise InvalidInput(f"--only: no shot {', '.join(sorted(unknown))} in {plan.storyboard} — "
                           f"shots are {', '.join(s.id for s in plan.shots)}")
    return {t.key for s in plan.shots if s.id in names for t in s.takes}


def _published_keys(store, plan: RenderPlan, ignore: set[str]) -> set[str]:
    from previz.store.takes import has_take

    keys = {t.key for t in plan.takes()} | {task.key for t in plan.takes()
                                             for task in t.tasks[:-1]}
    return {key for key in keys if key not in ignore and has_take(store, key)}


def _stand_in_done(shot: ShotPlan, graph: WorkGraph) -> tuple[TakePlan, str] | None:
    """The deadline stand-in the shot got instead of its final take, and why, if one finished."""
    if shot.reduced is not None and graph.take_status(shot.reduced) == "done":
        steps, final = shot.reduced.final_task.steps, shot.selected_take.final_task.steps
        return shot.reduced, f"rendered at {steps} of {final} steps: deadline"
    if shot.fallback is not None and graph.take_status(shot.fallback) == "done":
        return shot.fallback, "rendered as a draft: deadline"
    return None


def _outcomes(plan: RenderPlan, graph: WorkGraph, done_before: set[str],
              wanted: set[str]) -> list[ShotOutcome]:
    outcomes = []
    for shot in plan.shots:
        take = shot.selected_take
        status = graph.take_status(take)
        cached = take.key in done_before
        stand_in = _stand_in_done(shot, graph)
        if status == "done":
            label = "cached" if cached else "rendered"
        elif stand_in is not None:
            outcomes.append(ShotOutcome(id=shot.id, status="draft", take=stand_in[0].key,
                                        cached=False, error=stand_in[1]))
            continue
        elif status == "skipped" or take.key not in wanted:
            label = "missing"  # left out of this run (--only) and not in the store either
        else:
            label = "failed"
        errors = [graph.states[t.key].error for t in take.tasks if graph.states[t.key].error]
        outcomes.append(ShotOutcome(id=shot.id, status=label, take=take.key, cached=cached,
                                    error=errors[-1] if label == "failed" and errors else None))
    return outcomes


@dataclass
class _Slot:
    """A warm worker as the driver sees it."""

    actor: Any
    worker_id: str
    gpus: int
    # Resolves once the actor is placed and constructed. Until then it gets no work: a worker
    # waiting for capacity (a node lost, an autoscaler still adding one) may never start.
    started: Any = None
    node: str = ""
    model: str | None = None
    queue: list[tuple[str, int, Any, float]] = field(default_factory=list)  # key, attempt, ref, t
    busy_since: float = 0.0
    last_finished: float | None = None
    failed_shots: set[str] = field(default_factory=set)
    retiring: bool = False  # failed too many shots: no more work; leaves once its queue empties

    def fits(self, state: TaskState) -> bool:
        return (state.task.gpus > 0) == (self.gpus > 0) and self.gpus >= state.task.gpus


class _Dispatcher:
    def __init__(self, plan: RenderPlan, graph: WorkGraph, store, store_uri: str,
                 settings: EngineSettings, display: Any):
        import ray

        from previz.engine.worker import ProgressBoard

        self.ray = ray
        self.plan, self.graph, self.store, self.store_uri = plan, graph, store, store_uri
        self.settings, self.display = settings, display
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + \
            secrets.token_hex(3)
        self.started = time.time()
        self.attempts: list[dict[str, Any]] = []
        self._unflushed: list[dict[str, Any]] = []
        self._last_flush = time.time()
        self.gaps: list[float] = []
        self.loads = 0
        self.slots: list[_Slot] = []
        self.retired = 0
        self.publishing: dict[Any, tuple[str, int, dict[str, Any]]] = {}
        self.extra_options: dict[str, dict[str, Any]] = {}
        self.images = self._ship_images()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # On the driver's own node: it must outlive any worker node (spot reclaims, failures).
        self.progress = ProgressBoard.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            self.ray.get_runtime_context().get_node_id(), soft=True)).remote()
        self._worker_count = 0
        self._failed_starts = 0
        self._pool_changed = False
        self._speeds: list[tuple[float, float]] = []  # (measured, estimated) seconds
        self._stand_ins: set[str] = set()  # take keys added for the deadline instead of others
        self._generation_started: dict[str, float] = {}
        self._generation_polled = 0.0
        self._short_of_gpus_since: float | None = None

    # 3. workers
    def _ship_images(self) -> dict[str, Any]:
        """Storyboard images go into the object store once; workers anywhere read them there."""
        refs: dict[str, Any] = {}
        for state in self.graph.remaining():
            for condition in state.task.conditioning:
                if condition.sha256 and condition.sha256 not in refs and condition.path:
                    with open(condition.path, "rb") as image:
                        refs[condition.sha256] = self.ray.put(image.read())
        return refs

    def _grow_pool(self) -> None:
        remaining = self.graph.remaining()
        gpu_need = max((s.task.gpus for s in remaining if s.task.gpus), default=0)
        cpu_work = [s for s in remaining if not s.task.gpus]
        total = self.ray.cluster_resources()
        if gpu_need:
            self._check_capacity(gpu_need)
            target = int(total.get("GPU", 0)) // gpu_need - self.retired
            if self.settings.max_gpu_workers is not None:
                target = min(target, self.settings.max_gpu_workers)
            gpu_work = len(remaining) - len(cpu_work)
            while sum(1 for s in self.slots if s.gpus) < min(target, gpu_work):
                self._start_worker(gpu_need)
        if cpu_work or self.settings.deadline is not None:
            # Under a deadline a draft lane is warm from the start, ready for what is put off.
            target = max(1, int(total.get("CPU", 1)) // self.settings.cpus_per_cpu_worker)
            wanted = min(target, max(1, len(cpu_work)))
            while sum(1 for s in self.slots if not s.gpus) < wanted:
                self._start_worker(0)

    def _check_capacity(self, gpus: int) -> None:
        """Work that no node can host fails clearly instead of waiting forever — after a grace
        period in which an autoscaler may add a node big enough."""
        largest = max((int(node["Resources"].get("GPU", 0)) for node in self.ray.nodes()
                       if node.get("Alive")), default=0)
        if largest >= gpus:
            self._short_of_gpus_since = None
            return
        now = time.time()
        self._short_of_gpus_since = self._short_of_gpus_since or now
        if now - self._short_of_gpus_since < self.settings.capacity_wait_seconds:
            return
        shots = sorted({s.task.shot_id for s in self.graph.remaining() if s.task.gpus >= gpus})
        self._cancel("no node has enough GPUs")
        raise PrevizError(
            f"{', '.join(shots[:5])}{' …' if len(shots) > 5 else ''}: the model needs {gpus} "
            f"GPU(s) on one node, but the largest node of this cluster has {largest} (waited "
            f"{self.settings.capacity_wait_seconds:.0f} s for an autoscaler) — add GPU workers, "
            "or render these shots with `model: draft`")

    def _start_worker(self, gpus: int) -> _Slot:
        from previz.engine.worker import RenderWorker

        self._worker_count += 1
        worker_id = f"w{self._worker_count:03d}"
        actor = self.ray.remote(RenderWorker).options(
            num_gpus=gpus, num_cpus=0 if gpus else 1, max_restarts=0, max_concurrency=1,
        ).remote(worker_id, self.store_uri, self.settings.worker_options, self.progress)
        slot = _Slot(actor=actor, worker_id=worker_id, gpus=gpus, started=actor.identity.remote())
        self.slots.append(slot)
        return slot

    # 4. dispatch
    def run(self) -> None:
        last_grow = 0.0
        try:
            while not self.graph.finished() or self.publishing:
                now = time.time()
                if self._pool_changed or now - last_grow > 2.0:
                    self._pool_changed = False
                    self._grow_pool()
                    last_grow = now
                if self.settings.deadline is not None and self._keep_deadline():
                    return
                self._assign()
                self._collect()
                for slot in [s for s in self.slots if s.retiring and not s.queue]:
                    self._retire(slot)
                self._check_hung()
                self._flush_ledger()
                if self.display is not None:
                    self.display.update(self)
        except KeyboardInterrupt:
            self._cancel("interrupted")
            raise RenderInterrupted("interrupted: running shots cancelled, finished takes kept") \
                from None

    def _assign(self) -> None:
        # Under a deadline, work stays in the driver's hands until a worker is free, so what
        # cannot finish in time can still be drafted instead.
        depth = 1 if self.settings.deadline is not None else self.settings.queue_depth
        encoding: dict[str, int] = {}
        for _, _, result in self.publishing.values():
            encoding[result["slot"].worker_id] = encoding.get(result["slot"].worker_id, 0) + 1
        for slot in self.slots:
            if slot.started is not None or slot.retiring:
                continue
            # Back-pressure: a worker faster than its node's encoder waits rather than piling up
            # encode tasks (each one a process of its own) on that node.
            if encoding.get(slot.worker_id, 0) >= MAX_ENCODES_PER_WORKER:
                continue
            while len(slot.queue) < depth:
                # A second task is queued only in the last moments of the running one: enough
                # to hide the hand-over, too late to promise work to a busy worker that a free
                # one or a more urgent task (a chain just unblocked) should have had.
                if slot.queue and not self._ending_soon(slot):
                    break
                state = self._choose(slot)
                if state is None:
                    break
                self._submit(slot, state)

    def _progress(self, method: str) -> dict[str, Any]:
        """Ask the progress board; what it knows only informs, so a lost board costs nothing."""
        try:
            return self.ray.get(getattr(self.progress, method).remote(), timeout=5)
        except Exception:  # noqa: BLE001 - its node lost, or slow: carry on without it
            return {}

    def _ending_soon(self, slot: _Slot) -> bool:
        running = self.graph.states[slot.queue[-1][0]]
        expected = running.task.estimate_seconds * self._speed(time.time())
        return time.time() - slot.busy_since >= expected - PREFETCH_SECONDS

    def _choose(self, slot: _Slot) -> TaskState | None:
        ready = [s for s in self.graph.ready() if slot.fits(s)]
        if not ready:
            return None
        same_model = [s for s in ready if s.task.model == slot.model]
        if same_model:
            return same_model[0]
        if slot.queue:
            return None  # switch models only once the queue drains, never mid-queue
        # Leave work to a worker that already has its model loaded when that worker is free.
        loaded_elsewhere = {s.model for s in self.slots if s is not slot and not s.queue}
        fresh = [s for s in ready if s.task.model not in loaded_elsewhere]
        return (fresh or ready)[0]

    def _submit(self, slot: _Slot, state: TaskState) -> None:
        self.graph.start(state.key)
        images = {c.sha256: self.images[c.sha256] for c in state.task.conditioning
                  if c.sha256 in self.images}
        ref = slot.actor.render.remote(
            state.task.model_dump_json(), state.take.model_dump_json(), state.attempts, images,
            self.extra_options.get(state.key, {}))
        if not slot.queue:
            slot.busy_since = time.time()
        slot.queue.append((state.key, state.attempts, ref, time.time()))
        slot.model = state.task.model

    def _collect(self) -> None:
        starting = {slot.started: slot for slot in self.slots if slot.started is not None}
        refs = [entry[2] for slot in self.slots for entry in slot.queue] + list(self.publishing)
        refs += list(starting)
        if not refs:
            time.sleep(0.05)
            return
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=0.2)
        if ready:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            if ref in starting:
                self._worker_started(starting[ref])
            elif ref in self.publishing:
                self._published(ref)
            else:
                self._rendered(ref)

    def _worker_started(self, slot: _Slot) -> None:
        try:
            identity = self.ray.get(slot.started)
        except Exception as error:  # noqa: BLE001 - it died before its first task
            self.slots.remove(slot)
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor)
            self._failed_starts += 1
            if self._failed_starts >= MAX_FAILED_STARTS:
                self._cancel("workers cannot start")
                raise PrevizError(f"{self._failed_starts} render workers in a row died before "
                                  f"their first shot, the last with {_describe(error)} — see the "
                                  "Ray logs of the nodes for why they cannot start") from None
            self._pool_changed = True  # nothing was lost: start another where there is room
            return
        self._failed_starts = 0
        slot.started = None
        slot.node = identity["node"]

    def _rendered(self, ref: Any) -> None:
        found = next(((s, e) for s in self.slots for e in s.queue if e[2] is ref), None)
        if found is None:
            return  # its worker was replaced earlier in this batch; already accounted for
        slot, entry = found
        key, attempt, _, _ = entry
        try:
            result = self.ray.get(ref)
        except Exception as error:  # noqa: BLE001 - every failure is classified below
            self._render_failed(slot, entry, error)
            return
        slot.queue.remove(entry)
        if slot.last_finished is not None and result["load_seconds"] == 0:
            self.gaps.append(max(0.0, result["started"] - slot.last_finished))
        slot.last_finished = result["finished"]
        slot.node = result["node"]
        if result["load_seconds"]:
            self.loads += 1
        slot.busy_since = time.time()
        if result["publish"]:
            self.publishing[result["publish"][0]] = (key, attempt, {**result, "slot": slot})
        else:  # the worker encoded and published it itself
            self._finished(key, attempt, {**result, "slot": slot})

    def _published(self, ref: Any) -> None:
        key, attempt, result = self.publishing.pop(ref)
        state = self.graph.states[key]
        slot = result["slot"]
        try:
            self.ray.get(ref)
        except Exception as error:  # noqa: BLE001
            if _is_store_error(error):
                self._record(state, attempt, slot, result, "failed", _describe(error))
                self._cancel("store failed")
                raise _cause(error) from None
            if _names(error) & _GONE_WITH_ITS_NODE:
                # The frames were lost with their node (or the worker that owned the encode):
                # not the shot's fault, so the attempt is recorded but not counted.
                self._record(state, attempt, slot, result, "lost", _describe(error))
                state.attempts -= 1
                self.graph.requeue(key, _describe(error))
                return
            self._retry_or_fail(state, attempt, slot, result, _describe(error))
            return
        self._finished(key, attempt, result)

    def _finished(self, key: str, attempt: int, result: dict[str, Any]) -> None:
        state, slot = self.graph.states[key], result["slot"]
        self.graph.finish(key)
        self._record(state, attempt, slot, result, "ok", None)
        if state.task.generator != "draft":  # the deadline projects final-quality work only
            self._speeds.append((result["finished"] - result["started"],
                                 state.task.estimate_seconds))

    def _render_failed(self, slot: _Slot, entry, error: Exception) -> None:
        key, attempt, _, submitted = entry
        state = self.graph.states[key]
        timing = {"started": slot.busy_since or submitted, "finished": time.time(),
                  "load_seconds": 0.0}
        if _is_lost_worker(error):
            self._replace(slot, f"worker lost: {_describe(error)}")
            return
        slot.queue.remove(entry)
        message = _describe(error)
        if _is_store_error(error):  # a worker that publishes itself met a store failure
            self._record(state, attempt, slot, timing, "failed", message)
            self._cancel("store failed")
            raise _cause(error) from None
        if _is_out_of_memory(error):
            # Retry with the generator's memory savers on, on whichever worker takes it.
            self.extra_options[key] = {**self.extra_options.get(key, {}),
                                       "cpu_offload": True, "vae_tiling": True}
        slot.failed_shots.add(state.task.shot_id)
        self._retry_or_fail(state, attempt, slot, timing, message)
        if len(slot.failed_shots) >= self.settings.retire_after_failures:
            slot.retiring = True

    def _retry_or_fail(self, state: TaskState, attempt: int, slot: _Slot,
                       timing: dict[str, Any], message: str) -> None:
        self._record(state, attempt, slot, timing, "failed", message)
        if state.attempts >= self.settings.max_attempts:
            self.graph.fail(state.key, message)
        else:
            self.graph.requeue(state.key, message)

    def _replace(self, slot: _Slot, message: str) -> None:
        """A worker died: its running task (the head of its queue: a worker runs one at a time,
        in order) used an attempt, its queued tasks did not. Which task's failure is seen first
        says nothing: a dead worker fails them all at once."""
        self.slots.remove(slot)
        with contextlib.suppress(Exception):
            self.ray.kill(slot.actor)
        # Its node went away (a spot reclaim, a crash): not the shot's fault.
        node_lost = _is_node_lost(message) or not self._node_alive(slot.node)
        for entry in slot.queue:
            key, attempt, _, submitted = entry
            state = self.graph.states[key]
            if entry is not slot.queue[0]:
                state.attempts -= 1  # queued behind the running task, never started
                self.graph.requeue(key, message)
                continue
            timing = {"started": slot.busy_since or submitted, "finished": time.time(),
                      "load_seconds": 0.0}
            if node_lost:  # recorded, but not counted against the shot's limit
                self._record(state, attempt, slot, timing, "lost", message)
                state.attempts -= 1
                self.graph.requeue(key, message)
            else:
                self._retry_or_fail(state, attempt, slot, timing, message)
        slot.queue.clear()
        # The replacement comes from _grow_pool, where the cluster still has room: a lost
        # node's GPUs are gone until an autoscaler brings them back.
        self._pool_changed = True

    def _node_alive(self, node: str) -> bool:
        if not node:
            return True  # never learnt where it ran: assume the worker, not the node, failed
        try:
            return any(n["NodeID"] == node and n["Alive"] for n in self.ray.nodes())
        except Exception:  # noqa: BLE001 - the GCS is busy: the conservative answer
            return True

    def _retire(self, slot: _Slot) -> None:
        self.slots.remove(slot)
        self.retired += 1
        with contextlib.suppress(Exception):
            self.ray.kill(slot.actor)
        if not any(s.gpus == slot.gpus for s in self.slots):
            self.retired -= 1
            self._start_worker(slot.gpus)  # never leave a kind of work with no worker at all

    def _check_hung(self) -> None:
        now = time.time()
        steps = None
        for slot in list(self.slots):
            if not slot.queue:
                continue
            key = slot.queue[0][0]
            state = self.graph.states[key]
            limit = self.settings.task_timeout or max(600.0, 20 * state.task.estimate_seconds)
            if now - slot.busy_since <= limit:
                continue
            if steps is None:
                steps = self._progress("snapshot")
            last_step = steps.get(key, (0, 0, 0.0))[2]
            if now - max(slot.busy_since, last_step) > limit:
                self._replace(slot, f"no progress for {limit:.0f} s (hung)")

    def _keep_deadline(self) -> bool:
        """Draft what cannot finish in time; at the deadline stop. True once it has passed."""
        now = time.time()
        # The engine stops early enough for the last encodes to publish and for the cut to be
        # assembled and published by the deadline itself.
        stop_at = self.settings.deadline - self.settings.deadline_reserve - PUBLISH_WAIT_SECONDS
        if now >= stop_at:
            self._cancel("deadline reached", wait=PUBLISH_WAIT_SECONDS)
            for state in self.graph.remaining():
                self.graph.fail(state.key, "deadline reached before it finished")
            return True
        speed = self._speed(now)
        lanes = max(1, sum(1 for slot in self.slots if slot.gpus))
        gpu_work = [s for s in self.graph.remaining() if s.task.generator != "draft"]
        work = sum(s.task.estimate_seconds * (0.5 if s.status == "running" else 1.0)
                   for s in gpu_work) * speed
        # Keep a margin for drafting what is put off and for stopping cleanly.
        finish_by = stop_at - DEADLINE_MARGIN_SECONDS
        # Final-quality takes before fewer-steps stand-ins (those become drafts only once no
        # final is left to shorten), and least critical first: what best-first would start last.
        candidates = sorted(
            {s.take.key: s for s in gpu_work if s.status == "pending"}.values(),
            key=lambda s: (s.take.key in self._stand_ins, s.chain_seconds,
                           s.task.estimate_seconds))
        for state in candidates:
            too_long = now + state.chain_seconds * speed > finish_by
            if state.status != "pending" or (not too_long and now + work / lanes <= finish_by):
                continue
            for take in self.graph.defer(state.take):
                work -= sum(t.estimate_seconds for t in take.tasks) * speed
                stand_in = self._stand_in(take)
                if (stand_in is not None and stand_in.final_task.generator != "draft"
                        and self.graph.take_status(stand_in) != "done"):
                    work += sum(t.estimate_seconds for t in stand_in.tasks) * speed
        return False

    def _speed(self, now: float) -> float:
        """Measured seconds per estimated second: from finished tasks, and at least what the
        running ones already show (a slow start counts before anything finishes)."""
        measured = sum(m for m, _ in self._speeds)
        estimated = sum(e for _, e in self._speeds)
        speed = measured / estimated if estimated > 0 else 1.0
        if now - self._generation_polled > 1.0:
            # Time since generation began, not since submission: a model load is not slowness.
            self._generation_started = self._progress("generation_started")
            self._generation_polled = now
        for slot in self.slots:
            if slot.queue:
                state = self.graph.states[slot.queue[0][0]]
                began = self._generation_started.get(state.key)
                if (began is not None and state.task.generator != "draft"
                        and state.task.estimate_seconds > 0):
                    speed = max(speed, (now - began) / state.task.estimate_seconds)
        return speed

    def _stand_in(self, take: TakePlan) -> TakePlan | None:
        """Start what the cut shows instead of a selected take put off for the deadline: its
        fewer-steps take when the render asks for one (and that can still be made), else its
        draft. Returns the take added, if any."""
        from previz.store.takes import has_take

        shot = self.plan.shot(take.shot_id)
        if not take.selected:
            return None
        stand_in = shot.fallback
        reduced = shot.reduced
        if (self.settings.deadline_fallback == "fewer-steps" and reduced is not None
                and take.key != reduced.key and self.graph.can_add(reduced)):
            stand_in = reduced
        if stand_in is None:
            return None
        self._stand_ins.add(stand_in.key)
        self.graph.add_take(stand_in, done=has_take(self.store, stand_in.key))
        return stand_in

    def _cancel(self, reason: str, wait: float = 60.0) -> None:
        """Stop every worker. Takes already handed to encode tasks are finished work: they get
        up to `wait` seconds to publish first (their encode tasks die with the worker that
        started them), and what published counts as done."""
        if self.publishing:
            with contextlib.suppress(Exception):
                ready, _ = self.ray.wait(list(self.publishing),
                                         num_returns=len(self.publishing), timeout=wait)
                for ref in ready:
                    key, attempt, result = self.publishing.pop(ref)
                    try:
                        self.ray.get(ref)
                    except Exception as error:  # noqa: BLE001 - recorded; the run is ending
                        self._record(self.graph.states[key], attempt, result["slot"], result,
                                     "failed", _describe(error))
                        continue
                    self._finished(key, attempt, result)
        for slot in self.slots:
            for key, attempt, _, submitted in slot.queue:
                timing = {"started": slot.busy_since or submitted, "finished": time.time(),
                          "load_seconds": 0.0}
                self._record(self.graph.states[key], attempt, slot, timing, "cancelled", reason)
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor)
        self.slots.clear()

    # 5. ledger
    def _record(self, state: TaskState, attempt: int, slot: _Slot, timing: dict[str, Any],
                outcome: str, error: str | None) -> None:
        started = timing.get("started") or time.time()
        finished = timing.get("finished") or time.time()
        task = state.task
        row = {
            "run_id": self.run_id, "project": self.plan.project, "sequence": self.plan.sequence,
            "shot": task.shot_id, "take": task.take, "segment": task.segment,
            "take_key": state.take.key, "task_key": task.key, "model": task.model,
            "frames": task.num_frames,
            "gpu_seconds": (finished - started + timing.get("load_seconds", 0.0)) * task.gpus,
            "node": slot.node or timing.get("node", ""), "worker": slot.worker_id,
            "attempt": attempt, "outcome": outcome, "error": error,
            "started_at": datetime.fromtimestamp(started, timezone.utc),
            "finished_at": datetime.fromtimestamp(finished, timezone.utc),
        }
        self.attempts.append(row)
        self._unflushed.append(row)
        _metrics().record(row)

    def _flush_ledger(self, force: bool = False) -> None:
        if not self._unflushed:
            return
        if not force and time.time() - self._last_flush < self.settings.ledger_flush_seconds:
            return
        from previz.store.ledger import Attempt, append_attempts

        fields = ("run_id", "shot", "take_key", "model", "attempt", "outcome", "started_at",
                  "finished_at", "frames", "gpu_seconds", "node", "worker", "error")
        append_attempts(self.store, [Attempt(**{f: row[f] for f in fields})
                                     for row in self._unflushed])
        self._unflushed = []
        self._last_flush = time.time()

    def close(self) -> None:
        try:
            self._flush_ledger(force=True)
        except Exception as error:  # noqa: BLE001 - the render's own outcome matters more
            # Said, not raised: the takes are published either way, but a supervisor reading
            # the ledger must know these attempts are missing from it.
            log.warning("run %s: %d attempt(s) could not be added to the ledger (%s)",
                        self.run_id, len(self._unflushed), _describe(error))
        for slot in self.slots:
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor)
        with contextlib.suppress(Exception):
            self.ray.kill(self.progress)


class _Metrics:
    """Ray metrics for Prometheus: shots done and failed, seconds per frame."""

    def __init__(self) -> None:
        from ray.util import metrics

        self.done = metrics.Counter("previz_tasks_done", "generator tasks published",
                                    tag_keys=("model",))
        self.failed = metrics.Counter("previz_tasks_failed", "failed generator attempts",
                                      tag_keys=("model",))
        self.per_frame = metrics.Histogram(
            "previz_seconds_per_frame", "generation seconds per frame",
            boundaries=[0.01, 0.1, 0.5, 1, 2, 5, 10, 30, 60], tag_keys=("model",))

    def record(self, row: dict[str, Any]) -> None:
        tags = {"model": row["model"]}
        if row["outcome"] == "ok":
            self.done.inc(tags=tags)
            seconds = (row["finished_at"] - row["started_at"]).total_seconds()
            self.per_frame.observe(seconds / max(1, row["frames"]), tags=tags)
        elif row["outcome"] == "failed":
            self.failed.inc(tags=tags)


_METRICS: _Metrics | None = None


def _metrics() -> _Metrics:
    global _METRICS
    if _METRICS is None:
        _METRICS = _Metrics()
    return _METRICS


def _cause(error: Exception) -> BaseException:
    return getattr(error, "cause", None) or error


def _names(error: BaseException) -> set[str]:
    names = {type(error).__name__}
    cause = getattr(error, "cause", None)
    if cause is not None:
        names |= {c.__name__ for c in type(cause).__mro__}
    names |= {c.__name__ for c in type(error).__mro__}
    return names


def _is_lost_worker(error: Exception) -> bool:
    return bool(_names(error) & set(_LOST))


def _is_out_of_memory(error: Exception) -> bool:
    return bool(_names(error) & {"GeneratorOutOfMemory", "OutOfMemoryError", "OutOfMemory"})


def _is_node_lost(message: str) -> bool:
    return "node was terminated" in message or "node died" in message.lower()


def _is_store_error(error: Exception) -> bool:
    return "StoreError" in _names(error)


def _describe(error: BaseException) -> str:
    cause = _cause(error)
    text = str(cause).strip().splitlines()
    first = text[-1] if text else ""
    return f"{type(cause).__name__}: {first}"[:500]
