"""The draft animatic, checked by encoding it as the engine would and decoding it with PyAV."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from generate_helpers import (
    centroid,
    condition,
    decode,
    horizontal_shift,
    make_task,
    marker_panel,
    phase_shift,
    solid,
    textured_panel,
)
from PIL import Image

from previz.catalog import model_spec
from previz.generate import GeneratorError, create_generator
from previz.media.encode import CODECS, encode_take
from previz.plan.types import CameraSpec, Conditioning

W, H = 320, 180


@pytest.fixture(scope="module")
def draft():
    generator = create_generator(model_spec("draft"))
    generator.load("cpu")
    yield generator
    generator.release()


@pytest.fixture
def render(draft, tmp_path):
    """render(task) -> decoded frames of the encoded draft take (and the generator's result)."""

    def run(task, **kwargs):
        result = draft.generate(task, **kwargs)
        codec = CODECS[result.record["codec"]]
        path = tmp_path / f"{task.key}-{task.camera.move}.mp4"
        encode_take(result.frames, 24, path, width=task.width, height=task.height,
                    codec_settings=codec)
        return decode(path), result

    return run


def shot(move: str = "static", speed: float = 1.0, **fields):
    fields.setdefault("width", W)
    fields.setdefault("height", H)
    fields.setdefault("num_frames", 48)
    return make_task("draft", camera=CameraSpec(move=move, size="wide", angle="low",
                                                lens="24mm", speed=speed), **fields)


def test_title_card_size_length_and_text(render):
    frames, result = render(shot(title="Keeper arrives", num_frames=12,
                                 shot_prompt="{KEEPER} climbs the last steps into {LAMP_ROOM}, "
                                             "lantern in hand"))
    assert frames.shape == (12, H, W, 3)
    assert result.record["mode"] == "card" and result.record["warnings"] == []
    frame = frames[0].astype(int)
    bright = frame.min(axis=2) > 150  # text is near-white on a dark card
    prompt_band = bright[int(H * 0.30):int(H * 0.62), int(W * 0.16):int(W * 0.84)]
    assert prompt_band.mean() > 0.01
    assert bright[:int(H * 0.1)].mean() == 0  # above the card: the set, no text
    other, _ = render(shot(title="Keeper arrives", num_frames=12, key="other",
                           shot_prompt="a completely different line of action"))
    assert np.abs(other[0].astype(int) - frame)[int(H * 0.30):int(H * 0.62)].mean() > 2
    assert np.array_equal(result.frames[0], result.frames[-1])  # static: the card holds


def test_title_card_at_delivery_size(render):
    frames, _ = render(shot("dolly_in", width=1280, height=720, num_frames=4))
    assert frames.shape == (4, 720, 1280, 3)


def test_dolly_in_scales_up_and_dolly_out_down(render, tmp_path):
    panel = condition("first_image", marker_panel(tmp_path / "panel.png", at=(0.75, 0.5)))
    distances = {}
    for move in ("dolly_in", "dolly_out", "zoom_in"):
        frames, result = render(shot(move, conditioning=(panel,), key=move))
        assert result.record["mode"] == "panel"
        distances[move] = [centroid(f)[0] - W / 2 for f in frames[::8]]
    grow = distances["dolly_in"]
    assert all(b > a for a, b in zip(grow, grow[1:], strict=False)) and grow[-1] > grow[0] * 1.1
    shrink = distances["dolly_out"]
    assert all(b < a for a, b in zip(shrink, shrink[1:], strict=False)) and shrink[-1] < shrink[0] * 0.9
    assert distances["zoom_in"][-1] > distances["zoom_in"][0] * 1.1


@pytest.mark.parametrize("move, axis, sign", [
    ("pan_right", 0, -1), ("pan_left", 0, 1), ("truck_right", 0, -1),
    ("tilt_up", 1, 1), ("tilt_down", 1, -1), ("crane_up", 1, 1),
])
def test_translations_move_the_picture_the_right_way(render, tmp_path, move, axis, sign):
    panel = condition("first_image", marker_panel(tmp_path / "panel.png", at=(0.5, 0.5)))
    frames, _ = render(shot(move, conditioning=(panel,), key=move))
    start, end = centroid(frames[0])[axis], centroid(frames[-1])[axis]
    assert (end - start) * sign > 0.04 * (W, H)[axis]
    assert abs(centroid(frames[-1])[1 - axis] - centroid(frames[0])[1 - axis]) < 2


def test_pan_of_a_title_card_measured_by_phase_correlation(render):
    frames, _ = render(shot("pan_right", num_frames=72))
    dx, dy = phase_shift(frames[0], frames[-1])
    assert dx < -0.1 * W and abs(dy) <= 1  # the camera pans right: everything slides left


def test_orbit_moves_background_and_card_apart(render):
    frames, result = render(shot("orbit_right", num_frames=72, key="orbit"))
    assert result.record["parallax"] is True
    above, below = slice(0, int(H * 0.09)), slice(int(H * 0.91), H)  # the set around the card
    assert horizontal_shift(frames[0][above], frames[-1][above]) < -0.15 * W
    assert horizontal_shift(frames[0][below], frames[-1][below]) < -0.15 * W
    card_dx = centroid(frames[-1], 190)[0] - centroid(frames[0], 190)[0]
    assert card_dx > 3  # while the background sweeps left, the subject drifts right


def test_truck_moves_the_card_more_than_the_set(render):
    frames, _ = render(shot("truck_left", num_frames=48, key="truck"))
    above = slice(0, int(H * 0.09))
    set_dx = horizontal_shift(frames[0][above], frames[-1][above])
    card_dx = centroid(frames[-1], 190)[0] - centroid(frames[0], 190)[0]
    assert 0 < set_dx < card_dx  # camera trucks left: all moves right, the near card more


def test_handheld_is_smooth_deterministic_noise(render, draft):
    frames, _ = render(shot("handheld", num_frames=48, key="hand"))
    steps = [phase_shift(a, b) for a, b in zip(frames[:-1:4], frames[4::4], strict=False)]
    assert any(dx or dy for dx, dy in steps)  # it moves
    assert max(math.hypot(dx, dy) for dx, dy in steps) < 0.05 * W  # gently
    task = shot("handheld", num_frames=24)
    assert np.array_equal(draft.generate(task).frames, draft.generate(task).frames)
    other_seed = draft.generate(task.model_copy(update={"seed": 99})).frames
    assert not np.array_equal(draft.generate(task).frames, other_seed)


def test_faster_camera_moves_further(draft, tmp_path):
    panel = condition("first_image", marker_panel(tmp_path / "panel.png", at=(0.5, 0.5)))
    slow = draft.generate(shot("pan_right", speed=0.5, conditioning=(panel,))).frames
    slow_travel = centroid(slow[0])[0] - centroid(slow[-1])[0]
    fast = draft.generate(shot("pan_right", speed=1.5, conditioning=(panel,))).frames
    assert centroid(fast[0])[0] - centroid(fast[-1])[0] > 2 * slow_travel


def test_continuing_starts_exactly_on_the_previous_frame(draft, tmp_path):
    picture = Image.open(textured_panel(tmp_path / "last.png", size=(W, H))).convert("RGB")
    previous = Conditioning(role="first_image", from_key="earlier-take")
    result = draft.generate(shot("dolly_in", conditioning=(previous,)),
                            images=lambda c: picture)
    assert result.record["mode"] == "continue"
    first = result.frames[0].astype(int)
    assert np.abs(first - np.asarray(picture, int)).mean() < 6  # only the light prefilter
    assert np.abs(result.frames[-1].astype(int) - np.asarray(picture, int)).mean() > 10


def test_dissolves_to_the_last_image(draft, tmp_path):
    first = condition("first_image", solid(tmp_path / "red.png", (220, 20, 20)))
    last = condition("last_image", solid(tmp_path / "blue.png", (20, 20, 220)))
    frames = draft.generate(shot(conditioning=(first, last), num_frames=10)).frames
    assert tuple(frames[0, H // 2, W // 2]) == (220, 20, 20)
    assert tuple(frames[-1, H // 2, W // 2]) == (20, 20, 220)
    assert 60 < frames[5, H // 2, W // 2, 2] < 180  # half way


def test_reference_images_shown_as_named_insets(draft, tmp_path):
    keeper = condition("reference", solid(tmp_path / "keeper.png", (255, 140, 0), (60, 90)),
                       "KEEPER")
    with_inset = draft.generate(shot(conditioning=(keeper,), num_frames=2)).frames[0]
    without = draft.generate(shot(num_frames=2)).frames[0]

    def orange(frame):
        r, g, b = (frame[..., i].astype(int) for i in range(3))
        return ((r > 200) & (g > 100) & (g < 180) & (b < 60)).mean()

    assert orange(with_inset) > 0.005 and orange(without) == 0
    ys, xs = np.nonzero((with_inset[..., 0] > 200) & (with_inset[..., 2] < 60))
    assert xs.mean() > W / 2  # in the right-hand column of the card


def test_progress_and_record(draft):
    seen = []
    result = draft.generate(shot("pan_left", num_frames=40),
                            progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (40, 40) and len(seen) <= 21
    assert result.record["codec"] == "h264-fast"
    assert result.record["camera"].startswith("PAN LEFT")
    json.dumps(result.record)  # records go into take.json


def test_unknown_move_is_held_with_a_warning(draft):
    result = draft.generate(shot("spin", num_frames=3))
    assert "unknown to the draft" in result.record["warnings"][0]
    assert np.array_equal(result.frames[0], result.frames[-1])


def test_missing_panel_is_an_error(draft, tmp_path):
    panel = condition("first_image", tmp_path / "missing.png")
    with pytest.raises(GeneratorError, match="does not exist"):
        draft.generate(shot(conditioning=(panel,)))


def test_long_prompt_is_cut_on_the_card_with_a_warning(draft):
    result = draft.generate(shot(num_frames=1, shot_prompt=" ".join(["words"] * 400)))
    assert any("prompt too long" in w for w in result.record["warnings"])


def test_moves_are_clamped_on_long_shots():
    from previz.generate.moves import camera_path

    minute = dict(speed=1.0, frames=24 * 60, fps=24.0, seed=1)
    assert camera_path("dolly_in", centred=False, **minute)[-1].zoom == pytest.approx(
        math.exp(0.8))
    assert camera_path("dolly_in", centred=True, max_zoom=1.3, **minute)[-1].zoom == \
        pytest.approx(1.3)
    pan = camera_path("pan_right", centred=True, **minute)
    assert pan[0].x == pytest.approx(-0.18) and pan[-1].x == pytest.approx(0.18)
    assert camera_path("static", centred=True, **minute)[100].zoom == 1.0


@pytest.mark.parametrize("move, with_panel", [("dolly_in", False), ("orbit_left", False),
                                              ("handheld", True), ("static", False)])
def test_render_take_matches_generate_then_encode(draft, tmp_path, move, with_panel):
    """The direct-to-encoder path draws the same pictures as generate() + encode_take()."""
    conditioning = ((condition("first_image", textured_panel(tmp_path / "p.png")),)
                    if with_panel else ())
    task = shot(move, num_frames=24, conditioning=conditioning)
    take, record, _ = draft.render_take(task, tmp_path / "direct.mp4")
    assert take.frames == 24 and take.codec == "h264-fast" and take.timecode == "00:00:41:17"
    assert record["mode"] == ("panel" if with_panel else "card")
    direct = decode(take.path)
    result = draft.generate(task)
    encode_take(result.frames, 24, tmp_path / "via.mp4", width=W, height=H,
                codec_settings=CODECS["h264-fast"])
    via = decode(tmp_path / "via.mp4")
    assert direct.shape == via.shape == (24, H, W, 3)
    drawn = result.frames.astype(int)
    direct_error = np.abs(direct.astype(int) - drawn).mean()
    via_error = np.abs(via.astype(int) - drawn).mean()
    assert direct_error < 1.2 * via_error + 0.5  # as faithful as converting the RGB frames
    assert np.abs((direct.astype(int) - via.astype(int)).mean(axis=(0, 1, 2))).max() < 2


def card_boxes(task, width: int, height: int) -> dict[str, tuple[int, int, int, int]]:
    """Where the title card draws each kind of text, in frame pixels (the card is centred and
    drawn at twice the output size)."""
    from previz.generate.card import card_layer

    layer = card_layer(task, [], width, height, 2)
    left, top = (width - layer.image.width / 2) / 2, (height - layer.image.height / 2) / 2
    return {name: (int(left + x0 / 2), int(top + y0 / 2), int(left + x1 / 2) + 1,
                   int(top + y1 / 2) + 1) for name, (x0, y0, x1, y1) in layer.text_boxes.items()}


@pytest.mark.parametrize("change, changed_box", [
    ({"characters": ("KEEPER", "BOATMAN")}, "names"),
    ({"locations": ("CLIFF_TOP",)}, "names"),
    ({"camera": CameraSpec(move="static", size="close", lens="85mm")}, "camera"),
    ({"shot_prompt": "the boat's light vanishes into the rain"}, "prompt"),
])
def test_each_line_of_the_card_shows_its_field(render, change, changed_box):
    """Changing one field of the shot redraws only its own text on the decoded card."""
    width, height = 640, 360
    base = make_task("draft", camera=CameraSpec(move="static", size="wide", lens="24mm"),
                     width=width, height=height, num_frames=2, fps=25.0)
    frames, result = render(base)
    other, _ = render(base.model_copy(update={"key": "changed", **change}))
    assert result.fps == 25.0 and frames.shape == (2, height, width, 3)
    boxes = card_boxes(base, width, height)
    assert {"code", "names", "camera", "prompt"} <= set(boxes)

    def inside(frame, box):
        x0, y0, x1, y1 = box
        return frame[y0:y1, x0:x1].astype(int)

    for name, box in boxes.items():
        text = inside(frames[0], box).max(axis=2) > 150  # light letters on the dark card
        if name != "references":
            assert text.mean() > 0.01, f"no text drawn in the {name} box"
        change_there = np.abs(inside(other[0], box) - inside(frames[0], box)).mean()
        if name == changed_box:
            assert change_there > 1.5, f"{name} did not change"
        else:
            assert change_there < 0.5, f"{name} changed too"


@pytest.mark.parametrize("move, axis, sign", [
    ("truck_left", 0, 1), ("crane_down", 1, -1),
])
def test_more_translations_move_the_panel_the_right_way(render, tmp_path, move, axis, sign):
    panel = condition("first_image", marker_panel(tmp_path / "panel.png", at=(0.5, 0.5)))
    frames, _ = render(shot(move, conditioning=(panel,), key=move))
    start, end = centroid(frames[0])[axis], centroid(frames[-1])[axis]
    assert (end - start) * sign > 0.04 * (W, H)[axis]


def test_zoom_out_shrinks_the_panel(render, tmp_path):
    panel = condition("first_image", marker_panel(tmp_path / "panel.png", at=(0.75, 0.5),
                                                  radius=24))
    frames, _ = render(shot("zoom_out", conditioning=(panel,), key="zoom_out", num_frames=96))
    areas = [(f.mean(axis=2) > 128).sum() for f in frames[::19]]
    assert all(b < a for a, b in zip(areas, areas[1:], strict=False))
    assert areas[-1] < 0.8 * areas[0]
