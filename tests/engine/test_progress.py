"""The plain progress lines a Ray job's log shows, from a real work graph."""

import io
from types import SimpleNamespace

from test_graph import BOARD, plan_of

from previz.engine.graph import WorkGraph
from previz.engine.progress import LineDisplay


def test_progress_counts_stand_ins_not_the_work_they_replace():
    plan = plan_of(BOARD.replace("options: {gpus: 1}", "steps: 20, options: {gpus: 1}"))
    graph = WorkGraph(plan)
    total = len(graph.states)
    shot = plan.shot("SH0020")
    graph.defer(shot.selected_take)
    graph.add_take(shot.reduced)
    stream = io.StringIO()
    LineDisplay(plan, stream).update(SimpleNamespace(graph=graph, slots=[], progress=None))
    line = stream.getvalue().splitlines()[0]
    # The put-off take is no longer counted as work to do; its fewer-steps take is.
    assert line.startswith(f"previz: 0/{total} tasks, ")
    assert "0 failed, 1 shot(s) standing in for the deadline, 0/0 workers busy" in line
