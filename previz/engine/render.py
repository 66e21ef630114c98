"""Stage 4 entry: `render_plan` runs a render plan on a Ray cluster.

This module is the Ray side only: it connects to the cluster, turns Ray results into the
dispatcher's events (failures classified by exception type) and carries out its actions as Ray
calls. The rules — retries, charging, retirement, deadlines, pool size — are in `dispatch.py`.
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
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from previz.engine.dispatch import (
    STOP_WAIT_SECONDS,
    Action,
    Assign,
    ClusterView,
    Dispatcher,
    Event,
    FailureKind,
    ProgressView,
    PublishFailed,
    Record,
    StandIn,
    StartWorker,
    Stop,
    Stopped,
    StopWorker,
    TakePublished,
    TaskFailed,
    TaskRendered,
    Tick,
    WorkerLost,
    WorkerStarted,
    WorkerStartFailed,
    draft_takes,
    keys_of,
    shot_outcomes,
    still_takes,
    wanted_takes,
    work_graph,
)
from previz.engine.types import EngineSettings, RenderInterrupted, RenderReport
from previz.errors import PrevizError
from previz.plan.types import RenderPlan
from previz.store.errors import NoCredentials
from previz.store.ledger import Outcome

__all__ = ["render_plan", "failure_kind", "ray_connection", "check_reachable"]

log = logging.getLogger(__name__)

EMBEDDED_START_TRIES = 3
EMBEDDED_RETRY_PAUSE = (2.0, 6.0)  # seconds (times the try number): apart from the others
CLUSTER_VIEW_SECONDS = 2.0  # how often the pool is sized against the cluster's resources
PROGRESS_POLL_SECONDS = 1.0
STOP_SETTLE_SECONDS = 10.0  # for killed workers' calls in flight to end, when a render stops


def render_plan(plan: RenderPlan, store_uri: str, *, address: str | None = None,
                only: Iterable[str] | None = None, force: bool = False, draft: bool = False,
                stills: bool = False, settings: EngineSettings | None = None,
                display: Any = None) -> RenderReport:
    """Render every take the cut needs that the store lacks.

    1. sweep what dead writers left in the store; choose the takes (--only, --draft) and find
       those already in the store (--force);
    2. connect to the cluster (an embedded local Ray when no address is given) — not at all
       when nothing is left to render;
    3. dispatch ready tasks to warm workers until every task is done or out of retries;
    4. append every attempt to the ledger and report each shot's outcome.
    """
    from previz.store import open_store

    settings = settings or EngineSettings()
    store = open_store(store_uri)
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    started = time.time()
    # 1. the work
    swept = store.sweep_staging()
    if swept:
        log.info("%s: swept %d half-written file(s) a stopped render left", store.uri, swept)
    wanted = wanted_takes(plan, only)
    if draft:
        wanted = draft_takes(plan, wanted)
    elif stills:
        wanted = still_takes(plan, wanted)
    forced = keys_of(plan, wanted) if force else set()
    done = _published_keys(store, plan, wanted, ignore=forced)
    graph = work_graph(plan, done, wanted)
    dispatcher = Dispatcher(plan, graph, settings, run_id=run_id, embedded=_embedded(address),
                            published_stand_ins=_published_stand_ins(store, plan, settings))
    # 2-3. the cluster, and the work on it
    to_render = tuple(s.task.key for s in graph.states.values()
                      if not s.status.is_terminal)
    cluster_seconds = 0.0
    if not graph.finished():
        if dispatcher.embedded:
            _check_local_capacity(dispatcher)
        began = time.monotonic()
        with ray_connection(address):
            run = _RayRun(dispatcher, store, store_uri, settings, display)
            working = time.monotonic()
            try:
                run.run()
            finally:
                run.close()
                worked = time.monotonic() - working
        cluster_seconds = time.monotonic() - began - worked
    if display is not None:
        display.update(dispatcher.snapshot, final=True)
    # 4. the report
    take_status = {take.key: status for shot in plan.shots
                   for take in (*shot.takes, *shot.stand_ins())
                   if (status := graph.take_status(take)) is not None}
    return RenderReport(
        run_id=run_id, shots=shot_outcomes(plan, graph, done, wanted),
        attempts=dispatcher.attempts, started=started, finished=time.time(),
        gaps=dispatcher.gaps, loads=dispatcher.loads, take_status=take_status,
        tasks_to_render=to_render, lanes=dispatcher.most_workers,
        embedded=dispatcher.embedded, cluster_seconds=cluster_seconds)


def _published_keys(store, plan: RenderPlan, wanted: set[str], ignore: set[str]) -> set[str]:
    from previz.store.takes import has_take

    keys = keys_of(plan, {t.key for t in plan.needed_takes()} | wanted)
    return {key for key in keys if key not in ignore and has_take(store, key)}


def _published_stand_ins(store, plan: RenderPlan, settings: EngineSettings) -> set[str]:
    """Under a deadline, the stand-ins already in the store (never rendered twice)."""
    if settings.deadline is None:
        return set()
    from previz.store.takes import has_take

    return {take.key for shot in plan.shots for take in (shot.fallback, shot.reduced)
            if take is not None and has_take(store, take.key)}


def _embedded(address: str | None) -> bool:
    """Whether this render starts its own Ray on this machine (no autoscaler, no other node)."""
    import ray

    # Inside a Ray Job (previz submit) the job's cluster is in RAY_ADDRESS.
    return not (address or os.environ.get("RAY_ADDRESS") or ray.is_initialized())


def _check_local_capacity(dispatcher: Dispatcher) -> None:
    """Fail in a second, before starting Ray, when this machine lacks the GPUs the work needs:
    the embedded cluster has no autoscaler to add them."""
    gpus = _local_gpus()
    if gpus is None:
        return  # Ray could not tell here: the dispatcher checks once Ray is up
    cpus = os.cpu_count() or 1
    problem = dispatcher.capacity_problem(ClusterView(gpus=gpus, cpus=cpus,
                                                      largest_node_gpus=gpus))
    if problem is not None:
        raise PrevizError(problem)


def _local_gpus() -> int | None:
    """The GPUs an embedded Ray would find on this machine, as Ray counts them (its accelerator
    manager; visible devices only)."""
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource

        manager = get_accelerator_manager_for_resource("GPU")
        count = manager.get_current_node_num_accelerators()
        visible = manager.get_current_process_visible_accelerator_ids()
    except Exception:  # noqa: BLE001 - a private Ray API: without it, Ray's own count decides
        return None
    return min(count, len(visible)) if visible is not None else count


@contextlib.contextmanager
def ray_connection(address: str | None) -> Iterator[None]:
    import ray

    if ray.is_initialized():
        yield
        return
    # Inside a Ray Job (previz submit) the job's cluster is in RAY_ADDRESS.
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        check_reachable(address)
        _init_keeping_sigterm(address=address, logging_level="WARNING", log_to_driver=False)
        try:
            yield
        finally:
            ray.shutdown()
        return
    # An embedded cluster with its own temp dir, so it never meets another Ray on this host.
    saved = {name: os.environ.get(name) for name in ("RAY_TMPDIR", "RAY_AUTH_MODE")}
    temp = None
    try:
        temp = _start_embedded_ray()
        yield
    finally:
        ray.shutdown()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


def _start_embedded_ray() -> str:
    """Start Ray on this machine; returns its temp dir. Several renders starting at once on a
    small machine can overload it (Ray: "The current node timed out during startup"): each
    try's leftover processes are stopped and it tries again a little later, then fails in one
    line saying what to do."""
    import random

    import psutil
    import ray

    # Ray turns token authentication on for a new local cluster, and warns that it did on every
    # start: previz keeps it on, and keeps the warning out of every render's output.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR)
    last: BaseException | None = None
    for attempt in range(1, EMBEDDED_START_TRIES + 1):
        temp = tempfile.mkdtemp(prefix="pvz-ray-", dir="/tmp")
        os.environ["RAY_TMPDIR"] = temp
        before = {child.pid for child in psutil.Process().children(recursive=True)}
        try:
            _init_keeping_sigterm(include_dashboard=False, logging_level="WARNING",
                                  log_to_driver=False, configure_logging=True)
            return temp
        except Exception as error:  # noqa: BLE001 - whatever stopped Ray starting: try again
            last = error
            ray.shutdown()
            # Only the processes this try started (a failed start leaves them unowned).
            for child in psutil.Process().children(recursive=True):
                if child.pid not in before:
                    with contextlib.suppress(psutil.Error):
                        child.kill()
            shutil.rmtree(temp, ignore_errors=True)
            log.warning("could not start Ray on this machine (try %d of %d): %s", attempt,
                        EMBEDDED_START_TRIES, _describe(error))
            if attempt < EMBEDDED_START_TRIES:
                time.sleep(random.uniform(*EMBEDDED_RETRY_PAUSE) * attempt)
    raise PrevizError(
        f"could not start Ray on this machine in {EMBEDDED_START_TRIES} tries (the last: "
        f"{_describe(last) if last else 'unknown'}) — with several renders at once on "
        f"{os.cpu_count()} cores, start one local cluster (cluster/local/start-local-cluster.sh)"
        " and give each render its --address, or render one at a time")


def check_reachable(address: str) -> None:
    """Fail in seconds on a head that is not there, or that refuses this machine's token: Ray
    itself keeps retrying for minutes, or twenty seconds of warnings, before it says either."""
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
    refused = _token_refused(address)
    if refused:
        raise PrevizError(f"--address {address}: {refused}")


def _token_refused(address: str) -> str | None:
    """Why the cluster's GCS refuses this machine's token, or None. Ray's own GCS client is the
    only thing that speaks its authenticated gRPC: it raises AuthenticationError at once."""
    try:
        from ray._raylet import GcsClient
        from ray.exceptions import AuthenticationError
    except ImportError:  # another Ray: ray.init reports it, slower
        return None
    try:
        with _native_stderr_silenced():  # its C++ side logs the refusal as a warning too
            GcsClient(address=address)
    except AuthenticationError:
        from previz.engine.jobs import auth_token

        if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
            why = "RAY_AUTH_MODE is not 'token' here, so no token was sent"
        elif not auth_token():
            why = "no token was found here"
        else:
            why = "the token found here is not the cluster's"
        return ("the cluster uses token authentication and refused this machine (" + why
                + ") — set RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN, or in "
                "a file named by RAY_AUTH_TOKEN_PATH (~/.ray/auth_token by default); for "
                "cluster/local, `source FOLDER/env`")
    except Exception:  # noqa: BLE001 - anything else: ray.init says it, in its own words
        return None
    return None


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


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


class _RayRun:
    """The dispatcher's actions as Ray calls, and Ray's results as its events."""

    def __init__(self, dispatcher: Dispatcher, store, store_uri: str,
                 settings: EngineSettings, display: Any):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from previz.engine.worker import ProgressBoard
        from previz.store.ledger import LedgerWriter

        self.ray, self.core, self.store, self.store_uri = ray, dispatcher, store, store_uri
        self.settings, self.display = settings, display
        self.ledger = LedgerWriter(store, dispatcher.run_id)
        self.actors: dict[str, list[Any]] = {}  # worker -> its actors (a gang's, in rank order)
        self.groups: dict[str, Any] = {}  # gang -> its placement group
        self.starting: dict[Any, str] = {}  # identity() or join() ref -> worker
        self.forming: dict[str, _Forming] = {}  # gangs not yet one torch.distributed group
        self.rendering: dict[Any, tuple[str, str]] = {}  # render() ref -> (worker, task key)
        self.together: dict[tuple[str, str], _GangCall] = {}  # a gang's task -> its calls
        self.encoding: dict[Any, str] = {}  # encode task ref -> task key
        self.causes: dict[str, BaseException] = {}  # task key -> the exception it last failed with
        self.unrecorded: list[str] = []  # why published takes' ledger rows could not be written
        self.images: dict[str, Any] = {}  # sha256 -> object ref
        self._last_flush = self._last_view = self._last_poll = 0.0
        # On the driver's own node: it must outlive any worker node (spot reclaims, failures).
        self.progress = ProgressBoard.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            ray.get_runtime_context().get_node_id(), soft=True)).remote()

    def run(self) -> None:
        try:
            while not self.core.finished:
                self._apply(self.core.handle(self._tick()))
                for event in self._events():
                    self._apply(self.core.handle(event))
                self._flush_ledger()
                if self.display is not None:
                    self.display.update(self.core.snapshot)
        except KeyboardInterrupt:
            self._stop(Stop("interrupted", STOP_WAIT_SECONDS))
            raise RenderInterrupted("interrupted: running shots cancelled, finished takes kept") \
                from None

    # events
    def _tick(self) -> Tick:
        now = time.time()
        cluster = progress = None
        if self.core.wants_cluster_view or now - self._last_view > CLUSTER_VIEW_SECONDS:
            cluster, self._last_view = self._cluster_view(), now
        if now - self._last_poll > PROGRESS_POLL_SECONDS:
            progress, self._last_poll = self._progress_view(), now
        return Tick(now, cluster=cluster, progress=progress)

    def _cluster_view(self) -> ClusterView:
        total = self.ray.cluster_resources()
        largest = max((int(node["Resources"].get("GPU", 0)) for node in self.ray.nodes()
                       if node.get("Alive")), default=0)
        return ClusterView(gpus=int(total.get("GPU", 0)), cpus=int(total.get("CPU", 1)),
                           largest_node_gpus=largest)

    def _progress_view(self) -> ProgressView | None:
        """What the progress board knows only informs, so a lost board costs nothing."""
        try:
            began, steps = self.ray.get(self.progress.read.remote(), timeout=5)
        except Exception:  # noqa: BLE001 - its node lost, or slow: carry on without it
            return None
        return ProgressView(began=began, last_step={k: v[2] for k, v in steps.items()},
                            steps={k: (v[0], v[1]) for k, v in steps.items()})

    def _events(self) -> list[Event]:
        refs = [*self.starting, *self.rendering, *self.encoding]
        if not refs:
            time.sleep(0.05)
            return []
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=0.2)
        if ready:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        events: list[Event | None] = []
        for ref in ready:
            if ref in self.starting:
                events.append(self._started(ref))
            elif ref in self.rendering:
                events.append(self._rendered(ref))
            elif ref in self.encoding:
                events.append(self._encoded(ref))
        return [event for event in events if event is not None]

    def _started(self, ref) -> Event | None:
        """A worker is placed; a gang once every member is, and then once they have formed
        their torch.distributed group (None until then)."""
        worker = self.starting.pop(ref)
        try:
            identity = self.ray.get(ref)
        except Exception as error:  # noqa: BLE001 - it died before its first task
            self._forget_start(worker)
            return WorkerStartFailed(worker, _describe(error), time.time())
        forming = self.forming.get(worker)
        if forming is None:
            return WorkerStarted(worker, identity["node"], time.time())
        forming.waiting.discard(ref)
        if isinstance(identity, dict) and "rendezvous" in identity:
            forming.node, forming.rendezvous = identity["node"], identity["rendezvous"]
        if forming.waiting:
            return None
        if not forming.joined:
            forming.joined = True
            forming.waiting = {member.join.remote(*forming.rendezvous)
                               for member in self.actors[worker]}
            self.starting.update(dict.fromkeys(forming.waiting, worker))
            return None
        del self.forming[worker]
        return WorkerStarted(worker, forming.node, time.time())

    def _forget_start(self, worker: str) -> None:
        self.forming.pop(worker, None)
        for ref in [r for r, w in self.starting.items() if w == worker]:
            del self.starting[ref]

    def _rendered(self, ref) -> Event | None:
        """A worker's task ended; a gang's once every member's call has (None until then),
        or as soon as one fails: the others may wait in a collective for it forever."""
        worker, key = self.rendering.pop(ref)
        call = self.together.get((worker, key))
        try:
            result = self.ray.get(ref)
        except Exception as error:  # noqa: BLE001 - classified by type below
            if call is not None:
                del self.together[(worker, key)]
                for other in call.waiting:
                    self.rendering.pop(other, None)
            self.causes[key] = _cause(error)
            kind = failure_kind(error, lambda: self._node_alive(worker))
            if kind in (FailureKind.LOST_WORKER, FailureKind.LOST_NODE):
                return WorkerLost(worker, kind, _describe(error), time.time())
            return TaskFailed(worker, key, kind, _describe(error), time.time(),
                              retry_options=getattr(_cause(error), "suggestion", None))
        if call is not None:
            call.waiting.discard(ref)
            if ref == call.lead:
                call.result = result
            if call.waiting:
                return None
            del self.together[(worker, key)]
            result = call.result
        if result.publish:
            self.encoding[result.publish[0]] = key
        elif result.ledger_error:
            self.unrecorded.append(result.ledger_error)
        return TaskRendered(worker, key, result.started, result.finished, result.load_seconds,
                            result.node, encoding=bool(result.publish), now=time.time())

    def _encoded(self, ref) -> Event:
        key = self.encoding.pop(ref)
        try:
            published = self.ray.get(ref)
        except Exception as error:  # noqa: BLE001 - classified by type below
            self.causes[key] = _cause(error)
            return PublishFailed(key, failure_kind(error, lambda: True, encode=True),
                                 _describe(error), time.time())
        if published.get("ledger_error"):
            self.unrecorded.append(published["ledger_error"])
        return TakePublished(key, time.time())

    def _node_alive(self, worker: str) -> bool:
        known = self.core.workers.get(worker)
        node = known.node if known is not None else ""
        if not node:
            return True  # never learnt where it ran: assume the worker, not the node, failed
        try:
            return any(n["NodeID"] == node and n["Alive"] for n in self.ray.nodes())
        except Exception:  # noqa: BLE001 - the GCS is busy: the conservative answer
            return True

    # actions
    def _apply(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, StartWorker):
                self._start_worker(action)
            elif isinstance(action, Assign):
                self._assign(action)
            elif isinstance(action, StopWorker):
                self._stop_worker(action.worker)
            elif isinstance(action, Record):
                # What published a take wrote its row already (engine/publish.py).
                if action.attempt.outcome != Outcome.OK:
                    self.ledger.record(action.attempt)
                _metrics().record(action.attempt)
            elif isinstance(action, StandIn):
                log.info("%s put off for the deadline: %s", action.shot,
                         f"{action.stand_in[:12]} stands in" if action.stand_in
                         else "a placeholder stands in")
            elif isinstance(action, Stop):
                self._stop(action)

    def _start_worker(self, action: StartWorker) -> None:
        """One actor, or for several GPUs a gang: one actor per GPU in a placement group that
        packs them on one node (rank 0 first)."""
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from previz.engine.worker import RenderWorker

        worker_class = self.ray.remote(RenderWorker)
        arguments = (action.worker, self.store_uri, self.settings.worker_options, self.progress,
                     self.core.run_id)
        if action.gpus <= 1:
            actor = worker_class.options(
                num_gpus=action.gpus, num_cpus=0 if action.gpus else 1, max_restarts=0,
                max_concurrency=1).remote(*arguments)
            self.actors[action.worker] = [actor]
            self.starting[actor.identity.remote()] = action.worker
            return
        group = placement_group([{"GPU": 1}] * action.gpus, strategy="STRICT_PACK",
                                name=f"previz-{self.core.run_id}-{action.worker}")
        self.groups[action.worker] = group
        members = [worker_class.options(
            num_gpus=1, num_cpus=0, max_restarts=0, max_concurrency=1,
            scheduling_strategy=PlacementGroupSchedulingStrategy(
                group, placement_group_bundle_index=rank),
        ).remote(*arguments, rank=rank, gang=action.gpus) for rank in range(action.gpus)]
        self.actors[action.worker] = members
        forming = _Forming(waiting={member.identity.remote() for member in members})
        self.forming[action.worker] = forming
        self.starting.update(dict.fromkeys(forming.waiting, action.worker))

    def _assign(self, action: Assign) -> None:
        state = self.core.graph.states[action.key]
        calls = [member.render.remote(
            state.task.model_dump_json(), state.take.model_dump_json(), action.attempt,
            self._images_for(state.task), action.extra_options)
            for member in self.actors[action.worker]]
        self.rendering.update(dict.fromkeys(calls, (action.worker, action.key)))
        if len(calls) > 1:
            self.together[(action.worker, action.key)] = _GangCall(lead=calls[0],
                                                                   waiting=set(calls))

    def _images_for(self, task) -> dict[str, Any]:
        """Storyboard images go into the object store once; workers anywhere read them there."""
        for condition in task.conditioning:
            if condition.sha256 and condition.path and condition.sha256 not in self.images:
                with open(condition.path, "rb") as image:
                    self.images[condition.sha256] = self.ray.put(image.read())
        return {c.sha256: self.images[c.sha256] for c in task.conditioning
                if c.sha256 in self.images}

    def _stop_worker(self, worker: str) -> None:
        for ref in [r for r, (w, _) in self.rendering.items() if w == worker]:
            del self.rendering[ref]
        for call in [c for c in self.together if c[0] == worker]:
            del self.together[call]
        self._forget_start(worker)
        for actor in self.actors.pop(worker, []):
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        group = self.groups.pop(worker, None)
        if group is not None:
            from ray.util.placement_group import remove_placement_group

            with contextlib.suppress(Exception):
                remove_placement_group(group)

    def _stop(self, stop: Stop) -> None:
        """Takes already handed to encode tasks are finished work: they get `wait_seconds` to
        publish (their encode tasks die with the worker that started them) and count as done;
        so does anything queued whose output reached the store all the same."""
        from previz.store.takes import has_take

        if self.encoding:
            with contextlib.suppress(Exception):
                ready, _ = self.ray.wait(list(self.encoding), num_returns=len(self.encoding),
                                         timeout=stop.wait_seconds)
                for ref in ready:
                    self._apply(self.core.handle(self._encoded(ref)))
        # Workers stop before the store is asked what reached it: one still running could
        # publish a take (and write its ledger row) after it was counted as cancelled. A kill
        # is asynchronous: the calls in flight end (with the actor's death) once it is done.
        in_flight = [*self.rendering, *self.encoding]
        for worker in list(self.actors):
            self._stop_worker(worker)
        if in_flight:
            with contextlib.suppress(Exception):
                self.ray.wait(in_flight, num_returns=len(in_flight),
                              timeout=STOP_SETTLE_SECONDS)
        published = set()
        for key in self.core.unsettled():
            with contextlib.suppress(Exception):
                if has_take(self.store, self.core.published_key(key)):
                    published.add(key)
        self._apply(self.core.handle(Stopped(stop.reason, time.time(), frozenset(published))))
        self.encoding.clear()
        if stop.error is not None:
            cause = self.causes.get(stop.cause_key or "")
            if isinstance(cause, NoCredentials):
                # This process read the store, so it is the cluster's workers that lack them.
                raise PrevizError(
                    f"{self.store.uri}: the cluster's workers have no usable credentials for "
                    "the store, although this machine has (the render read the store with its "
                    "own) — give the workers theirs: an instance profile or IAM role on the "
                    "nodes, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment the "
                    "nodes were started with, or ~/.aws/credentials on every node") from None
            if cause is not None:
                raise cause from None
            raise PrevizError(stop.error)

    # the ledger
    def _flush_ledger(self, force: bool = False) -> None:
        if not force and time.time() - self._last_flush < self.settings.ledger_flush_seconds:
            return
        self._last_flush = time.time()
        self.ledger.flush()

    def close(self) -> None:
        reasons = list(self.unrecorded)
        try:
            self._flush_ledger(force=True)
        except Exception as error:  # noqa: BLE001 - the render's own outcome matters more
            reasons += [_describe(error)] * self.ledger.pending
        if reasons:
            # Said, not raised: the takes are published either way, but a supervisor reading
            # the ledger must know these attempts are missing from it.
            log.warning("run %s: %d attempt(s) could not be added to the ledger (%s)",
                        self.core.run_id, len(reasons), reasons[-1])
        for worker in list(self.actors):
            self._stop_worker(worker)
        with contextlib.suppress(Exception):
            self.ray.kill(self.progress)


def failure_kind(error: BaseException, node_alive=lambda: True, *,
                 encode: bool = False) -> FailureKind:
    """What a failed Ray call means for the shot, by exception type (never by message text).

    `node_alive()` says whether the worker's node is still in the cluster; `encode`: the call
    was an encode task, whose frames die with the worker that owns them."""
    from ray import exceptions as ray_errors

    from previz.generate.errors import GeneratorOutOfMemory
    from previz.store.errors import StoreError

    cause = _cause(error)
    if isinstance(cause, StoreError):
        return FailureKind.STORE
    if isinstance(cause, GeneratorOutOfMemory):
        return FailureKind.OUT_OF_MEMORY
    if isinstance(error, (ray_errors.NodeDiedError, ray_errors.OwnerDiedError)) or (
            isinstance(error, ray_errors.RayActorError) and error.preempted):
        return FailureKind.LOST_NODE
    if encode:
        # Its frames were lost with the object store holding them: not the shot's fault.
        if isinstance(error, ray_errors.ObjectLostError):
            return FailureKind.LOST_NODE
        return FailureKind.GENERATOR
    if isinstance(error, (ray_errors.RayActorError, ray_errors.WorkerCrashedError,
                          ray_errors.LocalRayletDiedError, ray_errors.ObjectLostError)):
        return FailureKind.LOST_WORKER if node_alive() else FailureKind.LOST_NODE
    return FailureKind.GENERATOR


@dataclass
class _Forming:
    """A gang on its way to work: its members' identity() calls, then their join() calls."""

    waiting: set[Any]
    joined: bool = False
    node: str = ""
    rendezvous: tuple[str, int] | None = None


@dataclass
class _GangCall:
    """One task's render() calls on every member of a gang: rank 0's result is the task's."""

    lead: Any
    waiting: set[Any]
    result: Any = None


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

    def record(self, attempt) -> None:
        tags = {"model": attempt.model}
        if attempt.outcome == "ok":
            self.done.inc(tags=tags)
            seconds = (attempt.finished_at - attempt.started_at).total_seconds()
            self.per_frame.observe(seconds / max(1, attempt.frames), tags=tags)
        elif attempt.outcome == "failed":
            self.failed.inc(tags=tags)


_METRICS: _Metrics | None = None


def _metrics() -> _Metrics:
    global _METRICS
    if _METRICS is None:
        _METRICS = _Metrics()
    return _METRICS


def _cause(error: BaseException) -> BaseException:
    """The exception a remote call raised, unwrapped from Ray's RayTaskError."""
    return getattr(error, "cause", None) or error


def _describe(error: BaseException) -> str:
    cause = _cause(error)
    text = str(cause).strip().splitlines()
    first = text[-1] if text else ""
    return f"{type(cause).__name__}: {first}"[:500]
