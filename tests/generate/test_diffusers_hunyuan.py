"""The diffusers generator on a real HunyuanVideoPipeline with tiny random weights (see
tiny_hunyuan.py), loaded from disk through create_generator. 16x16 and 5 frames (4k+1) are the
smallest the catalog and the pipeline accept; each call takes well under a second on a CPU."""

from __future__ import annotations

import json

import numpy as np
import pytest
from generate_helpers import PROMPT, make_task, spy_on
from tiny_hunyuan import CLIP_LENGTH, template_prefix_tokens

from previz.catalog import model_spec
from previz.generate.prompts import assemble_prompt
from previz.plan.types import CameraSpec

MODEL = "hunyuanvideo"
FAMILY = model_spec(MODEL).family
SIZE = dict(width=16, height=16, num_frames=5, fps=24.0)
# 11 words, one token each for the tiny Llama and CLIP tokenizers
SENTENCE = "the old keeper climbs the last steps into the lamp room"


@pytest.fixture
def hunyuan(loaded):
    return loaded(MODEL, "hunyuanvideo")


def second_encoder_warnings(result) -> list[str]:
    return [w for w in result.record["warnings"] if "second text encoder" in w]


def assert_unseen_tail(warning: str, sent: str, tokenizer, limit: int) -> None:
    """The warning names the words the encoder does not see: the prompt's tail after the most
    words that fit in `limit` tokens."""
    unseen = warning.split("does not see “")[1].removesuffix("”")
    assert unseen and sent.endswith(" " + unseen)
    seen = sent[:-len(unseen)].strip()
    assert len(tokenizer(seen)["input_ids"]) <= limit  # what the encoder reads in full
    assert len(tokenizer(f"{seen} {unseen.split()[0]}")["input_ids"]) > limit


@pytest.mark.slow
def test_text_to_video_frames_call_and_determinism(hunyuan, monkeypatch):
    calls = spy_on(monkeypatch, hunyuan)
    task = make_task(MODEL, camera=CameraSpec(move="dolly_in", size="wide", speed=0.6), **SIZE)
    first = hunyuan.generate(task)
    again = hunyuan.generate(task)
    other = hunyuan.generate(task.model_copy(update={"seed": 99}))
    assert first.frames.shape == (5, 16, 16, 3) and first.frames.dtype == np.uint8
    assert first.fps == model_spec(MODEL).fps == 24.0
    assert np.array_equal(first.frames, again.frames)  # same task, same weights: same frames
    assert not np.array_equal(first.frames, other.frames)
    assert first.frames.std() > 1  # not a blank video
    call = calls[0]
    assert call["num_frames"] == 5 and call["num_inference_steps"] == 2
    assert call["height"] == 16 and call["width"] == 16
    assert call["guidance_scale"] == task.guidance == model_spec(MODEL).default_guidance
    assert call["max_sequence_length"] == 64
    assert "The camera slowly dollies in." in call["prompt"]
    assert call["prompt"].startswith("an old keeper climbs")
    assert "prompt_2" not in call  # the CLIP encoder reads the same prompt (pipeline default)
    assert call["generator"].initial_seed() == 1234
    record = first.record
    assert record["pipeline"] == "HunyuanVideoPipeline" and record["model"] == MODEL
    assert record["prompt"] == call["prompt"] and record["seed"] == 1234
    assert record["call"]["num_frames"] == 5 and record["call"]["num_inference_steps"] == 2
    assert record["steps_reported"] == 2
    assert record["warnings"] == []  # short prompt: nothing cut, nothing unseen
    json.dumps(record)  # records go into take.json


def test_template_crop_leaves_exactly_the_prompt(hunyuan):
    """The tiny Llama tokenizer puts the default template's 95 tokens (crop_start) before the
    prompt, as the real one does: the pipeline crops the template and keeps the whole prompt."""
    from diffusers.pipelines.hunyuan_video.pipeline_hunyuan_video import DEFAULT_PROMPT_TEMPLATE

    tokenizer = hunyuan.pipe.tokenizer
    crop = DEFAULT_PROMPT_TEMPLATE["crop_start"]
    assert template_prefix_tokens(tokenizer) == crop == 95
    ids = tokenizer(DEFAULT_PROMPT_TEMPLATE["template"].format(PROMPT))["input_ids"]
    alone = tokenizer(PROMPT)["input_ids"]  # BOS + the prompt
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    assert ids[crop:] == alone[1:] + [eot]
    assert tokenizer.unk_token_id not in alone  # the prompt's words are in the vocabulary


def test_long_prompt_is_cut_to_the_llama_length(hunyuan, monkeypatch):
    calls = spy_on(monkeypatch, hunyuan)
    long_prompt = " ".join([SENTENCE] * 9)
    result = hunyuan.generate(make_task(MODEL, prompt=long_prompt,
                                        options={"max_sequence_length": 16}, **SIZE))
    [warning] = [w for w in result.record["warnings"] if w.startswith("prompt cut")]
    assert "prompt cut to 16 tokens" in warning and "dropped" in warning
    sent = calls[0]["prompt"]
    assert long_prompt.startswith(sent) and calls[0]["max_sequence_length"] == 16
    # what the pipeline's Llama reads after cropping the template: all of it, nothing truncated
    tokenizer = hunyuan.pipe.tokenizer
    assert len(tokenizer(sent)["input_ids"]) <= 16
    assert second_encoder_warnings(result) == []  # 16 tokens fit the CLIP encoder's 77


def test_prompt_longer_than_the_clip_encoder_is_reported(hunyuan, monkeypatch):
    """The Llama encoder reads 128 tokens here, the CLIP encoder (tokenizer_2) 77: previz keeps
    the prompt whole and says what CLIP does not see."""
    calls = spy_on(monkeypatch, hunyuan)
    long_prompt = " ".join([SENTENCE] * 9)  # 99 words; with the camera, 113 CLIP tokens
    task = make_task(MODEL, prompt=long_prompt, options={"max_sequence_length": 128}, **SIZE)
    result = hunyuan.generate(task)
    sent = calls[0]["prompt"]
    assert sent == result.record["prompt"] == assemble_prompt(task, FAMILY)
    assert not any(w.startswith("prompt cut") for w in result.record["warnings"])
    assert len(hunyuan.pipe.tokenizer(sent)["input_ids"]) <= 128  # Llama reads it all
    tokenizer_2 = hunyuan.pipe.tokenizer_2
    assert tokenizer_2.model_max_length == CLIP_LENGTH
    assert len(tokenizer_2(sent)["input_ids"]) > CLIP_LENGTH  # the pipeline truncates for CLIP
    [warning] = second_encoder_warnings(result)
    assert "CLIPTextModel" in warning and "tokenizer_2" in warning
    assert f"at most {CLIP_LENGTH} tokens" in warning
    assert_unseen_tail(warning, sent, tokenizer_2, CLIP_LENGTH)
    assert "prompt_2" not in calls[0]  # previz reports; it does not change what CLIP gets


def test_second_encoder_limit_comes_from_tokenizer_2(hunyuan, monkeypatch):
    """A tokenizer_2 with a small model_max_length: a prompt longer than it is reported, one
    that fits is not, and the prompt sent is the same either way."""
    tokenizer_2 = hunyuan.pipe.tokenizer_2
    monkeypatch.setattr(tokenizer_2, "model_max_length", 16)
    calls = spy_on(monkeypatch, hunyuan)
    long_task = make_task(MODEL, **SIZE)  # the keeper sentence and a still camera: 28 tokens
    short_task = make_task(MODEL, prompt="rain", **SIZE)  # 15 tokens
    long, short = hunyuan.generate(long_task), hunyuan.generate(short_task)
    assert len(tokenizer_2(calls[0]["prompt"])["input_ids"]) > 16
    assert len(tokenizer_2(calls[1]["prompt"])["input_ids"]) <= 16
    [warning] = second_encoder_warnings(long)
    assert "at most 16 tokens" in warning and "CLIPTextModel" in warning
    assert_unseen_tail(warning, calls[0]["prompt"], tokenizer_2, 16)
    assert calls[0]["prompt"] == long.record["prompt"] == assemble_prompt(long_task, FAMILY)
    assert second_encoder_warnings(short) == [] and short.record["warnings"] == []
    assert calls[1]["prompt"] == assemble_prompt(short_task, FAMILY)


@pytest.mark.slow
def test_negative_prompt_only_with_true_cfg(hunyuan, monkeypatch):
    """HunyuanVideo is guidance-distilled: it reads a negative prompt only when true_cfg_scale
    > 1 (default 1). Without it previz says the negative prompt is unused and does not record
    it as used; with the option the negative prompt reaches the pipeline and changes frames."""
    calls = spy_on(monkeypatch, hunyuan)
    negative = "blurry watermark text"
    plain = hunyuan.generate(make_task(MODEL, **SIZE))
    ignored = hunyuan.generate(make_task(MODEL, negative=negative, **SIZE))
    assert "negative_prompt" not in calls[1] and ignored.record["negative_prompt"] is None
    [warning] = [w for w in ignored.record["warnings"] if "negative prompt" in w]
    assert "true_cfg_scale" in warning and "HunyuanVideoPipeline" in warning
    assert np.array_equal(plain.frames, ignored.frames)  # it would have changed nothing

    true_cfg = {"true_cfg_scale": 2.0}
    without = hunyuan.generate(make_task(MODEL, options=true_cfg, **SIZE))
    used = hunyuan.generate(make_task(MODEL, negative=negative, options=true_cfg, **SIZE))
    assert calls[3]["negative_prompt"] == negative and calls[3]["true_cfg_scale"] == 2.0
    assert used.record["negative_prompt"] == negative
    assert not any("negative prompt" in w for w in used.record["warnings"])
    assert not np.array_equal(without.frames, used.frames)
