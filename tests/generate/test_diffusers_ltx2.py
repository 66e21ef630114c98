"""LTX-2 makes a shot's picture and its sound in one call: a tiny real LTX2Pipeline (built
offline by generate/tiny_ltx2.py, loaded from disk) through the diffusers generator, and through
`previz render` into the cut."""

from __future__ import annotations

import textwrap
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from command_support import render_json

from previz.plan import plan_from_storyboard
from previz.storyboard import load_storyboard

OPTIONS = ("{device: cpu, max_sequence_length: 64, stg_scale: 0.0, audio_stg_scale: 0.0, "
           "spatio_temporal_guidance_blocks: null}")


def _board(folder: Path, tiny_weights, *, extra_shot: str = "") -> Path:
    board = folder / "board.yaml"
    board.write_text(textwrap.dedent(f"""\
        project: TINY
        sequence: SQ010
        fps: 24
        resolution: 32x32
        weights: {{ltx-2: {tiny_weights("ltx2")}}}
        characters: {{KEEPER: {{description: an old keeper}}}}
        defaults: {{model: ltx-2, size: 32x32, steps: 2, seed: 5, options: {OPTIONS}}}
        shots:
          - id: SH0010
            duration: 9f
            prompt: the lighthouse at night
            dialogue: ['KEEPER: Not tonight.']
            sound: waves crash on the rocks
        """) + extra_shot)
    return board


def test_ltx2_gives_picture_and_sound(tmp_path, tiny_weights, loaded):
    plan = plan_from_storyboard(load_storyboard(_board(tmp_path, tiny_weights)))
    assert not [w for w in plan.warnings if "makes no sound" in w]
    task = plan.shots[0].selected_take.final_task
    assert task.dialogue == (("KEEPER", "Not tonight."),) and task.sound
    generator = loaded("ltx-2", "ltx2", max_sequence_length=64, stg_scale=0.0,
                       audio_stg_scale=0.0, spatio_temporal_guidance_blocks=None)
    first = generator.generate(task)
    assert first.frames.shape == (9, 32, 32, 3)
    # 9 frames at 24 fps: 0.375 s of 48 kHz stereo, the model's 24 kHz resampled and fitted
    assert first.sound.shape == (round(Fraction(9, 24) * 48000), 2)
    assert np.abs(first.sound).max() > 0.01
    assert first.record["voice"]["sample_rate"] == 24000
    # the dialogue and the sound reach the model in its prompt, as its guide asks
    assert 'Keeper says: "Not tonight."' in first.record["prompt"]
    assert "Audio: waves crash on the rocks." in first.record["prompt"]
    again = generator.generate(task)
    assert np.array_equal(first.sound, again.sound) and np.array_equal(first.frames,
                                                                       again.frames)


@pytest.mark.slow
def test_an_ltx2_shot_renders_with_its_sound(tmp_path, tiny_weights):
    """Through `previz render` (Ray workers, the tiny pipeline loaded from disk): the take
    carries the model's sound, and the cut's mix has it where the shot is."""
    from previz.media.audio import decode_audio
    from previz.store import open_store, read_take_record

    board = _board(tmp_path, tiny_weights, extra_shot=(
        "  - {id: SH0020, duration: 12f, prompt: the sea, model: draft}\n"))
    summary = render_json(board, tmp_path / "store", timeout=600)
    shots = {s["id"]: s for s in summary["shots"]}
    record = read_take_record(open_store(str(tmp_path / "store")), shots["SH0010"]["take"])
    assert record["sound"]["name"] == "take.wav"
    assert record["voice"]["source"] == "LTX2Pipeline audio"
    folder = tmp_path / "store" / "TINY" / "SQ010" / summary["version"]
    mix = decode_audio(folder / f"SQ010_previz_{summary['version']}_audio.wav")[:, 0]
    ltx_end = round(Fraction(9, 24) * 48000)
    assert np.abs(mix[:ltx_end]).max() > 1e-3  # the model's sound, under its shot
    assert np.abs(mix[ltx_end:]).max() < 1e-4  # the draft shot says nothing
