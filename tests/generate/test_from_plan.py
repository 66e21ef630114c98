"""Shot tasks from a real plan, rendered through the generator API (no engine, no Ray cluster).

A storyboard is compiled with `plan_from_storyboard`; its tasks go to `create_generator(...)`
exactly as a worker hands them over. A long shot is split by the plan into segments; each
segment is generated from the last frame of the one before (read back from the store, as the
worker does) and the segments are joined, retimed and published with the engine's own
`publish_frames`, then the published take is decoded and counted.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from generate_helpers import decode, spy_on

from previz.catalog import model_spec
from previz.generate import create_generator, read_frame_number
from previz.plan.compile import plan_from_storyboard
from previz.storyboard import storyboard_from_text

VACE = "wan2.1-vace-1.3b"


def plan_of(text: str, folder):
    return plan_from_storyboard(storyboard_from_text(textwrap.dedent(text), "board.yaml", folder))


def load_for(task):
    """The generator a worker would load for this task."""
    generator = create_generator(model_spec(task.model), weights=task.weights,
                                 options=dict(task.options))
    generator.load("cpu")
    return generator


def test_a_planned_shot_renders_with_each_generator(tiny_weights, tmp_path):
    plan = plan_of(f"""\
        previz: 1
        project: LIGHTHOUSE
        sequence: SQ010
        fps: 24
        resolution: 128x72
        weights:
          wan2.1-t2v-1.3b: {tiny_weights("wan_t2v")}
        defaults:
          options: {{allow_cpu: true, max_sequence_length: 32}}
        shots:
          - id: SH0010
            duration: 10f
            prompt: "the keeper climbs the last steps"
            camera: {{move: dolly_in}}
          - id: SH0020
            duration: 10f
            model: synthetic
            prompt: "the lamp turns"
          - id: SH0030
            duration: 12f
            model: wan2.1-t2v-1.3b
            size: 16x16
            steps: 2
            prompt: "the keeper climbs the last steps"
            camera: {{move: pan_left, size: wide}}
        """, tmp_path)
    rendered, rendered_progress = {}, {}
    for shot in plan.shots:
        [task] = shot.selected_take.tasks
        generator = load_for(task)
        try:
            seen = []
            result = generator.generate(
                task, progress=lambda done, total, seen=seen: seen.append((done, total)))
        finally:
            generator.release()
        assert result.frames.shape == (task.num_frames, task.height, task.width, 3)
        assert result.fps == task.fps
        assert seen and seen[-1][0] == seen[-1][1]  # progress reached the end
        rendered[task.generator] = (task, result)
        rendered_progress[task.generator] = seen
    assert set(rendered) == {"draft", "synthetic", "diffusers"}
    draft_task, draft = rendered["draft"]
    assert draft.frames.shape == (10, 72, 128, 3) and draft.record["mode"] == "card"
    synthetic_task, synthetic = rendered["synthetic"]
    assert [read_frame_number(f) for f in synthetic.frames] == list(range(10))
    wan_task, wan = rendered["diffusers"]
    # 12 cut frames at 24 fps need 9 frames at Wan's 16 fps (4k + 1)
    assert (wan_task.num_frames, wan_task.fps) == (9, 16.0)
    assert wan.frames.shape == (9, 16, 16, 3)
    assert [done for done, _ in rendered_progress["diffusers"]] == [1, 2]  # once per step
    assert wan.record["seed"] == wan_task.seed and wan.record["call"]["num_inference_steps"] == 2
    assert "The camera smoothly pans left." in wan.record["prompt"]


@pytest.mark.slow
def test_a_long_shot_renders_segment_by_segment_and_joins_to_the_exact_length(
        tiny_weights, tmp_path, monkeypatch):
    from previz.engine.publish import last_frame_of, publish_frames
    from previz.store import open_store
    from previz.store.takes import fetch_take_media, read_take_record

    plan = plan_of(f"""\
        previz: 1
        project: LIGHTHOUSE
        sequence: SQ010
        fps: 24
        resolution: 32x32
        weights:
          {VACE}: {tiny_weights("wan_vace")}
        defaults:
          options: {{allow_cpu: true, max_sequence_length: 32}}
        shots:
          - id: SH0010
            duration: 6s
            model: wan2.1-t2v-1.3b
            size: 32x32
            steps: 2
            prompt: "the keeper climbs the last steps into the lamp room"
        """, tmp_path)
    take = plan.shot("SH0010").selected_take
    first, second = take.tasks
    # 144 cut frames at 24 fps need 97 at Wan's 16 fps: its 81-frame window and 17 more, the
    # second segment starting on the first one's last frame (a text-only model cannot do that,
    # so the plan switched to the family's VACE variant).
    assert (first.model, first.num_frames, second.num_frames) == (VACE, 81, 17)
    assert [c.from_key for c in second.conditioning] == [first.key]
    assert take.retime.source_frames == 97 and take.retime.cut_frames == 144

    store = open_store(str(tmp_path / "store"))
    generator = load_for(first)
    calls = spy_on(monkeypatch, generator)
    fetched = []

    def worker_images(condition):  # what the worker does for an earlier segment's frame
        fetched.append(condition.from_key)
        return last_frame_of(store, condition.from_key)

    results = []
    try:
        for task in take.tasks:
            result = generator.generate(task, images=worker_images)
            published = publish_frames(store, task, take, result.frames, result.record)
            results.append(result)
    finally:
        generator.release()
    assert published["key"] == take.key and published["kind"] == "take"
    assert fetched == [first.key]

    # the first segment's last frame (as published) is the second segment's fixed first frame
    handed_over = np.asarray(last_frame_of(store, first.key))
    assert "video" not in calls[0]
    video, mask = calls[1]["video"], calls[1]["mask"]
    assert len(video) == 17 and np.array_equal(np.asarray(video[0]), handed_over)
    assert mask[0].getextrema() == (0, 0) and mask[1].getextrema() == (255, 255)
    assert np.abs(handed_over.astype(int) - results[0].frames[-1]).mean() < 12

    # the published take: exactly the cut's frames, joined without a repeated or lost frame
    path = fetch_take_media(store, take.key, tmp_path / "take.mp4")
    frames = decode(path).astype(float)
    assert frames.shape == (144, 32, 32, 3)
    indices = take.retime.source_indices()
    joined = np.concatenate([results[0].frames, results[1].frames[1:]])
    repeated = np.concatenate([results[0].frames, results[1].frames])
    dropped = np.concatenate([results[0].frames, results[1].frames[2:], results[1].frames[-1:]])
    after_join = [i for i, source in enumerate(indices) if source > 80]

    def error(source: np.ndarray) -> float:
        expected = source[indices].astype(float)
        return float(np.abs(frames[after_join] - expected[after_join]).mean())

    assert error(joined) < 0.8 * min(error(repeated), error(dropped))
    record = read_take_record(store, take.key)
    assert record["segments"] == 2 and record["retime"]["cut_frames"] == 144
