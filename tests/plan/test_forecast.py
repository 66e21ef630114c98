"""The plan's wall-time forecast, by hand from its constants (previz.plan.forecast)."""

import textwrap
from pathlib import Path

import pytest

from previz.plan import forecast as fc
from previz.plan import plan_from_storyboard
from previz.storyboard import load_storyboard

ROOT = Path(__file__).resolve().parents[2]


def plan_of(tmp_path: Path, shots: str, defaults: str = "{model: draft, seed: 7}"):
    path = tmp_path / "board.yaml"
    path.write_text(textwrap.dedent(f"""\
        project: P
        sequence: SQ010
        fps: 24
        resolution: 640x360
        defaults: {defaults}
        shots:
        """) + textwrap.indent(textwrap.dedent(shots), "  "))
    return plan_from_storyboard(load_storyboard(path))


DRAFT_SHOTS = """\
- {id: SH0010, duration: 48f, prompt: harbour}
- {id: SH0020, duration: 24f, prompt: boat}
"""


def test_a_draft_render_is_its_parts_on_this_machine(tmp_path):
    plan = plan_of(tmp_path, DRAFT_SHOTS)
    got = fc.forecast(plan, cpus=4)
    assert got.lanes == 2  # one CPU worker per two cores, as the engine starts them
    costs = [t.estimate_seconds + fc.TASK_SECONDS for t in plan.tasks()]
    assert got.work_seconds == pytest.approx(sum(costs))
    # two lanes: SH0010's 48 frames alone outlast half of the work
    assert max(costs) > sum(costs) / 2
    assert got.generation_seconds == pytest.approx(max(costs))
    assert fc.forecast(plan, cpus=2).generation_seconds == pytest.approx(sum(costs))
    assert got.start_seconds == fc.EMBEDDED_START_SECONDS
    assert got.load_seconds == fc.WORKER_START_SECONDS  # the draft model loads no weights
    megapixel_frames = 72 * 640 * 360 / 1e6
    assert got.assembly_seconds == pytest.approx(
        fc.ASSEMBLY_FIXED_SECONDS + megapixel_frames * fc.ASSEMBLY_SECONDS_PER_MEGAPIXEL_FRAME)
    assert got.wall_seconds == pytest.approx(sum(got.parts().values()))
    assert got.describe().startswith(f"about {got.wall_seconds:.0f} s by the clock")
    assert "generation 0 s on 2 CPU lanes" in got.describe()
    # on a running cluster: a connection instead of a start
    assert fc.forecast(plan, cpus=4, embedded=False).start_seconds == fc.CONNECT_SECONDS


def test_nothing_to_render_costs_no_cluster_and_an_edit_assembles_less(tmp_path):
    plan = plan_of(tmp_path, DRAFT_SHOTS)
    nothing = fc.forecast(plan, tasks=[], shots=[])
    assert (nothing.start_seconds, nothing.load_seconds, nothing.generation_seconds) == (0, 0, 0)
    assert nothing.assembly_seconds == fc.ASSEMBLY_FIXED_SECONDS
    one = fc.forecast(plan, tasks=plan.shots[1].selected_take.tasks, shots=["SH0020"])
    everything = fc.forecast(plan)
    assert one.assembly_seconds < everything.assembly_seconds
    assert one.work_seconds < everything.work_seconds


def test_gpu_work_spreads_over_the_gpus_until_the_longest_chain_bounds_it(tmp_path):
    plan = plan_of(tmp_path, """\
        - {id: SH0010, duration: 2s, prompt: harbour}
        - {id: SH0020, duration: 2s, prompt: rope, continue: SH0010}
        - {id: SH0030, duration: 1s, prompt: gull}
        """, defaults="{model: wan2.1-t2v-1.3b, steps: 10, seed: 7}")
    cost = {t.key: t.estimate_seconds + fc.TASK_SECONDS for t in plan.tasks()}
    work = sum(cost.values())
    chain = fc.chain_seconds(plan, cost)
    sh0010, sh0020 = (plan.shot(s).selected_take.tasks for s in ("SH0010", "SH0020"))
    assert chain == pytest.approx(sum(cost[t.key] for t in (*sh0010, *sh0020)))
    assert fc.forecast(plan, gpus=1).generation_seconds == pytest.approx(work)
    assert fc.forecast(plan, gpus=8).generation_seconds == pytest.approx(chain)
    assert fc.forecast(plan, gpus=8).load_seconds == fc.WORKER_START_SECONDS + 30.0
    assert fc.forecast(plan, gpus=8).unit == "GPU"


def test_steps_do_not_slow_a_draft(tmp_path):
    """A draft animatic draws each frame once: a storyboard's `steps: 40` (meant for the real
    model) must not make its estimate forty times longer."""
    once = plan_of(tmp_path, DRAFT_SHOTS)
    forty = plan_of(tmp_path, DRAFT_SHOTS, defaults="{model: draft, seed: 7, steps: 40}")
    assert forty.estimate_seconds == pytest.approx(once.estimate_seconds)


def test_previz_plan_prints_the_forecast_and_refuses_no_gpus(capsys):
    from previz import cli

    board = str(ROOT / "storyboards" / "demo.yaml")
    assert cli.main(["plan", board]) == 0
    out = capsys.readouterr().out
    assert "a render with nothing in the store: about " in out
    assert "by the clock (preparation" in out
    assert cli.main(["plan", board, "--gpus", "0"]) == 2
    assert "--gpus 0: a render needs at least one GPU" in capsys.readouterr().err


def test_assembly_counts_the_sound_when_shots_make_some(tmp_path):
    """The draft voices dialogue: the cut's mix is assembled too (previz.assemble.sound)."""
    silent = plan_of(tmp_path, DRAFT_SHOTS)
    (tmp_path / "voiced").mkdir()
    voiced = plan_of(tmp_path / "voiced", """\
        - {id: SH0010, duration: 48f, prompt: harbour, sound: gulls}
        - {id: SH0020, duration: 24f, prompt: boat}
        """)
    extra = fc.assembly_seconds(voiced) - fc.assembly_seconds(silent)
    assert extra == pytest.approx(fc.SOUND_FIXED_SECONDS + fc.SOUND_SECONDS_PER_SHOT
                                  + fc.SOUND_SECONDS_PER_CUT_SECOND * 72 / 24)
