"""Incremental assembly: a new version encodes only the pieces whose inputs changed."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_plan, write_takes
from test_publish import LAYOUT, publish_takes, render_report

from previz.assemble import (
    AssembleOptions,
    StorePieces,
    assemble_and_publish,
    cut_from_takes,
    read_video_track,
)
from previz.assemble.cards import read_png
from previz.assemble.ffmpeg import iter_rgb
from previz.plan import plan_from_storyboard
from previz.store import open_store, read_manifest
from previz.storyboard import load_storyboard

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
from store.conftest import aws_env, bucket, moto_url  # noqa: E402, F401

DATE = AssembleOptions(date="2026-12-06")


def reseeded(tmp_path: Path, shot: str):
    """The test plan with one shot's seed changed (a new take for it, the others as they were)."""
    name = f"reseeded-{shot}.yaml"
    make_plan(tmp_path, LAYOUT, name=name)
    board = tmp_path / name
    board.write_text(board.read_text().replace(f"  - id: {shot}\n",
                                               f"  - id: {shot}\n    seed: 9\n"))
    changed = plan_from_storyboard(load_storyboard(board))
    assert changed.shot(shot).selected_take.seed == 9
    return changed


def new_take(tmp_path: Path, store, shot: str):
    """The next version with a new take of `shot` (reseeded, published): (plan, takes,
    manifest)."""
    plan = reseeded(tmp_path, shot)
    takes = write_takes(plan, tmp_path / f"takes-{shot}")
    publish_takes(store, plan, takes, skip={s.id for s in plan.shots if s.id != shot})
    published = assemble_and_publish(plan, store, render_report(plan), options=DATE)
    return plan, takes, read_manifest(store, "TESTPROJ", "SQ010", published.version)


def frames(path: Path, plan) -> list[np.ndarray]:
    return list(iter_rgb(path, plan.width, plan.height))


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_an_edit_encodes_only_the_pieces_it_changed(tmp_path, request, backend):
    plan = make_plan(tmp_path, LAYOUT)
    takes = write_takes(plan, tmp_path / "takes")
    uri = str(tmp_path / "store") if backend == "local" else \
        f"s3://{request.getfixturevalue('bucket')}/p"
    store = open_store(uri)
    publish_takes(store, plan, takes)
    assemble_and_publish(plan, store, render_report(plan), options=DATE)
    first = read_manifest(store, "TESTPROJ", "SQ010", "v001")
    slate = first["cut"]["slate_frames"]
    assert first["review"]["encoded_pieces"] == 4  # slate and three shots: nothing was kept
    assert first["join"]["reused_pieces"] == 0 and first["join"]["encoded_pieces"] == 1

    # SH0020 (dissolving in from SH0010) gets a new take: its piece and its dissolve are
    # encoded again; SH0010's and SH0030's review pieces are reused
    second_plan, _, second = new_take(tmp_path, store, "SH0020")
    sh0020 = second_plan.shots[1]
    assert second["review"] == {"encoded_pieces": 2, "pieces": 4,
                                "encoded_frames": slate + sh0020.frames,
                                "reused_frames": second_plan.frames - sh0020.frames}
    assert second["join"]["encoded_pieces"] == 1 and second["join"]["reused_pieces"] == 0

    # SH0030 (a straight cut) changes: the dissolve into SH0020 is reused as well
    third_plan, third_takes, third = new_take(tmp_path, store, "SH0030")
    assert third["join"]["reused_pieces"] == 1 and third["join"]["encoded_pieces"] == 0
    assert third["review"]["encoded_pieces"] == 2

    # what was reused is what a cut made from nothing shows, frame for frame
    local = tmp_path / "v003"
    for name in ("SQ010_previz_v003_review.mp4", "SQ010_previz_v003_contact.jpg"):
        store.get_file(f"TESTPROJ/SQ010/v003/{name}", local / name)
    fresh = cut_from_takes(third_plan, {**takes, "SH0030": third_takes["SH0030"]},
                           tmp_path / "fresh", options=AssembleOptions(
                               date="2026-12-06", version="v003"))
    kept, made = frames(local / "SQ010_previz_v003_review.mp4", third_plan), \
        frames(fresh.review, third_plan)
    assert len(kept) == len(made) == slate + third_plan.frames
    assert all(np.array_equal(a, b) for a, b in zip(kept, made, strict=True))
    assert (local / "SQ010_previz_v003_contact.jpg").read_bytes() == \
        fresh.contact_sheet.read_bytes()



def test_a_damaged_piece_is_encoded_again_and_replaced(tmp_path):
    plan = make_plan(tmp_path, LAYOUT)
    takes = write_takes(plan, tmp_path / "takes")
    root = tmp_path / "store"
    store = open_store(str(root))
    publish_takes(store, plan, takes)
    assemble_and_publish(plan, store, render_report(plan), options=DATE)
    kept = sorted(p for p in (root / "pieces").rglob("*") if p.is_file())
    assert {p.suffix for p in kept} == {".mp4", ".png"}
    for path in kept:  # every piece cut short, as an interrupted copy would leave it
        path.write_bytes(path.read_bytes()[:200])
    # the same cut again, as a later version: it needs every piece the first one kept
    again = cut_from_takes(plan, takes, tmp_path / "again", pieces=StorePieces(store),
                           options=AssembleOptions(version="v002", date="2026-12-06"))
    assert again.manifest["review"]["encoded_pieces"] == 4  # no damaged piece was used
    assert again.manifest["join"]["reused_pieces"] == 0
    assert read_video_track(again.review).frames == \
        again.manifest["cut"]["slate_frames"] + plan.frames
    for path in kept:  # and each was replaced by a whole one
        if path.suffix == ".mp4":
            assert read_video_track(path).frames > 0
        else:
            assert read_png(path).shape[1] == AssembleOptions().thumbnail_width
    reused = cut_from_takes(plan, takes, tmp_path / "reused", pieces=StorePieces(store),
                            options=AssembleOptions(version="v003", date="2026-12-06"))
    assert reused.manifest["review"]["encoded_pieces"] == 1  # the slate only
    assert reused.manifest["join"]["reused_pieces"] == 1


def test_a_store_that_cannot_keep_pieces_still_publishes_the_cut(tmp_path, caplog):
    plan = make_plan(tmp_path, LAYOUT)
    takes = write_takes(plan, tmp_path / "takes")
    root = tmp_path / "store"
    store = open_store(str(root))
    publish_takes(store, plan, takes)
    (root / "pieces").write_text("not a folder")  # every write under pieces/ fails
    with caplog.at_level(logging.WARNING, logger="previz.assemble.pieces"):
        published = assemble_and_publish(plan, store, render_report(plan), options=DATE)
    assert published.version == "v001"
    warnings = [r.getMessage() for r in caplog.records if r.name == "previz.assemble.pieces"]
    assert len(warnings) == 1 and "not cached" in warnings[0]
    review = root / "TESTPROJ/SQ010/v001/SQ010_previz_v001_review.mp4"
    manifest = read_manifest(store, "TESTPROJ", "SQ010", "v001")
    assert read_video_track(review).frames == manifest["cut"]["slate_frames"] + plan.frames
