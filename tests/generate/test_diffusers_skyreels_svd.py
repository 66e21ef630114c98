"""The diffusers generator on SkyReels-V2 diffusion forcing and Stable Video Diffusion, with tiny
random weights loaded from disk through create_generator (see tiny_skyreels_svd.py). Sizes and
frame counts are the smallest the catalog and the pipelines accept."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from generate_helpers import condition, make_task, solid, spy_on
from PIL import Image

from previz.catalog import model_spec
from previz.generate import GeneratorError, GeneratorLoadError, create_generator

SKY, SVD = "skyreels-v2-df-1.3b", "svd-xt"
SKY_SIZE = dict(width=16, height=16, num_frames=5, fps=24.0)  # 16-multiple, 4k+1 frames
# 8-multiple; two frames so that guidance ramps over them (one: test_svd_single_frame)
SVD_SIZE = dict(width=8, height=8, num_frames=2, fps=7.0)


def test_catalog_sizes_used_here_are_the_smallest_the_models_accept():
    sky, svd = model_spec(SKY), model_spec(SVD)
    assert sky.frames.smallest() == SKY_SIZE["num_frames"] and sky.size_multiple == 16
    assert sky.fps == SKY_SIZE["fps"] and svd.fps == SVD_SIZE["fps"]
    assert svd.frames.accepts(1) and svd.size_multiple == 8


# SkyReels-V2 diffusion forcing


@pytest.mark.slow
def test_skyreels_text_to_video(loaded, monkeypatch):
    generator = loaded(SKY, "skyreels_df")
    calls = spy_on(monkeypatch, type(generator.pipe))
    task = make_task(SKY, **SKY_SIZE)
    seen = []
    first = generator.generate(task, progress=lambda done, total: seen.append((done, total)))
    again = generator.generate(task)
    other = generator.generate(task.model_copy(update={"seed": 99}))
    assert first.frames.shape == (5, 16, 16, 3) and first.frames.dtype == np.uint8
    assert first.fps == 24.0
    assert np.array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)
    assert first.frames.std() > 1  # not a blank video
    assert seen == [(1, 2), (2, 2)]
    record = first.record
    assert record["pipeline"] == "SkyReelsV2DiffusionForcingPipeline"
    assert record["warnings"] == [] and record["seed"] == 1234
    json.dumps(record)
    call = calls[0]
    assert call["prompt"] == record["prompt"] and call["prompt"].startswith("an old keeper")
    assert (call["height"], call["width"], call["num_frames"]) == (16, 16, 5)
    assert call["num_inference_steps"] == 2 and call["guidance_scale"] == task.guidance
    assert call["fps"] == 24 and call["max_sequence_length"] == 64
    assert call["output_type"] == "np" and call["generator"].initial_seed() == 1234
    assert "image" not in call and "overlap_history" not in call  # a short video: one window


def test_skyreels_first_image_goes_through_its_image_to_video_sibling(loaded, tmp_path,
                                                                      monkeypatch):
    from diffusers import SkyReelsV2DiffusionForcingImageToVideoPipeline as I2V

    generator = loaded(SKY, "skyreels_df")
    calls = spy_on(monkeypatch, I2V)
    red = condition("first_image", solid(tmp_path / "red.png", (220, 30, 30), (40, 30)))
    blue = condition("first_image", solid(tmp_path / "blue.png", (30, 30, 220), (40, 30)))
    with_red = generator.generate(make_task(SKY, conditioning=(red,), **SKY_SIZE))
    again = generator.generate(make_task(SKY, conditioning=(red,), **SKY_SIZE))
    with_blue = generator.generate(make_task(SKY, conditioning=(blue,), **SKY_SIZE))
    image = calls[0]["image"]
    assert isinstance(image, Image.Image) and image.size == (16, 16)  # fitted to the task size
    assert image.getpixel((8, 8)) == (220, 30, 30)
    assert calls[0]["prompt"].startswith("an old keeper") and "last_image" not in calls[0]
    assert with_red.record["pipeline"] == "SkyReelsV2DiffusionForcingImageToVideoPipeline"
    assert with_red.frames.shape == (5, 16, 16, 3)
    assert np.array_equal(with_red.frames, again.frames)
    assert not np.array_equal(with_red.frames, with_blue.frames)  # the image is really used
    sibling = generator._siblings["SkyReelsV2DiffusionForcingImageToVideoPipeline"]
    assert sibling.transformer is generator.pipe.transformer  # shared, not copied


def test_skyreels_cannot_take_a_last_image(loaded, tmp_path):
    first = condition("first_image", solid(tmp_path / "first.png", (200, 0, 0)))
    last = condition("last_image", solid(tmp_path / "last.png", (0, 0, 200)))
    with pytest.raises(GeneratorError, match="cannot be conditioned on a last image"):
        loaded(SKY, "skyreels_df").generate(make_task(SKY, conditioning=(first, last),
                                                      **SKY_SIZE))


# Stable Video Diffusion


@pytest.mark.slow
def test_svd_animates_the_first_image_and_warns_the_prompt_is_unused(loaded, tmp_path,
                                                                     monkeypatch):
    generator = loaded(SVD, "svd")
    calls = spy_on(monkeypatch, type(generator.pipe))
    red = condition("first_image", solid(tmp_path / "red.png", (220, 30, 30), (40, 30)))
    blue = condition("first_image", solid(tmp_path / "blue.png", (30, 30, 220), (40, 30)))
    task = make_task(SVD, conditioning=(red,), options={"motion_bucket_id": 60}, **SVD_SIZE)
    first = generator.generate(task)
    again = generator.generate(task)
    other = generator.generate(task.model_copy(update={"seed": 99}))
    with_blue = generator.generate(task.model_copy(update={"conditioning": (blue,)}))
    assert first.frames.shape == (2, 8, 8, 3) and first.frames.dtype == np.uint8
    assert first.fps == 7.0
    assert np.array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)
    assert not np.array_equal(first.frames, with_blue.frames)  # the image is really used
    assert first.frames.std() > 1
    record = first.record
    assert record["pipeline"] == "StableVideoDiffusionPipeline"
    assert record["warnings"] == ["StableVideoDiffusionPipeline takes no text: the prompt is "
                                  "not used"]
    assert record["prompt"] is None and record["options"] == {"motion_bucket_id": 60}
    json.dumps(record)
    call = calls[0]
    assert "prompt" not in call and "negative_prompt" not in call
    assert "guidance_scale" not in call  # SVD ramps guidance over the frames instead
    assert call["min_guidance_scale"] == 1.0 and call["max_guidance_scale"] == task.guidance
    assert call["fps"] == 7 and call["motion_bucket_id"] == 60 and call["num_frames"] == 2
    assert (call["height"], call["width"], call["num_inference_steps"]) == (8, 8, 2)
    image = call["image"]
    assert isinstance(image, Image.Image) and image.size == (8, 8)
    assert image.getpixel((4, 4)) == (220, 30, 30)


def test_svd_without_a_prompt_has_no_warning(loaded, tmp_path):
    red = condition("first_image", solid(tmp_path / "red.png", (220, 30, 30)))
    result = loaded(SVD, "svd").generate(make_task(SVD, prompt="", conditioning=(red,),
                                                   **SVD_SIZE))
    assert result.record["warnings"] == []


@pytest.mark.parametrize("options, named", [
    ({"cache": "first_block"}, "cache='first_block' acts"),
    ({"cache": "magcache", "mag_ratios": "1.0,0.99"}, "cache='magcache' acts"),
    ({"attention_backend": "_native_math"}, "attention_backend='_native_math' acts"),
    ({"compile": True, "cache": "taylorseer"}, "cache='taylorseer', compile=True act"),
])
def test_transformer_options_on_svd_fail_at_load(tiny_weights, options, named):
    """SVD denoises with a UNet: a cache, attention backend or compile of the transformer would
    do nothing, and must not be recorded as applied."""
    generator = create_generator(model_spec(SVD), weights=str(tiny_weights("svd")),
                                 options={"allow_cpu": True, **options})
    with pytest.raises(GeneratorLoadError) as raised:
        generator.load("cpu")
    message = str(raised.value)
    assert all(part in message for part in (SVD, named, "StableVideoDiffusionPipeline has none",
                                            "UNetSpatioTemporalConditionModel")), message
    assert generator.pipe is None


def test_svd_without_a_first_image_is_an_error(loaded):
    with pytest.raises(GeneratorError, match="needs a first image"):
        loaded(SVD, "svd").generate(make_task(SVD, **SVD_SIZE))


def test_svd_cannot_take_a_last_image(loaded, tmp_path):
    first = condition("first_image", solid(tmp_path / "first.png", (200, 0, 0)))
    last = condition("last_image", solid(tmp_path / "last.png", (0, 0, 200)))
    with pytest.raises(GeneratorError, match="cannot be conditioned on a last image"):
        loaded(SVD, "svd").generate(make_task(SVD, conditioning=(first, last), **SVD_SIZE))


@pytest.mark.slow
def test_skyreels_long_video_runs_in_overlapping_windows(loaded, monkeypatch):
    """Past base_num_frames (97) diffusion forcing needs overlap_history, which previz sets;
    an option still chooses it."""
    generator = loaded(SKY, "skyreels_df")
    calls = spy_on(monkeypatch, type(generator.pipe))
    task = make_task(SKY, **{**SKY_SIZE, "num_frames": 101})
    assert model_spec(SKY).frames.accepts(101)
    result = generator.generate(task)
    assert result.frames.shape == (101, 16, 16, 3)
    assert calls[0]["overlap_history"] == 17 == result.record["call"]["overlap_history"]
    assert result.frames.std() > 1


@pytest.mark.slow
def test_skyreels_long_video_from_a_first_image(loaded, tmp_path, monkeypatch):
    """diffusers' image-to-video pipeline fails on a last window shorter than base_num_frames
    (101 frames: windows of 97 overlapping by 17 leave a 21-frame one): previz generates whole
    windows (177 frames) and keeps the frames asked for."""
    from diffusers import SkyReelsV2DiffusionForcingImageToVideoPipeline as I2V

    generator = loaded(SKY, "skyreels_df")
    calls = spy_on(monkeypatch, I2V)
    red = condition("first_image", solid(tmp_path / "red.png", (220, 30, 30)))
    result = generator.generate(make_task(SKY, conditioning=(red,),
                                          **{**SKY_SIZE, "num_frames": 101}))
    assert result.frames.shape == (101, 16, 16, 3) and result.frames.std() > 1
    assert calls[0]["num_frames"] == 177 and calls[0]["overlap_history"] == 17
    assert result.record["call"]["num_frames"] == 177
    [warning] = result.record["warnings"]
    assert "generated 177 frames (whole windows) and kept the first 101" in warning


class Called(Exception):
    """Raised by a stand-in pipeline call once it has recorded its arguments."""


@pytest.mark.parametrize("options, frames, overlap", [
    ({}, 97, None),  # one window: none needed
    ({}, 101, 17),
    ({"overlap_history": 37}, 101, 37),  # an option chooses it
    ({"base_num_frames": 121}, 101, None),  # a longer window: one again
    ({"base_num_frames": 57}, 61, 17),
])
def test_skyreels_overlap_history_only_past_one_window(loaded, monkeypatch, options, frames,
                                                       overlap):
    generator = loaded(SKY, "skyreels_df")
    calls = []

    @functools.wraps(type(generator.pipe).__call__)  # previz reads the call's parameters
    def record(self, **kwargs):
        calls.append(kwargs)
        raise Called

    monkeypatch.setattr(type(generator.pipe), "__call__", record)
    with pytest.raises(Called):
        generator.generate(make_task(SKY, options=options, **{**SKY_SIZE, "num_frames": frames}))
    assert calls[0].get("overlap_history") == overlap
    assert calls[0].get("base_num_frames") == options.get("base_num_frames")


def test_svd_single_frame(loaded, tmp_path, monkeypatch):
    """One frame is a count the catalog accepts: guidance cannot ramp over it, so the shot's
    guidance holds throughout (a ramp from 1.0 over one frame is a shape error in SVD)."""
    generator = loaded(SVD, "svd")
    calls = spy_on(monkeypatch, type(generator.pipe))
    red = condition("first_image", solid(tmp_path / "red.png", (220, 30, 30)))
    task = make_task(SVD, conditioning=(red,), **{**SVD_SIZE, "num_frames": 1})
    assert model_spec(SVD).frames.accepts(1) and task.guidance > 1
    result = generator.generate(task)
    assert result.frames.shape == (1, 8, 8, 3) and result.frames.std() > 1
    assert calls[0]["min_guidance_scale"] == calls[0]["max_guidance_scale"] == task.guidance


@pytest.mark.parametrize("options, frames, generated", [
    ({}, 97, 97),  # one window
    ({}, 101, 177),  # 97 + one more window of 80 new frames
    ({}, 177, 177),  # already whole
    ({}, 181, 257),
    ({"overlap_history": 37}, 101, 157),  # windows of 97 sharing 37: 60 new frames each
    ({"base_num_frames": 57}, 61, 97),  # windows of 57 sharing 17: 40 new frames each
])
def test_skyreels_image_to_video_generates_whole_windows(loaded, tmp_path, monkeypatch, options,
                                                        frames, generated):
    from diffusers import SkyReelsV2DiffusionForcingImageToVideoPipeline as I2V

    generator = loaded(SKY, "skyreels_df")
    calls = []

    @functools.wraps(I2V.__call__)
    def record(self, **kwargs):
        calls.append(kwargs)
        raise Called

    monkeypatch.setattr(I2V, "__call__", record)
    red = condition("first_image", solid(tmp_path / "red.png", (220, 30, 30)))
    with pytest.raises(Called):
        generator.generate(make_task(SKY, conditioning=(red,), options=options,
                                     **{**SKY_SIZE, "num_frames": frames}))
    assert calls[0]["num_frames"] == generated
