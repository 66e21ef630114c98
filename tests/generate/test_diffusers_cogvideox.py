"""The diffusers generator on CogVideoX (text to video and first image to video), with tiny
random weights built offline (tiny_cogvideox.py) and loaded through create_generator.

The catalog takes 49 frames only (FrameRule(48, 1, 49)); 16x16 is the smallest size the tiny
pipelines make (VAE 8x, patch 2) and the only one the image-to-video model makes (its learned
position embeddings fix the size, as the real CogVideoX-5b-I2V's fix it to 720x480)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from generate_helpers import (
    condition,
    forbid_loading,
    make_task,
    solid,
    spy_on,
    weights_with_transformer,
)
from PIL import Image

from previz.catalog import model_spec
from previz.generate import GeneratorError, GeneratorLoadError, create_generator
from previz.plan.types import CameraSpec

T2V, I2V = "cogvideox-5b", "cogvideox-5b-i2v"
SIZE = dict(width=16, height=16, num_frames=49, fps=8.0)
TEXT_LENGTH = 32  # the tiny transformers' max_text_seq_length (226 for the real ones)


def test_catalog_frames_and_fps_are_what_the_tests_use():
    for model in (T2V, I2V):
        spec = model_spec(model)
        assert spec.frames.accepts(49) and spec.frames.smallest() == 49
        assert spec.fps == SIZE["fps"] and SIZE["width"] % spec.size_multiple == 0


@pytest.mark.slow
def test_text_to_video_frames_call_and_determinism(loaded, monkeypatch):
    generator = loaded(T2V, "cogvideox_t2v", max_sequence_length=None)
    calls = spy_on(monkeypatch, generator)
    task = make_task(T2V, camera=CameraSpec(move="dolly_in", size="wide", speed=0.6), **SIZE)
    first = generator.generate(task)
    again = generator.generate(task)
    other = generator.generate(task.model_copy(update={"seed": 99}))

    assert first.frames.shape == (49, 16, 16, 3) and first.frames.dtype == np.uint8
    assert first.fps == model_spec(T2V).fps == 8.0
    assert np.array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames, other.frames)
    assert first.frames.std() > 1  # not a blank video
    record = first.record
    assert record["pipeline"] == "CogVideoXPipeline" and record["model"] == T2V
    assert record["seed"] == 1234 and record["warnings"] == []
    call = calls[0]
    assert call["prompt"] == record["prompt"]
    assert call["prompt"].startswith("an old keeper climbs")
    assert "Wide shot. The camera slowly dollies in." in call["prompt"]
    assert (call["num_frames"], call["height"], call["width"]) == (49, 16, 16)
    assert call["num_inference_steps"] == 2
    assert call["guidance_scale"] == model_spec(T2V).default_guidance == 6.0
    assert call["output_type"] == "np" and callable(call["callback_on_step_end"])
    # no option: the transformer's text length, not the pipeline's default (226)
    assert call["max_sequence_length"] == TEXT_LENGTH
    assert isinstance(call["generator"], torch.Generator)
    assert call["generator"].initial_seed() == 1234
    assert calls[2]["generator"].initial_seed() == 99
    assert "image" not in call and "negative_prompt" not in call


def test_progress_negative_prompt_and_a_pipeline_option(loaded, monkeypatch):
    generator = loaded(T2V, "cogvideox_t2v", max_sequence_length=None)
    calls = spy_on(monkeypatch, generator)
    seen = []
    task = make_task(T2V, steps=3, negative="blurry watermark text",
                     options={"use_dynamic_cfg": True}, **SIZE)
    result = generator.generate(task, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert result.record["steps_reported"] == 3
    assert calls[0]["negative_prompt"] == "blurry watermark text"
    assert calls[0]["use_dynamic_cfg"] is True and calls[0]["num_inference_steps"] == 3
    assert result.record["options"]["use_dynamic_cfg"] is True
    assert result.record["negative_prompt"] == "blurry watermark text"
    assert result.record["warnings"] == []


@pytest.mark.slow
def test_long_prompt_is_cut_to_the_option_with_a_warning(loaded, monkeypatch):
    """CogVideoX-5b's rotary position embeddings take any text length: the option holds."""
    generator = loaded(T2V, "cogvideox_t2v", max_sequence_length=16)
    calls = spy_on(monkeypatch, generator)
    long_prompt = " ".join(["the old keeper climbs the steps"] * 8)
    result = generator.generate(make_task(T2V, prompt=long_prompt, **SIZE))
    [warning] = result.record["warnings"]
    assert "prompt cut to 16 tokens" in warning and "dropped" in warning
    assert len(generator.pipe.tokenizer(calls[0]["prompt"])["input_ids"]) <= 16
    assert long_prompt.startswith(calls[0]["prompt"])
    assert calls[0]["max_sequence_length"] == 16
    assert result.frames.shape == (49, 16, 16, 3)


def test_text_model_refuses_a_first_image(loaded, tmp_path, monkeypatch):
    generator = loaded(T2V, "cogvideox_t2v", max_sequence_length=None)
    calls = spy_on(monkeypatch, generator)
    first = condition("first_image", solid(tmp_path / "first.png", (200, 0, 0)))
    with pytest.raises(GeneratorError, match="cannot be conditioned on a first image"):
        generator.generate(make_task(T2V, conditioning=(first,), **SIZE))
    assert calls == []


# Image to video


@pytest.mark.slow
def test_first_image_reaches_image_to_video(loaded, tmp_path, monkeypatch):
    generator = loaded(I2V, "cogvideox_i2v", max_sequence_length=None)
    calls = spy_on(monkeypatch, generator)
    red = condition("first_image", solid(tmp_path / "red.png", (220, 30, 30), (40, 30)))
    blue = condition("first_image", solid(tmp_path / "blue.png", (30, 30, 220), (40, 30)))
    with_red = generator.generate(make_task(I2V, conditioning=(red,), **SIZE))
    with_blue = generator.generate(make_task(I2V, conditioning=(blue,), **SIZE))

    image = calls[0]["image"]
    assert isinstance(image, Image.Image) and image.size == (16, 16)  # fitted to the task
    assert image.getpixel((8, 8)) == (220, 30, 30)
    assert calls[1]["image"].getpixel((8, 8)) == (30, 30, 220)
    assert with_red.frames.shape == (49, 16, 16, 3) and with_red.frames.dtype == np.uint8
    assert with_red.frames.std() > 1
    # same seed and prompt: only the first image differs
    assert not np.array_equal(with_red.frames, with_blue.frames)
    record = with_red.record
    assert record["pipeline"] == "CogVideoXImageToVideoPipeline" and record["warnings"] == []
    assert record["conditioning"][0]["role"] == "first_image"
    assert record["conditioning"][0]["path"] == str(tmp_path / "red.png")
    assert calls[0]["num_frames"] == 49 and calls[0]["guidance_scale"] == 6.0
    assert calls[0]["max_sequence_length"] == TEXT_LENGTH


def test_image_to_video_without_an_image_is_an_error(loaded, monkeypatch):
    generator = loaded(I2V, "cogvideox_i2v", max_sequence_length=None)
    calls = spy_on(monkeypatch, generator)
    with pytest.raises(GeneratorError, match="needs a first image"):
        generator.generate(make_task(I2V, **SIZE))
    assert calls == []


def test_image_to_video_takes_no_last_image(loaded, tmp_path):
    first = condition("first_image", solid(tmp_path / "first.png", (200, 0, 0)))
    last = condition("last_image", solid(tmp_path / "last.png", (0, 0, 200)))
    with pytest.raises(GeneratorError, match="cannot be conditioned on a last image"):
        loaded(I2V, "cogvideox_i2v", max_sequence_length=None).generate(
            make_task(I2V, conditioning=(first, last), **SIZE))


@pytest.mark.slow
def test_image_to_video_text_length_is_fixed_by_the_model(loaded, tmp_path, monkeypatch):
    """CogVideoX-5b-I2V's learned position embeddings span max_text_seq_length text tokens:
    another max_sequence_length fails inside the transformer (a tensor size mismatch). previz
    sends the model's own length, says the option was not used, and cuts the prompt to it."""
    generator = loaded(I2V, "cogvideox_i2v")  # the fixture's max_sequence_length=64
    calls = spy_on(monkeypatch, generator)
    red = condition("first_image", solid(tmp_path / "red.png", (220, 30, 30)))
    long_prompt = " ".join(["the old keeper climbs the steps"] * 8)
    result = generator.generate(make_task(I2V, conditioning=(red,), prompt=long_prompt, **SIZE))
    assert calls[0]["max_sequence_length"] == TEXT_LENGTH
    ignored, cut = result.record["warnings"]
    assert "max_sequence_length=64" in ignored and str(TEXT_LENGTH) in ignored, ignored
    assert f"prompt cut to {TEXT_LENGTH} tokens" in cut
    assert len(generator.pipe.tokenizer(calls[0]["prompt"])["input_ids"]) <= TEXT_LENGTH
    assert result.frames.shape == (49, 16, 16, 3)


def test_image_to_video_refuses_a_size_it_was_not_trained_for(loaded, tmp_path, monkeypatch):
    """Learned position embeddings fix the size (720x480 for CogVideoX-5b-I2V, 16x16 here):
    refused with the size to use before the pipeline runs, not as a ValueError from inside
    the transformer after the text and the image were encoded."""
    generator = loaded(I2V, "cogvideox_i2v", max_sequence_length=None)
    calls = spy_on(monkeypatch, generator)
    red = condition("first_image", solid(tmp_path / "red.png", (220, 30, 30)))
    with pytest.raises(GeneratorError) as raised:
        generator.generate(make_task(I2V, conditioning=(red,),
                                     **{**SIZE, "width": 32, "height": 16}))
    message = str(raised.value)
    assert all(part in message for part in (I2V, "32x16", "16x16")), message
    assert calls == []


# Weights


@pytest.mark.parametrize("model, weights, transformer_from, field", [
    (T2V, "cogvideox_i2v", None, "CogVideoXImageToVideoPipeline"),
    (I2V, "cogvideox_t2v", None, "CogVideoXPipeline"),
    (T2V, "cogvideox_t2v", "cogvideox_i2v", "in_channels"),  # an I2V transformer in T2V weights
    (I2V, "cogvideox_i2v", "cogvideox_t2v", "in_channels"),  # and the other way round
], ids=["i2v-as-t2v", "t2v-as-i2v", "i2v-transformer-as-t2v", "t2v-transformer-as-i2v"])
def test_weights_of_the_other_model_are_refused_before_loading(
        tiny_weights, tmp_path, monkeypatch, model, weights, transformer_from, field):
    forbid_loading(monkeypatch, "CogVideoXPipeline", "CogVideoXImageToVideoPipeline")
    folder = weights_with_transformer(tiny_weights, tmp_path, weights, transformer_from)
    generator = create_generator(model_spec(model), weights=str(folder),
                                 options={"allow_cpu": True})
    with pytest.raises(GeneratorLoadError) as raised:
        generator.load("cpu")
    message = str(raised.value)
    assert all(part in message for part in (f"model {model}:", str(folder), field)), message
    assert generator.pipe is None
