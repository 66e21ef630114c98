"""The synthetic generator: a deterministic, machine-readable test pattern with faults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from generate_helpers import make_task

from previz.catalog import model_spec
from previz.generate import (
    GeneratorError,
    GeneratorOutOfMemory,
    InjectedFault,
    create_generator,
    read_frame_number,
)
from previz.generate.synthetic import EXIT_CODE
from previz.media.encode import decode_frames, encode_take


def synthetic(**options):
    generator = create_generator(model_spec("synthetic"), options=options)
    generator.load("cpu")
    return generator


def test_pattern_numbers_every_frame_and_is_deterministic():
    task = make_task("synthetic", width=320, height=180, num_frames=12)
    first = synthetic().generate(task)
    again = synthetic().generate(task)
    other = synthetic().generate(task.model_copy(update={"key": "another-key"}))
    assert first.frames.shape == (12, 180, 320, 3) and first.fps == task.fps
    assert [read_frame_number(f) for f in first.frames] == list(range(12))
    assert np.array_equal(first.frames, again.frames)
    assert not np.array_equal(first.frames[:, 2, 2], other.frames[:, 2, 2])  # colour from key
    json.dumps(first.record)  # records go into take.json


def test_frame_numbers_survive_h264_and_rescaling(tmp_path):
    frames = synthetic().generate(make_task("synthetic", width=320, height=180,
                                            num_frames=40)).frames
    for width, height in ((320, 180), (640, 360), (256, 144)):
        take = encode_take(frames, 24, tmp_path / f"{width}.mp4", width=width, height=height)
        decoded = decode_frames(take.path)
        assert [read_frame_number(f) for f in decoded] == list(range(40))


def test_large_digits_are_drawn():
    frame = synthetic().generate(make_task("synthetic", width=320, height=180,
                                           num_frames=1)).frames[0]
    middle = frame[50:105, 120:200]
    assert (middle.min(axis=2) > 230).mean() > 0.05  # white digits in the middle
    assert (middle.max(axis=2) < 30).mean() > 0.01  # with a black outline


def test_read_frame_number_needs_the_strip():
    with pytest.raises(ValueError, match="no synthetic frame-number strip"):
        read_frame_number(np.zeros((90, 160, 3), np.uint8))


def test_progress_once_per_step():
    seen = []
    synthetic().generate(make_task("synthetic", steps=4),
                         progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_simulated_time_goes_to_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr("previz.generate.synthetic.time.sleep", slept.append)
    generator = synthetic(load_seconds=2.5, seconds_per_frame=0.5, seconds_per_shot=1.0)
    assert slept == [2.5]
    generator.generate(make_task("synthetic", steps=2, num_frames=6))
    assert slept[1:] == [2.0, 2.0]  # (1.0 + 6 x 0.5) spread over 2 steps
    slept.clear()
    generator.generate(make_task("synthetic", steps=1, num_frames=6,
                                 options={"seconds_per_frame": 0.0, "seconds_per_shot": 0.0}))
    assert slept == []  # task options win over the generator's


def test_faults_are_keyed_by_shot_and_attempt():
    generator = synthetic(faults=[{"shot": "SH0010", "attempt": 1, "kind": "raise"},
                                  {"shot": "SH0020", "kind": "oom"}])
    with pytest.raises(InjectedFault, match="SH0010 take 1 segment 0 attempt 1"):
        generator.generate(make_task("synthetic"), attempt=1)
    assert generator.generate(make_task("synthetic"), attempt=2).frames.shape[0] == 9
    assert generator.generate(make_task("synthetic", shot_id="SH0030")).frames.shape[0] == 9
    with pytest.raises(GeneratorOutOfMemory) as raised:
        generator.generate(make_task("synthetic", shot_id="SH0020"), attempt=3)
    assert raised.value.suggestion == {"cpu_offload": True}
    assert raised.value.tried["frames"] == 9


def test_faults_from_task_options_fire_after_their_step():
    faults = json.dumps([{"shot": "SH0010", "take": 2, "kind": "raise", "step": 2}])
    generator = synthetic()
    seen = []
    with pytest.raises(InjectedFault):
        generator.generate(make_task("synthetic", take=2, steps=3, options={"faults": faults}),
                           progress=lambda done, total: seen.append(done))
    assert seen == [1, 2]
    assert generator.generate(make_task("synthetic", take=1, options={"faults": faults}))


def test_hang_sleeps_then_goes_on(monkeypatch):
    slept = []
    monkeypatch.setattr("previz.generate.synthetic.time.sleep", slept.append)
    result = synthetic(faults=[{"shot": "SH0010", "kind": "hang", "seconds": 30}]).generate(
        make_task("synthetic"))
    assert slept == [30.0] and result.frames.shape[0] == 9


def test_exit_fault_ends_the_process():
    here = str(Path(__file__).parent)
    code = (
        f"import sys; sys.path.insert(0, {here!r})\n"
        "from generate_helpers import make_task\n"
        "from previz.catalog import model_spec\n"
        "from previz.generate import create_generator\n"
        "g = create_generator(model_spec('synthetic'), options={'faults': "
        "[{'shot': 'SH0010', 'kind': 'exit'}]})\n"
        "g.load('cpu'); g.generate(make_task('synthetic'))\n"
        "print('survived')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == EXIT_CODE and "survived" not in result.stdout


def test_bad_fault_specs_are_refused_up_front():
    with pytest.raises(GeneratorError, match="kind one of"):
        synthetic(faults=[{"shot": "SH0010", "kind": "explode"}])
    with pytest.raises(GeneratorError, match="not JSON"):
        synthetic(faults="[{")


def test_needs_follow_the_catalog_or_options():
    assert synthetic().needs.gpus == 0
    assert synthetic(gpus=1, gpu_memory_gb=12).needs.gpus == 1
