"""The diffusers generator on real pipelines with tiny random weights, loaded from disk through
create_generator (the path users take). Sizes and frame counts are the smallest each family
accepts, so every call takes about a second on a CPU."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys

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
from previz.generate import (
    GeneratorError,
    GeneratorLoadError,
    GeneratorNeedsGpu,
    GeneratorOutOfMemory,
    create_generator,
)
from previz.generate.diffusion import _to_uint8
from previz.plan.types import CameraSpec, Conditioning

WAN = dict(width=16, height=16, num_frames=9, fps=16.0)
LTX = dict(width=32, height=32, num_frames=9, fps=24.0)
T2V, I2V, FLF, VACE, LTXV = ("wan2.1-t2v-1.3b", "wan2.1-i2v-14b-480p", "wan2.1-flf2v-14b-720p",
                             "wan2.1-vace-1.3b", "ltx-video")
TI2V = "wan2.2-ti2v-5b"


@pytest.mark.slow
def test_text_to_video_frames_size_and_determinism(loaded):
    generator = loaded(T2V, "wan_t2v")
    task = make_task(T2V, camera=CameraSpec(move="dolly_in", size="wide", speed=0.6), **WAN)
    first = generator.generate(task)
    again = generator.generate(task)
    other = generator.generate(task.model_copy(update={"seed": 99}))
    assert first.frames.shape == (9, 16, 16, 3) and first.frames.dtype == np.uint8
    assert first.fps == 16.0
    assert np.array_equal(first.frames, again.frames)  # same task, same weights: same frames
    assert not np.array_equal(first.frames, other.frames)
    assert first.frames.std() > 1  # not a blank video
    record = first.record
    assert record["pipeline"] == "WanPipeline" and record["seed"] == 1234
    assert "The camera slowly dollies in." in record["prompt"]
    assert record["prompt"].startswith("an old keeper climbs")
    assert record["call"]["num_frames"] == 9 and record["call"]["num_inference_steps"] == 2
    assert record["warnings"] == []
    json.dumps(record)  # records go into take.json


def test_progress_fires_once_per_step(loaded):
    generator = loaded(T2V, "wan_t2v")
    seen = []
    result = generator.generate(make_task(T2V, steps=3, **WAN),
                                progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert result.record["steps_reported"] == 3


def test_panel_image_reaches_image_to_video(loaded, tmp_path, monkeypatch):
    generator = loaded(I2V, "wan_i2v")
    calls = spy_on(monkeypatch, generator)
    red = condition("first_image", solid(tmp_path / "red.png", (220, 30, 30), (40, 30)))
    blue = condition("first_image", solid(tmp_path / "blue.png", (30, 30, 220), (40, 30)))
    with_red = generator.generate(make_task(I2V, conditioning=(red,), **WAN))
    with_blue = generator.generate(make_task(I2V, conditioning=(blue,), **WAN))
    image = calls[0]["image"]
    assert isinstance(image, Image.Image) and image.size == (16, 16)  # fitted to the task size
    assert image.getpixel((8, 8)) == (220, 30, 30)
    assert not np.array_equal(with_red.frames, with_blue.frames)


def test_previous_take_last_frame_reaches_the_pipeline(loaded, monkeypatch):
    """A continued shot's first image comes from the engine's image source by key."""
    generator = loaded(I2V, "wan_i2v")
    calls = spy_on(monkeypatch, generator)
    frames = {"take-a": Image.new("RGB", (16, 16), (250, 200, 0)),
              "take-b": Image.new("RGB", (16, 16), (0, 90, 40))}

    def source(c: Conditioning) -> Image.Image:
        return frames[c.from_key]

    results = [generator.generate(
        make_task(I2V, conditioning=(Conditioning(role="first_image", from_key=key),), **WAN),
        images=source) for key in frames]
    assert calls[0]["image"].getpixel((0, 0)) == (250, 200, 0)
    assert calls[1]["image"].getpixel((0, 0)) == (0, 90, 40)
    assert not np.array_equal(results[0].frames, results[1].frames)
    assert results[0].record["conditioning"][0]["from_key"] == "take-a"


@pytest.mark.slow
def test_first_and_last_frame(loaded, tmp_path, monkeypatch):
    generator = loaded(FLF, "wan_flf2v")
    calls = spy_on(monkeypatch, generator)
    first = condition("first_image", solid(tmp_path / "first.png", (200, 0, 0)))
    lasts = [condition("last_image", solid(tmp_path / f"last{i}.png", colour))
             for i, colour in enumerate([(0, 200, 0), (0, 0, 200)])]
    results = [generator.generate(make_task(FLF, conditioning=(first, last), **WAN))
               for last in lasts]
    assert calls[0]["last_image"].getpixel((0, 0)) == (0, 200, 0)
    assert calls[0]["image"].getpixel((0, 0)) == (200, 0, 0)
    assert results[0].frames.shape == (9, 16, 16, 3)
    assert not np.array_equal(results[0].frames, results[1].frames)


def test_first_frame_needs_a_last_frame_on_first_last_models(loaded, tmp_path):
    first = condition("first_image", solid(tmp_path / "first.png", (200, 0, 0)))
    with pytest.raises(GeneratorError, match="no last image"):
        loaded(FLF, "wan_flf2v").generate(make_task(FLF, conditioning=(first,), **WAN))


@pytest.mark.slow
def test_text_pipeline_animates_an_image_through_its_sibling(loaded, tmp_path):
    """Wan 2.2 TI2V: one set of weights, WanPipeline for text and WanImageToVideoPipeline
    (built on the same modules) for a first image."""
    generator = loaded(TI2V, "wan_ti2v")
    size = dict(width=32, height=32, num_frames=9, fps=24.0)
    red = condition("first_image", solid(tmp_path / "red.png", (200, 0, 0)))
    blue = condition("first_image", solid(tmp_path / "blue.png", (0, 0, 200)))
    text = generator.generate(make_task(TI2V, **size))
    with_red = generator.generate(make_task(TI2V, conditioning=(red,), **size))
    with_blue = generator.generate(make_task(TI2V, conditioning=(blue,), **size))
    assert text.record["pipeline"] == "WanPipeline"
    assert with_red.record["pipeline"] == "WanImageToVideoPipeline"
    assert with_red.frames.shape == (9, 32, 32, 3)
    assert not np.array_equal(with_red.frames, with_blue.frames)
    sibling = generator._siblings["WanImageToVideoPipeline"]
    assert sibling.transformer is generator.pipe.transformer  # shared, not copied


@pytest.mark.slow
def test_vace_reference_images_and_first_frame(loaded, tmp_path, monkeypatch):
    generator = loaded(VACE, "wan_vace")
    calls = spy_on(monkeypatch, generator)
    keeper = condition("reference", solid(tmp_path / "keeper.png", (240, 200, 40), (20, 30)),
                       "KEEPER")
    first = condition("first_image", solid(tmp_path / "first.png", (10, 160, 10)))
    with_keeper = generator.generate(make_task(VACE, conditioning=(keeper,), **WAN))
    without = generator.generate(make_task(VACE, **WAN))
    generator.generate(make_task(VACE, conditioning=(first, keeper), **WAN))
    assert [r.getpixel((0, 0)) for r in calls[0]["reference_images"]] == [(240, 200, 40)]
    assert "video" not in calls[0] and "reference_images" not in calls[1]
    # (tiny random VAEs barely tell two references apart; with and without one they differ)
    assert not np.array_equal(with_keeper.frames, without.frames)
    video, mask = calls[2]["video"], calls[2]["mask"]
    assert len(video) == len(mask) == 9
    assert video[0].getpixel((0, 0)) == (10, 160, 10) and mask[0].getpixel((0, 0)) == 0
    assert video[1].getpixel((0, 0)) == (128, 128, 128) and mask[1].getpixel((0, 0)) == 255
    assert with_keeper.frames.shape == (9, 16, 16, 3)


def test_ltx_keyframe_conditions(loaded, tmp_path, monkeypatch):
    generator = loaded(LTXV, "ltx")
    calls = spy_on(monkeypatch, generator)
    first = condition("first_image", solid(tmp_path / "first.png", (200, 30, 30)))
    last = condition("last_image", solid(tmp_path / "last.png", (30, 30, 200)))
    other_first = condition("first_image", solid(tmp_path / "other.png", (30, 200, 30)))
    both = generator.generate(make_task(LTXV, conditioning=(first, last), **LTX))
    other = generator.generate(make_task(LTXV, conditioning=(other_first, last), **LTX))
    conditions = calls[0]["conditions"]
    assert [c.frame_index for c in conditions] == [0, 8]
    assert conditions[0].image.getpixel((0, 0)) == (200, 30, 30)
    assert calls[0]["frame_rate"] == 24
    assert both.frames.shape == (9, 32, 32, 3)
    assert not np.array_equal(both.frames, other.frames)
    assert "The camera remains still." in both.record["prompt"]  # LTX's own phrasing


def test_two_expert_wan22_with_a_call_option(loaded, monkeypatch):
    generator = loaded("wan2.2-t2v-a14b", "wan22_t2v")
    calls = spy_on(monkeypatch, generator)
    task = make_task("wan2.2-t2v-a14b", options={"guidance_scale_2": 3.0}, **WAN)
    result = generator.generate(task)
    assert generator.pipe.transformer_2 is not None
    assert calls[0]["guidance_scale_2"] == 3.0 and calls[0]["guidance_scale"] == task.guidance
    assert result.frames.shape == (9, 16, 16, 3)
    assert result.record["options"]["guidance_scale_2"] == 3.0


def test_long_prompt_is_cut_with_a_warning(loaded):
    generator = loaded(T2V, "wan_t2v")
    long_prompt = " ".join(["the old keeper climbs the steps"] * 8)
    result = generator.generate(make_task(T2V, prompt=long_prompt,
                                          options={"max_sequence_length": 16}, **WAN))
    [warning] = result.record["warnings"]
    assert "prompt cut to 16 tokens" in warning and "dropped" in warning
    tokens = generator.pipe.tokenizer(result.record["prompt"])["input_ids"]
    assert len(tokens) <= 16
    assert long_prompt.startswith(result.record["prompt"])
    assert result.record["call"]["max_sequence_length"] == 16


def test_unknown_options_are_reported_and_pipeline_options_passed(loaded):
    generator = loaded(VACE, "wan_vace")
    result = generator.generate(make_task(
        VACE, options={"conditioning_scale": 0.5, "no_such_option": 1}, **WAN))
    assert result.record["options"]["conditioning_scale"] == 0.5
    assert any("no_such_option" in w for w in result.record["warnings"])


def test_missing_weights_folder(tmp_path):
    missing = tmp_path / "nowhere"
    generator = create_generator(model_spec(T2V), weights=str(missing),
                                 options={"allow_cpu": True})
    with pytest.raises(GeneratorLoadError) as raised:
        generator.load("cpu")
    message = str(raised.value)
    assert T2V in message and str(missing) in message and "WanPipeline" in message


def test_folder_that_is_not_a_pipeline(tmp_path):
    (tmp_path / "weights").mkdir()
    generator = create_generator(model_spec(T2V), weights=str(tmp_path / "weights"),
                                 options={"allow_cpu": True})
    with pytest.raises(GeneratorLoadError, match="model_index.json"):
        generator.load("cpu")


def test_weights_of_another_family_are_refused_before_loading(tiny_weights, monkeypatch):
    forbid_loading(monkeypatch, "WanPipeline", "WanImageToVideoPipeline")
    folder = tiny_weights("ltx")
    generator = create_generator(model_spec(T2V), weights=str(folder),
                                 options={"allow_cpu": True})
    with pytest.raises(GeneratorLoadError) as raised:
        generator.load("cpu")
    message = str(raised.value)
    assert all(part in message for part in (T2V, str(folder), "LTXConditionPipeline",
                                            "WanPipeline"))


@pytest.mark.parametrize("model, weights, transformer_from, field", [
    (T2V, "wan22_t2v", None, "transformer_2"),  # Wan 2.2 A14B: two experts
    (T2V, "wan_ti2v", None, "expand_timesteps"),  # Wan 2.2 TI2V
    (I2V, "wan_flf2v", None, "pos_embed_seq_len"),  # first-and-last-frame
    ("wan2.2-t2v-a14b", "wan_t2v", None, "transformer_2"),  # would run as a single expert
    (FLF, "wan_i2v", None, "pos_embed_seq_len"),  # no last frame training
    (T2V, "wan_t2v", "wan_i2v", "in_channels"),  # an I2V transformer dropped into a T2V folder
], ids=["a14b-as-2.1", "ti2v-as-2.1", "flf2v-as-i2v", "2.1-as-a14b", "i2v-as-flf2v",
        "i2v-transformer-as-t2v"])
def test_weights_of_another_variant_are_refused_before_loading(
        tiny_weights, monkeypatch, tmp_path, model, weights, transformer_from, field):
    forbid_loading(monkeypatch, "WanPipeline", "WanImageToVideoPipeline")
    folder = weights_with_transformer(tiny_weights, tmp_path, weights, transformer_from)
    generator = create_generator(model_spec(model), weights=str(folder),
                                 options={"allow_cpu": True})
    with pytest.raises(GeneratorLoadError) as raised:
        generator.load("cpu")
    message = str(raised.value)
    assert all(part in message for part in (f"model {model}:", str(folder), field,
                                            "point `weights:`")), message
    assert generator.pipe is None


def test_gpu_model_is_refused_on_a_cpu_worker(tiny_weights):
    generator = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")))
    assert generator.needs.gpus == 1
    with pytest.raises(GeneratorNeedsGpu, match="allow_cpu"):
        generator.load("cpu")


def test_conditioning_the_model_cannot_take_is_an_error(loaded, tmp_path):
    generator = loaded(T2V, "wan_t2v")
    ref = condition("reference", solid(tmp_path / "ref.png", (1, 2, 3)), "KEEPER")
    with pytest.raises(GeneratorError, match="cannot be conditioned on a reference"):
        generator.generate(make_task(T2V, conditioning=(ref,), **WAN))


def test_image_to_video_without_an_image_is_an_error(loaded):
    with pytest.raises(GeneratorError, match="needs a first image"):
        loaded(I2V, "wan_i2v").generate(make_task(I2V, **WAN))


def test_out_of_memory_becomes_a_catchable_error(loaded, monkeypatch):
    generator = loaded(T2V, "wan_t2v")

    def exhausted(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(type(generator.pipe), "__call__", exhausted)
    with pytest.raises(GeneratorOutOfMemory) as raised:
        generator.generate(make_task(T2V, **WAN))
    error = raised.value
    assert error.model == T2V
    assert error.tried["width"] == 16 and error.tried["frames"] == 9
    assert error.suggestion == {"cpu_offload": True, "vae_tiling": True}
    copy = pickle.loads(pickle.dumps(error))  # crosses process boundaries intact
    assert isinstance(copy, GeneratorOutOfMemory) and copy.tried == error.tried


def test_cache_option_is_applied(tiny_weights):
    generator = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                                 options={"allow_cpu": True, "cache": "first_block:0.05",
                                          "cpu_offload": True, "max_sequence_length": 32})
    generator.load("cpu")
    try:
        result = generator.generate(make_task(T2V, **WAN))
        assert result.record["options"]["cache"] == "first_block:0.05"
        assert "cpu_offload" not in result.record["options"]
        assert any("do nothing on a CPU" in w for w in result.record["warnings"])
        assert result.frames.shape == (9, 16, 16, 3)
    finally:
        generator.release()


def test_bad_cache_option_fails_at_load(tiny_weights):
    generator = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                                 options={"allow_cpu": True, "cache": "magcache"})
    with pytest.raises(GeneratorLoadError, match="mag_ratios"):
        generator.load("cpu")


def test_generate_before_load_and_for_another_model(loaded, tiny_weights):
    unloaded = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                                options={"allow_cpu": True})
    with pytest.raises(GeneratorError, match="not loaded"):
        unloaded.generate(make_task(T2V, **WAN))
    with pytest.raises(GeneratorError, match="this generator holds"):
        loaded(T2V, "wan_t2v").generate(make_task(VACE, **WAN))


def test_pipeline_output_to_uint8():
    floats = np.linspace(0, 1, 2 * 3 * 4 * 4 * 3).reshape(1, 3, 4, 4, 6)[..., :3]
    frames = _to_uint8(floats)
    assert frames.shape == (3, 4, 4, 3) and frames.dtype == np.uint8
    assert _to_uint8(torch.ones(1, 2, 3, 4, 4)).shape == (2, 4, 4, 3)  # channels first
    assert _to_uint8(np.full((1, 1, 2, 2, 3), 2.0)).max() == 255


def test_importing_and_creating_needs_no_torch():
    code = ("import sys; from previz.generate import create_generator; "
            "from previz.catalog import model_spec; "
            "create_generator(model_spec('wan2.1-t2v-1.3b'), weights='/nowhere'); "
            "create_generator(model_spec('draft')); create_generator(model_spec('synthetic')); "
            "bad = [m for m in ('torch', 'diffusers', 'ray') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# Determinism, prompts and dtype


def test_a_fresh_load_from_disk_gives_the_same_frames(loaded, tiny_weights):
    """Same task, same weights: the same frames from another generator loading them anew
    (what a take's content key promises when another worker renders it)."""
    task = make_task(T2V, **WAN)
    shared = loaded(T2V, "wan_t2v").generate(task)
    fresh = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                             options={"allow_cpu": True, "max_sequence_length": 64})
    fresh.load("cpu")
    try:
        again = fresh.generate(task)
    finally:
        fresh.release()
    assert np.array_equal(shared.frames, again.frames)
    assert again.record["dtype"] == "torch.float32" and again.record["device"] == "cpu"
    assert again.record["weights"] == str(tiny_weights("wan_t2v"))


def test_negative_prompt_reaches_the_pipeline(loaded, monkeypatch):
    generator = loaded(T2V, "wan_t2v")
    calls = spy_on(monkeypatch, generator)
    task = make_task(T2V, **WAN)
    plain = generator.generate(task)
    negative = generator.generate(task.model_copy(update={"negative": "blurry watermark text"}))
    assert "negative_prompt" not in calls[0]
    assert calls[1]["negative_prompt"] == "blurry watermark text"
    assert calls[1]["guidance_scale"] == task.guidance > 1  # classifier-free guidance is on
    assert negative.record["negative_prompt"] == "blurry watermark text"
    assert not np.array_equal(plain.frames, negative.frames)


def test_long_negative_prompt_is_cut_with_a_warning(loaded, monkeypatch):
    generator = loaded(T2V, "wan_t2v")
    calls = spy_on(monkeypatch, generator)
    negative = " ".join(["blurry watermark text"] * 10)
    result = generator.generate(make_task(T2V, negative=negative,
                                          options={"max_sequence_length": 16}, **WAN))
    [warning] = [w for w in result.record["warnings"] if w.startswith("negative prompt")]
    assert warning.startswith("negative prompt cut to 16 tokens") and "dropped" in warning
    sent = calls[0]["negative_prompt"]
    assert negative.startswith(sent) and len(generator.pipe.tokenizer(sent)["input_ids"]) <= 16
    assert result.record["negative_prompt"] == sent


def test_dtype_option(tiny_weights):
    generator = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                                 options={"allow_cpu": True, "dtype": "bf16",
                                          "max_sequence_length": 32})
    generator.load("cpu")
    try:
        assert generator.pipe.transformer.dtype == torch.bfloat16
        result = generator.generate(make_task(T2V, **WAN))
        assert result.record["dtype"] == "torch.bfloat16"
        assert result.frames.shape == (9, 16, 16, 3)
    finally:
        generator.release()
    wrong = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                             options={"allow_cpu": True, "dtype": "float64"})
    with pytest.raises(GeneratorLoadError, match="dtype='float64': use one of bfloat16"):
        wrong.load("cpu")


# Weights: where they are and whether they are this model's


def test_folder_that_is_not_a_pipeline_names_model_and_pipeline(tmp_path):
    (tmp_path / "weights").mkdir()
    generator = create_generator(model_spec(LTXV), weights=str(tmp_path / "weights"),
                                 options={"allow_cpu": True})
    with pytest.raises(GeneratorLoadError) as raised:
        generator.load("cpu")
    message = str(raised.value)
    assert all(part in message for part in (LTXV, str(tmp_path / "weights"),
                                            "LTXConditionPipeline", "model_index.json"))
    assert generator.pipe is None


def test_weights_folder_missing_a_component(tiny_weights, tmp_path):
    broken = tmp_path / "wan-without-transformer"
    shutil.copytree(tiny_weights("wan_t2v"), broken)
    shutil.rmtree(broken / "transformer")
    generator = create_generator(model_spec(T2V), weights=str(broken),
                                 options={"allow_cpu": True})
    with pytest.raises(GeneratorLoadError) as raised:
        generator.load("cpu")
    message = str(raised.value)
    assert all(part in message for part in (T2V, str(broken), "WanPipeline"))
    assert generator.pipe is None


def test_weights_by_hub_id_load_from_the_cache_offline(tiny_weights, tmp_path, monkeypatch):
    """A hub id resolves through the Hugging Face cache, offline (tests never download)."""
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE  # set by conftest before any import
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--tiny-org--wan-t2v"
    shutil.copytree(tiny_weights("wan_t2v"), repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)

    generator = create_generator(model_spec(T2V), weights="tiny-org/wan-t2v",
                                 options={"allow_cpu": True, "max_sequence_length": 64})
    generator.load("cpu")
    try:
        result = generator.generate(make_task(T2V, **WAN))
    finally:
        generator.release()
    assert result.record["weights"] == "tiny-org/wan-t2v"
    assert result.frames.shape == (9, 16, 16, 3)

    missing = create_generator(model_spec(T2V), weights="tiny-org/not-downloaded",
                               options={"allow_cpu": True})
    with pytest.raises(GeneratorLoadError) as raised:
        missing.load("cpu")
    message = str(raised.value)
    assert all(part in message for part in (T2V, "tiny-org/not-downloaded", "WanPipeline"))


def test_gpu_refusal_says_why_and_allow_cpu_overrides_it(tiny_weights):
    weights = str(tiny_weights("wan_t2v"))
    refused = create_generator(model_spec(T2V), weights=weights)
    with pytest.raises(GeneratorNeedsGpu) as raised:
        refused.load("cpu")
    message = str(raised.value)
    assert T2V in message and "needs a GPU" in message and "allow_cpu=true" in message
    assert refused.pipe is None  # refused before any weights were read
    allowed = create_generator(model_spec(T2V), weights=weights, options={"allow_cpu": "true"})
    allowed.load("cpu")
    try:
        assert allowed.pipe is not None
    finally:
        allowed.release()


# Memory and speed options


class Stop(Exception):
    """Raised from a progress callback to stop a call half way."""


def stop_at_second_step(done: int, total: int) -> None:
    if done == 2:
        raise Stop


@pytest.mark.parametrize("cache, extra, config_name", [
    ("first_block:0.5", {}, "FirstBlockCacheConfig"),
    ("taylorseer:2", {}, "TaylorSeerCacheConfig"),
    ("magcache:0.5", {"mag_ratios": "1.0,0.99,0.98,0.97"}, "MagCacheConfig"),
])
def test_cache_hooks_take_effect_and_keep_frames_deterministic(loaded, tiny_weights, cache,
                                                               extra, config_name):
    task = make_task(T2V, steps=4, **WAN)
    uncached = loaded(T2V, "wan_t2v").generate(task)
    generator = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                                 options={"allow_cpu": True, "max_sequence_length": 64,
                                          "cache": cache, **extra})
    generator.load("cpu")
    try:
        cached = generator.generate(task)
        transformer = generator.pipe.transformer
        assert type(transformer._cache_config).__name__ == config_name
        assert cached.record["options"]["cache"] == cache
        assert not np.array_equal(cached.frames, uncached.frames)  # steps were skipped
        # a call stopped half way leaves no cache state behind ...
        with pytest.raises(Stop):
            generator.generate(task.model_copy(update={"seed": 5}),
                               progress=stop_at_second_step)
        assert np.array_equal(generator.generate(task).frames, cached.frames)
        # ... nor does a call with another step count
        generator.generate(task.model_copy(update={"steps": 5}))
        assert np.array_equal(generator.generate(task).frames, cached.frames)
        if config_name == "MagCacheConfig":  # scheduled for the call's own step count
            assert transformer._cache_config.num_inference_steps == 4
    finally:
        generator.release()


def test_a_cache_the_model_cannot_take_fails_at_load(tiny_weights):
    """First-block cache needs blocks after the first; the tiny LTX has one."""
    generator = create_generator(model_spec(LTXV), weights=str(tiny_weights("ltx")),
                                 options={"allow_cpu": True, "cache": "first_block"})
    with pytest.raises(GeneratorLoadError, match="cache='first_block' cannot be applied to "
                                                 "LTXVideoTransformer3DModel"):
        generator.load("cpu")
    assert generator.pipe is None


def test_vae_tiling_and_attention_backend_are_applied(tiny_weights, monkeypatch):
    from diffusers.models.attention_dispatch import AttentionBackendName, _AttentionBackendRegistry

    # diffusers also makes the backend the process-wide default: put it back afterwards
    monkeypatch.setattr(_AttentionBackendRegistry, "_active_backend",
                        _AttentionBackendRegistry._active_backend)
    generator = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                                 options={"allow_cpu": True, "max_sequence_length": 64,
                                          "vae_tiling": True, "attention_backend": "_native_math"})
    generator.load("cpu")
    try:
        assert generator.pipe.vae.use_tiling is True
        backends = {module.processor._attention_backend
                    for module in generator.pipe.transformer.modules()
                    if hasattr(getattr(module, "processor", None), "_attention_backend")}
        assert backends == {AttentionBackendName._NATIVE_MATH}
        result = generator.generate(make_task(T2V, **WAN))
        assert result.record["options"]["vae_tiling"] is True
        assert result.record["options"]["attention_backend"] == "_native_math"
        assert result.frames.shape == (9, 16, 16, 3)
    finally:
        generator.release()


def test_unknown_attention_backend_fails_at_load(tiny_weights):
    generator = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                                 options={"allow_cpu": True, "attention_backend": "warp_drive"})
    with pytest.raises(GeneratorLoadError, match="attention_backend 'warp_drive'"):
        generator.load("cpu")
    assert generator.pipe is None


def test_compile_wraps_the_repeated_blocks(tiny_weights):
    """torch.compile is applied to each repeated transformer block (compiling happens on the
    first call, which is left to GPU runs: inductor on two CPU cores takes minutes)."""
    generator = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                                 options={"allow_cpu": True, "compile": True})
    generator.load("cpu")
    try:
        transformer = generator.pipe.transformer
        assert generator.applied["compile"] == "repeated_blocks"
        assert all(block._compiled_call_impl is not None for block in transformer.blocks)
        assert transformer._compiled_call_impl is None  # the blocks, not the whole model
    finally:
        generator.release()


# Out of memory


def test_host_out_of_memory_is_caught_too(loaded, monkeypatch):
    generator = loaded(T2V, "wan_t2v")

    def exhausted(self, *args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: not "
                           "enough memory: you tried to allocate 21474836480 bytes.")

    monkeypatch.setattr(type(generator.pipe), "__call__", exhausted)
    with pytest.raises(GeneratorOutOfMemory) as raised:
        generator.generate(make_task(T2V, **WAN))
    error = raised.value
    assert error.tried["memory"] == "cpu" and error.tried["device"] == "cpu"
    assert error.suggestion == {"vae_tiling": True}  # offloading would not help the host
    assert "ran out of CPU memory" in str(error)


def test_other_pipeline_errors_are_not_mistaken_for_out_of_memory(loaded, monkeypatch):
    generator = loaded(T2V, "wan_t2v")

    def broken(self, *args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x8 and 16x32)")

    monkeypatch.setattr(type(generator.pipe), "__call__", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied") as raised:
        generator.generate(make_task(T2V, **WAN))
    assert not isinstance(raised.value, GeneratorOutOfMemory)


def test_out_of_memory_while_loading(tiny_weights, monkeypatch):
    import diffusers

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 26.00 GiB")

    monkeypatch.setattr(diffusers.WanPipeline, "from_pretrained", exhausted)
    generator = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                                 options={"allow_cpu": True})
    with pytest.raises(GeneratorOutOfMemory) as raised:
        generator.load("cpu")
    assert raised.value.tried["device"] == "cpu" and raised.value.tried["memory"] == "gpu"
    assert "while loading" in str(raised.value) and generator.pipe is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("options, applied", [
    ({"cpu_offload": True}, {"cpu_offload": True}),
    ({"group_offload": "block", "vae_tiling": True}, {"group_offload": "block",
                                                      "vae_tiling": True}),
    ({"group_offload": "leaf"}, {"group_offload": "leaf"}),
])
def test_offloading_on_a_gpu(tiny_weights, options, applied):
    generator = create_generator(model_spec(T2V), weights=str(tiny_weights("wan_t2v")),
                                 options={"max_sequence_length": 64, **options})
    generator.load("cuda")
    try:
        result = generator.generate(make_task(T2V, **WAN))
        assert result.record["options"] == applied and result.record["warnings"] == []
        assert result.record["dtype"] == "torch.bfloat16"
        assert result.frames.shape == (9, 16, 16, 3)
        # between calls the transformer's weights wait in host memory
        assert next(generator.pipe.transformer.parameters()).device.type == "cpu"
    finally:
        generator.release()
