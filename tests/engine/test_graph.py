"""The work graph decides order and readiness without Ray: test it directly on real plans."""

import textwrap

from previz.engine.graph import WorkGraph
from previz.plan import plan_from_storyboard
from previz.storyboard import storyboard_from_text

BOARD = """\
project: P
sequence: SQ010
fps: 24
defaults: {model: synthetic, options: {gpus: 1}}
shots:
  - {id: SH0010, duration: 1s, prompt: a}
  - {id: SH0020, duration: 4s, prompt: b}
  - {id: SH0030, duration: 1s, prompt: c, continue: SH0010}
  - {id: SH0040, duration: 1s, prompt: d, continue: SH0030}
  - {id: SH0050, duration: 2s, prompt: e, takes: 2}
"""


def plan_of(text=BOARD):
    return plan_from_storyboard(storyboard_from_text(textwrap.dedent(text), "b.yaml", "/tmp"))


def ids(states):
    return [(s.task.shot_id, s.task.take) for s in states]


def test_longest_chain_goes_first_then_largest_cost():
    graph = WorkGraph(plan_of())
    # SH0010 heads a chain of three 1 s shots (72 frames of work); SH0020 alone is 96 frames,
    # so it goes first; continued shots wait for what they continue.
    order = ids(graph.ready())
    assert order[0] == ("SH0020", 1)
    assert order[1] == ("SH0010", 1)
    assert ("SH0030", 1) not in order and ("SH0040", 1) not in order
    chain = {s.task.shot_id: s.chain_seconds for s in graph.states.values()}
    assert chain["SH0010"] > chain["SH0030"] > chain["SH0040"]
    assert chain["SH0010"] > chain["SH0030"] > chain["SH0040"]


def test_dependents_become_ready_as_work_finishes():
    plan = plan_of()
    graph = WorkGraph(plan)
    first = plan.shot("SH0010").selected_take.tasks[0].key
    graph.start(first)
    assert ("SH0030", 1) not in ids(graph.ready())
    graph.finish(first)
    assert ("SH0030", 1) in ids(graph.ready())


def test_failure_blocks_everything_downstream():
    plan = plan_of()
    graph = WorkGraph(plan)
    first = plan.shot("SH0010").selected_take.tasks[0].key
    blocked = graph.fail(first, "boom")
    assert {graph.states[k].task.shot_id for k in blocked} == {"SH0030", "SH0040"}
    assert graph.take_status(plan.shot("SH0040").selected_take) == "blocked"


def test_published_takes_are_done_and_only_restricts_work():
    plan = plan_of()
    done = {plan.shot("SH0010").selected_take.key}
    graph = WorkGraph(plan, done_keys=done,
                      wanted_takes={plan.shot("SH0040").selected_take.key})
    remaining = sorted(s.task.shot_id for s in graph.remaining())
    # SH0040 needs SH0030, which needs SH0010 — already published.
    assert remaining == ["SH0030", "SH0040"]
    assert graph.take_status(plan.shot("SH0020").selected_take) == "skipped"


def test_segments_chain_inside_a_take():
    plan = plan_of(BOARD.replace("model: synthetic, options: {gpus: 1}", "model: wan")
                   .replace("duration: 4s", "duration: 12s"))
    take = plan.shot("SH0020").selected_take
    assert len(take.tasks) == 3
    graph = WorkGraph(plan)
    ready = {s.key for s in graph.ready()}
    assert take.tasks[0].key in ready and take.tasks[1].key not in ready
    graph.finish(take.tasks[0].key)
    assert take.tasks[1].key in {s.key for s in graph.ready()}


def test_a_fewer_steps_take_added_for_a_deadline_keeps_its_order():
    plan = plan_of(BOARD.replace("model: synthetic, options: {gpus: 1}", "model: wan")
                   .replace("duration: 4s", "duration: 12s"))
    graph = WorkGraph(plan)
    # A long shot put off: its fewer-steps take's segments still chain inside the take.
    long_shot = plan.shot("SH0020")
    assert [t.shot_id for t in graph.defer(long_shot.selected_take)] == ["SH0020"]
    assert graph.can_add(long_shot.reduced)
    graph.add_take(long_shot.reduced)
    segments = [t.key for t in long_shot.reduced.tasks]
    ready = {s.key for s in graph.ready()}
    assert segments[0] in ready and segments[1] not in ready
    graph.finish(segments[0])
    assert segments[1] in {s.key for s in graph.ready()}
    # SH0030 continues SH0010: put SH0010 off and neither SH0030's final take nor its
    # fewer-steps take (which continues the same final take) can be made any more.
    deferred = graph.defer(plan.shot("SH0010").selected_take)
    assert [t.shot_id for t in deferred] == ["SH0010", "SH0030", "SH0040"]
    assert not graph.can_add(plan.shot("SH0030").reduced)
    # Before that, while SH0010 was still to come, it could have been.
    fresh = WorkGraph(plan)
    fresh.defer(plan.shot("SH0030").selected_take)
    assert fresh.can_add(plan.shot("SH0030").reduced)
    fresh.add_take(plan.shot("SH0030").reduced)
    first = fresh.states[plan.shot("SH0030").reduced.tasks[0].key]
    assert first.needs == {plan.shot("SH0010").selected_take.tasks[-1].key}
    assert first.key not in {s.key for s in fresh.ready()}
