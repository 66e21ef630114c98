"""The engine on a real Ray cluster (two nodes, two logical GPUs each) with the synthetic
generator standing in for a GPU model; takes are checked by decoding them."""

import signal
import textwrap
import threading
import time

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
from engine_support import SIX_SHOTS, synthetic_board

from previz.engine import EngineSettings, render_plan
from previz.errors import PrevizError
from previz.plan import plan_from_storyboard
from previz.store import open_store
from previz.store.takes import fetch_take_media, has_take, read_take_record
from previz.storyboard import load_storyboard

pytestmark = pytest.mark.slow


def plan_for(path):
    return plan_from_storyboard(load_storyboard(path))


def decoded_frames(store, key, tmp_path) -> np.ndarray:
    path = fetch_take_media(store, key, tmp_path / f"{key}.mp4")
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def frame_numbers(frames) -> list[int]:
    from previz.generate.synthetic import read_frame_number

    return [read_frame_number(frame) for frame in frames]


def ledger(store):
    from previz.store.ledger import read_ledger

    return read_ledger(store).to_pylist()


def test_renders_every_take_once_then_resumes(ray_cluster, tmp_path):
    plan = plan_for(synthetic_board(tmp_path, SIX_SHOTS))
    store = open_store(str(tmp_path / "store"))
    report = render_plan(plan, str(tmp_path / "store"))
    assert report.complete
    assert [s.status for s in report.shots] == ["rendered"] * 6
    for take in plan.takes():
        assert has_take(store, take.key)
        frames = decoded_frames(store, take.key, tmp_path)
        assert len(frames) == take.retime.cut_frames
        assert frames.shape[1:3] == (108, 192)
        assert frame_numbers(frames) == take.retime.source_indices()
    # Every attempt is in the ledger, and it sums to what the run reported.
    rows = ledger(store)
    assert len(rows) == len(report.attempts) == len(plan.takes())
    assert {r["outcome"] for r in rows} == {"ok"}
    assert sum(r["gpu_seconds"] for r in rows) == pytest.approx(report.gpu_seconds)
    # Warm workers: each loads the model once, whatever number of shots it renders.
    assert report.loads <= 4
    # A continued shot starts from the last frame of what it continues (as seen in the cut).
    record = read_take_record(store, plan.shot("SH0030").selected_take.key)
    assert record["recipe"]["conditioning"][0]["from_key"] == plan.shot("SH0020").selected_take.key

    again = render_plan(plan, str(tmp_path / "store"))
    assert [s.status for s in again.shots] == ["cached"] * 6
    assert again.attempts == []


def test_one_prompt_change_renders_one_take(ray_cluster, tmp_path):
    board = synthetic_board(tmp_path, SIX_SHOTS)
    render_plan(plan_for(board), str(tmp_path / "store"))
    board.write_text(board.read_text().replace("prompt: gull", "prompt: two gulls"))
    report = render_plan(plan_for(board), str(tmp_path / "store"))
    rendered = {a.shot for a in report.attempts if a.outcome == "ok"}
    assert rendered == {"SH0040"}
    assert len(report.rendered_keys()) == 2  # SH0040 has two takes


def test_only_renders_named_shots_and_their_needs(ray_cluster, tmp_path):
    plan = plan_for(synthetic_board(tmp_path, SIX_SHOTS))
    report = render_plan(plan, str(tmp_path / "store"), only=["SH0030"])
    assert {a.shot for a in report.attempts} == {"SH0020", "SH0030"}
    assert {s.id: s.status for s in report.shots}["SH0060"] == "missing"  # nothing in the store
    forced = render_plan(plan, str(tmp_path / "store"), only=["SH0030"], force=True)
    assert {a.shot for a in forced.attempts} == {"SH0030"}


def test_always_failing_shot_is_reported_after_its_retries(ray_cluster, tmp_path):
    faults = ", ".join(f"{{shot: SH0020, attempt: {n}, kind: raise}}" for n in (1, 2, 3))
    plan = plan_for(synthetic_board(
        tmp_path, SIX_SHOTS, options=f"{{gpus: 1, seconds_per_frame: 0.01, faults: [{faults}]}}"))
    report = render_plan(plan, str(tmp_path / "store"))
    status = {s.id: s.status for s in report.shots}
    assert status["SH0020"] == "failed" and status["SH0030"] == "failed"  # SH0030 continues it
    assert not report.complete
    failures = [r for r in ledger(open_store(str(tmp_path / "store"))) if r["outcome"] == "failed"]
    assert sorted(r["attempt"] for r in failures) == [1, 2, 3]
    assert all(r["shot"] == "SH0020" and "injected" in r["error"].lower() for r in failures)
    assert sum(s.status == "rendered" for s in report.shots) == 4


def test_a_worker_that_fails_different_shots_is_retired(ray_cluster, tmp_path):
    # One GPU worker; three different shots fail on their first attempt. The worker that
    # failed them all takes no more work: a fresh one renders every shot.
    faults = ", ".join(f"{{shot: {shot}, attempt: 1, kind: raise}}"  # one take each
                       for shot in ("SH0010", "SH0020", "SH0050"))
    plan = plan_for(synthetic_board(
        tmp_path, SIX_SHOTS, options=f"{{gpus: 1, seconds_per_frame: 0.01, faults: [{faults}]}}"))
    settings = EngineSettings(max_gpu_workers=1, retire_after_failures=3)
    report = render_plan(plan, str(tmp_path / "store"), settings=settings)
    assert report.complete, [(s.id, s.error) for s in report.shots]
    failed = [a for a in report.attempts if a.outcome == "failed"]
    assert {a.shot for a in failed} == {"SH0010", "SH0020", "SH0050"}
    retired = {a.worker for a in failed}
    assert len(retired) == 1
    # After its third failure it only finishes what was already queued on it (one task).
    last_failure = max(a.finished_at for a in failed)
    after = [a for a in report.attempts if a.started_at >= last_failure]
    assert len([a for a in after if a.worker in retired]) <= settings.queue_depth - 1
    last = max(failed, key=lambda a: a.finished_at).shot
    retried = [a for a in report.attempts if a.shot == last and a.outcome == "ok"]
    assert [a.worker in retired for a in retried] == [False]


def test_out_of_memory_is_retried_with_offload(ray_cluster, tmp_path):
    plan = plan_for(synthetic_board(
        tmp_path, "- {id: SH0010, duration: 12f, prompt: x}\n",
        options="{gpus: 1, faults: [{shot: SH0010, attempt: 1, kind: oom}]}"))
    store = open_store(str(tmp_path / "store"))
    report = render_plan(plan, str(tmp_path / "store"))
    assert report.complete
    outcomes = [(a.attempt, a.outcome) for a in report.attempts]
    assert outcomes == [(1, "failed"), (2, "ok")]
    assert "memory" in report.attempts[0].error.lower()
    record = read_take_record(store, plan.shots[0].selected_take.key)
    assert record["options"].get("cpu_offload") is True


def test_worker_killed_mid_shot_costs_only_that_shot(ray_cluster, tmp_path):
    import os
    import signal

    from ray._private.state import actors  # the GCS actor table; needs no dashboard

    plan = plan_for(synthetic_board(tmp_path, SIX_SHOTS,
                                    options="{gpus: 1, seconds_per_frame: 0.08}"))
    killed = []

    def kill_a_busy_worker():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            alive = [a for a in actors().values() if a["ActorClassName"] == "RenderWorker"
                     and a["State"] == "ALIVE" and a["Pid"]]
            if alive:
                time.sleep(1.0)  # let it get into a shot
                pid = alive[0]["Pid"]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.2)

    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    report = render_plan(plan, str(tmp_path / "store"))
    killer.join()
    assert killed
    assert report.complete
    store = open_store(str(tmp_path / "store"))
    assert all(has_take(store, take.key) for take in plan.takes())
    lost = [a for a in report.attempts if a.outcome == "failed"]
    assert len(lost) == 1 and "lost" in lost[0].error
    retried = [a for a in report.attempts if a.take_key == lost[0].take_key]
    assert [a.outcome for a in retried] == ["failed", "ok"]


def test_ledger_is_readable_as_parquet(ray_cluster, tmp_path):
    plan = plan_for(synthetic_board(tmp_path, SIX_SHOTS))
    report = render_plan(plan, str(tmp_path / "store"))
    table = pq.read_table(str(tmp_path / "store" / "ledger"))
    assert table.num_rows == len(report.attempts)
    assert sum(table.column("frames").to_pylist()) == sum(a.frames for a in report.attempts)
    assert sum(table.column("gpu_seconds").to_pylist()) == pytest.approx(report.gpu_seconds)


def test_a_ledger_that_cannot_be_written_is_said_and_the_takes_stand(ray_cluster, tmp_path,
                                                                     caplog):
    plan = plan_for(synthetic_board(tmp_path, "- {id: SH0010, duration: 12f, prompt: x}\n"))
    store = tmp_path / "store"
    store.mkdir()
    (store / "ledger").write_text("a file where the ledger's folder belongs")
    with caplog.at_level("WARNING", logger="previz.engine.render"):
        report = render_plan(plan, str(store))
    assert report.complete and has_take(open_store(str(store)), plan.shots[0].selected_take.key)
    assert f"run {report.run_id}: 1 attempt(s) could not be added to the ledger" in caplog.text


def test_settings_limit_attempts(ray_cluster, tmp_path):
    plan = plan_for(synthetic_board(
        tmp_path, "- {id: SH0010, duration: 12f, prompt: x}\n",
        options="{gpus: 1, faults: [{shot: SH0010, attempt: 1, kind: raise}]}"))
    report = render_plan(plan, str(tmp_path / "store"), settings=EngineSettings(max_attempts=1))
    assert [s.status for s in report.shots] == ["failed"]


def test_deadline_drafts_what_cannot_finish_and_next_run_upgrades(ray_cluster, tmp_path):
    # 24 shots of 3 s each on 4 GPUs is 18 s of work however fast workers start; with a 20 s
    # deadline (18 s after the margin) the engine must draft the least critical shots.
    shots = "".join(f"- {{id: SH{n:02d}0, duration: 12f, prompt: shot {n}}}\n"
                    for n in range(1, 25))
    plan = plan_for(synthetic_board(tmp_path, shots, options="{gpus: 1, seconds_per_frame: 0.25}"))
    started = time.time()
    settings = EngineSettings(deadline=started + 20)
    report = render_plan(plan, str(tmp_path / "store"), settings=settings)
    assert time.time() - started < 35  # stopped at the deadline (plus cancel), not after the work
    status = [s.status for s in report.shots]
    assert "draft" in status and "rendered" in status, status
    assert report.complete, [(s.id, s.status, s.error) for s in report.shots]
    store = open_store(str(tmp_path / "store"))
    for shot, outcome in zip(plan.shots, report.shots, strict=True):
        assert has_take(store, outcome.take)
        if outcome.draft:
            assert outcome.take == shot.fallback.key
            assert read_take_record(store, outcome.take)["recipe"]["generator"] == "draft"
    # The next run, without a deadline, renders the drafted shots at final quality.
    upgraded = render_plan(plan, str(tmp_path / "store"))
    assert all(s.status in ("rendered", "cached") for s in upgraded.shots)
    drafted = {s.id for s in report.shots if s.draft}
    assert {s.id for s in upgraded.shots if s.status == "rendered"} == drafted


def test_work_no_node_can_host_fails_clearly_after_the_autoscaler_grace(ray_cluster, tmp_path):
    # Each node has two logical GPUs; a four-GPU model can never be placed.
    plan = plan_for(synthetic_board(tmp_path, "- {id: SH0010, duration: 12f, prompt: x}\n",
                                    options="{gpus: 4}"))
    with pytest.raises(PrevizError, match=r"SH0010 \(synthetic\): need 4 GPU\(s\) on one node, "
                                          r"but the largest node of this cluster has 2"):
        render_plan(plan, str(tmp_path / "store"),
                    settings=EngineSettings(capacity_wait_seconds=1))


def test_a_writer_killed_mid_write_leaves_nothing_in_the_take_and_a_render_sweeps_it(tmp_path):
    """A worker killed while it writes a take (here by the kernel: SIGXFSZ at a file-size
    limit) leaves its half-written file in the store's staging folder, not in the take's; the
    next render sweeps it (its writer is gone)."""
    import subprocess
    import sys

    from engine_support import ROOT

    store_uri = str(tmp_path / "store")
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 2_000_000)
    key = "ab" * 32
    child = textwrap.dedent(f"""
        import resource, signal
        from previz.store import open_store, publish_take
        signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; the kernel kills
        resource.setrlimit(resource.RLIMIT_FSIZE, (500_000, resource.RLIM_INFINITY))
        publish_take(open_store({store_uri!r}), {key!r}, {str(big)!r}, {{"shot": "SH0010"}})
    """)
    done = subprocess.run([sys.executable, "-c", child], env={"PYTHONPATH": str(ROOT)},
                          capture_output=True, timeout=60)
    assert done.returncode == -signal.SIGXFSZ, done.stderr
    store = open_store(store_uri)
    assert not has_take(store, key)
    take_folder = tmp_path / "store" / "takes" / key[:2] / key
    assert not take_folder.exists() or not any(take_folder.iterdir())
    staged = list((tmp_path / "store" / ".staging").iterdir())
    assert len(staged) == 1 and staged[0].stat().st_size == 500_000

    plan = plan_for(synthetic_board(tmp_path, "- {id: SH0010, duration: 12f, prompt: x}\n"))
    render_plan(plan, store_uri, only=[])  # nothing to render: no cluster, but a sweep
    assert not staged[0].exists()
