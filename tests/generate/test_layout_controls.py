"""Layouts and masks: retimed by time, extracted without weights (generate/controls.py), and
reaching tiny real pipelines — Wan VACE as a control video or a masked plate or still (a
cinemagraph), Wan text-to-video weights as video-to-video."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from generate_helpers import make_task, spy_on
from PIL import Image

from previz.generate.controls import control_frames, mask_frames, video_frames
from previz.generate.synthetic import draw_frame_number_strip, read_frame_number
from previz.media.encode import encode_take
from previz.plan.types import Conditioning

WAN = dict(width=16, height=16, num_frames=9, fps=16.0)
T2V, VACE = "wan2.1-t2v-1.3b", "wan2.1-vace-1.3b"


def numbered_video(path, frames: int, fps: Fraction, size=(160, 96)) -> str:
    """A video whose frame n carries n in the synthetic generator's machine-readable strip."""
    pictures = np.zeros((frames, size[1], size[0], 3), np.uint8)
    for number, picture in enumerate(pictures):
        picture[:, : size[0] // 2] = 90  # a vertical edge down the middle
        draw_frame_number_strip(picture, number)
    encode_take(pictures, fps, path, width=size[0], height=size[1])
    return str(path)


@pytest.mark.parametrize("fps, rate", [(Fraction(24000, 1001), 16.0), (Fraction(25), 24.0),
                                       (Fraction(24), 16.0)])
def test_a_layout_is_retimed_by_time_frame_exactly(tmp_path, fps, rate):
    layout = numbered_video(tmp_path / "layout.mp4", 60, fps)
    frames = video_frames(layout, rate, 160, 96, first=8, count=20)
    assert frames.shape == (20, 96, 160, 3)
    # Generated frame i (from the take's first) shows the layout frame on screen in the middle
    # of its interval, at (i + 1/2) / rate.
    shown = [read_frame_number(frame) for frame in frames]
    assert shown == [int((8 + i + Fraction(1, 2)) * fps / Fraction(str(rate)))
                     for i in range(20)]


def test_past_its_end_a_layouts_last_frame_holds(tmp_path):
    layout = numbered_video(tmp_path / "layout.mp4", 10, Fraction(16))
    frames = video_frames(layout, 16.0, 160, 96, first=0, count=13)
    assert [read_frame_number(f) for f in frames] == list(range(10)) + [9, 9, 9]


def test_edges_gray_and_masks_need_no_weights(tmp_path):
    frame = np.zeros((1, 32, 32, 3), np.uint8)
    frame[:, :, 16:] = 200
    edges = control_frames(frame, "edges")[0, :, :, 0]
    assert set(np.unique(edges)) == {0, 255}
    assert edges[:, 15:17].all() and not edges[:, :14].any() and not edges[:, 18:].any()
    gray = control_frames(frame, "gray")[0]
    assert gray[0, 0].tolist() == [0, 0, 0] and gray[0, 20].tolist() == [200] * 3
    assert control_frames(frame, "video") is frame
    mask = mask_frames(frame)[0, :, :, 0]
    assert mask[0, 0] == 0 and mask[0, 20] == 255


def frames_of(colour, count=9, size=(16, 16)) -> list[Image.Image]:
    return [Image.new("RGB", size, colour) for _ in range(count)]


def video_condition(role: str, **fields) -> Conditioning:
    return Conditioning(role=role, sha256=role * 2, video=True, **fields)


def feeding(videos: dict[str, object]):
    """An image source as the worker's: a video condition gives the task's frames."""
    def source(condition):
        return videos[condition.role]
    return source


@pytest.mark.slow
def test_vace_takes_a_layout_as_its_control_video_and_a_still_with_a_mask(loaded, monkeypatch):
    generator = loaded(VACE, "wan_vace")
    calls = spy_on(monkeypatch, generator)
    control = video_condition("control_video", control="edges", strength=0.7)
    edges = frames_of((255, 255, 255))
    steered = generator.generate(make_task(VACE, conditioning=(control,), **WAN),
                                 images=feeding({"control_video": edges}))
    plain = generator.generate(make_task(VACE, **WAN))
    assert [f.getpixel((0, 0)) for f in calls[0]["video"]] == [(255, 255, 255)] * 9
    assert [m.getpixel((0, 0)) for m in calls[0]["mask"]] == [255] * 9  # all generated
    assert calls[0]["conditioning_scale"] == 0.7
    assert not np.array_equal(steered.frames, plain.frames)
    # A cinemagraph: the still everywhere, generated only where the mask is white.
    still = Image.new("RGB", (16, 16), (20, 90, 200))
    half = Image.new("RGB", (16, 16), (0, 0, 0))
    half.paste((255, 255, 255), (0, 0, 8, 16))
    first = Conditioning(role="first_image", sha256="a" * 64)
    mask = Conditioning(role="mask", sha256="m" * 64)
    moving = generator.generate(
        make_task(VACE, conditioning=(first, mask), **WAN),
        images=lambda c: still if c.role == "first_image" else half)
    video, masks = calls[2]["video"], calls[2]["mask"]
    assert [f.getpixel((12, 8)) for f in video] == [(20, 90, 200)] * 9
    assert [m.getpixel((2, 8)) for m in masks] == [255] * 9
    assert [m.getpixel((12, 8)) for m in masks] == [0] * 9
    assert moving.frames.shape == (9, 16, 16, 3)


@pytest.mark.slow
def test_text_to_video_weights_restyle_a_layout_video_to_video(loaded, monkeypatch):
    from diffusers import WanVideoToVideoPipeline

    generator = loaded(T2V, "wan_t2v")
    calls = spy_on(monkeypatch, WanVideoToVideoPipeline)
    source = video_condition("source_video", control="video", strength=1.0)
    held = generator.generate(make_task(T2V, conditioning=(source,), steps=5, **WAN),
                              images=feeding({"source_video": frames_of((200, 60, 60))}))
    loose = generator.generate(
        make_task(T2V, conditioning=(source.model_copy(update={"strength": 0.2}),), steps=5,
                  **WAN),
        images=feeding({"source_video": frames_of((200, 60, 60))}))
    assert held.record["pipeline"] == "WanVideoToVideoPipeline"
    assert len(calls[0]["video"]) == 9
    assert calls[0]["strength"] == pytest.approx(0.4) and calls[1]["strength"] == \
        pytest.approx(0.88)
    assert held.frames.shape == (9, 16, 16, 3)
    # Held firmly, the red of the layout shows through more than when held loosely.
    red = [frames.frames[..., 0].astype(int).mean() - frames.frames[..., 2].astype(int).mean()
           for frames in (held, loose)]
    assert red[0] > red[1]


@pytest.mark.slow
def test_two_characters_reach_vace_as_two_reference_images(loaded, tmp_path, monkeypatch):
    from generate_helpers import condition, solid

    generator = loaded(VACE, "wan_vace")
    calls = spy_on(monkeypatch, generator)
    keeper = condition("reference", solid(tmp_path / "keeper.png", (240, 200, 40)), "KEEPER")
    mara = condition("reference", solid(tmp_path / "mara.png", (200, 20, 30)), "MARA")
    both = generator.generate(make_task(VACE, conditioning=(keeper, mara), **WAN))
    one = generator.generate(make_task(VACE, conditioning=(keeper,), **WAN))
    assert [r.getpixel((0, 0)) for r in calls[0]["reference_images"]] == [(240, 200, 40),
                                                                          (200, 20, 30)]
    assert both.frames.shape == (9, 16, 16, 3)
    assert not np.array_equal(both.frames, one.frames)


def test_depth_comes_from_the_depth_model_weights_name_scaled_over_the_clip(tiny_weights):
    frames = np.zeros((3, 48, 64, 3), np.uint8)
    frames[:, :, 32:] = (200, 180, 160)
    frames[1, 10:30, 10:30] = 255
    depth = control_frames(frames, "depth", str(tiny_weights("depth")))
    assert depth.shape == (3, 48, 64, 3) and depth.dtype == np.uint8
    assert (depth[..., 0] == depth[..., 2]).all()
    # one scale for the whole clip: its nearest point is white, its farthest black
    assert depth.min() == 0 and depth.max() == 255
    assert np.array_equal(depth, control_frames(frames, "depth", str(tiny_weights("depth"))))
    with pytest.raises(Exception, match="depth model"):
        control_frames(frames, "depth", None)


ANIMATE = "wan2.2-animate-14b"


@pytest.mark.parametrize("mode", ["animate", "replace"])
@pytest.mark.slow
def test_a_performance_drives_a_character_on_wan_animate(loaded, monkeypatch, mode):
    generator = loaded(ANIMATE, "wan_animate")
    calls = spy_on(monkeypatch, generator)
    keeper = Image.new("RGB", (24, 32), (240, 200, 40))
    videos = {"pose_video": frames_of((255, 255, 255)), "face_video": frames_of((90, 60, 50)),
              "background_video": frames_of((10, 40, 90)),
              "mask": frames_of((255, 255, 255))}
    conditioning = [Conditioning(role="character", sha256="k" * 64, name="KEEPER",
                                 control=mode),
                    video_condition("pose_video"), video_condition("face_video")]
    if mode == "replace":
        conditioning += [video_condition("background_video"), video_condition("mask")]
    steps = []
    result = generator.generate(
        make_task(ANIMATE, conditioning=tuple(conditioning), options={"segment_frame_length": 5},
                  guidance=1.0, **WAN),
        images=lambda c: keeper if c.role == "character" else videos[c.role],
        progress=lambda done, total: steps.append((done, total)))
    call = calls[0]
    assert call["image"] is keeper and call["mode"] == mode
    assert len(call["pose_video"]) == len(call["face_video"]) == 9
    assert ("background_video" in call) == (mode == "replace") == ("mask_video" in call)
    assert result.frames.shape == (9, 16, 16, 3)
    # two windows of 5 frames (the second starts on the first's last): 2 x 2 steps
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_pose_is_the_pose_models_skeleton_drawn_on_black(tiny_weights, monkeypatch):
    import previz.generate.controls as controls

    frames = np.full((2, 48, 64, 3), 120, np.uint8)
    monkeypatch.setattr(controls, "KEYPOINT_SCORE", 0.0)  # random weights see every joint
    pose = control_frames(frames, "pose", str(tiny_weights("pose")))
    assert pose.shape == (2, 48, 64, 3) and pose.dtype == np.uint8
    colours = {tuple(c) for c in pose.reshape(-1, 3)}
    assert (0, 0, 0) in colours and len(colours) > 2  # limbs in colour on black
    assert np.array_equal(pose, control_frames(frames, "pose", str(tiny_weights("pose"))))
    monkeypatch.setattr(controls, "KEYPOINT_SCORE", 2.0)  # nothing seen: nothing drawn
    assert not control_frames(frames, "pose", str(tiny_weights("pose"))).any()


def test_a_performance_video_gives_its_face_region_and_plate_from_its_keypoints(
        tiny_weights, monkeypatch):
    import previz.generate.controls as controls

    monkeypatch.setattr(controls, "KEYPOINT_SCORE", 0.0)  # random weights see every joint
    frames = np.random.default_rng(1).integers(0, 255, (2, 48, 64, 3), dtype=np.uint8)
    weights = str(tiny_weights("pose"))
    points, _ = controls._keypoints(frames, weights)
    face = control_frames(frames, "face", weights)
    region = control_frames(frames, "performer", weights)
    plate = control_frames(frames, "plate", weights)
    assert face.shape == region.shape == plate.shape == frames.shape
    white = region[..., 0] == 255
    assert white.any() and set(np.unique(region)) <= {0, 255}
    assert not plate[white].any()  # the performer's region is taken out of the plate
    assert np.array_equal(plate[~white], frames[~white])
    # every joint inside the region (clipped to the frame)
    inside = np.clip(points.round().astype(int), 0, [63, 47])
    assert all(white[i, y, x] for i in range(2) for x, y in inside[i])
