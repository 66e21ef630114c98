"""Conditioned shots through `previz render` on the real worker path, with tiny pipelines loaded
from disk: a greybox layout's edges steering Wan VACE, a shot laid out from the depth of its own animatic
(a tiny Depth Anything named by `weights: {depth: ...}`), a
cinemagraph (a still and a mask), and a layout restyled video-to-video. The control videos are
kept in the store under their content keys and named in the take records; changing the layout
file re-renders exactly the shot that uses it."""

from __future__ import annotations

import textwrap
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from command_support import render_json
from PIL import Image
from test_diffusers_render import decode

from previz.media.encode import encode_take
from previz.plan import plan_from_storyboard
from previz.store import open_store
from previz.store.takes import read_take_record
from previz.storyboard import load_storyboard

pytestmark = pytest.mark.slow


def greybox(path: Path, shade: int) -> None:
    """A 'playblast': a grey block sliding right over a dark floor, 24 fps, 1 s."""
    frames = np.full((24, 96, 160, 3), 30, np.uint8)
    for n, frame in enumerate(frames):
        frame[30:70, 10 + 4 * n:50 + 4 * n] = shade
    encode_take(frames, 24, path, width=160, height=96)


def board(folder: Path, tiny_weights) -> Path:
    (folder / "layouts").mkdir(parents=True, exist_ok=True)
    greybox(folder / "layouts" / "sh0020.mp4", 200)
    Image.new("RGB", (32, 32), (40, 90, 200)).save(folder / "layouts" / "sea.png")
    mask = Image.new("RGB", (32, 32), (0, 0, 0))
    mask.paste((255, 255, 255), (0, 16, 32, 32))  # the lower half moves
    mask.save(folder / "layouts" / "sea_mask.png")
    path = folder / "board.yaml"
    path.write_text(textwrap.dedent(f"""\
        project: TINY
        sequence: SQ050
        fps: 24
        resolution: 32x32
        weights:
          wan2.1-t2v-1.3b: {tiny_weights("wan_t2v")}
          wan2.1-vace-1.3b: {tiny_weights("wan_vace")}
          depth: {tiny_weights("depth")}
          wan2.2-animate-14b: {tiny_weights("wan_animate")}
          pose: {tiny_weights("pose")}
        defaults:
          model: wan
          size: 16x16
          steps: 3
          seed: 5
          options: {{device: cpu, max_sequence_length: 32}}
        characters:
          KEEPER: {{description: "an old keeper", reference: layouts/sea.png}}
        shots:
          - {{id: SH0010, duration: 12f, prompt: "the harbour at dusk"}}
          - {{id: SH0020, duration: 12f, prompt: "a boat slides past", layout: layouts/sh0020.mp4}}
          - {{id: SH0030, duration: 12f, prompt: "the quay", camera: pan_left,
              layout: {{source: animatic, control: depth, strength: 0.8}}}}
          - {{id: SH0040, duration: 12f, prompt: "waves under a still sky",
              image: layouts/sea.png, mask: layouts/sea_mask.png}}
          - {{id: SH0050, duration: 12f, prompt: "the same boat in oil paint",
              layout: {{source: layouts/sh0020.mp4, control: video}}}}
          - {{id: SH0060, duration: 12f, prompt: "the keeper waves", model: wan2.2-animate,
              options: {{device: cpu, segment_frame_length: 5}},
              performance: {{character: KEEPER, video: layouts/sh0020.mp4, mode: replace}}}}
        """))
    return path


def test_conditioned_shots_render_through_the_workers(tiny_weights, tmp_path):
    path = board(tmp_path / "board", tiny_weights)
    store_path = tmp_path / "store"
    summary = render_json(path, store_path, timeout=600)
    assert [s["status"] for s in summary["shots"]] == ["rendered"] * 6
    plan = plan_from_storyboard(load_storyboard(path))
    assert [s.model for s in plan.shots] == ["wan2.1-t2v-1.3b", "wan2.1-vace-1.3b",
                                             "wan2.1-vace-1.3b", "wan2.1-vace-1.3b",
                                             "wan2.1-t2v-1.3b", "wan2.2-animate-14b"]
    cut = decode(Path(urlparse(summary["cut"]).path))
    assert cut.shape == (plan.frames, 32, 32, 3)  # frame-exact
    store = open_store(str(store_path))
    records = {s.id: read_take_record(store, s.selected_take.key) for s in plan.shots}
    assert "controls" not in records["SH0010"]
    kinds = {shot: [(c["role"], c["control"]) for c in records[shot].get("controls", [])]
             for shot in records}
    assert kinds["SH0020"] == [("control_video", "edges")]
    assert kinds["SH0030"] == [("control_video", "depth")]
    assert kinds["SH0050"] == [("source_video", "video")]
    assert sorted(kinds["SH0060"]) == [("background_video", "plate"), ("face_video", "face"),
                                       ("mask", "performer"), ("pose_video", "pose")]
    assert records["SH0060"]["call"]["mode"] == "replace"
    assert records["SH0050"]["pipeline"] == "WanVideoToVideoPipeline"
    for shot in ("SH0020", "SH0030", "SH0050"):
        [control] = records[shot]["controls"]
        folder = control["preview"].rsplit("/", 1)[0]
        assert store.exists(f"{folder}/control.npz") and store.exists(control["preview"])
    # The review page shows what steered each shot, beside it.
    page = Path(urlparse(summary["review"]).path)
    html = page.read_text()
    assert html.count("Steered by:") == 4  # layouts, a performance (a still mask is no video)
    assert ">performance (pose)</a>" in html and ">plate</a>" in html
    assert 'href="SH0020_control1.mp4">layout (edges)</a>' in html
    assert 'href="SH0040_control1.mp4">mask</a>' not in html  # a still mask: no video
    assert (page.parent / "SH0020_control1.mp4").stat().st_size > 0
    # SH0030 was laid out from its own draft, rendered first.
    animatic = plan.shots[2].fallback.key
    assert read_take_record(store, animatic)["generator"] == "draft"

    # A new version of the layout file: exactly its two shots render again.
    greybox(path.parent / "layouts" / "sh0020.mp4", 120)
    again = render_json(path, store_path, timeout=600)
    assert {s["id"]: s["status"] for s in again["shots"]} == {
        "SH0010": "cached", "SH0020": "rendered", "SH0030": "cached", "SH0040": "cached",
        "SH0050": "rendered", "SH0060": "rendered"}


def test_the_harbour_storyboard_renders_every_kind_with_tiny_models(tiny_weights, tmp_path):
    """storyboards/harbour_sq050.yaml as shipped, but for tiny models: its weights pointed at
    them, its size and steps small, on CPU workers."""
    import shutil

    import yaml

    root = Path(__file__).resolve().parents[2] / "storyboards"
    folder = tmp_path / "harbour"
    for name in ("refs", "panels", "layouts"):
        shutil.copytree(root / name, folder / name)
    board = yaml.safe_load((root / "harbour_sq050.yaml").read_text())
    board["resolution"] = "64x36"
    board["defaults"].update(size="256x144", steps=2,  # (16:9, as its mask is)
                             options={"device": "cpu", "max_sequence_length": 32,
                                      "segment_frame_length": 5})
    board["weights"] = {"depth": str(tiny_weights("depth")),
                        "wan2.1-t2v-14b": str(tiny_weights("wan_t2v")),
                        "wan2.1-vace-14b": str(tiny_weights("wan_vace")),
                        "wan2.1-i2v-14b-720p": str(tiny_weights("wan_i2v")),
                        "wan2.2-animate-14b": str(tiny_weights("wan_animate"))}
    for shot in board["shots"]:
        shot["duration"] = "8f"
    path = folder / "harbour_sq050.yaml"
    path.write_text(yaml.safe_dump(board, sort_keys=False))
    summary = render_json(path, tmp_path / "store", timeout=900)
    assert [s["status"] for s in summary["shots"]] == ["rendered"] * 7
    plan = plan_from_storyboard(load_storyboard(path))
    cut = decode(Path(urlparse(summary["cut"]).path))
    assert cut.shape == (plan.frames, 36, 64, 3)  # frame-exact
    store = open_store(str(tmp_path / "store"))
    record = read_take_record(store, plan.shots[0].selected_take.key)
    assert record["conditioning"][0]["from_key"] == plan.shots[0].still.key  # still first
