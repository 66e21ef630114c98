"""`previz render` end to end on a real Ray cluster: takes rendered, the cut assembled and
published, exit codes, --json, resume, --only / --force. The cut is checked by decoding it: the
synthetic generator draws each frame's number, so frame N of the cut names the take it came from."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

import av
import numpy as np
import pytest
from engine_support import ROOT, SIX_SHOTS, synthetic_board

from previz.cli import main
from previz.generate.synthetic import read_frame_number
from previz.plan import plan_from_storyboard
from previz.store import open_store
from previz.store.ledger import read_ledger
from previz.store.takes import has_take, read_take_record
from previz.storyboard import load_storyboard

pytestmark = pytest.mark.slow

ALWAYS_FAILS = ", ".join(f"{{shot: SH0060, attempt: {n}, kind: raise}}" for n in (1, 2, 3))


def render(capsys, *args: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["render", *args, "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def frames_of(uri: str) -> np.ndarray:
    with av.open(urlparse(uri).path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_a_failing_shot_leaves_a_placeholder_and_exit_3_then_resume_and_only(ray_cluster,
                                                                             tmp_path, capsys):
    board = synthetic_board(tmp_path, SIX_SHOTS, options=(
        f"{{gpus: 1, seconds_per_frame: 0.002, faults: [{ALWAYS_FAILS}]}}"))
    plan = plan_from_storyboard(load_storyboard(board))
    store = str(tmp_path / "store")

    code, summary = render(capsys, str(board), "--store", store)
    assert code == 3
    status = {s["id"]: s["status"] for s in summary["shots"]}
    assert status == {"SH0010": "rendered", "SH0020": "rendered", "SH0030": "rendered",
                      "SH0040": "rendered", "SH0050": "rendered", "SH0060": "failed"}
    assert summary["version"] == "v001"
    assert {s["id"]: s["take"] for s in summary["shots"]} == {
        shot.id: shot.selected_take.key for shot in plan.shots}
    assert Path(urlparse(summary["review"]).path).is_file()
    assert {"otio", "edl", "xml"} <= set(summary["files"])

    cut = frames_of(summary["cut"])
    assert len(cut) == plan.frames
    failed = plan.shot("SH0060")
    held = cut[failed.record_in + 8:failed.record_out]  # clear of the dissolve into it
    with pytest.raises(ValueError):
        read_frame_number(held[0])  # a placeholder card, not a take
    cut_shot = plan.shot("SH0010")  # a cut, no transition: frame i of the shot is take frame i
    assert [read_frame_number(f) for f in cut[cut_shot.record_in:cut_shot.record_out]] == \
        list(range(cut_shot.frames))

    # The same command again: nothing that exists renders twice; the edit is unchanged.
    code, again = render(capsys, str(board), "--store", store)
    assert code == 3 and again["version"] == "v001" and again["reused"] is True
    assert [s["cached"] for s in again["shots"]] == [True] * 5 + [False]

    # --only with --force: that shot renders again; the others are taken from the store.
    code, only = render(capsys, str(board), "--store", store, "--only", "SH0010", "--force")
    assert code == 3
    statuses = {s["id"]: (s["status"], s["cached"]) for s in only["shots"]}
    assert statuses["SH0010"] == ("rendered", False)
    assert statuses["SH0040"][1] is True


def test_render_reports_invalid_input_with_exit_2(ray_cluster, tmp_path, capsys):
    board = synthetic_board(tmp_path, "- {id: SH0010, duration: 12f, prompt: x, camra: {}}\n")
    code = main(["render", str(board), "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert code == 2 and "unknown field 'camra' — did you mean 'camera'?" in err
    assert not (tmp_path / "store").exists()
    code = main(["render", str(board), "--only", "SH9999"])
    assert code == 2


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_render_cancels_running_shots_and_keeps_finished_takes(ray_cluster, tmp_path,
                                                                        signum):
    # Shots of 2-9 s: when the second take is published, others are still rendering.
    board = synthetic_board(tmp_path, SIX_SHOTS, options="{gpus: 1, seconds_per_frame: 0.3}")
    plan = plan_from_storyboard(load_storyboard(board))
    store_uri = str(tmp_path / "store")
    # As when pytest itself runs in the background (`nohup … &`): SIGINT is ignored here, and a
    # child inherits that unless it is given the default back, as Ctrl-C in a terminal has it.
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        render = subprocess.Popen(
            [sys.executable, "-m", "previz", "render", str(board), "--store", store_uri,
             "--address", ray_cluster.address], env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    finally:
        signal.signal(signal.SIGINT, ignored)
    store = open_store(store_uri)
    limit = time.time() + 120
    while sum(has_take(store, t.key) for t in plan.takes()) < 2 and time.time() < limit:
        time.sleep(0.05)
    render.send_signal(signum)
    _, err = render.communicate(timeout=180)
    assert render.returncode == 130, err
    assert "interrupted: running shots cancelled, finished takes kept" in err
    published = {t.key for t in plan.takes() if has_take(store, t.key)}
    assert 2 <= len(published) < len(plan.takes())
    rows = read_ledger(store).to_pylist()
    finished = {r["take_key"] for r in rows if r["outcome"] == "ok"}
    # Every published take has its row, takes that published while the render stopped too.
    assert finished == published
    cancelled = {r["take_key"] for r in rows if r["outcome"] == "cancelled"}
    assert cancelled and not cancelled & published
    assert not (tmp_path / "store" / "TEST").exists()  # no cut was published


def test_a_deadline_render_publishes_its_cut_by_the_deadline(ray_cluster, tmp_path, capsys):
    # 24 shots of 3 s on 4 GPUs is 18 s of work; the cut must be out 30 s from now, so the
    # engine stops early enough to assemble, and the shots it could not finish are drafts.
    shots = "".join(f"- {{id: SH{n:02d}0, duration: 12f, prompt: shot {n}}}\n"
                    for n in range(1, 25))
    board = synthetic_board(tmp_path, shots, options="{gpus: 1, seconds_per_frame: 0.25}")
    store = tmp_path / "store"
    deadline = time.time() + 30
    code, summary = render(capsys, str(board), "--store", str(store), "--deadline",
                           datetime.fromtimestamp(deadline, timezone.utc).isoformat())
    assert code == 0, summary
    drafted = {s["id"] for s in summary["shots"] if s["status"] == "draft"}
    assert drafted and len(drafted) < 24
    version = store / "TEST" / "SQ010" / summary["version"]
    manifest = json.loads((version / "manifest.json").read_text())
    assert datetime.fromisoformat(manifest["published_at"]).timestamp() <= deadline
    assert {s["id"] for s in manifest["shots"] if s["generator"] == "draft"} == drafted
    review = (version / "review.html").read_text()
    assert review.count('<span class="status draft">') == len(drafted)


def test_a_deadline_render_can_fall_back_to_fewer_steps(ray_cluster, tmp_path, capsys):
    # Each shot is 12 frames at 20 steps of 0.0125 s: 3 s at final quality, 0.75 s at the
    # fewer-steps take's 5. 24 shots on 4 GPUs is 18 s of final work and the engine has about
    # 12 s before it must stop, so some shots finish at final quality and the rest stand in
    # at 5 steps — pictures from the shot's own model, not draft cards.
    shots = "".join(f"- {{id: SH{n:02d}0, duration: 12f, prompt: shot {n}, steps: 20}}\n"
                    for n in range(1, 25))
    board = synthetic_board(tmp_path, shots, options="{gpus: 1, seconds_per_frame_step: 0.0125}")
    plan = plan_from_storyboard(load_storyboard(board))
    store = tmp_path / "store"
    deadline = time.time() + 30
    code, summary = render(capsys, str(board), "--store", str(store), "--deadline",
                           datetime.fromtimestamp(deadline, timezone.utc).isoformat(),
                           "--deadline-fallback", "fewer-steps")
    assert code == 0, summary
    statuses = {s["id"]: s["status"] for s in summary["shots"]}
    stand_ins = {s["id"]: s["take"] for s in summary["shots"] if s["status"] == "draft"}
    assert stand_ins and "rendered" in statuses.values(), statuses
    reduced = {sid for sid, key in stand_ins.items() if key == plan.shot(sid).reduced.key}
    assert reduced, "no shot stood in at fewer steps"
    takes = open_store(str(store))
    for sid in reduced:
        record = read_take_record(takes, stand_ins[sid])["recipe"]
        assert (record["generator"], record["steps"]) == ("synthetic", 5)

    version = store / "TEST" / "SQ010" / summary["version"]
    manifest = json.loads((version / "manifest.json").read_text())
    assert datetime.fromisoformat(manifest["published_at"]).timestamp() <= deadline
    shown = {s["id"]: s for s in manifest["shots"]}
    for sid in reduced:
        assert (shown[sid]["status"], shown[sid]["steps"], shown[sid]["final_steps"]) == \
            ("draft", 5, 20)
    assert all(shown[sid]["steps"] == 20 for sid, st in statuses.items() if st == "rendered")
    review = (version / "review.html").read_text()
    assert review.count('<span class="status draft">') == len(stand_ins)
    assert review.count("5 of 20 steps</span>") == len(reduced)
    assert review.count("draft 5/20 steps") == len(reduced)

    # The next run, with no deadline, renders every stand-in at its full 20 steps.
    code, upgraded = render(capsys, str(board), "--store", str(store))
    assert code == 0, upgraded
    assert {s["id"] for s in upgraded["shots"] if s["status"] == "rendered"} == set(stand_ins)
    assert all(s["status"] in ("rendered", "cached") for s in upgraded["shots"])


def test_deadline_fallback_needs_a_deadline(tmp_path, capsys):
    board = synthetic_board(tmp_path, "- {id: SH0010, duration: 12f, prompt: x}\n")
    assert main(["render", str(board), "--deadline-fallback", "fewer-steps"]) == 2
    assert "--deadline-fallback fewer-steps: only with --deadline" in capsys.readouterr().err


def test_a_render_in_which_no_shot_comes_out_publishes_no_version(ray_cluster, tmp_path,
                                                                   capsys):
    faults = ", ".join(f"{{shot: {shot}, attempt: {n}, kind: raise}}"
                       for shot in ("SH0010", "SH0020") for n in (1, 2, 3))
    board = synthetic_board(tmp_path, "- {id: SH0010, duration: 12f, prompt: a}\n"
                                      "- {id: SH0020, duration: 12f, prompt: b}\n",
                            options=f"{{gpus: 1, faults: [{faults}]}}")
    store = tmp_path / "store"
    capsys.readouterr()
    assert main(["render", str(board), "--store", str(store), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no summary of a version that does not exist
    last = captured.err.strip().splitlines()[-1]
    assert last.startswith("previz: run ") and "no shot rendered, none in the store (2 failed)" \
        "; no version published — the first, SH0010: InjectedFault" in last
    assert not (store / "TEST").exists()  # no version, no claim
    # The attempts are in the ledger all the same.
    assert {r["outcome"] for r in read_ledger(open_store(str(store))).to_pylist()} == {"failed"}
