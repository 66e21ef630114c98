"""The dispatcher's rules, without Ray: events in, actions out, time given by the test.

Each rule (what a failure costs, retries, retirement, hung workers, pool size, capacity,
deadlines, stopping) is driven through `Dispatcher.handle` on a real plan of synthetic shots.
"""

from __future__ import annotations

import io
import textwrap

import pytest

from previz.engine.dispatch import (
    MAX_FAILED_STARTS,
    Assign,
    ClusterView,
    Dispatcher,
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
    shot_outcomes,
    work_graph,
)
from previz.engine.graph import TaskStatus
from previz.engine.progress import LineDisplay
from previz.engine.types import EngineSettings, ShotStatus
from previz.plan import plan_from_storyboard
from previz.storyboard import storyboard_from_text

BOARD = """\
project: P
sequence: SQ010
fps: 24
defaults: {model: synthetic, steps: 20, options: {gpus: 1, seconds_per_frame_step: 0.05}}
shots:
  - {id: SH0010, duration: 1s, prompt: a}
  - {id: SH0020, duration: 30f, prompt: b}
  - {id: SH0030, duration: 1s, prompt: c, continue: SH0010}
  - {id: SH0040, duration: 1s, prompt: d}
  - {id: SH0050, duration: 1s, prompt: e}
"""
GPUS = ClusterView(gpus=2, cpus=4, largest_node_gpus=2)


def plan_of(text=BOARD):
    return plan_from_storyboard(storyboard_from_text(textwrap.dedent(text), "b.yaml", "/tmp"))


class Run:
    """A dispatcher and the test's clock; keeps every action it returned."""

    def __init__(self, text=BOARD, embedded=False, draft=False, **settings):
        self.plan = plan_of(text)
        wanted = {t.key for t in self.plan.takes()}
        self.wanted = draft_takes(self.plan, wanted) if draft else wanted
        self.graph = work_graph(self.plan, set(), self.wanted)
        self.now = 1000.0
        self.d = Dispatcher(self.plan, self.graph, EngineSettings(**settings),
                            run_id="20261206T000000-abcdef", embedded=embedded)
        self.log: list = []

    def send(self, event) -> list:
        actions = self.d.handle(event)
        self.log.extend(actions)
        return actions

    def tick(self, seconds: float = 0.0, **given) -> list:
        self.now += seconds
        return self.send(Tick(self.now, **given))

    def start(self, cluster=GPUS) -> list[Assign]:
        """Size the pool, start every worker it asks for; returns the work they were given."""
        started = [a for a in self.tick(cluster=cluster) if isinstance(a, StartWorker)]
        assigned = []
        for action in started:
            assigned += assigns(self.send(WorkerStarted(action.worker, f"node-{action.worker}",
                                                        self.now)))
        return assigned

    def finish(self, assign: Assign, seconds: float = 1.0) -> list:
        self.now += seconds
        actions = self.send(TaskRendered(assign.worker, assign.key, self.now - seconds,
                                         self.now, 0.0, "n", encoding=True, now=self.now))
        return actions + self.send(TakePublished(assign.key, self.now))

    def fail(self, assign: Assign, kind=FailureKind.GENERATOR, **extra) -> list:
        return self.send(TaskFailed(assign.worker, assign.key, kind, "boom", self.now, **extra))

    def shot(self, key: str) -> str:
        return self.graph.states[key].task.shot_id

    def rows(self, outcome=None) -> list:
        return [a.attempt for a in self.log if isinstance(a, Record)
                and (outcome is None or a.attempt.outcome == outcome)]


def assigns(actions) -> list[Assign]:
    return [a for a in actions if isinstance(a, Assign)]


def of(kind, actions) -> list:
    return [a for a in actions if isinstance(a, kind)]


def test_workers_start_where_there_is_room_and_get_work_only_once_placed():
    run = Run()
    actions = run.tick(cluster=GPUS)
    assert [a.gpus for a in of(StartWorker, actions)] == [1, 1]  # 2 GPUs, 1 each
    assert not assigns(actions)  # not placed yet: it may wait for capacity forever
    work = assigns(run.send(WorkerStarted("w001", "node-a", run.now)))
    assert [a.worker for a in work] == ["w001"] and work[0].attempt == 1
    # Longest chain first: SH0010 heads SH0010 -> SH0030.
    assert run.shot(work[0].key) == "SH0010"


@pytest.mark.parametrize("settings, cluster, expected", [
    ({}, ClusterView(gpus=8, cpus=4, largest_node_gpus=2), 5),  # one per shot, no more
    ({"max_gpu_workers": 3}, ClusterView(gpus=8, cpus=4, largest_node_gpus=2), 3),
    ({}, ClusterView(gpus=1, cpus=4, largest_node_gpus=1), 1),
])
def test_the_pool_is_sized_by_gpus_work_and_settings(settings, cluster, expected):
    run = Run(**settings)
    assert len(of(StartWorker, run.tick(cluster=cluster))) == expected


# What each failure costs: the row it leaves, whether the attempt counts, what comes next.
@pytest.mark.parametrize("failure, outcome, charged", [
    (lambda a, t: TaskFailed(a.worker, a.key, FailureKind.GENERATOR, "boom", t), "failed", True),
    (lambda a, t: TaskFailed(a.worker, a.key, FailureKind.OUT_OF_MEMORY, "oom", t), "failed",
     True),
    (lambda a, t: WorkerLost(a.worker, FailureKind.LOST_WORKER, "died", t), "failed", True),
    (lambda a, t: WorkerLost(a.worker, FailureKind.LOST_NODE, "node gone", t), "lost", False),
])
def test_what_a_failed_render_call_costs(failure, outcome, charged):
    run = Run()
    first = run.start()[0]
    run.send(failure(first, run.now))
    run.start()  # a lost worker is replaced where the cluster has room
    assert [r.outcome for r in run.rows()] == [outcome]
    # Given out again at once, as its second attempt only if the first counted.
    retry = next(a for a in run.log if isinstance(a, Assign) and a.key == first.key
                 and a is not first)
    assert retry.attempt == (2 if charged else 1)


@pytest.mark.parametrize("kind, outcome, charged", [
    (FailureKind.GENERATOR, "failed", True),  # the encode raised: the shot's own fault
    (FailureKind.LOST_NODE, "lost", False),  # its frames went with the node or their owner
])
def test_what_a_failed_encode_costs(kind, outcome, charged):
    run = Run()
    first = run.start()[0]
    run.send(TaskRendered(first.worker, first.key, run.now, run.now + 1, 0.0, "n", True,
                          run.now + 1))
    run.send(PublishFailed(first.key, kind, "encode failed", run.now + 1))
    assert [r.outcome for r in run.rows()] == [outcome]
    assert run.graph.states[first.key].attempts == (1 if charged else 0)
    assert run.graph.states[first.key].status is not TaskStatus.DONE


def test_a_dead_worker_charges_only_the_task_it_was_running_whatever_order_failures_arrive():
    run = Run(queue_depth=2)
    first = run.start()[0]
    run.now += run.graph.states[first.key].task.estimate_seconds  # ending: the next is queued
    second = assigns(run.tick())
    assert [a.worker for a in second] == [first.worker]
    # Ray fails both calls of the dead worker; whichever is seen first, one attempt is charged.
    run.send(WorkerLost(first.worker, FailureKind.LOST_WORKER, "died", run.now))
    run.send(WorkerLost(first.worker, FailureKind.LOST_WORKER, "died", run.now))
    run.send(TaskFailed(first.worker, second[0].key, FailureKind.LOST_WORKER, "died", run.now))
    assert [(r.take_key, r.outcome) for r in run.rows()] == [
        (run.graph.states[first.key].take.key, "failed")]
    assert run.graph.states[first.key].attempts == 1
    # The one queued behind it never ran: given out again (if at all) as its first attempt.
    again = [a for a in run.log[run.log.index(second[0]) + 1:]
             if isinstance(a, Assign) and a.key == second[0].key]
    assert all(a.attempt == 1 for a in again)
    assert run.graph.states[second[0].key].attempts == len(again)
    assert of(StopWorker, run.log)[0].worker == first.worker


def test_out_of_memory_is_retried_with_the_options_the_generator_suggests():
    run = Run()
    first = run.start()[0]
    actions = run.fail(first, FailureKind.OUT_OF_MEMORY, retry_options={"cpu_offload": True})
    retry = next(a for a in assigns(actions) if a.key == first.key)
    assert retry.extra_options == {"cpu_offload": True}


def test_a_shot_out_of_attempts_fails_and_blocks_what_continues_it():
    run = Run(max_attempts=2)
    first = run.start()[0]
    assert run.shot(first.key) == "SH0010"
    run.fail(first)
    retry = next(a for a in run.log if isinstance(a, Assign) and a.key == first.key
                 and a.attempt == 2)
    run.fail(retry)
    assert run.graph.states[first.key].status is TaskStatus.FAILED
    continued = run.plan.shot("SH0030").selected_take.tasks[0].key
    assert run.graph.states[continued].status is TaskStatus.BLOCKED
    assert [r.attempt for r in run.rows("failed")] == [1, 2]


def test_a_store_failure_stops_the_render_with_its_cause():
    run = Run()
    first = run.start()[0]
    stop = of(Stop, run.fail(first, FailureKind.STORE))
    assert stop == [Stop("store failed", 60.0, error="boom", cause_key=first.key)]
    assert not assigns(run.tick(5))  # stopping: nothing more is given out


def test_a_worker_that_fails_three_different_shots_is_retired_once_idle():
    run = Run(retire_after_failures=3, max_attempts=1)  # each shot fails once, then the next
    run.start(ClusterView(gpus=1, cpus=4, largest_node_gpus=1))
    failed_shots = []
    while len(failed_shots) < 3:
        work = next(a for a in reversed(run.log) if isinstance(a, Assign)
                    and run.graph.states[a.key].status is TaskStatus.RUNNING)
        failed_shots.append(run.shot(work.key))
        actions = run.fail(work)
    assert len(set(failed_shots)) == 3
    # Retired: no more work for it, and it leaves; a fresh worker takes its place.
    assert not [a for a in assigns(actions) if a.worker == "w001"]
    assert [a.worker for a in of(StopWorker, actions)] == ["w001"]
    assert [a.gpus for a in of(StartWorker, actions)] == [1]


def test_a_retiring_worker_waits_for_its_encodes_before_it_leaves():
    run = Run(retire_after_failures=1, queue_depth=1)
    run.start(ClusterView(gpus=1, cpus=4, largest_node_gpus=1))
    first = assigns(run.log)[0]
    run.send(TaskRendered(first.worker, first.key, run.now, run.now + 1, 0.0, "n", True,
                          run.now + 1))
    second = assigns(run.log)[-1]
    actions = run.fail(second)  # retiring now, but the first take is still being encoded
    assert not of(StopWorker, actions)
    actions = run.send(TakePublished(first.key, run.now + 2))
    assert [a.worker for a in of(StopWorker, actions)] == ["w001"]


@pytest.mark.parametrize("progress_at, hung", [(None, True), (2000.0, False)])
def test_a_task_without_progress_past_its_limit_is_hung(progress_at, hung):
    run = Run(task_timeout=600)
    first = run.start()[0]
    last_step = {} if progress_at is None else {first.key: progress_at}
    actions = run.tick(1100, progress=ProgressView(last_step=last_step))
    stopped = [a.worker for a in of(StopWorker, actions)]
    assert (first.worker in stopped) is hung
    if hung:
        assert "no progress for 600 s (hung)" in run.rows("failed")[0].error


def test_workers_that_never_start_end_the_render_after_ten_in_a_row():
    run = Run()
    for _ in range(MAX_FAILED_STARTS):
        started = of(StartWorker, run.tick(3, cluster=GPUS))
        for action in started:
            actions = run.send(WorkerStartFailed(action.worker, "ImportError: x", run.now))
    stop = of(Stop, actions)
    assert stop and "10 render workers in a row died before their first shot, the last with " \
                    "ImportError: x" in stop[0].error


def test_on_this_machine_work_needing_gpus_it_lacks_fails_at_once_with_the_ways_out():
    run = Run(embedded=True)
    problem = run.d.capacity_problem(ClusterView(gpus=0, cpus=2, largest_node_gpus=0))
    assert problem.startswith("SH0010, SH0020, SH0030, SH0040, SH0050 (synthetic): need 1 GPU(s)")
    assert "this machine's Ray has 0 GPU(s)" in problem and "previz render --draft" in problem
    assert "{device: cpu}" in problem
    actions = run.tick(cluster=ClusterView(gpus=0, cpus=2, largest_node_gpus=0))
    assert of(Stop, actions)[0].error == problem and not of(StartWorker, actions)


def test_on_a_cluster_such_work_waits_for_an_autoscaler_first():
    run = Run(capacity_wait_seconds=120)
    small = ClusterView(gpus=0, cpus=2, largest_node_gpus=0)
    assert not of(Stop, run.tick(cluster=small))
    assert not of(Stop, run.tick(100, cluster=small))
    assert "waited 120 s for an autoscaler" in of(Stop, run.tick(30, cluster=small))[0].error


def test_a_deadline_puts_off_what_cannot_finish_and_the_draft_stands_in():
    run = Run(deadline=1000.0 + 40, deadline_reserve=5.0)
    run.start()
    stand_ins = of(StandIn, run.log)
    assert stand_ins, "40 s is less than the work on two GPUs"
    for action in stand_ins:
        shot = run.plan.shot(action.shot)
        assert action.stand_in == shot.fallback.key
        assert run.graph.take_status(shot.selected_take) is TaskStatus.DEFERRED
    # The draft lane takes them.
    drafts = [a for a in run.log if isinstance(a, Assign)
              and run.graph.states[a.key].task.generator == "draft"]
    assert drafts and all(run.d.workers[a.worker].gpus == 0 for a in drafts)


def test_at_the_deadline_the_render_stops_and_what_remains_fails():
    run = Run(deadline=1000.0 + 600)
    first = run.start()[0]
    actions = run.tick(600 - 5)  # the last encodes' five seconds
    assert of(Stop, actions) == [Stop("deadline reached", 5.0)]
    run.send(Stopped("deadline reached", run.now))
    assert run.d.finished and [r.outcome for r in run.rows()] == ["cancelled"] * len(
        [a for a in run.log if isinstance(a, Assign)])
    assert run.graph.states[first.key].error == "deadline reached before it finished"


def test_a_take_that_published_while_the_render_stopped_counts_as_done():
    run = Run()
    first, second = run.start()[:2]
    run.send(Stopped("interrupted", run.now + 1, published=frozenset({first.key})))
    outcomes = {r.take_key: r.outcome for r in run.rows()}
    assert outcomes[run.graph.states[first.key].take.key] == "ok"
    assert outcomes[run.graph.states[second.key].take.key] == "cancelled"
    assert run.graph.states[first.key].status is TaskStatus.DONE


def test_a_worker_keeps_its_model_and_a_render_finishes():
    run = Run()
    work = run.start()
    rendered = 0
    while not run.d.finished:
        running = [a for a in run.log if isinstance(a, Assign)
                   and run.graph.states[a.key].status is TaskStatus.RUNNING]
        for action in running:
            run.finish(action)
            rendered += 1
        run.tick(1)
    assert rendered == len(run.graph.states) and len(work) == 2
    outcomes = shot_outcomes(run.plan, run.graph, set(), run.wanted)
    assert {o.status for o in outcomes} == {ShotStatus.RENDERED}
    assert len(run.rows("ok")) == rendered and run.d.loads == 0


def test_draft_renders_every_shot_as_its_animatic_on_cpu_workers():
    run = Run(draft=True)
    started = of(StartWorker, run.tick(cluster=ClusterView(gpus=0, cpus=2, largest_node_gpus=0)))
    assert [a.gpus for a in started] == [0] and not of(Stop, run.log)
    while not run.d.finished:
        for action in [a for a in run.log if isinstance(a, StartWorker)]:
            run.send(WorkerStarted(action.worker, "n", run.now))
        for action in [a for a in run.log if isinstance(a, Assign)
                       and run.graph.states[a.key].status is TaskStatus.RUNNING]:
            assert run.graph.states[action.key].task.generator == "draft"
            run.finish(action)
        run.tick(1)
    outcomes = shot_outcomes(run.plan, run.graph, set(), run.wanted)
    assert [o.status for o in outcomes] == [ShotStatus.DRAFT] * 5
    assert [o.take for o in outcomes] == [s.fallback.key for s in run.plan.shots]
    assert outcomes[0].error == "drawn as a draft: --draft"


def test_progress_lines_count_stand_ins_not_the_work_they_replace():
    run = Run()
    total = len(run.graph.states)
    shot = run.plan.shot("SH0020")
    run.graph.defer(shot.selected_take)
    run.graph.add_take(shot.reduced)
    stream = io.StringIO()
    display = LineDisplay(stream)
    display.update(run.d.snapshot)
    display.update(run.d.snapshot, final=True)
    first, last = stream.getvalue().splitlines()
    # The put-off take is no longer counted as work to do; its fewer-steps take is. Frames are
    # the takes' frames at the cut's rate, as `previz plan` counts them (24 + 30 + 24 + 24 + 24).
    assert first.startswith(f"previz: 0/{total} generator calls, 0/126 frames of takes, 0 failed, "
                            "1 shot(s) standing in for the deadline, 0/0 workers busy")
    assert last.startswith(f"previz: finished: 0/{total} generator calls, 0/126 frames")
