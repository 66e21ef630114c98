"""Prompt assembly for video models."""

from __future__ import annotations

from generate_helpers import make_task

from previz.generate.moves import MOVES
from previz.generate.prompts import CAMERA_PHRASES, assemble_prompt, camera_phrase, speed_word
from previz.plan.types import CameraSpec


def test_prompt_reads_action_framing_camera_style():
    task = make_task("ltx-video", prompt="An old keeper climbs into the lamp room",
                     style="35mm film, teal and orange grade.",
                     camera=CameraSpec(move="dolly_in", size="wide", angle="low", lens="24mm",
                                       speed=0.6))
    assert assemble_prompt(task, "wan2.1-1.3b") == (
        "An old keeper climbs into the lamp room. Wide shot, low angle, 24mm lens. "
        "The camera slowly dollies in. 35mm film, teal and orange grade.")


def test_every_storyboard_move_has_a_phrase():
    assert set(MOVES) == set(CAMERA_PHRASES)
    for move in MOVES:
        phrase = camera_phrase(move, 1.0)
        assert phrase.endswith(".") and "{" not in phrase


def test_speed_words_and_family_phrasing():
    assert [speed_word(s) for s in (0.3, 0.7, 1.0, 1.8, 3.0)] == [
        "very slowly ", "slowly ", "smoothly ", "quickly ", "rapidly "]
    assert camera_phrase("static", 1.0, "ltx-video") == "The camera remains still."
    assert camera_phrase("pan_left", 1.8, "ltx-video") == "The camera quickly pans left."
    assert camera_phrase("barrel_roll", 1.0) == "Camera move: barrel roll."


def test_prompt_without_camera_notes_or_style():
    task = make_task("ltx-video", prompt="  rain on the glass  ", camera=CameraSpec())
    assert assemble_prompt(task) == "rain on the glass. The camera holds still on a locked-off shot."
