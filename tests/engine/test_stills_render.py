"""Stills first, then motion, through `previz render` with tiny pipelines loaded from disk: a
`--stills` render makes one still per shot (a panel shot shows its draft card) and a cut of
them held for each shot's length, marked STILL; an approved still then starts its shot's motion
pass; a new prompt makes exactly one new still."""

from __future__ import annotations

import textwrap
from pathlib import Path
from urllib.parse import urlparse

import pytest
from command_support import render_json
from PIL import Image
from test_diffusers_render import decode

from previz.plan import plan_from_storyboard
from previz.store import open_store
from previz.store.takes import read_take_record
from previz.storyboard import load_storyboard

pytestmark = pytest.mark.slow


def write_board(path: Path, tiny_weights, approved: bool = False, dusk: str = "dusk") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 32), (40, 90, 200)).save(path.parent / "panel.png")
    still = ", still: approved" if approved else ""
    path.write_text(textwrap.dedent(f"""\
        project: TINY
        sequence: SQ060
        fps: 24
        resolution: 32x32
        weights:
          wan2.1-t2v-1.3b: {tiny_weights("wan_t2v")}
          wan2.1-vace-1.3b: {tiny_weights("wan_vace")}
        defaults:
          model: wan
          size: 16x16
          steps: 2
          seed: 3
          options: {{device: cpu, max_sequence_length: 32}}
        shots:
          - {{id: SH0010, duration: 12f, prompt: "the harbour at {dusk}"{still}}}
          - {{id: SH0020, duration: 12f, prompt: "the quay"}}
          - {{id: SH0030, duration: 12f, prompt: "the panel", image: panel.png}}
        """))
    return path


def test_stills_first_then_motion_from_an_approved_still(tiny_weights, tmp_path):
    path = write_board(tmp_path / "board" / "board.yaml", tiny_weights)
    store_path = tmp_path / "store"
    stills = render_json(path, store_path, "--stills", timeout=600)
    plan = plan_from_storyboard(load_storyboard(path))
    assert [s["status"] for s in stills["shots"]] == ["draft"] * 3
    assert [s["take"] for s in stills["shots"]] == [
        plan.shots[0].still.key, plan.shots[1].still.key, plan.shots[2].fallback.key]
    store = open_store(str(store_path))
    record = read_take_record(store, plan.shots[0].still.key)
    assert record["model"] == "wan2.1-t2v-1.3b" and record["call"]["num_frames"] == 1
    cut = decode(Path(urlparse(stills["cut"]).path))
    assert cut.shape == (plan.frames, 32, 32, 3)
    # one frame held for the shot's length (to within the H.264 encode of a still picture)
    assert abs(cut[:12].astype(int) - cut[0].astype(int)).max() <= 6
    assert Path(urlparse(stills["review"]).path).read_text().count(" · still") == 2

    # SH0010's still approved: its motion pass starts from it; the still is not made again.
    write_board(path, tiny_weights, approved=True)
    plan = plan_from_storyboard(load_storyboard(path))
    motion = render_json(path, store_path, timeout=600)
    assert [s["status"] for s in motion["shots"]] == ["rendered"] * 3
    record = read_take_record(store, plan.shots[0].selected_take.key)
    assert record["model"] == "wan2.1-vace-1.3b"
    assert [c["from_key"] for c in record["conditioning"]] == [plan.shots[0].still.key]
    rows = [a for a in read_ledger_rows(store) if a["run_id"] == motion["run_id"]]
    assert plan.shots[0].still.key not in {row["take_key"] for row in rows}

    # A new prompt for SH0010: one new still, the others are in the store.
    write_board(path, tiny_weights, dusk="dawn")
    again = render_json(path, store_path, "--stills", timeout=600)
    assert [s["cached"] for s in again["shots"]] == [False, True, True]


def read_ledger_rows(store) -> list[dict]:
    from previz.store.ledger import read_ledger

    return read_ledger(store).to_pylist()
