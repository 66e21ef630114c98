"""The edit as frames, and how it splits into copied and encoded pieces (pure arithmetic)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from previz.assemble import AssembleError
from previz.assemble.edit import (
    CopyPiece,
    RenderPiece,
    check_plan_timing,
    frame_layers,
    plan_pieces,
    timecode_frames,
)
from previz.plan import plan_from_storyboard
from previz.storyboard import load_storyboard

DEMO = "storyboards/demo.yaml"


def gop_keyframes(frames: int, gop: int = 24) -> tuple[int, ...]:
    return tuple(range(0, frames, gop))


def test_every_cut_frame_has_its_layers(plan_factory):
    plan = plan_factory([(30, "fade 6"), (40, None), (50, None), (20, "dissolve 10")])
    layers = frame_layers(plan)
    assert len(layers) == plan.frames == 30 + 40 + 50 + 20 - 10
    # fade from black: the shot alone over black, opacity (k + 1/2) / 6
    assert [stack[0].alpha for stack in layers[:6]] == [Fraction(2 * k + 1, 12) for k in range(6)]
    assert all(len(stack) == 1 for stack in layers[:6])
    assert layers[6] == ((layers[6][0]),) and layers[6][0].opaque and layers[6][0].frame == 6
    # a cut: pure frames on both sides
    assert (layers[69][0].shot, layers[69][0].frame) == (1, 39)
    assert (layers[70][0].shot, layers[70][0].frame) == (2, 0) and layers[70][0].opaque
    # the dissolve: the last 10 frames of shot 3 under the first 10 of shot 4
    start = plan.shots[3].record_in
    assert start == 110
    for k in range(10):
        below, above = layers[start + k]
        assert (below.shot, below.frame, below.alpha) == (2, 40 + k, 1)
        assert (above.shot, above.frame, above.alpha) == (3, k, Fraction(2 * k + 1, 20))
    # symmetric: the middle of an even dissolve straddles one half
    assert layers[start + 4][1].alpha + layers[start + 5][1].alpha == 1


def test_a_fade_out_mirrors_a_fade_in(plan_factory):
    plan = plan_factory([(30, "out 6"), (20, "fade 4, out 4")])
    assert [s.fade_out for s in plan.shots] == [6, 4]
    layers = frame_layers(plan)
    # the last 6 frames of the first shot over black, opacity (6 - k - 1/2) / 6
    assert [stack[0].alpha for stack in layers[24:30]] == [Fraction(11 - 2 * k, 12)
                                                           for k in range(6)]
    assert all(len(stack) == 1 and stack[0].shot == 0 for stack in layers[24:30])
    assert layers[23][0].opaque
    # in and out on one shot: up from black, held, down to black
    second = [stack[0].alpha for stack in layers[30:]]
    assert second[:4] == [Fraction(2 * k + 1, 8) for k in range(4)]
    assert second[4:16] == [1] * 12
    assert second[16:] == [Fraction(7 - 2 * k, 8) for k in range(4)]
    # the fades are encoded, the held frames between them copied from the keyframe on
    pieces = plan_pieces(layers, [gop_keyframes(30), gop_keyframes(20)], [True, True])
    assert pieces == [CopyPiece(0, 0, 24, 0), RenderPiece(24, tuple(layers[24:50]))]


def test_cuts_only_copy_every_take_whole(plan_factory):
    plan = plan_factory([(30, None), (17, None), (41, None)])
    layers = frame_layers(plan)
    pieces = plan_pieces(layers, [gop_keyframes(s.frames) for s in plan.shots], [True] * 3)
    assert pieces == [CopyPiece(0, 0, 30, 0), CopyPiece(1, 0, 17, 30), CopyPiece(2, 0, 41, 47)]


def test_a_dissolve_encodes_only_up_to_the_next_keyframe(plan_factory):
    plan = plan_factory([(60, None), (60, "dissolve 12"), (60, None)])
    layers = frame_layers(plan)
    pieces = plan_pieces(layers, [gop_keyframes(60)] * 3, [True] * 3)
    kinds = [(type(p).__name__, p.record_in, p.frames) for p in pieces]
    # shot 1 is copied up to where the dissolve starts (48: it may end mid-GOP); the dissolve
    # and shot 2's frames 12..23 are encoded; shot 2 is copied from its keyframe at 24 on
    assert kinds == [("CopyPiece", 0, 48), ("RenderPiece", 48, 24), ("CopyPiece", 72, 36),
                     ("CopyPiece", 108, 60)]
    render = pieces[1]
    assert isinstance(render, RenderPiece)
    assert render.source_ranges() == {0: (48, 60), 1: (0, 24)}
    assert sum(p.frames for p in pieces) == plan.frames


def test_a_shot_that_cannot_be_copied_is_encoded_whole(plan_factory):
    plan = plan_factory([(30, None), (30, None), (30, None)])
    pieces = plan_pieces(frame_layers(plan), [gop_keyframes(30)] * 3, [True, False, True])
    assert [(type(p).__name__, p.record_in, p.frames) for p in pieces] == [
        ("CopyPiece", 0, 30), ("RenderPiece", 30, 30), ("CopyPiece", 60, 30)]


def test_a_run_with_no_keyframe_left_is_encoded(plan_factory):
    plan = plan_factory([(30, None), (20, "dissolve 8")])
    pieces = plan_pieces(frame_layers(plan), [gop_keyframes(30), gop_keyframes(20)], [True] * 2)
    # shot 2 has no keyframe after its dissolve: the dissolve and the rest of it are one piece
    assert [(type(p).__name__, p.record_in, p.frames) for p in pieces] == [
        ("CopyPiece", 0, 22), ("RenderPiece", 22, 20)]


def test_demo_and_lighthouse_plans_tile_exactly():
    for path in (DEMO, "storyboards/lighthouse_sq020.yaml"):
        plan = plan_from_storyboard(load_storyboard(path))
        layers = frame_layers(plan)
        assert len(layers) == plan.frames
        pieces = plan_pieces(layers, [gop_keyframes(s.frames) for s in plan.shots],
                             [True] * len(plan.shots))
        assert sum(p.frames for p in pieces) == plan.frames
        record = 0
        for piece in pieces:
            assert piece.record_in == record
            record += piece.frames


def test_a_plan_whose_record_frames_do_not_add_up_is_refused():
    plan = plan_from_storyboard(load_storyboard(DEMO))
    shots = list(plan.shots)
    shots[2] = shots[2].model_copy(update={"record_in": shots[2].record_in + 1})
    broken = plan.model_copy(update={"shots": tuple(shots)})
    with pytest.raises(AssembleError, match="SH0030: record"):
        check_plan_timing(broken)
    with pytest.raises(AssembleError, match="plan is 999 frames"):
        check_plan_timing(plan.model_copy(update={"frames": 999}))


@pytest.mark.parametrize(("timecode", "fps", "frames"), [
    ("01:00:00:00", Fraction(24000, 1001), 86400), ("01:00:00:00", Fraction(25), 90000),
    ("01:00:00:00", Fraction(30000, 1001), 108000), ("00:00:41:17", Fraction(24), 1001),
])
def test_timecode_frames(timecode, fps, frames):
    assert timecode_frames(timecode, fps) == frames
