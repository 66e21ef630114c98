"""The dispatcher's rules for gangs (a shot on several GPUs), without Ray: which sizes it starts,
when it widens the tail, how it gathers GPUs for a wide shot, what a lost member costs.
`gangs.allot`'s choices are checked on the benchmark's nights."""

from __future__ import annotations

import pytest
from test_dispatch import Run, assigns, of

from previz.catalog import parallel_speedup
from previz.engine.dispatch import (
    ClusterView,
    FailureKind,
    StandIn,
    StartWorker,
    StopWorker,
    WorkerLost,
    WorkerStarted,
)
from previz.plan.gangs import Malleable, allot

NODE = ClusterView(gpus=8, cpus=4, largest_node_gpus=8)
SIZES = (1, 2, 4, 8)


def night(shots: list[tuple[str, int]], gpus="auto", extra="") -> str:
    """Synthetic shots of the given lengths in frames (0.05 s a frame, one step)."""
    lines = "".join(f"  - {{id: {name}, duration: {frames}f, prompt: {name}{extra}}}\n"
                    for name, frames in shots)
    return ("project: P\nsequence: SQ010\nfps: 24\n"
            f"defaults: {{model: synthetic, steps: 1, gpus: {gpus}, "
            "options: {seconds_per_frame: 0.05}}\nshots:\n" + lines)


def malleable(key: str, seconds: float) -> Malleable:
    return Malleable(key, SIZES, tuple(seconds / parallel_speedup(n) for n in SIZES))


def test_allot_widens_only_what_would_set_the_end_of_the_night():
    long_tail = [malleable(f"s{n}", 5) for n in range(24)] + [malleable("L1", 60),
                                                              malleable("L2", 60)]
    sizes = allot(long_tail, 8)
    # Two GPUs each: 31 s, while six GPUs do the short shots in 20 s. Widening one of them to
    # four would end no sooner (the work would take 31 s then).
    assert {k: v for k, v in sizes.items() if v > 1} == {"L1": 2, "L2": 2}
    no_tail = [malleable(f"s{n}", 5) for n in range(40)] + [malleable(f"L{n}", 20)
                                                            for n in range(4)]
    assert set(allot(no_tail, 8).values()) == {1}  # longest-first on one GPU each is best
    assert allot([malleable("alone", 60)], 8) == {"alone": 8}
    assert allot([malleable("alone", 60)], 8, largest_node=4) == {"alone": 4}
    # A deadline widens what would miss it, even where the night's length would not.
    short_night = [malleable(f"s{n}", 5) for n in range(40)] + [malleable("L", 20)]
    assert allot(short_night, 8)["L"] == 1
    assert allot(short_night, 8, time_left=12)["L"] == 2


def start_all(run: Run, cluster=NODE) -> dict[str, StartWorker]:
    started = {a.worker: a for a in of(StartWorker, run.tick(cluster=cluster))}
    run.given = []
    for worker in started:
        run.given += assigns(run.send(WorkerStarted(worker, "node-a", run.now)))
    return started


def test_auto_starts_gangs_for_the_long_shots_and_single_gpus_for_the_rest():
    run = Run(night([(f"S{n:03d}", 100) for n in range(24)] + [("LONG1", 1200),
                                                               ("LONG2", 1200)]))
    started = start_all(run)
    assert sorted(a.gpus for a in started.values()) == [1, 1, 1, 1, 2, 2]
    given = {run.shot(a.key): started[a.worker].gpus for a in run.given}
    assert given["LONG1"] == given["LONG2"] == 2


def test_a_shot_rendered_alone_gets_the_whole_node():
    run = Run(night([("SH0040", 1200)]))
    started = start_all(run)
    assert [a.gpus for a in started.values()] == [8]
    assert len(run.given) == 1


def test_a_wide_shot_ready_late_gathers_idle_gpus_instead_of_waiting_behind_narrow_ones():
    # Two GPUs: a four-second shot, short shots, and a 2-GPU shot that continues the first.
    board = night([("SH0010", 80), ("SH0030", 10), ("SH0040", 10), ("SH0050", 10)], gpus=1)
    board += "  - {id: SH0020, duration: 80f, prompt: wide, continue: SH0010, gpus: 2}\n"
    run = Run(board, queue_depth=1)
    started = start_all(run, ClusterView(gpus=2, cpus=4, largest_node_gpus=2))
    assert sorted(a.gpus for a in started.values()) == [1, 1]
    head = next(a for a in run.given if run.shot(a.key) == "SH0010")  # the chain's head first
    short = next(a for a in run.given if a is not head)
    # While SH0010's take publishes its worker goes on to a short shot; then SH0020 is ready.
    (next_short,) = assigns(run.finish(head, seconds=4.0))
    # The first worker to come free gets no more work: it is stopped for the gang.
    assert not assigns(run.finish(short, seconds=0.5))
    actions = run.tick()
    assert [a.worker for a in of(StopWorker, actions)] == [short.worker]
    assert not of(StartWorker, actions)  # one GPU is not enough
    assert not assigns(run.finish(next_short, seconds=0.5))
    actions = run.tick()
    assert [a.worker for a in of(StopWorker, actions)] == [next_short.worker]
    assert [a.gpus for a in of(StartWorker, actions)] == [2]
    gang = of(StartWorker, actions)[0].worker
    given = assigns(run.send(WorkerStarted(gang, "node-a", run.now)))
    assert [run.shot(a.key) for a in given] == ["SH0020"]


@pytest.mark.parametrize("kind", [FailureKind.GENERATOR, FailureKind.LOST_WORKER])
def test_a_gang_that_loses_a_member_is_formed_again_and_its_shot_charged_once(kind):
    run = Run(night([("SH0010", 40)], gpus=2))
    started = start_all(run, ClusterView(gpus=2, cpus=4, largest_node_gpus=2))
    (gang,) = started
    (work,) = run.given
    if kind is FailureKind.LOST_WORKER:
        actions = run.send(WorkerLost(gang, kind, "a member died", run.now))
    else:
        actions = run.fail(work, kind)
    assert [a.worker for a in of(StopWorker, actions)] == [gang]
    assert run.graph.states[work.key].attempts == 1
    assert len(run.rows("failed")) == 1
    restarted = of(StartWorker, run.tick())
    assert [a.gpus for a in restarted] == [2]
    again = assigns(run.send(WorkerStarted(restarted[0].worker, "node-a", run.now)))
    assert [(a.key, a.attempt) for a in again] == [(work.key, 2)]
    run.finish(again[0])
    assert run.d.finished and len(run.rows("ok")) == 1


def test_under_a_deadline_a_shot_that_would_miss_it_on_one_gpu_is_widened_not_put_off():
    shots = [(f"S{n:03d}", 200) for n in range(6)] + [("LONG", 400)]  # 10 s each, and 20 s
    plain = Run(night(shots))
    started = start_all(plain, ClusterView(gpus=4, cpus=4, largest_node_gpus=4))
    assert [a.gpus for a in started.values()] == [1, 1, 1, 1]  # the work sets the end, not LONG
    run = Run(night(shots), deadline=1000.0 + 22.0)  # 15 s left to render in
    started = start_all(run, ClusterView(gpus=4, cpus=4, largest_node_gpus=4))
    given = {run.shot(a.key): started[a.worker].gpus for a in run.given}
    assert given["LONG"] == 2  # 10.4 s on two GPUs; 20 s on one would miss
    assert "LONG" not in {a.shot for a in of(StandIn, run.log)}
