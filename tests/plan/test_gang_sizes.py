"""`gpus:` in the storyboard: the gang sizes a shot may run on, and the located errors for the
ones its model cannot split to."""

import pytest
from test_compile import compile_error, compile_text

from previz.catalog import CATALOG, parallel_speedup
from previz.errors import InvalidInput
from previz.plan import plan_from_storyboard
from previz.storyboard import load_storyboard

BOARD = """\
project: P
sequence: SQ010
fps: 24
defaults: {{model: {model}, seed: 7{defaults}}}
shots:
  - {{id: SH0010, duration: 120f, prompt: a lighthouse{shot}}}
"""


def board(model="wan2.1-t2v-1.3b", defaults="", shot=""):
    return BOARD.format(model=model, defaults=defaults, shot=shot)


def test_a_fixed_size_runs_on_that_many_gpus_and_leaves_the_take_key_alone(tmp_path):
    one = compile_text(tmp_path, board())
    two = compile_text(tmp_path, board(shot=", gpus: 2"))
    task = two.shots[0].selected_take.final_task
    assert (task.gpus, task.gang_sizes()) == (2, (2,))
    # Same pixels (the frames match: tests/engine/test_gang_frames.py), so the same take.
    assert two.shots[0].selected_take.key == one.shots[0].selected_take.key
    assert task.seconds_on(2) == pytest.approx(task.estimate_seconds / parallel_speedup(2))
    # Two GPUs for less than half the time each: the plan counts the GPU-seconds they cost.
    assert two.shots[0].estimate_seconds == pytest.approx(2 * task.seconds_on(2))
    assert two.shots[0].estimate_seconds > one.shots[0].estimate_seconds


def test_auto_offers_every_size_the_model_splits_to(tmp_path):
    # Wan 1.3B has 12 heads: 1, 2 and 4 ways, not 8.
    plan = compile_text(tmp_path, board(defaults=", gpus: auto"))
    task = plan.shots[0].selected_take.final_task
    assert task.gang_sizes() == (1, 2, 4)
    assert task.speedups == tuple(parallel_speedup(n) for n in (1, 2, 4))
    # The 14B model (40 heads) splits 8 ways; a node of 4 GPUs caps it.
    wide = compile_text(tmp_path, board("wan2.1-t2v-14b", defaults=", gpus: auto"))
    assert wide.shots[0].selected_take.final_task.gang_sizes() == (1, 2, 4, 8)
    path = tmp_path / "board.yaml"
    capped = plan_from_storyboard(load_storyboard(path), node_gpus=4)
    assert capped.shots[0].selected_take.final_task.gang_sizes() == (1, 2, 4)
    # A model diffusers cannot split runs on one GPU whatever auto would like.
    single = compile_text(tmp_path, board("hunyuanvideo", defaults=", gpus: auto"))
    assert single.shots[0].selected_take.final_task.gang_sizes() == (1,)


@pytest.mark.parametrize("model,shot,message", [
    ("wan2.1-t2v-1.3b", ", gpus: 8",
     "shots[0].gpus: 8 — wan2.1-t2v-1.3b has 12 attention heads, which do not split 8 ways "
     "(each GPU attends with whole heads); use 1, 2, 4 or auto"),
    ("hunyuanvideo", ", gpus: 2",
     "shots[0].gpus: 2 — hunyuanvideo runs on one GPU: diffusers has no context parallelism "
     "for its transformer; use 1 or auto"),
    # 81 frames at 48x32: 21 latent frames x 3 x 2 tokens = 126, not a multiple of 4.
    ("wan2.1-t2v-1.3b", ", gpus: 4, size: 48x32",
     "shots[0].gpus: 4 — wan2.1-t2v-1.3b's sequence for 81 frames at 48x32 is 126 tokens, "
     "which do not split 4 ways; use 1, 2 or auto"),
    ("draft", ", gpus: 2",
     "shots[0].gpus: 2 — draft draws on CPU workers and uses no GPUs; remove gpus: or choose "
     "a video model"),
    ("wan2.1-t2v-1.3b", ", gpus: 3", "shots[0].gpus: 3 is not allowed — use one of 1, 2, 4, 8, auto"),
])
def test_sizes_a_model_cannot_split_to_are_located_errors(tmp_path, model, shot, message):
    assert message in compile_error(tmp_path, board(model, shot=shot))


def test_a_size_larger_than_the_clusters_nodes_is_a_located_error(tmp_path):
    compile_text(tmp_path, board("wan2.1-t2v-14b", defaults=", gpus: 8"))
    with pytest.raises(InvalidInput) as caught:
        plan_from_storyboard(load_storyboard(tmp_path / "board.yaml"), node_gpus=4)
    assert ("defaults.gpus: 8 — the largest node of the cluster has 4 GPU(s), and a shot's GPUs "
            "must be on one node; use 4 or auto") in str(caught.value)


def test_the_catalog_says_what_each_gang_size_needs_per_gpu():
    wan14 = CATALOG["wan2.1-t2v-14b"]
    # The weights stay on every GPU; the activations divide.
    assert wan14.memory_gb(1) == wan14.gpu_memory_gb
    assert wan14.memory_gb(8) < wan14.memory_gb(4) < wan14.memory_gb(2) < wan14.memory_gb(1)
    assert wan14.memory_gb(8) > wan14.resident_memory_gb
    # The published figure the curve is fitted to: 1838 s on one H100, 288 s on eight.
    assert 1838 / parallel_speedup(8) == pytest.approx(288)


def night(gpus: str) -> str:
    """24 shots of 5 s and 2 of 60 s of work (a synthetic model that states its own speed)."""
    shots = [(f"S{n:03d}", 100) for n in range(24)] + [("LONG1", 1200), ("LONG2", 1200)]
    return ("project: P\nsequence: SQ010\nfps: 24\n"
            f"defaults: {{model: synthetic, steps: 1, gpus: {gpus}, "
            "options: {seconds_per_frame: 0.05}}\nshots:\n"
            + "".join(f"  - {{id: {name}, duration: {frames}f, prompt: {name}}}\n"
                      for name, frames in shots))


def test_the_forecast_widens_the_tail_as_the_engine_would_and_the_plan_shows_each_size(
        tmp_path, capsys):
    from previz.plan.forecast import forecast
    from previz.plan.report import print_plan

    one = compile_text(tmp_path, night("1"))
    auto = compile_text(tmp_path, night("auto"))
    # One GPU per shot: the two long shots set the night; auto spreads them (4 and 2 GPUs).
    assert forecast(one, gpus=8).generation_seconds == pytest.approx(60.15)
    widened = forecast(auto, gpus=8).generation_seconds
    assert 30 < widened < 60 / parallel_speedup(2) + 1
    print_plan(auto)
    out = capsys.readouterr().out
    assert "GPUs: time" in out
    assert "1: 60 s · 2: 31 s · 4: 17 s · 8: 9 s" in out


def test_previz_plan_checks_gpus_against_the_nodes_it_is_told_of(tmp_path, capsys):
    from previz import cli

    compile_text(tmp_path, board("wan2.1-t2v-14b", shot=", gpus: 8"))
    path = str(tmp_path / "board.yaml")
    assert cli.main(["plan", path]) == 0
    assert cli.main(["plan", path, "--node-gpus", "4"]) == 2
    assert "shots[0].gpus: 8 — the largest node of the cluster has 4 GPU(s)" in \
        capsys.readouterr().err
