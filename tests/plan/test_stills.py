"""Keyframe stills in the plan: one frame of the shot's own model family (its look, its cast, no
other weights), held for the shot's length; an approved still starts the motion pass, so
changing it re-renders exactly its shot."""

from __future__ import annotations

from test_compile import compile_error, compile_text

BOARD = """\
project: P
sequence: SQ010
fps: 24
defaults: {{model: wan, seed: 7}}
characters:
  KEEPER: {{description: an old keeper, reference: refs/a.png}}
shots:
  - {{id: SH0010, duration: 2s, prompt: the lighthouse at dusk{first}}}
  - {{id: SH0020, duration: 2s, prompt: "{{KEEPER}} at the lamp"}}
  - {{id: SH0030, duration: 2s, prompt: the panel, image: refs/panel.png}}
  - {{id: SH0040, duration: 2s, prompt: the cog, model: cogvideox-5b}}
"""


def board(first: str = "") -> str:
    return BOARD.format(first=first)


def test_every_shot_has_a_still_of_its_own_family_held_for_its_length(tmp_path):
    plan = compile_text(tmp_path, board())
    plain, cast, panel, cog = plan.shots
    still = plain.still.final_task
    assert (still.model, still.num_frames, plain.still.retime.cut_frames) == (
        "wan2.1-t2v-1.3b", 1, 48)
    assert plain.still.retime.source_indices() == [0] * 48  # one frame, held
    assert still.seed == plain.selected_take.seed and still.prompt == plain.prompt
    # The cast reaches the still too: the family's variant that takes reference images.
    assert cast.still.final_task.model == "wan2.1-vace-1.3b"
    assert [c.role for c in cast.still.final_task.conditioning] == ["reference"]
    assert panel.still is None  # its panel is its still
    assert cog.still is None  # CogVideoX makes 49 frames or none
    # Stills change no take's key: a render without them renders what it did.
    assert plan.shots[0].selected_take.key == compile_text(tmp_path, board()).shots[0]. \
        selected_take.key


def test_an_approved_still_starts_the_motion_pass(tmp_path):
    plan = compile_text(tmp_path, board(", still: approved"))
    shot = plan.shots[0]
    task = shot.selected_take.tasks[0]
    assert shot.model == "wan2.1-vace-1.3b"  # the family's variant that takes a first frame
    [first] = task.conditioning_for("first_image")
    assert first.from_key == shot.still.key and task.depends_on == shot.still.key
    assert shot.still.key in {take.key for take in plan.needed_takes()}
    # A new prompt makes a new still, and so a new motion take; the other shots keep theirs.
    changed = compile_text(tmp_path, board(", still: approved").replace(
        "the lighthouse at dusk", "the lighthouse at dawn"))
    assert changed.shots[0].still.key != shot.still.key
    assert changed.shots[0].selected_take.key != shot.selected_take.key
    assert [s.selected_take.key for s in changed.shots[1:]] == [
        s.selected_take.key for s in plan.shots[1:]]


def test_an_approved_still_cannot_start_a_shot_that_starts_otherwise(tmp_path):
    message = compile_error(tmp_path, board(", still: approved, image: refs/panel.png"))
    assert message.endswith("shots[0].still: approved with image: — the shot would start from "
                            "two first frames; drop still: (the image starts it) or image:")
    message = compile_error(tmp_path, board().replace("model: cogvideox-5b",
                                                      "model: cogvideox-5b, still: approved"))
    assert message.endswith("shots[3].still: approved, but cogvideox-5b-i2v makes no stills (it "
                            "is not trained on single images) — render the shot's first frame "
                            "with image: instead, or use a model that makes stills (Wan, "
                            "LTX-Video, HunyuanVideo)")
