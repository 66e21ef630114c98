"""The compiler's frame arithmetic, model choice, keys and errors, checked against hand sums."""

import shutil
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image

from previz.errors import InvalidInput
from previz.plan import plan_from_storyboard
from previz.storyboard import load_storyboard

ROOT = Path(__file__).resolve().parents[2]
STORYBOARDS = ROOT / "storyboards"


def compile_text(tmp_path: Path, text: str):
    (tmp_path / "refs").mkdir(exist_ok=True)
    if not (tmp_path / "refs" / "a.png").exists():
        Image.new("RGB", (64, 48), (10, 20, 30)).save(tmp_path / "refs" / "a.png")
        Image.new("RGB", (64, 48), (90, 20, 30)).save(tmp_path / "refs" / "panel.png")
    path = tmp_path / "board.yaml"
    path.write_text(textwrap.dedent(text))
    return plan_from_storyboard(load_storyboard(path))


def compile_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        compile_text(tmp_path, text)
    assert len(caught.value.problems) == 1, caught.value.problems
    return str(caught.value.problems[0])


HEAD = """\
project: P
sequence: SQ010
fps: {fps}
defaults: {{model: {model}, seed: 7}}
characters:
  KEEPER: {{description: an old keeper, reference: refs/a.png}}
shots:
"""


def test_demo_record_frames_match_hand_arithmetic():
    plan = plan_from_storyboard(load_storyboard(STORYBOARDS / "demo.yaml"))
    # 24 fps: 4s=96, 3s=72, 72f, 2.5s=60, 3s=72 (dissolve 12f in), 4s=96, 5s=120 (dissolve 18f in)
    expected = [
        ("SH0010", 96, 0, 96), ("SH0020", 72, 96, 168), ("SH0030", 72, 168, 240),
        ("SH0040", 60, 240, 300), ("SH0050", 72, 288, 360), ("SH0060", 96, 360, 456),
        ("SH0070", 120, 438, 558),
    ]
    got = [(s.id, s.frames, s.record_in, s.record_out) for s in plan.shots]
    assert got == expected
    assert plan.frames == 558
    # draft renders at the cut's rate and size, frame for frame
    task = plan.shots[0].selected_take.tasks[0]
    assert (task.num_frames, task.fps, task.width, task.height) == (96, 24.0, 1280, 720)
    assert plan.shots[0].selected_take.retime.source_indices() == list(range(96))


def test_23976_and_segments_match_hand_arithmetic():
    plan = plan_from_storyboard(load_storyboard(STORYBOARDS / "lighthouse_sq020.yaml"))
    assert plan.fps_exact == "24000/1001"
    sh0030 = plan.shot("SH0030")
    # 12s at 24000/1001 = 287.71 -> 288 frames.
    assert sh0030.frames == 288
    take = sh0030.selected_take
    # Wan makes 16 fps: cut frame 287 shows source frame floor(287*16*1001/24000 + 1/2) = 192,
    # so 193 source frames; windows of 81 overlap by one: 81 + 80 + 32 = 193 -> 81, 81, 33.
    assert [t.num_frames for t in take.tasks] == [81, 81, 33]
    assert take.retime.source_frames == 193
    assert take.retime.source_index(287) == 192
    indices = take.retime.source_indices()
    assert len(indices) == 288 and indices == sorted(indices)
    # Segments chain: each later one starts from the previous segment's last frame.
    assert take.tasks[1].depends_on == take.tasks[0].key
    assert take.tasks[2].conditioning_for("first_image")[0].from_key == take.tasks[1].key
    # 2.5s-free shot at 23.976: SH0020 3s -> round(71.93) = 72 frames, 49 frames at 16 fps.
    assert plan.shot("SH0020").frames == 72
    assert plan.shot("SH0020").selected_take.tasks[0].num_frames == 49
    # A dissolve of 12f overlaps the previous shot's tail.
    sh0050 = plan.shot("SH0050")
    assert sh0050.record_in == plan.shot("SH0040").record_out - 12


@pytest.mark.parametrize("fps,seconds,frames", [
    ("23.976", "4s", 96), ("24", "4s", 96), ("25", "4s", 100), ("29.97", "4s", 120),
    ("30", "4s", 120), ("23.976", "1.5s", 36), ("29.97", "10s", 300), ("25", "37f", 37),
])
def test_durations_at_every_rate(tmp_path, fps, seconds, frames):
    plan = compile_text(tmp_path, HEAD.format(fps=fps, model="draft") +
                        f"  - {{id: SH0010, duration: {seconds}, prompt: x}}\n")
    assert plan.shots[0].frames == frames
    assert plan.frames == frames


def test_retime_never_drifts(tmp_path):
    # A 16 fps model under a 29.97 cut: every cut frame maps inside the generated frames.
    plan = compile_text(tmp_path, HEAD.format(fps="29.97", model="wan") +
                        "  - {id: SH0010, duration: 5s, prompt: x}\n")
    take = plan.shots[0].selected_take
    assert take.retime.cut_frames == 150
    assert max(take.retime.source_indices()) == take.retime.source_frames - 1
    assert take.tasks[0].num_frames % 4 == 1


def test_keys_change_only_where_pixels_change(tmp_path):
    shots = textwrap.dedent("""\
      - {id: SH0010, duration: 2s, prompt: "{KEEPER} waits"}
      - {id: SH0020, duration: 2s, prompt: "the sea"}
      - {id: SH0030, duration: 2s, prompt: "the sky", continue: SH0020}
      - {id: SH0040, duration: 2s, prompt: "the rocks"}
    """)
    base = compile_text(tmp_path, HEAD.format(fps=24, model="wan") + textwrap.indent(shots, "  "))
    keys = {s.id: s.selected_take.key for s in base.shots}
    edited = compile_text(tmp_path, HEAD.format(fps=24, model="wan") +
                          textwrap.indent(shots.replace("the sea", "the grey sea"), "  "))
    new_keys = {s.id: s.selected_take.key for s in edited.shots}
    changed = {shot for shot in keys if keys[shot] != new_keys[shot]}
    assert changed == {"SH0020", "SH0030"}
    # Same storyboard, same keys: compiling is deterministic.
    again = compile_text(tmp_path, HEAD.format(fps=24, model="wan") + textwrap.indent(shots, "  "))
    assert {s.id: s.selected_take.key for s in again.shots} == keys
    # One byte of the reference image changes every shot that uses it, and only those.
    with open(tmp_path / "refs" / "a.png", "ab") as image:
        image.write(b"\0")
    touched = compile_text(tmp_path, HEAD.format(fps=24, model="wan") + textwrap.indent(shots, "  "))
    assert {s.id for s in touched.shots if s.selected_take.key != keys[s.id]} == {"SH0010"}


def test_options_that_only_save_memory_keep_keys(tmp_path):
    text = HEAD.format(fps=24, model="wan") + "  - {id: SH0010, duration: 2s, prompt: x}\n"
    base = compile_text(tmp_path, text).shots[0].selected_take.key
    offload = compile_text(tmp_path, text.replace("seed: 7}", "seed: 7, options: {cpu_offload: true}}"))
    cached = compile_text(tmp_path, text.replace("seed: 7}", "seed: 7, options: {cache: first_block}}"))
    assert offload.shots[0].selected_take.key == base
    assert cached.shots[0].selected_take.key != base


def test_device_cpu_places_a_gpu_model_on_cpu_workers_and_keeps_its_keys(tmp_path):
    text = HEAD.format(fps=24, model="wan") + "  - {id: SH0010, duration: 2s, prompt: x}\n"
    gpu = compile_text(tmp_path, text).shots[0].selected_take
    cpu = compile_text(tmp_path, text.replace("seed: 7}", "seed: 7, options: {device: cpu}}"))
    take = cpu.shots[0].selected_take
    assert gpu.final_task.gpus == 1 and take.final_task.gpus == 0
    assert take.key == gpu.key  # where it runs does not change what it shows
    assert take.final_task.options == {"device": "cpu"}  # the generator runs it where placed


@pytest.mark.parametrize("options, expect", [
    ("{device: tpu}", "defaults.options.device: 'tpu' is not a device — use cpu"),
    ("{gpus: two}", "defaults.options.gpus: 'two' is not a GPU count"),
    ("{gpus: -1}", "defaults.options.gpus: -1 is not a GPU count"),
])
def test_placement_options_are_checked_where_written(tmp_path, options, expect):
    text = HEAD.format(fps=24, model="wan") + "  - {id: SH0010, duration: 2s, prompt: x}\n"
    message = compile_error(tmp_path, text.replace("seed: 7}", f"seed: 7, options: {options}}}"))
    assert message.startswith(f"{tmp_path / 'board.yaml'}:4:") and expect in message


def test_weights_folders_are_resolved_against_the_storyboard_or_refused(tmp_path):
    """Weights are read on the workers, whose working folder is not the storyboard's: a relative
    folder beside the storyboard becomes its absolute path; a hub id and an absolute path on
    the workers pass as written; anything else is refused where it is written."""
    (tmp_path / "models" / "tiny_wan").mkdir(parents=True)
    shot = "  - {id: SH0010, duration: 2s, prompt: x}\n"

    def weights_of(entry: str):
        text = HEAD.format(fps=24, model="wan").replace("characters:", f"weights:\n  {entry}\n"
                                                                        "characters:")
        return compile_text(tmp_path, text + shot).shots[0].selected_take.final_task.weights

    assert weights_of("wan2.1-t2v-1.3b: models/tiny_wan") == str(tmp_path / "models" / "tiny_wan")
    assert weights_of("wan: ./models/tiny_wan") == str(tmp_path / "models" / "tiny_wan")
    assert weights_of("wan2.1-t2v-1.3b: Org/Wan-Tiny") == "Org/Wan-Tiny"
    assert weights_of("wan2.1-t2v-1.3b: /mnt/models/wan") == "/mnt/models/wan"
    text = HEAD.format(fps=24, model="wan").replace(
        "characters:", "weights:\n  wan2.1-t2v-1.3b: tiny_wan\ncharacters:")
    message = compile_error(tmp_path, text + shot)
    assert message.startswith(f"{tmp_path / 'board.yaml'}:6:3: ")
    assert ("weights.wan2.1-t2v-1.3b: 'tiny_wan' is neither a folder beside the storyboard "
            f"(looked in {tmp_path})") in message and "weights are read on the workers" in message


def test_takes_get_distinct_seeds_and_select_marks_one(tmp_path):
    plan = compile_text(tmp_path, HEAD.format(fps=24, model="wan") +
                        "  - {id: SH0010, duration: 2s, prompt: x, takes: 3, select: 2}\n")
    takes = plan.shots[0].takes
    assert [t.seed for t in takes] == [7, 8, 9]
    assert [t.selected for t in takes] == [False, True, False]
    assert len({t.key for t in takes}) == 3
    assert plan.shots[0].selected_take.take == 2


def test_continue_uses_the_selected_take(tmp_path):
    plan = compile_text(tmp_path, HEAD.format(fps=24, model="wan") + textwrap.dedent("""\
          - {id: SH0010, duration: 2s, prompt: a, takes: 2, select: 2}
          - {id: SH0020, duration: 2s, prompt: b, continue: SH0010}
        """))
    first = plan.shot("SH0020").selected_take.tasks[0]
    assert first.depends_on == plan.shot("SH0010").takes[1].key
    order = [t.key for t in plan.tasks()]
    assert order.index(first.key) > order.index(plan.shot("SH0010").takes[1].tasks[0].key)


def test_a_deadline_can_fall_back_to_a_quarter_of_the_steps(tmp_path):
    plan = compile_text(tmp_path, HEAD.format(fps=24, model="wan") + textwrap.dedent("""\
          - {id: SH0010, duration: 2s, prompt: a, takes: 2, select: 2, steps: 30}
          - {id: SH0020, duration: 2s, prompt: b, continue: SH0010}
          - {id: SH0030, duration: 2s, prompt: c, steps: 5}
          - {id: SH0040, duration: 2s, prompt: d, model: draft}
        """))
    first, second, few, draft = plan.shots
    # ceil(30 / 4) = 8 steps; 50 (Wan's default) -> 13; 5 -> at least 4; a draft model has no
    # steps to cut and no stand-in at all.
    assert [t.steps for t in first.reduced.tasks] == [8]
    assert [t.steps for t in second.reduced.tasks] == [13]
    assert [t.steps for t in few.reduced.tasks] == [4]
    assert draft.reduced is None and draft.fallback is None
    # The same take otherwise: seed, size, frames; only the steps and so the key differ.
    final, reduced = first.selected_take.final_task, first.reduced.final_task
    assert reduced.model_dump(exclude={"key", "steps", "estimate_seconds"}) == \
        final.model_dump(exclude={"key", "steps", "estimate_seconds"})
    assert first.reduced.key != first.selected_take.key and first.reduced.selected
    assert reduced.estimate_seconds == pytest.approx(final.estimate_seconds * 8 / 30, rel=0.01)
    # A continued shot's fewer-steps take continues the final take of the shot before, as its
    # final take does: an image-to-video model needs that first frame at any step count.
    assert second.reduced.tasks[0].depends_on == first.selected_take.key
    # At 4 steps or fewer there is nothing to cut: the draft is the only stand-in.
    four = compile_text(tmp_path, HEAD.format(fps=24, model="wan") +
                        "  - {id: SH0010, duration: 2s, prompt: a, steps: 4}\n")
    assert four.shots[0].reduced is None and four.shots[0].fallback is not None


def test_variant_chosen_by_what_the_shot_needs(tmp_path):
    plan = compile_text(tmp_path, HEAD.format(fps=24, model="wan2.1-14b") + textwrap.dedent("""\
          - {id: SH0010, duration: 2s, prompt: x}
          - {id: SH0020, duration: 2s, prompt: x, image: refs/panel.png}
          - {id: SH0030, duration: 2s, prompt: x, image: refs/panel.png, last_image: refs/panel.png}
          - {id: SH0040, duration: 2s, prompt: "{KEEPER}"}
        """))
    assert [s.model for s in plan.shots] == [
        "wan2.1-t2v-14b", "wan2.1-i2v-14b-720p", "wan2.1-flf2v-14b-720p", "wan2.1-vace-14b"]
    panel = plan.shot("SH0020").selected_take.tasks[0].conditioning_for("first_image")[0]
    assert panel.path.endswith("panel.png") and len(panel.sha256) == 64


def test_named_variant_switches_to_a_capable_sibling_with_a_note(tmp_path):
    plan = compile_text(tmp_path, HEAD.format(fps=24, model="wan2.1-t2v-1.3b") +
                        "  - {id: SH0010, duration: 2s, prompt: x, image: refs/panel.png}\n")
    assert plan.shots[0].model == "wan2.1-vace-1.3b"
    assert any("wan2.1-vace-1.3b chosen for wan2.1-t2v-1.3b" in w for w in plan.warnings)


def test_reference_fallback_is_noted_not_silent(tmp_path):
    plan = compile_text(tmp_path, HEAD.format(fps=24, model="ltx-video") +
                        "  - {id: SH0010, duration: 2s, prompt: \"{KEEPER}\"}\n")
    assert any("cannot take reference images; KEEPER described in text" in w for w in plan.warnings)
    assert plan.shots[0].selected_take.tasks[0].conditioning_for("reference") == []
    assert "an old keeper" in plan.shots[0].selected_take.tasks[0].prompt


def test_reference_required_is_an_error(tmp_path):
    message = compile_error(tmp_path, HEAD.format(fps=24, model="ltx-video").replace(
        "seed: 7}", "seed: 7, references: required}") +
        "  - {id: SH0010, duration: 2s, prompt: \"{KEEPER}\"}\n")
    assert "cannot be conditioned on reference" in message


def test_unknown_model(tmp_path):
    message = compile_error(tmp_path, HEAD.format(fps=24, model="wan2.1-t2v-1.3") +
                            "  - {id: SH0010, duration: 2s, prompt: x}\n")
    assert ":4:" in message and "defaults.model: 'wan2.1-t2v-1.3' is not a known model" in message
    assert "did you mean 'wan2.1-t2v-1.3b'" in message


def test_ability_the_model_lacks(tmp_path):
    message = compile_error(tmp_path, HEAD.format(fps=24, model="hunyuanvideo") +
                            "  - {id: SH0010, duration: 2s, prompt: x, image: refs/panel.png}\n")
    assert "shots[0] (SH0010): model 'hunyuanvideo' cannot be conditioned on first_image" in message
    assert "(image:)" in message


@pytest.mark.parametrize("size,expect", [
    ("830x480", "multiples of 16 (such as 816x480)"),
    ("1920x1088", "larger than wan2.1-t2v-1.3b makes"),
])
def test_sizes_the_model_cannot_make(tmp_path, size, expect):
    message = compile_error(tmp_path, HEAD.format(fps=24, model="wan2.1-t2v-1.3b") +
                            f"  - {{id: SH0010, duration: 2s, prompt: x, size: {size}}}\n")
    assert "shots[0].size" in message and expect in message


def test_a_model_of_one_size_refuses_another(tmp_path):
    board = HEAD.format(fps=24, model="cogvideox-5b") + \
        "  - {id: SH0010, duration: 2s, prompt: x, image: refs/panel.png, size: SIZE}\n"
    message = compile_error(tmp_path, board.replace("SIZE", "640x480"))
    assert "shots[0].size: cogvideox-5b-i2v makes 720x480 only" in message
    assert "not '640x480' — use 720x480 or leave size out" in message
    plan = compile_text(tmp_path, board.replace("SIZE", "720x480"))
    task = plan.shots[0].selected_take.final_task
    assert (task.model, task.width, task.height) == ("cogvideox-5b-i2v", 720, 480)


def test_edit_key_tracks_the_edit(tmp_path):
    text = HEAD.format(fps=24, model="draft") + textwrap.dedent("""\
          - {id: SH0010, duration: 2s, prompt: a, takes: 2}
          - {id: SH0020, duration: 2s, prompt: b}
        """)
    base = compile_text(tmp_path, text).edit_key
    assert compile_text(tmp_path, text).edit_key == base
    assert compile_text(tmp_path, text.replace("takes: 2", "takes: 2, select: 2")).edit_key != base
    assert compile_text(tmp_path, text.replace("duration: 2s, prompt: b",
                                               "duration: 3s, prompt: b")).edit_key != base


def test_estimates_scale_with_work(tmp_path):
    plan = compile_text(tmp_path, HEAD.format(fps=24, model="wan2.1-t2v-1.3b") + textwrap.dedent("""\
          - {id: SH0010, duration: 81f, prompt: a, steps: 50}
          - {id: SH0020, duration: 81f, prompt: a, steps: 25}
        """))
    # Published: 261 s for 81 frames x 50 steps at 832x480. Cut 81f at 24 fps needs 54 frames
    # at 16 fps, rounded up to Wan's 4k+1: 57.
    first, second = (s.estimate_seconds for s in plan.shots)
    assert first == pytest.approx(261 * 57 / 81, rel=0.01)
    assert second == pytest.approx(first / 2, rel=0.01)
    assert plan.estimate_seconds == pytest.approx(first + second)


def test_plan_is_json_round_trippable(tmp_path):
    from previz.plan import RenderPlan

    plan = plan_from_storyboard(load_storyboard(STORYBOARDS / "lighthouse_sq020.yaml"))
    again = RenderPlan.model_validate_json(plan.model_dump_json())
    assert again == plan
    assert again.fps_fraction == Fraction(24000, 1001)


def test_every_shipped_storyboard_compiles(tmp_path):
    files = sorted(STORYBOARDS.glob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        plan = plan_from_storyboard(load_storyboard(path))
        assert plan.frames > 0
    # The feature storyboard exercises what it promises.
    plan = plan_from_storyboard(load_storyboard(STORYBOARDS / "lighthouse_sq020.yaml"))
    assert {s.model.split("-")[0] for s in plan.shots} == {"wan2.1", "ltx"}
    assert any(len(s.takes) > 1 for s in plan.shots)
    assert any(s.continues for s in plan.shots)
    assert any(s.transition.type == "dissolve" for s in plan.shots)
    assert any(len(s.selected_take.tasks) > 1 for s in plan.shots)
    # ... and so does the conditioned one: an approved still, a layout, an animatic, a
    # cinemagraph, video to video, two characters.
    harbour = plan_from_storyboard(load_storyboard(STORYBOARDS / "harbour_sq050.yaml"))
    roles = [{c.role for c in s.selected_take.final_task.conditioning} for s in harbour.shots]
    assert harbour.shots[0].selected_take.tasks[0].depends_on == harbour.shots[0].still.key
    assert roles[1] == {"control_video"} and roles[4] == {"source_video"}
    assert harbour.shots[2].selected_take.final_task.depends_on == harbour.shots[2].fallback.key
    assert roles[3] == {"first_image", "mask"} and roles[5] == {"reference"}
    assert len(harbour.shots[5].selected_take.final_task.conditioning) == 2
    big = plan_from_storyboard(load_storyboard(STORYBOARDS / "market_chase_sq030.yaml"))
    assert len(big.shots) >= 40
    shutil.rmtree(tmp_path, ignore_errors=True)
