"""The path a studio runs, on real parts: storyboard -> `previz render` -> Ray workers -> tiny
diffusers pipelines loaded from disk through `weights:` -> takes -> a frame-exact cut.

Four shots: Wan text-to-video, Wan VACE with a character's reference image, Wan image-to-video
from a panel, and a continuation (VACE from the last frame of the first shot). `options:
{device: cpu}` places them on CPU workers, as a studio would for a smoke test of a cluster.
Each published take is compared with what the generator gives when called directly with the
same task (the worker boundary changes nothing), encoded the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlparse

import av
import numpy as np
import pytest
from engine_support import ROOT
from PIL import Image

from previz.catalog import model_spec
from previz.cli import main
from previz.engine.publish import last_frame_of, publish_frames
from previz.generate import create_generator
from previz.plan import plan_from_storyboard
from previz.store import open_store
from previz.store.takes import fetch_take_media, read_take_record
from previz.storyboard import load_storyboard

pytestmark = pytest.mark.slow


def tiny_board(folder: Path, tiny_weights) -> Path:
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "panels").mkdir(exist_ok=True)
    Image.new("RGB", (32, 32), (230, 200, 20)).save(folder / "refs" / "keeper.png")
    Image.new("RGB", (48, 32), (20, 60, 200)).save(folder / "panels" / "lamp.png")
    board = folder / "board.yaml"
    board.write_text(textwrap.dedent(f"""\
        project: TINY
        sequence: SQ010
        fps: 24
        resolution: 32x32
        weights:
          wan2.1-t2v-1.3b: {tiny_weights("wan_t2v")}
          wan2.1-vace-1.3b: {tiny_weights("wan_vace")}
          wan2.1-i2v-14b-480p: {tiny_weights("wan_i2v")}
        defaults:
          model: wan
          size: 16x16
          steps: 2
          seed: 11
          options: {{device: cpu, max_sequence_length: 32}}
        characters:
          KEEPER: {{description: "an old keeper", reference: refs/keeper.png}}
        shots:
          - {{id: SH0010, duration: 12f, prompt: "the lighthouse at night"}}
          - {{id: SH0020, duration: 12f, prompt: "{{KEEPER}} climbs the last steps",
              references: required}}
          - {{id: SH0030, duration: 12f, prompt: "the lamp room", image: panels/lamp.png,
              model: wan2.1-i2v-14b-480p}}
          - {{id: SH0040, duration: 12f, prompt: "the storm outside", continue: SH0010}}
        """))
    return board


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def check_render(board: Path, store_uri: str, summary: dict, tmp_path: Path) -> list[dict]:
    """The cut is frame-exact; each take is what the generator makes when called directly.
    Returns the take records."""
    plan = plan_from_storyboard(load_storyboard(board))
    assert [s.selected_take.final_task.model for s in plan.shots] == [
        "wan2.1-t2v-1.3b", "wan2.1-vace-1.3b", "wan2.1-i2v-14b-480p", "wan2.1-vace-1.3b"]
    assert [s["status"] for s in summary["shots"]] == ["rendered"] * 4
    store = open_store(store_uri)
    cut = decode(Path(urlparse(summary["cut"]).path))
    assert cut.shape == (plan.frames, 32, 32, 3)

    direct_store = open_store(str(tmp_path / "direct"))
    records = []
    for shot in plan.shots:
        take = shot.selected_take
        [task] = take.tasks
        rendered = decode(fetch_take_media(store, take.key, tmp_path / f"{shot.id}.mp4"))
        # The cut joins its takes by stream copy: the shot's frames are the take's.
        assert np.array_equal(cut[shot.record_in:shot.record_out], rendered), shot.id
        generator = create_generator(model_spec(task.model), weights=task.weights,
                                     options=dict(task.options))
        generator.load("cpu")
        try:
            conditioning = {c.sha256: c.path for c in task.conditioning if c.path}

            def images(condition, conditioning=conditioning):
                if condition.from_key:  # as the worker does: the last frame in the store
                    return last_frame_of(store, condition.from_key)
                return Image.open(conditioning[condition.sha256]).convert("RGB")

            result = generator.generate(task, images=images)
        finally:
            generator.release()
        publish_frames(direct_store, task, take, result.frames, result.record)
        direct = decode(fetch_take_media(direct_store, take.key, tmp_path / f"{shot.id}-d.mp4"))
        assert np.array_equal(rendered, direct), f"{shot.id}: the worker's take differs"
        record = read_take_record(store, take.key)
        assert record["generator"] == "diffusers" and record["device"] == "cpu"
        records.append(record)
    # A warm worker loads a model once, whatever number of shots it renders with it.
    loads = [(r["worker"], r["model"]) for r in records if r["load_seconds"] > 0]
    assert len(loads) == len(set(loads)), loads
    return records


def test_on_the_embedded_ray(tiny_weights, tmp_path):
    board = tiny_board(tmp_path / "board", tiny_weights)
    store = str(tmp_path / "store")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run([sys.executable, "-m", "previz", "render", str(board), "--store",
                           store, "--json"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    records = check_render(board, store, json.loads(done.stdout), tmp_path)
    # One CPU worker on this machine's two cores: three models, four shots, three loads.
    assert sum(r["load_seconds"] > 0 for r in records) == 3


def test_on_a_multi_node_cluster(ray_cluster, tiny_weights, tmp_path, capsys):
    board = tiny_board(tmp_path / "board", tiny_weights)
    store = str(tmp_path / "store")
    capsys.readouterr()
    assert main(["render", str(board), "--store", store, "--json"]) == 0
    check_render(board, store, json.loads(capsys.readouterr().out), tmp_path)
