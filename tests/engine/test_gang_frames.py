"""A tiny Wan shot rendered by a 2-way gang through `previz render` (diffusers' context
parallelism over gloo, on a cluster of its own whose workers count the CPU as a device: the
one shim, in gang_support) has the frames of the 1-way render with the same seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from engine_support import logical_cluster
from gang_support import RUNTIME_ENV
from test_diffusers_render import decode

from previz.cli import main
from previz.plan import plan_from_storyboard
from previz.store import open_store
from previz.store.takes import fetch_take_media, read_take_record
from previz.storyboard import load_storyboard

pytestmark = pytest.mark.slow


WAN_BOARD = """\
project: TINY
sequence: SQ010
fps: 24
resolution: 32x32
weights:
  wan2.1-t2v-1.3b: {weights}
defaults:
  model: wan2.1-t2v-1.3b
  size: 32x32
  steps: 2
  seed: 11
  gpus: {gpus}
  options: {{allow_cpu: true, max_sequence_length: 32}}
shots:
  - {{id: SH0010, duration: 12f, prompt: "the lighthouse at night"}}
"""


def test_a_two_way_gang_renders_the_frames_of_one_gpu(tiny_weights, tmp_path, capsys):
    """Exact, not within a tolerance: on CPUs Ulysses moves whole heads between the members
    (all-to-all) and each head's attention is the same arithmetic in the same order as on one
    process, so the frames are bit for bit the same and so are their encodes. On GPUs (NCCL,
    bf16, other kernels) only near-equality holds; benchmarks/wan_gpu.py reports it."""
    weights = tiny_weights("wan_t2v")
    frames = {}
    with logical_cluster(nodes=1, gpus_per_node=2, cpus_per_node=2,
                         runtime_env=RUNTIME_ENV):
        for gpus in (2, 1):
            folder = tmp_path / f"gpus{gpus}"
            folder.mkdir()
            board = folder / "board.yaml"
            board.write_text(WAN_BOARD.format(weights=weights, gpus=gpus))
            store = str(folder / "store")
            capsys.readouterr()
            assert main(["render", str(board), "--store", store, "--json"]) == 0
            summary = json.loads(capsys.readouterr().out)
            assert [s["status"] for s in summary["shots"]] == ["rendered"]
            plan = plan_from_storyboard(load_storyboard(board))
            take = plan.shots[0].selected_take
            record = read_take_record(open_store(store), take.key)
            assert record["gpus"] == gpus
            assert record["parallel"] == ({"gpus": 2, "rank": 0, "ulysses_degree": 2}
                                          if gpus == 2 else None)
            frames[gpus] = decode(fetch_take_media(open_store(store), take.key,
                                                   folder / "take.mp4"))
    # The same take key whatever the gang (gpus: is placement, not pixels) ...
    assert frames[2].shape == frames[1].shape == (12, 32, 32, 3)
    # ... and the same pixels.
    assert np.array_equal(frames[2], frames[1])
